//! Change orders (R7, R14, R17): drafted, priced by finance, timed by operations, approved by the sales
//! director, sent, approved in writing by the client; each step by its role and in order; the effects of an
//! approval on the order's amount, dates and deposit; frequency and amounts per order.

use crate::support::*;
use chrono::{DateTime, TimeDelta, Utc};
use ordertrail_domain::Role;
use ordertrail_domain::change_order::{
    self, ApprovalContext, ChangeItem, ChangeKind, ChangeOrder, ChangeOrderChange, ChangeOrderId, ChangeOrderPolicy,
    ChangeOrderStatus, ClientAnswer, ClientResponseInput, CostEstimateInput, NewChangeOrder, OrderTerms, Step,
    TimelineEstimateInput,
};
use ordertrail_domain::error::DomainError;
use ordertrail_domain::follow_up::Channel;
use ordertrail_domain::ids::OrderId;
use ordertrail_domain::money::Money;
use uuid::Uuid;

fn usd(amount: &str) -> Money {
    Money::parse("USD", amount).unwrap()
}

fn item(description: &str, amount: &str) -> ChangeItem {
    ChangeItem {
        description: description.into(),
        amount: usd(amount),
    }
}

/// The order of the tests: 12,500.00 USD, promised for 16 March.
fn terms() -> OrderTerms {
    OrderTerms {
        original_amount: usd("12500.00"),
        current_amount: usd("12500.00"),
        promised_date: promised_date(),
    }
}

fn at(hours: i64) -> DateTime<Utc> {
    noon(2026, 2, 2) + TimeDelta::hours(hours)
}

fn request(items: Vec<ChangeItem>) -> NewChangeOrder {
    NewChangeOrder {
        reason: "The director wants two more fairies for Act IV".into(),
        kinds: vec![ChangeKind::AdditionalPieces],
        items,
        origin_issue: None,
    }
}

/// Runs `command` on the change order as it is and applies the change it makes; panics when refused.
fn applied(
    co: &mut ChangeOrder,
    command: impl FnOnce(&ChangeOrder) -> Result<ChangeOrderChange, DomainError>,
) -> ChangeOrderChange {
    let change = command(co).unwrap_or_else(|e| panic!("refused: {e}"));
    co.apply(&change);
    change
}

fn drafted(id: u128, items: Vec<ChangeItem>) -> ChangeOrder {
    let change = change_order::draft(
        ChangeOrderId(Uuid::from_u128(id)),
        OrderId(Uuid::from_u128(0x0d)),
        "USD",
        request(items),
        acting(Role::AccountManager),
        at(0),
    )
    .expect("the draft is valid");
    let ChangeOrderChange::Drafted { change_order } = change else {
        panic!("draft made {change:?}")
    };
    *change_order
}

/// Drafted, priced, timed (+`days`), approved by the director and sent.
fn sent(id: u128, items: Vec<ChangeItem>, days: i32) -> ChangeOrder {
    let mut co = drafted(id, items);
    applied(&mut co, |it| {
        change_order::estimate_cost(it, CostEstimateInput::default(), acting(Role::Finance), at(1))
    });
    applied(&mut co, |it| {
        change_order::estimate_timeline(
            it,
            TimelineEstimateInput { days, note: None },
            acting(Role::Operations),
            at(2),
        )
    });
    applied(&mut co, |it| {
        change_order::approve_internally(it, None, acting(Role::SalesDirector), at(3))
    });
    applied(&mut co, |it| {
        change_order::send_to_client(it, None, acting(Role::AccountManager), at(4))
    });
    co
}

fn written_approval() -> ClientResponseInput {
    ClientResponseInput {
        answer: ClientAnswer::Approved,
        client_name: "Maya Lin".into(),
        decided_at: None,
        channel: Channel::Email,
        evidence: Some("'Approved, please go ahead with the two fairies.'".into()),
        attachment: None,
    }
}

fn respond(
    co: &ChangeOrder,
    input: ClientResponseInput,
    others: &[ChangeOrder],
    role: Role,
) -> Result<ChangeOrderChange, DomainError> {
    let (terms, policy) = (terms(), ChangeOrderPolicy::default());
    let ctx = ApprovalContext {
        terms: &terms,
        change_orders: others,
        policy: &policy,
    };
    change_order::record_client_response(co, input, ctx, acting(role), at(5))
}

/// Sent and approved by the client.
fn approved(id: u128, items: Vec<ChangeItem>, days: i32, others: &[ChangeOrder]) -> ChangeOrder {
    let mut co = sent(id, items, days);
    applied(&mut co, |it| {
        respond(it, written_approval(), others, Role::AccountManager)
    });
    co
}

