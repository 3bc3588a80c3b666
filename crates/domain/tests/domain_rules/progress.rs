//! The derived part of the order record (R1, R12): phase, % complete, next milestone, health and blockers.
//! Health follows the rule of the progress module: overdue by 1-2 days is at risk, by more is late; a passed
//! promised date is late; an open exception or a milestone planned after the promised date is at risk; a
//! delivered or closed order is on track.

use crate::support::*;
use chrono::NaiveDate;
use ordertrail_domain::Role;
use ordertrail_domain::decide::MilestoneChange;
use ordertrail_domain::follow_up::{Direction, ExceptionNote, FollowUpStatus, NewFollowUp};
use ordertrail_domain::order::Order;
use ordertrail_domain::progress::{BlockerKind, Health, HealthInputs, HealthPolicy, Progress, progress};

fn progress_on(order: &Order, today: NaiveDate) -> Progress {
    progress(order, workflow(&order.workflow), today, &HealthPolicy::default())
}

fn health_on(order: &Order, today: NaiveDate) -> Health {
    progress_on(order, today).health
}

/// Health inputs of an order awaiting delivery, promised on 16 March, with nothing open.
fn inputs() -> HealthInputs {
    HealthInputs {
        awaits_delivery: true,
        promised_date: promised_date(),
        next_due_on: None,
        last_planned_on: None,
        open_exceptions: 0,
    }
}

fn report_exception(
    order: &mut Order,
    at: chrono::DateTime<chrono::Utc>,
    expected: Option<chrono::DateTime<chrono::Utc>>,
) {
    let record = NewFollowUp {
        direction: Direction::Internal,
        milestone_id: Some(milestone_id(order, "fabric_approval")),
        status: FollowUpStatus::ExceptionPending,
        exception: Some(ExceptionNote {
            cause: "Silk out of stock".into(),
            impact: "four days".into(),
            expected_resolution_at: expected,
        }),
        ..follow_up("Supplier delay")
    };
    let events = log(order, 1, record, Role::Operations, at).unwrap();
    apply(order, events, at);
}

#[test]
fn a_new_order_is_on_track_with_its_first_milestone_next() {
    let order = create("custom-production");
    let p = progress_on(&order, date(2026, 1, 10));
    assert_eq!(p.health, Health::OnTrack);
    assert_eq!(p.percent_complete, 0);
    let next = p.next_milestone.expect("a next milestone");
    assert_eq!(
        (next.key.as_str(), next.name.as_str()),
        ("design_approval", "Design approval")
    );
    assert_eq!((next.planned_on, next.days_left), (date(2026, 1, 19), 9));
    assert_eq!(next.id, milestone_id(&order, "design_approval"));
    assert!(p.blockers.is_empty());
    assert_eq!(p.last_client_update_at, None);
}

#[test]
fn a_milestone_overdue_by_one_or_two_days_puts_the_order_at_risk_and_by_three_makes_it_late() {
    let order = create("custom-production");
    // Design approval is planned on 19 January.
    assert_eq!(
        health_on(&order, date(2026, 1, 19)),
        Health::OnTrack,
        "due today is not overdue"
    );
    assert_eq!(health_on(&order, date(2026, 1, 20)), Health::AtRisk);
    assert_eq!(health_on(&order, date(2026, 1, 21)), Health::AtRisk);
    assert_eq!(health_on(&order, date(2026, 1, 22)), Health::Late);
    let p = progress_on(&order, date(2026, 1, 22));
    assert_eq!(p.next_milestone.map(|n| n.days_left), Some(-3), "negative when overdue");
}

#[test]
fn the_late_threshold_is_a_policy() {
    let order = create("custom-production");
    let patient = HealthPolicy { late_after_days: 5 };
    let wf = workflow("custom-production");
    assert_eq!(progress(&order, wf, date(2026, 1, 24), &patient).health, Health::AtRisk);
    assert_eq!(progress(&order, wf, date(2026, 1, 25), &patient).health, Health::Late);
    let policy: HealthPolicy = serde_json::from_str("{}").unwrap();
    assert_eq!(policy, HealthPolicy::default());
    assert_eq!(policy.late_after_days, 2);
}

