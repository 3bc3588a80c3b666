//! The payment schedule and dunning (R7's extra deposit, R8, R9, R15): installments from the workflow's template
//! in exact money, kept summing to the order amount through change orders; payments refused when they would
//! overpay; invoices, reminders, the pause and the escalation each once, on the policy's days.

use crate::support::*;
use chrono::NaiveDate;
use ordertrail_domain::Role;
use ordertrail_domain::error::DomainError;
use ordertrail_domain::ids::OrderId;
use ordertrail_domain::money::Money;
use ordertrail_domain::payment::{
    ApprovedChange, DunningAction, DunningKind, DunningPolicy, ExtraDepositPolicy, InstallmentKind, InstallmentState,
    Payment, PaymentMethod, PaymentSchedule, PaymentTemplate, Share, Trigger, dunning_actions, production_pause,
};
use proptest::prelude::*;
use std::collections::BTreeSet;
use uuid::Uuid;

const ORDER: OrderId = OrderId(Uuid::from_u128(0x0de5));

fn usd(amount: &str) -> Money {
    Money::parse("USD", amount).expect("a valid amount")
}

fn amounts(schedule: &PaymentSchedule) -> Vec<String> {
    schedule.installments.iter().map(|i| i.amount.amount_string()).collect()
}

fn custom_production(amount: Money) -> PaymentSchedule {
    PaymentSchedule::from_template(ORDER, amount, &PaymentTemplate::custom_production()).expect("a valid schedule")
}

fn paid(amount: Money, on: NaiveDate) -> Payment {
    Payment {
        amount,
        paid_on: on,
        method: PaymentMethod::BankTransfer,
        reference: Some("TRX-1".into()),
    }
}

fn change(id: &str, new_amount: Money, on: NaiveDate) -> ApprovedChange {
    ApprovedChange {
        change_order: id.into(),
        new_amount,
        approved_on: on,
        work_starts_on: None,
    }
}

/// A 10,000.00 USD costume order, signed and deposit paid on 1 March, first fitting completed on 10 April:
/// installment 2 (2,500.00) is due on 10 April.
fn studio_order() -> PaymentSchedule {
    let mut schedule = custom_production(usd("10000.00"));
    schedule.contract_signed(date(2026, 3, 1)).expect("signed");
    schedule
        .record_payment(Some(1), paid(usd("5000.00"), date(2026, 3, 1)))
        .expect("deposit paid");
    assert_eq!(
        schedule.milestone_completed("first_fitting", date(2026, 4, 10)),
        vec![2]
    );
    schedule
}

fn kinds(actions: &[DunningAction]) -> Vec<(u32, DunningKind)> {
    actions.iter().map(|a| (a.installment, a.kind)).collect()
}

/// Runs dunning as the service does: what it returns is done and its keys recorded.
fn run_dunning(schedule: &PaymentSchedule, today: NaiveDate, done: &mut BTreeSet<String>) -> Vec<DunningAction> {
    let actions = dunning_actions(schedule, &DunningPolicy::default(), today, done);
    done.extend(actions.iter().map(|a| a.dedupe_key.clone()));
    actions
}

#[test]
fn installments_of_a_custom_production_order_are_50_25_25_and_sum_to_the_amount() {
    let schedule = custom_production(usd("12000.00"));
    assert_eq!(amounts(&schedule), ["6000.00", "3000.00", "3000.00"]);
    assert_eq!(schedule.installments_total(), usd("12000.00"));
    let names: Vec<_> = schedule
        .installments
        .iter()
        .map(|i| (i.number, i.name.as_str()))
        .collect();
    assert_eq!(names, [(1, "Deposit"), (2, "Mid-project"), (3, "Final")]);
    assert_eq!(schedule.installments[0].trigger, Trigger::AtSigning);
    assert_eq!(
        schedule.installments[1].trigger,
        Trigger::MilestoneCompleted {
            milestone: "first_fitting".into()
        }
    );
    assert_eq!(schedule.installments[2].trigger, Trigger::AtDelivery);
    // Nothing is due until its trigger happens.
    assert!(schedule.installments.iter().all(|i| i.due_on.is_none()));
    assert!(
        schedule
            .installments
            .iter()
            .all(|i| i.state() == InstallmentState::Scheduled)
    );
}