#[test]
fn a_change_order_walks_draft_estimates_director_client_and_changes_the_order() {
    let co = approved(
        1,
        vec![item("Fairy costume 1", "500.00"), item("Fairy costume 2", "500.00")],
        7,
        &[],
    );
    assert_eq!(co.status, ChangeOrderStatus::Approved);
    let effects = co.effects.as_ref().expect("effects on approval");
    assert_eq!(effects.change_amount, usd("1000.00"));
    assert_eq!(effects.new_order_amount, usd("13500.00"));
    assert_eq!(effects.new_promised_date, date(2026, 3, 23));
    assert_eq!(effects.milestone_shift_days, 7);
    assert_eq!(effects.cumulative_increase_basis_points, 800);
    assert_eq!(effects.extra_deposit, None, "8% is under the 20% threshold");
    assert_eq!(
        co.client_response.as_ref().map(|r| r.client_name.as_str()),
        Some("Maya Lin")
    );
}

#[test]
fn a_change_order_raising_cost_by_25_percent_needs_an_extra_deposit_of_half_the_change() {
    let co = approved(1, vec![item("Storm sequence costumes", "3125.00")], 0, &[]);
    let effects = co.effects.expect("effects");
    assert_eq!(effects.cumulative_increase_basis_points, 2500);
    assert_eq!(effects.extra_deposit, Some(usd("1562.50")));

    // Exactly 20% is not more than 20%.
    let co = approved(2, vec![item("Storm sequence costumes", "2500.00")], 0, &[]);
    assert_eq!(co.effects.and_then(|e| e.extra_deposit), None);
}

#[test]
fn the_extra_deposit_counts_approved_change_orders_cumulatively() {
    // 15% approved before, then 10% more: 25% in all, so the second change needs half of its amount.
    let first = approved(1, vec![item("Masks", "1875.00")], 0, &[]);
    assert_eq!(first.effects.as_ref().and_then(|e| e.extra_deposit.clone()), None);
    let mut withdrawn = sent(3, vec![item("Never mind", "9000.00")], 0);
    applied(&mut withdrawn, |it| {
        change_order::withdraw(
            it,
            "Client changed their mind".into(),
            acting(Role::AccountManager),
            at(6),
        )
    });
    let second = approved(2, vec![item("Capes", "1250.00")], 0, &[first.clone(), withdrawn]);
    let effects = second.effects.expect("effects");
    assert_eq!(effects.cumulative_increase, usd("3125.00"));
    assert_eq!(effects.extra_deposit, Some(usd("625.00")));

    // A rounding half a cent goes up.
    let policy = ChangeOrderPolicy::from_toml("extra_deposit_threshold_percent = 0").unwrap();
    let odd = sent(4, vec![item("Buttons", "0.05")], 0);
    let ctx = ApprovalContext {
        terms: &terms(),
        change_orders: &[],
        policy: &policy,
    };
    assert_eq!(
        change_order::approval_effects(&odd, ctx).unwrap().extra_deposit,
        Some(usd("0.03"))
    );
}

#[test]
fn only_finance_may_estimate_the_cost() {
    let co = drafted(1, vec![item("Fairy costume", "500.00")]);
    for role in [
        Role::AccountManager,
        Role::SalesDirector,
        Role::Operations,
        Role::Admin,
        Role::Customer,
    ] {
        let result = change_order::estimate_cost(&co, CostEstimateInput::default(), acting(role), at(1));
        match result {
            Err(DomainError::RoleNotAllowed { role: r, action }) => {
                assert_eq!(r, role);
                assert_eq!(action, "estimate a change order's cost");
            }
            other => panic!("{role} estimated the cost: {other:?}"),
        }
    }
    // Finance may re-price the items; the change's amount is their sum.
    let mut co = co;
    let repriced = CostEstimateInput {
        items: Some(vec![item("Fairy costume", "550.00"), item("Wings", "120.00")]),
        note: Some("Silk organza for the wings".into()),
    };
    let change = applied(&mut co, |it| {
        change_order::estimate_cost(it, repriced, acting(Role::Finance), at(1))
    });
    let ChangeOrderChange::CostEstimated { estimate, .. } = change else {
        panic!("estimate made {change:?}")
    };
    assert_eq!(estimate.total, usd("670.00"));
    assert_eq!(co.amount(), Some(usd("670.00")));
}