#[test]
fn completing_the_overdue_milestone_brings_the_order_back_on_track() {
    let mut order = create("custom-production");
    assert_eq!(health_on(&order, date(2026, 1, 25)), Health::Late);
    complete_fully(&mut order, "design_approval", noon(2026, 1, 25));
    let p = progress_on(&order, date(2026, 1, 25));
    assert_eq!(p.health, Health::OnTrack);
    assert_eq!(p.next_milestone.map(|n| n.key), Some("fabric_approval".to_string()));
    assert_eq!(p.percent_complete, 20);
}

#[test]
fn a_passed_promised_date_makes_an_order_awaiting_delivery_late() {
    let promised = promised_date();
    assert_eq!(inputs().health(promised, &HealthPolicy::default()), Health::OnTrack);
    assert_eq!(
        inputs().health(promised.succ_opt().unwrap(), &HealthPolicy::default()),
        Health::Late
    );
    // On a real order: every milestone done, but not delivered and past the promised date.
    let mut order = create("standard");
    for key in [
        "order_confirmed",
        "production_start",
        "semi_finished_inspection",
        "warehoused",
        "shipped",
        "customer_signed",
        "after_sales",
    ] {
        complete_fully(&mut order, key, noon(2026, 1, 20));
    }
    order.status = "shipped".into();
    assert_eq!(health_on(&order, date(2026, 3, 16)), Health::OnTrack);
    assert_eq!(health_on(&order, date(2026, 3, 17)), Health::Late);
}

#[test]
fn a_delivered_or_closed_order_is_on_track_whatever_its_dates() {
    let mut order = create("custom-production");
    let long_after = date(2026, 6, 1);
    assert_eq!(health_on(&order, long_after), Health::Late);
    for status in ["delivered", "closed", "cancelled"] {
        order.status = status.into();
        let p = progress_on(&order, long_after);
        assert_eq!(p.health, Health::OnTrack, "{status}");
        assert!(
            p.blockers.is_empty(),
            "{status}: overdue milestones of a finished order are not blockers"
        );
    }
    let finished = HealthInputs {
        awaits_delivery: false,
        next_due_on: Some(date(2026, 1, 1)),
        open_exceptions: 3,
        ..inputs()
    };
    assert_eq!(finished.health(long_after, &HealthPolicy::default()), Health::OnTrack);
}

#[test]
fn an_open_exception_puts_the_order_at_risk_and_is_a_blocker() {
    let mut order = create("custom-production");
    report_exception(&mut order, noon(2026, 1, 10), Some(noon(2026, 1, 28)));
    let p = progress_on(&order, date(2026, 1, 10));
    assert_eq!(p.health, Health::AtRisk);
    assert_eq!(p.blockers.len(), 1);
    let blocker = &p.blockers[0];
    assert_eq!(blocker.kind, BlockerKind::OpenException);
    assert_eq!(blocker.milestone_id, Some(milestone_id(&order, "fabric_approval")));
    assert_eq!(
        blocker.description,
        "Exception: Silk out of stock (expected resolution 2026-01-28 12:00 UTC)"
    );
    assert_eq!(
        HealthInputs {
            open_exceptions: 1,
            ..inputs()
        }
        .health(date(2026, 1, 10), &HealthPolicy::default()),
        Health::AtRisk
    );
}

#[test]
fn a_milestone_planned_after_the_promised_date_puts_the_order_at_risk() {
    let mut order = create("custom-production");
    let slip = MilestoneChange {
        planned_on: Some(date(2026, 3, 20)),
        reason: Some("Tailor ill".into()),
        ..MilestoneChange::default()
    };
    let events = change(&order, "final_fitting", slip, Role::Operations, noon(2026, 1, 10)).unwrap();
    apply(&mut order, events, noon(2026, 1, 10));
    assert_eq!(health_on(&order, date(2026, 1, 10)), Health::AtRisk);
    let fits = HealthInputs {
        last_planned_on: Some(promised_date()),
        ..inputs()
    };
    assert_eq!(
        fits.health(date(2026, 1, 10), &HealthPolicy::default()),
        Health::OnTrack
    );
}