#[test]
fn an_odd_amount_puts_the_remainder_on_the_last_installment() {
    let schedule = custom_production(usd("1000.03"));
    assert_eq!(amounts(&schedule), ["500.01", "250.00", "250.02"]);
    assert_eq!(schedule.installments_total(), usd("1000.03"));

    let yen = custom_production(Money::parse("JPY", "1001").expect("yen"));
    assert_eq!(amounts(&yen), ["500", "250", "251"]);

    let dinar = custom_production(Money::parse("KWD", "0.007").expect("dinar"));
    assert_eq!(amounts(&dinar), ["0.003", "0.001", "0.003"]);
}

#[test]
fn each_preset_has_a_payment_template_that_fits_its_workflow() {
    for id in PRESET_IDS {
        let template = PaymentTemplate::preset(id).unwrap_or_else(|| panic!("no payment template for {id}"));
        template.check().expect("a valid template");
        template.check_milestones(workflow(id)).expect("its milestones exist");
        let text = toml::to_string(&template).expect("written as TOML");
        assert_eq!(PaymentTemplate::from_toml(&text).expect("read back"), template);
    }
    let shares: Vec<String> = PaymentTemplate::make_to_order()
        .installments
        .iter()
        .map(|i| i.share.to_string())
        .collect();
    assert_eq!(shares, ["30%", "70%"]);
}

#[test]
fn a_template_is_read_from_toml_and_its_mistakes_are_named() {
    let template = PaymentTemplate::from_toml(
        r#"
        [[installments]]
        name = "Deposit"
        share = "33.33%"
        trigger = { kind = "at_signing" }

        [[installments]]
        name = "Progress"
        share = "33.33%"
        trigger = { kind = "milestone_completed", milestone = "first_fitting" }

        [[installments]]
        name = "Final"
        share = "33.34%"
        trigger = { kind = "at_delivery" }
        days_after = 30
        "#,
    )
    .expect("a valid template");
    assert_eq!(template.installments[0].share, Share::from_basis_points(3333));
    assert_eq!(template.installments[2].days_after, 30);

    let short = PaymentTemplate::from_toml(
        r#"
        [[installments]]
        name = "Deposit"
        share = "50%"
        trigger = { kind = "at_signing" }

        [[installments]]
        name = ""
        share = "40%"
        trigger = { kind = "on_date", date = "2026-06-01" }
        "#,
    );
    assert_eq!(invalid_fields(short.clone()), ["installments[1].name", "installments"]);
    assert_eq!(
        invalid_message(short, "installments"),
        "shares must sum to 100% (they sum to 90%)"
    );

    assert_eq!(
        invalid_message(PaymentTemplate::from_toml("installments = []"), "installments"),
        "must have at least one installment"
    );
    let bad_share = PaymentTemplate::from_toml(
        "[[installments]]\nname = \"All\"\nshare = \"100.001%\"\ntrigger = { kind = \"at_signing\" }",
    );
    assert!(invalid_message(bad_share, "payment_template").contains("at most two decimals"));
    let unknown_trigger = PaymentTemplate::from_toml(
        "[[installments]]\nname = \"All\"\nshare = \"100%\"\ntrigger = { kind = \"someday\" }",
    );
    assert_eq!(invalid_fields(unknown_trigger), ["payment_template"]);

    let wrong_milestone = PaymentTemplate::from_toml(
        "[[installments]]\nname = \"All\"\nshare = \"100%\"\n\
         trigger = { kind = \"milestone_completed\", milestone = \"first_fitting\" }",
    )
    .expect("valid on its own");
    assert_eq!(
        invalid_message(
            wrong_milestone.check_milestones(workflow("standard")),
            "installments[0].trigger.milestone"
        ),
        "workflow standard has no milestone 'first_fitting'"
    );
}