#[test]
fn each_step_belongs_to_its_role_and_the_backup_may_act_for_the_responsible() {
    // One table says who does what.
    assert!(change_order::may_act(Step::Draft, Role::AccountManager));
    assert!(change_order::may_act(Step::Draft, Role::SalesCoordinator), "the backup");
    assert!(!change_order::may_act(Step::Draft, Role::Admin));
    assert!(change_order::may_act(Step::EstimateTimeline, Role::Operations));
    assert!(!change_order::may_act(Step::EstimateTimeline, Role::Finance));
    assert!(change_order::may_act(Step::ApproveInternally, Role::SalesDirector));
    assert!(!change_order::may_act(Step::ApproveInternally, Role::AccountManager));
    assert!(change_order::may_act(Step::RecordClientDecision, Role::Customer));
    assert!(!change_order::may_act(Step::SendToClient, Role::Customer));
    assert_eq!(
        change_order::rabsic(Step::ApproveInternally).support,
        [Role::Finance, Role::Operations]
    );

    // The sales coordinator drafts and sends for the account manager.
    let change = change_order::draft(
        ChangeOrderId(Uuid::from_u128(9)),
        OrderId(Uuid::from_u128(0x0d)),
        "USD",
        request(vec![item("Fairy", "10.00")]),
        acting(Role::SalesCoordinator),
        at(0),
    );
    assert!(change.is_ok());
    let mut co = sent(1, vec![item("Fairy", "10.00")], 0);
    assert!(respond(&co, written_approval(), &[], Role::SalesCoordinator).is_ok());
    // The client approves for themself (through the portal).
    let change = applied(&mut co, |it| {
        respond(
            it,
            ClientResponseInput {
                channel: Channel::Portal,
                ..written_approval()
            },
            &[],
            Role::Customer,
        )
    });
    assert_eq!(
        change.informed(),
        [Role::SalesDirector, Role::Finance, Role::Operations]
    );
}

#[test]
fn a_change_order_cannot_be_approved_by_the_client_before_the_sales_director_approves_it() {
    let mut co = drafted(1, vec![item("Fairy costume", "500.00")]);
    let refused = respond(&co, written_approval(), &[], Role::AccountManager);
    assert!(
        matches!(&refused, Err(DomainError::Conflict(m)) if m.contains("the sales director approves it")),
        "{refused:?}"
    );
    // Nor can the director approve before finance and operations have given their figures.
    let refused = change_order::approve_internally(&co, None, acting(Role::SalesDirector), at(1));
    assert_eq!(
        guard_names(refused),
        ["change_order:cost_estimate", "change_order:timeline_estimate"]
    );
    applied(&mut co, |it| {
        change_order::estimate_cost(it, CostEstimateInput::default(), acting(Role::Finance), at(1))
    });
    applied(&mut co, |it| {
        change_order::estimate_timeline(
            it,
            TimelineEstimateInput { days: 3, note: None },
            acting(Role::Operations),
            at(2),
        )
    });
    applied(&mut co, |it| {
        change_order::approve_internally(it, None, acting(Role::SalesDirector), at(3))
    });
    // Approved internally but not sent: still not for the client.
    assert!(matches!(
        respond(&co, written_approval(), &[], Role::AccountManager),
        Err(DomainError::Conflict(m)) if m.contains("sent to the client first")
    ));
    // And the estimates are closed once the director approved.
    assert!(matches!(
        change_order::estimate_cost(&co, CostEstimateInput::default(), acting(Role::Finance), at(4)),
        Err(DomainError::Conflict(_))
    ));
}

#[test]
fn a_client_approval_must_be_written() {
    let co = sent(1, vec![item("Fairy costume", "500.00")], 0);
    let by_phone = ClientResponseInput {
        channel: Channel::Phone,
        evidence: None,
        ..written_approval()
    };
    assert_eq!(
        invalid_fields(respond(&co, by_phone, &[], Role::AccountManager)),
        ["evidence", "channel"]
    );
    let signed = ClientResponseInput {
        channel: Channel::Meeting,
        evidence: None,
        attachment: Some("addendum-2026-02-02-signed.pdf".into()),
        ..written_approval()
    };
    assert!(respond(&co, signed, &[], Role::AccountManager).is_ok());
}