#[test]
fn a_fresh_standard_order_is_on_track() {
    // The health rule counts any open milestone planned after the promised date as a risk, and the standard
    // preset plans its after-sales follow-up a week after the promised date by design, so a standard order is
    // `at_risk` from the moment it is entered until it is delivered.
    let order = create("standard");
    assert_eq!(health_on(&order, date(2026, 1, 5)), Health::OnTrack);
}

#[test]
fn percent_complete_counts_completed_milestones() {
    let mut order = create("custom-production");
    let today = date(2026, 1, 10);
    assert_eq!(progress_on(&order, today).percent_complete, 0);
    complete_fully(&mut order, "design_approval", noon(2026, 1, 9));
    complete_fully(&mut order, "fabric_approval", noon(2026, 1, 9));
    assert_eq!(progress_on(&order, today).percent_complete, 40);
    let mut mto = create("make-to-order");
    complete_fully(&mut mto, "confirmation", noon(2026, 1, 6));
    assert_eq!(progress_on(&mto, today).percent_complete, 25);
    let mut standard = create("standard");
    for key in ["order_confirmed", "production_start"] {
        complete_fully(&mut standard, key, noon(2026, 1, 6));
    }
    assert_eq!(
        progress_on(&standard, today).percent_complete,
        28,
        "2 of 7, rounded down"
    );
}

#[test]
fn the_next_milestone_is_the_earliest_open_one() {
    let mut order = create("custom-production");
    complete_fully(&mut order, "design_approval", noon(2026, 1, 9));
    assert_eq!(
        progress_on(&order, date(2026, 1, 10)).next_milestone.map(|n| n.key),
        Some("fabric_approval".into())
    );
    // Replanning the first fitting before the fabric approval makes it the next milestone.
    let early = MilestoneChange {
        planned_on: Some(date(2026, 1, 26)),
        reason: Some("Mockup early".into()),
        ..MilestoneChange::default()
    };
    let events = change(&order, "first_fitting", early, Role::Operations, noon(2026, 1, 10)).unwrap();
    apply(&mut order, events, noon(2026, 1, 10));
    let next = progress_on(&order, date(2026, 1, 10)).next_milestone.unwrap();
    assert_eq!((next.key.as_str(), next.days_left), ("first_fitting", 16));
    // With everything done there is no next milestone.
    for key in ["fabric_approval", "first_fitting", "final_fitting", "delivery"] {
        let m = milestone(&order, key);
        let (completion, role) = (full_completion(m), m.complete_roles[m.complete_roles.len() - 1]);
        let events = complete(&order, key, completion, role, noon(2026, 1, 11)).unwrap();
        apply(&mut order, events, noon(2026, 1, 11));
    }
    let p = progress_on(&order, date(2026, 1, 12));
    assert_eq!((p.next_milestone, p.percent_complete), (None, 100));
}