#[test]
fn installments_become_due_when_their_trigger_happens() {
    let mut schedule = custom_production(usd("10000.00"));
    assert_eq!(schedule.contract_signed(date(2026, 3, 1)).expect("signed"), vec![1]);
    assert_eq!(schedule.installments[0].due_on, Some(date(2026, 3, 1)));
    assert!(matches!(
        schedule.contract_signed(date(2026, 3, 2)),
        Err(DomainError::Conflict(_))
    ));
    assert_eq!(
        schedule.milestone_completed("design_approval", date(2026, 3, 14)),
        Vec::<u32>::new()
    );
    assert_eq!(
        schedule.milestone_completed("first_fitting", date(2026, 4, 10)),
        vec![2]
    );
    // Replayed, it changes nothing.
    assert_eq!(
        schedule.milestone_completed("first_fitting", date(2026, 4, 11)),
        Vec::<u32>::new()
    );
    assert_eq!(schedule.installments[1].due_on, Some(date(2026, 4, 10)));
    assert_eq!(schedule.delivered(date(2026, 5, 20)), vec![3]);
    assert_eq!(schedule.installments[2].due_on, Some(date(2026, 5, 20)));
}

#[test]
fn installments_still_sum_to_the_amount_after_two_change_orders() {
    let mut schedule = studio_order();
    let policy = ExtraDepositPolicy::default();
    // +10%: under the threshold, spread over the unpaid installments; the paid deposit keeps its amount.
    let first = schedule
        .apply_change_order(&change("CO-1", usd("11000.01"), date(2026, 3, 20)), &policy)
        .expect("applied");
    assert_eq!(first, None);
    assert_eq!(amounts(&schedule), ["5000.00", "3000.00", "3000.01"]);
    assert_eq!(schedule.installments_total(), usd("11000.01"));
    // -3.5%: a price reduction, also spread.
    schedule
        .apply_change_order(&change("CO-2", usd("10650.00"), date(2026, 3, 25)), &policy)
        .expect("applied");
    assert_eq!(amounts(&schedule), ["5000.00", "2825.00", "2825.00"]);
    assert_eq!(schedule.installments_total(), usd("10650.00"));
    assert_eq!(schedule.amount, usd("10650.00"));
    assert_eq!(schedule.original_amount, usd("10000.00"));
    // The same change order is applied once.
    let again = schedule.apply_change_order(&change("CO-2", usd("10650.00"), date(2026, 3, 26)), &policy);
    assert!(matches!(again, Err(DomainError::Conflict(_))), "{again:?}");
}

#[test]
fn a_change_order_raising_cost_by_25_percent_adds_a_deposit_installment() {
    let mut schedule = studio_order();
    let approval = ApprovedChange {
        work_starts_on: Some(date(2026, 3, 23)),
        ..change("CO-7", usd("12500.00"), date(2026, 3, 20))
    };
    let deposit = schedule
        .apply_change_order(&approval, &ExtraDepositPolicy::default())
        .expect("applied");
    assert_eq!(deposit, Some(4));
    let installment = schedule.installment(4).expect("the deposit installment");
    assert_eq!(
        installment.kind,
        InstallmentKind::ChangeOrderDeposit {
            change_order: "CO-7".into()
        }
    );
    // 50% of the 2,500.00 change, due before work on the change starts.
    assert_eq!(installment.amount, usd("1250.00"));
    assert_eq!(installment.due_on, Some(date(2026, 3, 23)));
    assert_eq!(installment.name, "Deposit for change order CO-7");
    // The other 1,250.00 of the change goes to the unpaid installments; the total is the new amount.
    assert_eq!(amounts(&schedule), ["5000.00", "3125.00", "3125.00", "1250.00"]);
    assert_eq!(schedule.installments_total(), usd("12500.00"));
    assert!(schedule.unpaid_change_deposit("CO-7").is_some());
    schedule
        .record_payment(Some(4), paid(usd("1250.00"), date(2026, 3, 22)))
        .expect("deposit paid");
    assert!(schedule.unpaid_change_deposit("CO-7").is_none());
}

#[test]
fn a_change_order_adds_a_deposit_only_past_the_cumulative_threshold() {
    let policy = ExtraDepositPolicy::default();
    // Exactly 20% is not more than 20%.
    let mut schedule = studio_order();
    let none = schedule.apply_change_order(&change("CO-1", usd("12000.00"), date(2026, 3, 20)), &policy);
    assert_eq!(none, Ok(None));
    // 15% then 10%: the second crosses the threshold, its deposit is half of its own 1,000.00.
    let mut schedule = studio_order();
    let first = schedule.apply_change_order(&change("CO-1", usd("11500.00"), date(2026, 3, 20)), &policy);
    assert_eq!(first, Ok(None));
    let second = schedule.apply_change_order(&change("CO-2", usd("12500.00"), date(2026, 3, 27)), &policy);
    assert_eq!(second, Ok(Some(4)));
    assert_eq!(schedule.installment(4).map(|i| i.amount.clone()), Some(usd("500.00")));
    assert_eq!(schedule.installments_total(), usd("12500.00"));
    // Rounded half up, as the change order computes it.
    assert_eq!(policy.deposit_for(10_000, 10_000, 12_501), Some(1251));
    assert_eq!(policy.deposit_for(10_000, 13_000, 12_000), None);
}