#[test]
fn a_withdrawn_change_order_cannot_be_approved() {
    let mut co = sent(1, vec![item("Fairy costume", "500.00")], 0);
    applied(&mut co, |it| {
        change_order::withdraw(
            it,
            "Replaced by a smaller change".into(),
            acting(Role::AccountManager),
            at(5),
        )
    });
    assert_eq!(co.status, ChangeOrderStatus::Withdrawn);
    let refused = respond(&co, written_approval(), &[], Role::AccountManager);
    assert!(
        matches!(&refused, Err(DomainError::Conflict(m)) if m.contains("withdrawn")),
        "{refused:?}"
    );
    // Nor withdrawn twice, nor withdrawn once approved.
    assert!(matches!(
        change_order::withdraw(&co, "again".into(), acting(Role::AccountManager), at(6)),
        Err(DomainError::Conflict(_))
    ));
    let done = approved(2, vec![item("Fairy costume", "500.00")], 0, &[]);
    assert!(matches!(
        change_order::withdraw(&done, "too late".into(), acting(Role::AccountManager), at(6)),
        Err(DomainError::Conflict(_))
    ));
}

#[test]
fn a_declined_change_order_changes_nothing() {
    let mut co = sent(1, vec![item("Fairy costume", "500.00")], 0);
    let declined = ClientResponseInput {
        answer: ClientAnswer::Declined,
        evidence: None,
        channel: Channel::Phone,
        ..written_approval()
    };
    applied(&mut co, |it| respond(it, declined, &[], Role::AccountManager));
    assert_eq!(co.status, ChangeOrderStatus::Declined);
    assert!(co.effects.is_none());
}

#[test]
fn a_draft_reports_each_bad_field() {
    let input = NewChangeOrder {
        reason: "".into(),
        kinds: vec![],
        items: vec![
            item("", "10.00"),
            ChangeItem {
                description: "Euro lace".into(),
                amount: Money::parse("EUR", "10.00").unwrap(),
            },
        ],
        origin_issue: None,
    };
    let result = change_order::draft(
        ChangeOrderId(Uuid::from_u128(1)),
        OrderId(Uuid::from_u128(2)),
        "USD",
        input,
        acting(Role::AccountManager),
        at(0),
    );
    assert_eq!(
        invalid_fields(result),
        ["reason", "items[0].description", "items[1].amount"]
    );
    let empty = change_order::draft(
        ChangeOrderId(Uuid::from_u128(1)),
        OrderId(Uuid::from_u128(2)),
        "USD",
        request(vec![]),
        acting(Role::AccountManager),
        at(0),
    );
    assert_eq!(invalid_fields(empty), ["items"]);
}

#[test]
fn change_order_frequency_and_amounts_per_order() {
    let first = approved(1, vec![item("Masks", "1875.00")], 0, &[]);
    let second = approved(2, vec![item("Capes", "1250.00")], 0, std::slice::from_ref(&first));
    let pending = sent(3, vec![item("Hats", "300.00")], 0);
    let draft = drafted(4, vec![item("Gloves", "100.00")]);
    let mut withdrawn = drafted(5, vec![item("Boots", "999.00")]);
    applied(&mut withdrawn, |it| {
        change_order::withdraw(it, "Not needed".into(), acting(Role::SalesCoordinator), at(1))
    });
    let summary = change_order::summarize(&[first, second, pending, draft, withdrawn], &usd("12500.00"));
    assert_eq!(summary.total, 5);
    assert_eq!(
        (
            summary.draft,
            summary.sent_to_client,
            summary.approved,
            summary.withdrawn,
            summary.declined
        ),
        (1, 1, 2, 1, 0)
    );
    assert_eq!(summary.approved_amount, usd("3125.00"));
    assert_eq!(summary.pending_amount, usd("400.00"));
    assert_eq!(summary.approved_basis_points, 2500);
    assert_eq!(summary.approved_percent, "25.00");
    let json = serde_json::to_value(&summary).unwrap();
    assert_eq!(json["approved_amount"]["amount"], "3125.00");
}

#[test]
fn a_change_order_and_its_changes_round_trip_through_json() {
    let co = approved(1, vec![item("Masks", "3125.00")], 4, &[]);
    let json = serde_json::to_string(&co).unwrap();
    assert!(json.contains("\"status\":\"approved\""));
    assert_eq!(serde_json::from_str::<ChangeOrder>(&json).unwrap(), co);
    let change = change_order::withdraw(
        &sent(2, vec![item("Hats", "1.00")], 0),
        "No".into(),
        acting(Role::AccountManager),
        at(6),
    )
    .unwrap();
    let value = serde_json::to_value(&change).unwrap();
    assert_eq!(value["type"], "withdrawn");
    assert_eq!(serde_json::from_value::<ChangeOrderChange>(value).unwrap(), change);
}