#[test]
fn blockers_list_overdue_milestones_and_open_exceptions() {
    // R2, R12: blockers on the order record.
    let mut order = create("custom-production");
    report_exception(&mut order, noon(2026, 1, 20), None);
    let p = progress_on(&order, date(2026, 2, 4));
    let kinds: Vec<(BlockerKind, Option<String>)> = p
        .blockers
        .iter()
        .map(|b| {
            (
                b.kind,
                b.milestone_id
                    .map(|id| order.milestones.iter().find(|m| m.id == id).unwrap().key.clone()),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (BlockerKind::OverdueMilestone, Some("design_approval".into())),
            (BlockerKind::OverdueMilestone, Some("fabric_approval".into())),
            (BlockerKind::OpenException, Some("fabric_approval".into())),
        ]
    );
    assert_eq!(
        p.blockers[0].description,
        "Design approval is 16 days overdue (planned 2026-01-19)"
    );
    assert_eq!(p.blockers[2].description, "Exception: Silk out of stock");
    assert_eq!(p.health, Health::Late);
}

#[test]
fn the_phase_follows_the_custom_production_status() {
    // R1: Design, Pattern, Construction, Fitting, Final.
    let mut order = create("custom-production");
    let today = date(2026, 1, 10);
    let phase = |order: &Order| progress_on(order, today).phase.map(|p| (p.id, p.name));
    // In receipt the phase is the next milestone's: design approval comes first.
    assert_eq!(phase(&order), Some(("design".into(), "Design".into())));
    for (status, name) in [
        ("design", "Design"),
        ("pattern", "Pattern"),
        ("construction", "Construction"),
        ("fitting", "Fitting"),
        ("final", "Final"),
    ] {
        order.status = status.into();
        assert_eq!(phase(&order), Some((status.to_string(), name.to_string())), "{status}");
    }
    // Delivered has no phase of its own; the next open milestone (delivery) has none either.
    order.status = "delivered".into();
    for key in ["design_approval", "fabric_approval", "first_fitting", "final_fitting"] {
        complete_fully(&mut order, key, noon(2026, 1, 9));
    }
    assert_eq!(phase(&order), None);
}

#[test]
fn the_last_client_update_is_shown_on_the_record() {
    let mut order = create("standard");
    let events = log(
        &order,
        1,
        follow_up("Order acknowledged"),
        Role::AccountManager,
        noon(2026, 1, 5),
    )
    .unwrap();
    apply(&mut order, events, noon(2026, 1, 5));
    assert_eq!(
        progress_on(&order, date(2026, 1, 6)).last_client_update_at,
        Some(noon(2026, 1, 5))
    );
}

#[test]
fn health_names_match_the_api() {
    assert_eq!(
        [Health::OnTrack.as_str(), Health::AtRisk.as_str(), Health::Late.as_str()],
        ["on_track", "at_risk", "late"]
    );
    assert_eq!(serde_json::to_string(&Health::AtRisk).unwrap(), "\"at_risk\"");
}

#[test]
fn an_order_without_milestones_is_complete_only_when_closed() {
    let text = r#"
        id = "quick"
        name = "Quick"
        initial = "open"
        create_roles = ["account_manager"]
        statuses = [{ id = "open", name = "Open" }, { id = "closed", name = "Closed", terminal = true }]
        [[transitions]]
        from = ["open"]
        to = "closed"
        roles = ["account_manager"]
    "#;
    let wf = ordertrail_domain::workflow::Workflow::from_toml("quick.toml", text).unwrap();
    let customer = customer();
    let roles = people_roles();
    let ctx = ordertrail_domain::decide::OrderContext {
        workflow: &wf,
        customer: &customer,
        people_roles: &roles,
        people_customers: &std::collections::BTreeMap::new(),
        today: order_date(),
        now: noon(2026, 1, 5),
    };
    let input = ordertrail_domain::decide::NewOrder {
        workflow: "quick".into(),
        ..new_order("standard")
    };
    let planned =
        ordertrail_domain::decide::plan_order(input, acting(Role::AccountManager), &ctx, &mut counter()).unwrap();
    let ordertrail_domain::event::OrderEvent::OrderCreated { order } = planned.created("Q1".into()) else {
        panic!("not a creation")
    };
    let mut order = *order;
    assert!(order.milestones.is_empty());
    let p = progress(&order, &wf, date(2026, 1, 6), &HealthPolicy::default());
    assert_eq!(
        (p.percent_complete, p.next_milestone, p.phase, p.health),
        (0, None, None, Health::OnTrack)
    );
    order.status = "closed".into();
    assert_eq!(
        progress(&order, &wf, date(2026, 1, 6), &HealthPolicy::default()).percent_complete,
        100
    );
}