#[test]
fn a_deposit_decided_by_the_change_order_is_taken_as_it_is() {
    let mut schedule = studio_order();
    let before = schedule.clone();
    let approval = change("CO-3", usd("13000.00"), date(2026, 3, 20));
    let too_much = schedule.apply_change_order_with_deposit(&approval, Some(usd("3000.01")));
    assert_eq!(invalid_fields(too_much), ["extra_deposit"]);
    let euros = schedule.apply_change_order_with_deposit(&approval, Some(Money::parse("EUR", "10").expect("euros")));
    assert_eq!(invalid_fields(euros), ["extra_deposit.currency"]);
    assert_eq!(schedule, before);
    let number = schedule
        .apply_change_order_with_deposit(&approval, Some(usd("1500.00")))
        .expect("applied");
    assert_eq!(number, Some(4));
    assert_eq!(amounts(&schedule), ["5000.00", "3250.00", "3250.00", "1500.00"]);
    assert_eq!(schedule.change_orders[0].deposit_installment, Some(4));
}

#[test]
fn a_raise_after_everything_is_paid_adds_a_balance_installment() {
    let mut schedule = studio_order();
    schedule.delivered(date(2026, 5, 20));
    schedule
        .record_payment(None, paid(usd("5000.00"), date(2026, 5, 20)))
        .expect("paid in full");
    schedule
        .recompute(usd("10100.00"), date(2026, 5, 25))
        .expect("recomputed");
    let balance = schedule.installment(4).expect("a balance installment");
    assert_eq!(balance.kind, InstallmentKind::Balance);
    assert_eq!(balance.amount, usd("100.00"));
    assert_eq!(balance.due_on, Some(date(2026, 5, 25)));
    assert_eq!(schedule.installments_total(), usd("10100.00"));
    // Lowering below what was paid needs a refund, which this does not do.
    let before = schedule.clone();
    let below = schedule.recompute(usd("9000.00"), date(2026, 5, 26));
    assert_eq!(
        invalid_message(below, "amount"),
        "9000.00 USD is less than the 10000.00 USD already paid or due as change-order deposits"
    );
    assert_eq!(schedule, before);
}

#[test]
fn an_overpayment_is_refused_and_changes_nothing() {
    let mut schedule = studio_order();
    let before = schedule.clone();

    let on_installment = schedule.record_payment(Some(2), paid(usd("2500.01"), date(2026, 4, 12)));
    assert_eq!(
        invalid_message(on_installment, "amount"),
        "2500.01 USD is more than the 2500.00 USD outstanding on installment 2 (Mid-project)"
    );
    let on_order = schedule.record_payment(None, paid(usd("5000.01"), date(2026, 4, 12)));
    assert_eq!(
        invalid_message(on_order, "amount"),
        "5000.01 USD is more than the 5000.00 USD outstanding on the order"
    );
    let paid_again = schedule.record_payment(Some(1), paid(usd("0.01"), date(2026, 4, 12)));
    assert_eq!(invalid_fields(paid_again), ["amount"]);
    let nothing = schedule.record_payment(Some(2), paid(usd("0"), date(2026, 4, 12)));
    assert_eq!(invalid_message(nothing, "amount"), "must be more than zero");
    let euros = schedule.record_payment(
        Some(2),
        paid(Money::parse("EUR", "10").expect("euros"), date(2026, 4, 12)),
    );
    assert_eq!(invalid_fields(euros), ["amount.currency"]);
    let no_such = schedule.record_payment(Some(9), paid(usd("10"), date(2026, 4, 12)));
    assert_eq!(
        invalid_message(no_such, "installment"),
        "there is no installment 9 (the schedule has 1 to 3)"
    );
    assert_eq!(schedule, before);
}

#[test]
fn a_payment_to_a_cancelled_order_is_refused() {
    let mut schedule = studio_order();
    schedule.cancel(date(2026, 4, 1));
    let before = schedule.clone();
    let refused = schedule.record_payment(Some(2), paid(usd("100.00"), date(2026, 4, 2)));
    match refused {
        Err(DomainError::Conflict(message)) => {
            assert_eq!(
                message,
                "the order was cancelled on 2026-04-01: a payment cannot be recorded"
            )
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(schedule, before);
    // A cancelled order is neither dunned nor paused.
    assert!(dunning_actions(&schedule, &DunningPolicy::default(), date(2026, 5, 1), &BTreeSet::new()).is_empty());
    assert_eq!(
        production_pause(&schedule, &DunningPolicy::default(), date(2026, 5, 1)),
        None
    );
}

#[test]
fn a_payment_on_the_order_pays_the_installments_as_they_fall_due() {
    let mut schedule = studio_order();
    let allocations = schedule
        .record_payment(None, paid(usd("3000.00"), date(2026, 4, 12)))
        .expect("recorded");
    let applied: Vec<_> = allocations
        .iter()
        .map(|a| (a.installment, a.amount.amount_string()))
        .collect();
    assert_eq!(applied, [(2, "2500.00".to_string()), (3, "500.00".to_string())]);
    assert_eq!(schedule.installments[1].state(), InstallmentState::Paid);
    assert_eq!(schedule.installments[2].state(), InstallmentState::PartiallyPaid);
    assert_eq!(schedule.installments[1].paid_in_full_on(), Some(date(2026, 4, 12)));
    assert_eq!(schedule.outstanding(), usd("2000.00"));
}

#[test]
fn an_installment_goes_from_scheduled_to_invoiced_to_partially_paid_to_paid() {
    let mut schedule = studio_order();
    assert_eq!(schedule.installments[1].state(), InstallmentState::Scheduled);
    schedule
        .record_invoice(2, "INV-2026-0042", date(2026, 4, 7))
        .expect("invoiced");
    assert_eq!(schedule.installments[1].state(), InstallmentState::Invoiced);
    assert!(matches!(
        schedule.record_invoice(2, "INV-2026-0043", date(2026, 4, 8)),
        Err(DomainError::Conflict(_))
    ));
    schedule
        .record_payment(Some(2), paid(usd("1000.00"), date(2026, 4, 11)))
        .expect("paid in part");
    assert_eq!(schedule.installments[1].state(), InstallmentState::PartiallyPaid);
    let statement = schedule.statement(date(2026, 4, 12));
    assert_eq!(statement.installments[1].days_overdue, Some(2));
    assert_eq!(statement.outstanding, usd("4000.00"));
    schedule
        .record_payment(Some(2), paid(usd("1500.00"), date(2026, 4, 13)))
        .expect("paid");
    assert_eq!(schedule.installments[1].state(), InstallmentState::Paid);
    assert_eq!(schedule.statement(date(2026, 4, 14)).installments[1].days_overdue, None);
    assert!(matches!(
        schedule.record_invoice(2, "INV-2026-0044", date(2026, 4, 14)),
        Err(DomainError::Conflict(_))
    ));
}

#[test]
fn dunning_follows_the_policy_day_by_day() {
    // Installment 2 is due on 10 April: invoice on the 7th, reminder on the 10th, friendly on the 15th, firm on
    // the 17th, pause on the 18th (the sales director told), finance on the 25th.
    let schedule = studio_order();
    let mut done = BTreeSet::new();
    let mut log = Vec::new();
    let mut day = date(2026, 4, 1);
    while day <= date(2026, 4, 30) {
        for action in run_dunning(&schedule, day, &mut done) {
            log.push((day, action.kind, action.days_overdue, action.told));
        }
        day = day.succ_opt().expect("a next day");
    }
    assert_eq!(
        log,
        [
            (date(2026, 4, 7), DunningKind::Invoice, -3, vec![Role::Customer]),
            (date(2026, 4, 10), DunningKind::DueReminder, 0, vec![Role::Customer]),
            (
                date(2026, 4, 15),
                DunningKind::FriendlyReminder,
                5,
                vec![Role::Customer]
            ),
            (date(2026, 4, 17), DunningKind::FirmReminder, 7, vec![Role::Customer]),
            (date(2026, 4, 18), DunningKind::PauseWork, 8, vec![Role::SalesDirector]),
            (
                date(2026, 4, 25),
                DunningKind::EscalateToFinance,
                15,
                vec![Role::Finance]
            ),
        ]
    );
    let keys: Vec<_> = done.iter().cloned().collect();
    assert!(
        keys.contains(&format!("dunning:{ORDER}:2:friendly_reminder")),
        "{keys:?}"
    );
}

#[test]
fn the_day_5_reminder_comes_once_even_if_dunning_runs_every_minute() {
    let schedule = studio_order();
    let mut done = BTreeSet::new();
    run_dunning(&schedule, date(2026, 4, 14), &mut done);
    let mut friendly = 0;
    for _minute in 0..24 * 60 {
        let actions = run_dunning(&schedule, date(2026, 4, 15), &mut done);
        friendly += actions
            .iter()
            .filter(|a| a.kind == DunningKind::FriendlyReminder)
            .count();
    }
    assert_eq!(friendly, 1);
}

#[test]
fn after_downtime_only_the_latest_reminder_is_sent() {
    // Nothing ran between 1 and 19 April: on the 19th (day 9) the invoice, the firm reminder and the pause are
    // due; the due and friendly reminders are superseded and never come.
    let schedule = studio_order();
    let mut done = BTreeSet::new();
    let actions = run_dunning(&schedule, date(2026, 4, 19), &mut done);
    assert_eq!(
        kinds(&actions),
        [
            (2, DunningKind::Invoice),
            (2, DunningKind::FirmReminder),
            (2, DunningKind::PauseWork)
        ]
    );
    assert!(run_dunning(&schedule, date(2026, 4, 20), &mut done).is_empty());
}

#[test]
fn a_paid_installment_produces_no_dunning() {
    let mut schedule = studio_order();
    schedule
        .record_payment(Some(2), paid(usd("2500.00"), date(2026, 4, 10)))
        .expect("paid on time");
    for day in [date(2026, 4, 7), date(2026, 4, 15), date(2026, 4, 30)] {
        assert!(dunning_actions(&schedule, &DunningPolicy::default(), day, &BTreeSet::new()).is_empty());
    }
}

#[test]
fn a_changed_amount_after_invoicing_asks_for_a_corrected_invoice() {
    let mut schedule = studio_order();
    let mut done = BTreeSet::new();
    let first = run_dunning(&schedule, date(2026, 4, 7), &mut done);
    assert_eq!(kinds(&first), [(2, DunningKind::Invoice)]);
    schedule.record_invoice(2, "INV-1", date(2026, 4, 7)).expect("invoiced");
    schedule
        .recompute(usd("10200.00"), date(2026, 4, 8))
        .expect("recomputed");
    let corrected = run_dunning(&schedule, date(2026, 4, 8), &mut done);
    assert_eq!(kinds(&corrected), [(2, DunningKind::Invoice)]);
    assert_eq!(corrected[0].dedupe_key, format!("dunning:{ORDER}:2:invoice:260000"));
    schedule
        .record_invoice(2, "INV-2", date(2026, 4, 8))
        .expect("corrected");
    assert!(run_dunning(&schedule, date(2026, 4, 9), &mut done).is_empty());
}

#[test]
fn an_installment_8_days_late_pauses_production_and_a_payment_lifts_the_pause() {
    let policy = DunningPolicy::default();
    let mut schedule = studio_order();
    assert_eq!(
        production_pause(&schedule, &policy, date(2026, 4, 17)),
        None,
        "7 days late: not yet"
    );
    let pause = production_pause(&schedule, &policy, date(2026, 4, 18)).expect("paused on day 8");
    assert_eq!(pause.to_string(), "paused: installment 2 is 8 days overdue");
    // Part of it is not enough.
    schedule
        .record_payment(Some(2), paid(usd("2000.00"), date(2026, 4, 19)))
        .expect("paid in part");
    let still = production_pause(&schedule, &policy, date(2026, 4, 19)).expect("still paused");
    assert_eq!(still.to_string(), "paused: installment 2 is 9 days overdue");
    schedule
        .record_payment(Some(2), paid(usd("500.00"), date(2026, 4, 19)))
        .expect("paid in full");
    assert_eq!(production_pause(&schedule, &policy, date(2026, 4, 19)), None);
}

#[test]
fn the_process_overview_preset_pauses_on_day_7_and_escalates_on_day_14() {
    let policy = DunningPolicy::process_overview();
    policy.check().expect("a valid policy");
    let schedule = studio_order();
    assert!(production_pause(&schedule, &policy, date(2026, 4, 16)).is_none());
    assert!(production_pause(&schedule, &policy, date(2026, 4, 17)).is_some());
    let actions = dunning_actions(&schedule, &policy, date(2026, 4, 24), &BTreeSet::new());
    assert!(actions.iter().any(|a| a.kind == DunningKind::EscalateToFinance));
    let policy: DunningPolicy = toml::from_str("pause_after_days = 10").expect("a policy in TOML");
    assert_eq!(policy.pause_after_days, 10);
    assert_eq!(policy.friendly_reminder_day, 5);
}

#[test]
fn tracking_starts_when_the_contract_is_signed_and_the_deposit_is_paid() {
    let mut schedule = custom_production(usd("10000.00"));
    assert!(!schedule.tracking_started());
    // Deposit paid before signing: still waiting for the signature.
    schedule
        .record_payment(Some(1), paid(usd("4000.00"), date(2026, 2, 27)))
        .expect("part of the deposit");
    schedule.contract_signed(date(2026, 3, 1)).expect("signed");
    assert!(!schedule.tracking_started());
    assert_eq!(
        schedule.tracking_waits_for(),
        ["the deposit paid: 1000.00 USD outstanding"]
    );
    schedule
        .record_payment(Some(1), paid(usd("1000.00"), date(2026, 3, 2)))
        .expect("the rest of the deposit");
    assert!(schedule.tracking_started());
    assert_eq!(schedule.deposit_paid_on(), Some(date(2026, 3, 2)));
    assert!(schedule.tracking_waits_for().is_empty());
}

#[test]
fn schedules_and_actions_are_stored_and_sent_as_snake_case_json() {
    let schedule = studio_order();
    let json = serde_json::to_value(&schedule).expect("serialised");
    assert_eq!(json["installments"][1]["trigger"]["kind"], "milestone_completed");
    assert_eq!(json["installments"][0]["payments"][0]["method"], "bank_transfer");
    assert_eq!(json["installments"][0]["share"], "50%");
    let back: PaymentSchedule = serde_json::from_value(json).expect("read back");
    assert_eq!(back, schedule);
    let actions = dunning_actions(
        &schedule,
        &DunningPolicy::default(),
        date(2026, 4, 18),
        &BTreeSet::new(),
    );
    let json = serde_json::to_value(&actions).expect("serialised");
    assert_eq!(json[1]["kind"], "firm_reminder");
}

// ---------------------------------------------------------------------------------------------------------
// The property: whatever happens, the installments sum exactly to the order amount and none is negative.
// ---------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Step {
    /// A new order amount, as a per-mille of the current one (0..=3000).
    NewAmount(u32),
    /// A change order to a per-mille of the current amount.
    ChangeOrder(u32),
    /// Pay a per-cent of what is outstanding on installment (index modulo their count).
    Pay(usize, u32),
    /// Pay a per-cent of what is outstanding on the order.
    PayOrder(u32),
    Sign,
    Deliver,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u32..=3000).prop_map(Step::NewAmount),
        (500u32..=2000).prop_map(Step::ChangeOrder),
        (0usize..8, 1u32..=100).prop_map(|(i, p)| Step::Pay(i, p)),
        (1u32..=100).prop_map(Step::PayOrder),
        Just(Step::Sign),
        Just(Step::Deliver),
    ]
}

/// 1 to 6 installments with random shares summing to 100%.
fn template() -> impl Strategy<Value = PaymentTemplate> {
    prop::collection::vec(1u32..100, 1..=6).prop_map(|weights| {
        let sum: u32 = weights.iter().sum();
        let mut shares: Vec<u32> = weights.iter().map(|w| w * 10_000 / sum).collect();
        let given: u32 = shares[..shares.len() - 1].iter().sum();
        if let Some(last) = shares.last_mut() {
            *last = 10_000 - given;
        }
        let triggers = [Trigger::AtSigning, Trigger::AtDelivery];
        PaymentTemplate::from_toml(
            &toml::to_string(&PaymentTemplate {
                installments: shares
                    .iter()
                    .enumerate()
                    .map(|(i, bp)| ordertrail_domain::payment::InstallmentTemplate {
                        name: format!("Part {}", i + 1),
                        share: Share::from_basis_points(*bp),
                        trigger: triggers[i % 2].clone(),
                        days_after: 0,
                    })
                    .collect(),
            })
            .expect("TOML"),
        )
        .expect("a valid template")
    })
}

fn per_mille(minor: i64, p: u32) -> i64 {
    i64::try_from(i128::from(minor) * i128::from(p) / 1000).expect("fits")
}

fn assert_sums(schedule: &PaymentSchedule) {
    assert_eq!(schedule.installments_total(), schedule.amount, "{schedule:#?}");
    for item in &schedule.installments {
        assert!(item.amount.minor >= 0, "negative installment: {schedule:#?}");
        assert!(
            item.paid_minor() <= item.amount.minor,
            "overpaid installment: {schedule:#?}"
        );
    }
}

proptest! {
    #[test]
    fn installments_always_sum_exactly_to_the_order_amount(
        currency in prop_oneof![Just("USD"), Just("JPY"), Just("KWD")],
        minor in 0i64..1_000_000_000_000,
        template in template(),
        steps in prop::collection::vec(step(), 0..16),
    ) {
        let amount = Money { currency: currency.to_string(), minor };
        let mut schedule = PaymentSchedule::from_template(ORDER, amount, &template).expect("a schedule");
        assert_sums(&schedule);
        let day = date(2026, 3, 1);
        for (n, step) in steps.into_iter().enumerate() {
            let before = schedule.clone();
            let money = |minor: i64| Money { currency: currency.to_string(), minor };
            let result: Result<(), DomainError> = match step {
                Step::NewAmount(p) => schedule.recompute(money(per_mille(schedule.amount.minor, p)), day),
                Step::ChangeOrder(p) => {
                    let new_amount = money(per_mille(schedule.amount.minor, p).max(1));
                    schedule
                        .apply_change_order(&change(&format!("CO-{n}"), new_amount, day), &ExtraDepositPolicy::default())
                        .map(|_| ())
                }
                Step::Pay(i, p) => {
                    let index = i % schedule.installments.len();
                    let item = &schedule.installments[index];
                    let part = (item.outstanding_minor() * i64::from(p) / 100).max(1);
                    schedule.record_payment(Some(item.number), paid(money(part), day)).map(|_| ())
                }
                Step::PayOrder(p) => {
                    let part = (schedule.outstanding().minor * i64::from(p) / 100).max(1);
                    schedule.record_payment(None, paid(money(part), day)).map(|_| ())
                }
                Step::Sign => schedule.contract_signed(day).map(|_| ()),
                Step::Deliver => {
                    schedule.delivered(day);
                    Ok(())
                }
            };
            if result.is_err() {
                prop_assert_eq!(&schedule, &before, "a refusal changed the schedule");
            }
            assert_sums(&schedule);
        }
    }
}

#[test]
fn each_preset_workflow_carries_its_payment_template() {
    for id in ["custom-production", "make-to-order", "standard"] {
        let wf = crate::support::workflow(id);
        assert_eq!(
            wf.payment.as_ref(),
            ordertrail_domain::payment::PaymentTemplate::preset(id).as_ref(),
            "{id}"
        );
    }
}

#[test]
fn a_workflow_whose_payment_names_no_milestone_is_refused_at_load() {
    let text = r#"
id = "rush"
name = "Rush"
initial = "new"
create_roles = ["account_manager"]
statuses = [{ id = "new", name = "New" }, { id = "done", name = "Done", terminal = true }]
transitions = [{ from = ["new"], to = "done", roles = ["account_manager"] }]
[[payment.installments]]
name = "All"
share = "90%"
trigger = { kind = "milestone_completed", milestone = "nowhere" }
"#;
    let error = ordertrail_domain::workflow::Workflow::from_toml("rush.toml", text).expect_err("refused");
    let said = error.to_string();
    assert!(said.contains("rush.toml"), "{said}");
    assert!(said.contains("payment.installments: shares must sum to 100%"), "{said}");
}
