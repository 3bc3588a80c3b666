//! Milestones: planned from the workflow when the order is created (R4, R33), replanned with a reason,
//! completed with evidence and a finished checklist.

use crate::support::*;
use chrono::TimeDelta;
use ordertrail_domain::Role;
use ordertrail_domain::decide::{self, MilestoneChange, MilestoneCompletion};
use ordertrail_domain::error::DomainError;
use ordertrail_domain::event::OrderEvent;
use ordertrail_domain::ids::MilestoneId;
use ordertrail_domain::order::{Evidence, Order};
use ordertrail_domain::progress::{Health, HealthPolicy, progress};
use uuid::Uuid;

fn planned(order: &Order) -> Vec<(&str, chrono::NaiveDate)> {
    order
        .milestones
        .iter()
        .map(|m| (m.key.as_str(), m.planned_on))
        .collect()
}

fn replan(to: chrono::NaiveDate, reason: Option<&str>) -> MilestoneChange {
    MilestoneChange {
        planned_on: Some(to),
        reason: reason.map(str::to_string),
        ..MilestoneChange::default()
    }
}

fn ticks(items: &[&str]) -> MilestoneChange {
    MilestoneChange {
        checklist: items.iter().map(|i| (i.to_string(), true)).collect(),
        ..MilestoneChange::default()
    }
}

#[test]
fn custom_production_milestones_are_planned_from_the_order_date_and_the_promised_date() {
    // R4: design approval in week 2, fabric approval week 4, first fitting week 5, final fitting week 8.
    let order = create("custom-production");
    assert_eq!(order.order_date, date(2026, 1, 5));
    assert_eq!(
        planned(&order),
        [
            ("design_approval", date(2026, 1, 19)),
            ("fabric_approval", date(2026, 2, 2)),
            ("first_fitting", date(2026, 2, 9)),
            ("final_fitting", date(2026, 3, 2)),
            ("delivery", promised_date()),
        ]
    );
    for (position, m) in order.milestones.iter().enumerate() {
        assert_eq!(m.position, position as i32);
        assert_eq!(m.original_planned_on, m.planned_on);
        assert!(m.completed_at.is_none() && m.completed_by.is_none() && m.evidence.is_none());
        assert!(m.checklist.iter().all(|c| !c.done));
    }
    let design = milestone(&order, "design_approval");
    assert_eq!(design.phase.as_deref(), Some("design"));
    assert_eq!(design.owner_role, Role::Design);
    assert_eq!(
        design.complete_roles,
        [Role::Design, Role::AccountManager, Role::SalesCoordinator]
    );
    assert!(design.client_action);
    assert_eq!(design.checklist.len(), 3);
}

#[test]
fn the_standard_shipped_milestone_is_five_days_before_the_promised_date() {
    let mut input = new_order("standard");
    input.promised_date = date(2026, 2, 20);
    let order = create_from(input);
    assert_eq!(milestone(&order, "shipped").planned_on, date(2026, 2, 15));
    assert_eq!(milestone(&order, "order_confirmed").planned_on, date(2026, 1, 6));
    assert_eq!(milestone(&order, "customer_signed").planned_on, date(2026, 2, 20));
    assert_eq!(milestone(&order, "after_sales").planned_on, date(2026, 2, 27));
}

#[test]
fn make_to_order_milestones_follow_the_marketplace_plan() {
    let order = create("make-to-order");
    assert_eq!(
        planned(&order),
        [
            ("confirmation", date(2026, 1, 7)),
            ("production", date(2026, 1, 19)),
            ("shipment", date(2026, 1, 21)),
            ("receipt", promised_date()),
        ]
    );
}

#[test]
fn a_milestone_is_never_planned_before_the_order_date() {
    // change_milestone refuses a planned date before the order date, but plan_order does not clamp: a standard
    // rush order promised two days out gets its `shipped` milestone (promised - 5 days) three days before the
    // order date, so the order is overdue, and `late`, the moment it is created.
    let mut input = new_order("standard");
    input.promised_date = date(2026, 1, 7);
    let order = create_from(input);
    let health = progress(&order, workflow("standard"), order.order_date, &HealthPolicy::default()).health;
    for m in &order.milestones {
        assert!(
            m.planned_on >= order.order_date,
            "{} is planned on {}, before the order date (the new order's health is {health:?})",
            m.key,
            m.planned_on
        );
    }
    assert_ne!(health, Health::Late, "an order entered today is not late today");
}

#[test]
fn milestone_owners_and_extra_checklist_items_are_taken_from_the_new_order() {
    let mut input = new_order("custom-production");
    input.milestone_owners.insert("first_fitting".into(), OPERATIONS);
    input
        .extra_checklist
        .insert("first_fitting".into(), vec!["Stand-in booked".into()]);
    let order = create_from(input);
    let fitting = milestone(&order, "first_fitting");
    assert_eq!(fitting.owner_id, Some(OPERATIONS));
    assert_eq!(
        fitting.checklist.last().map(|c| c.item.as_str()),
        Some("Stand-in booked")
    );
    assert_eq!(fitting.checklist.len(), 5);
    assert_eq!(milestone(&order, "design_approval").owner_id, None);
}

#[test]
fn replanning_needs_a_reason() {
    let mut order = create("custom-production");
    let to = date(2026, 1, 26);
    for reason in [None, Some(""), Some("   ")] {
        let refusal = change(
            &order,
            "design_approval",
            replan(to, reason),
            Role::AccountManager,
            noon(2026, 1, 10),
        );
        assert_eq!(invalid_fields(refusal), ["reason"], "{reason:?}");
    }
    let events = change(
        &order,
        "design_approval",
        replan(to, Some("Client travelling")),
        Role::AccountManager,
        noon(2026, 1, 10),
    )
    .unwrap();
    let id = milestone_id(&order, "design_approval");
    assert_eq!(
        events,
        [(
            OrderEvent::MilestoneReplanned {
                milestone_id: id,
                from: date(2026, 1, 19),
                to
            },
            Some("Client travelling".to_string())
        )]
    );
    apply(&mut order, events, noon(2026, 1, 10));
    let m = milestone(&order, "design_approval");
    assert_eq!(
        (m.planned_on, m.original_planned_on),
        (to, date(2026, 1, 19)),
        "the first plan is kept"
    );
}

#[test]
fn replanning_is_for_the_replan_roles() {
    let order = create("custom-production");
    let refusal = change(
        &order,
        "design_approval",
        replan(date(2026, 1, 26), Some("why not")),
        Role::Logistics,
        noon(2026, 1, 10),
    );
    assert!(
        matches!(
            refusal,
            Err(DomainError::RoleNotAllowed {
                role: Role::Logistics,
                ..
            })
        ),
        "{refusal:?}"
    );
    for role in workflow("custom-production").replan_roles.iter().copied() {
        let ok = change(
            &order,
            "design_approval",
            replan(date(2026, 1, 26), Some("moved")),
            role,
            noon(2026, 1, 10),
        );
        assert!(ok.is_ok(), "{role}: {ok:?}");
    }
}

#[test]
fn a_milestone_cannot_be_replanned_before_the_order_date() {
    let order = create("custom-production");
    let refusal = change(
        &order,
        "design_approval",
        replan(date(2026, 1, 4), Some("earlier")),
        Role::AccountManager,
        noon(2026, 1, 10),
    );
    assert_eq!(invalid_fields(refusal), ["planned_on"]);
}

#[test]
fn a_change_that_changes_nothing_is_refused() {
    let order = create("custom-production");
    let same_day = replan(date(2026, 1, 19), None);
    assert_eq!(
        invalid_fields(change(
            &order,
            "design_approval",
            same_day,
            Role::AccountManager,
            noon(2026, 1, 10)
        )),
        ["planned_on"]
    );
    assert_eq!(
        invalid_fields(change(
            &order,
            "design_approval",
            MilestoneChange::default(),
            Role::AccountManager,
            noon(2026, 1, 10)
        )),
        ["planned_on"]
    );
}

#[test]
fn a_milestone_is_reassigned_and_its_owner_checked() {
    let mut order = create("custom-production");
    let id = milestone_id(&order, "first_fitting");
    let reassign = MilestoneChange {
        owner_id: Some(Some(OPERATIONS)),
        ..MilestoneChange::default()
    };
    let at = noon(2026, 1, 10);
    let by = ctx(&order, acting(Role::AccountManager), at);
    let events = decide::change_milestone(&order, id, reassign.clone(), Some(true), &by).unwrap();
    assert_eq!(
        events,
        [(
            OrderEvent::MilestoneOwnerChanged {
                milestone_id: id,
                from: None,
                to: Some(OPERATIONS)
            },
            None
        )]
    );
    assert_eq!(
        invalid_fields(decide::change_milestone(&order, id, reassign, Some(false), &by)),
        ["owner_id"]
    );
    apply(&mut order, events, at);
    assert_eq!(milestone(&order, "first_fitting").owner_id, Some(OPERATIONS));
}

#[test]
fn the_checklist_is_ticked_item_by_item() {
    let mut order = create("custom-production");
    let events = change(
        &order,
        "design_approval",
        ticks(&["Client design review meeting held"]),
        Role::Design,
        noon(2026, 1, 8),
    )
    .unwrap();
    assert!(matches!(&events[..], [(OrderEvent::ChecklistUpdated { .. }, None)]));
    apply(&mut order, events, noon(2026, 1, 8));
    let done: Vec<bool> = milestone(&order, "design_approval")
        .checklist
        .iter()
        .map(|c| c.done)
        .collect();
    assert_eq!(done, [true, false, false]);
    let unknown = change(
        &order,
        "design_approval",
        ticks(&["Champagne opened"]),
        Role::Design,
        noon(2026, 1, 8),
    );
    assert_eq!(invalid_fields(unknown), ["checklist.Champagne opened"]);
    let stranger = change(
        &order,
        "design_approval",
        ticks(&["Sketches and concepts presented"]),
        Role::Logistics,
        noon(2026, 1, 8),
    );
    assert!(
        matches!(stranger, Err(DomainError::RoleNotAllowed { .. })),
        "{stranger:?}"
    );
}

#[test]
fn completing_a_client_action_milestone_needs_the_approver() {
    // R4: the client's feedback and approval are documented.
    let order = create("custom-production");
    let m = milestone(&order, "design_approval");
    for approved_by in [None, Some("  ".to_string())] {
        let mut completion = full_completion(m);
        completion.evidence.approved_by = approved_by;
        let message = invalid_message(
            complete(&order, "design_approval", completion, Role::Design, noon(2026, 1, 18)),
            "evidence.approved_by",
        );
        assert!(message.contains("waits on the client"), "{message}");
    }
    // A milestone that does not wait on the client needs no approver.
    let mut order = create("custom-production");
    order.status = "delivered".into();
    let plain = MilestoneCompletion::default();
    assert!(complete(&order, "delivery", plain, Role::AccountManager, noon(2026, 3, 16)).is_ok());
}

#[test]
fn completing_with_unchecked_checklist_items_is_refused_listing_them() {
    let order = create("custom-production");
    let mut completion = full_completion(milestone(&order, "first_fitting"));
    completion.checklist = vec!["Client availability confirmed".into(), "Mockup ready".into()];
    let message = invalid_message(
        complete(&order, "first_fitting", completion, Role::Operations, noon(2026, 2, 9)),
        "checklist",
    );
    assert_eq!(
        message,
        "items not done: Two-hour fitting window scheduled, Fit notes documented"
    );
    let mut completion = full_completion(milestone(&order, "first_fitting"));
    completion.checklist.push("Photos taken".into());
    let refusal = complete(&order, "first_fitting", completion, Role::Operations, noon(2026, 2, 9));
    assert_eq!(invalid_fields(refusal), ["checklist.Photos taken"]);
}

#[test]
fn items_ticked_earlier_count_towards_completion() {
    let mut order = create("standard");
    let items = ["Samples inspected", "Inspection record filed"];
    let events = change(
        &order,
        "semi_finished_inspection",
        ticks(&items),
        Role::Operations,
        noon(2026, 1, 14),
    )
    .unwrap();
    apply(&mut order, events, noon(2026, 1, 14));
    let events = complete(
        &order,
        "semi_finished_inspection",
        MilestoneCompletion::default(),
        Role::Operations,
        noon(2026, 1, 15),
    )
    .unwrap();
    match &events[..] {
        [
            (
                OrderEvent::MilestoneCompleted {
                    completed_at,
                    completed_by,
                    checklist,
                    ..
                },
                None,
            ),
        ] => {
            assert_eq!(*completed_at, noon(2026, 1, 15));
            assert_eq!(*completed_by, OPERATIONS);
            assert!(checklist.iter().all(|c| c.done));
        }
        other => panic!("expected one completion, got {other:?}"),
    }
}

#[test]
fn the_completion_records_who_when_and_the_evidence() {
    let mut order = create("custom-production");
    let mut completion = full_completion(milestone(&order, "design_approval"));
    completion.completed_at = Some(noon(2026, 1, 17) + TimeDelta::nanoseconds(1_234_567));
    completion.evidence = Evidence {
        note: Some("Approved at the review".into()),
        approved_by: Some("Maya Lin".into()),
        attachments: vec!["sketches-v3.pdf".into()],
    };
    let events = complete(
        &order,
        "design_approval",
        completion,
        Role::AccountManager,
        noon(2026, 1, 18),
    )
    .unwrap();
    assert_eq!(
        events[0].1.as_deref(),
        Some("Approved at the review"),
        "the note goes to the log"
    );
    apply(&mut order, events, noon(2026, 1, 18));
    let m = milestone(&order, "design_approval");
    assert_eq!(
        m.completed_at,
        Some(noon(2026, 1, 17) + TimeDelta::microseconds(1_234)),
        "kept to the microsecond"
    );
    assert_eq!(m.completed_by, Some(ACCOUNT_MANAGER));
    assert_eq!(
        m.evidence.as_ref().and_then(|e| e.approved_by.as_deref()),
        Some("Maya Lin")
    );
    assert_eq!(m.evidence.as_ref().map(|e| e.attachments.len()), Some(1));
}

#[test]
fn a_completion_time_in_the_future_or_before_the_order_is_refused() {
    let order = create("standard");
    let now = noon(2026, 1, 10);
    let future = MilestoneCompletion {
        completed_at: Some(now + TimeDelta::hours(1)),
        ..MilestoneCompletion::default()
    };
    assert_eq!(
        invalid_fields(complete(&order, "order_confirmed", future, Role::AccountManager, now)),
        ["completed_at"]
    );
    let clock_skew = MilestoneCompletion {
        completed_at: Some(now + TimeDelta::minutes(4)),
        ..MilestoneCompletion::default()
    };
    assert!(complete(&order, "order_confirmed", clock_skew, Role::AccountManager, now).is_ok());
    let before = MilestoneCompletion {
        completed_at: Some(noon(2026, 1, 1)),
        ..MilestoneCompletion::default()
    };
    assert_eq!(
        invalid_fields(complete(&order, "order_confirmed", before, Role::AccountManager, now)),
        ["completed_at"]
    );
}

#[test]
fn completing_a_milestone_twice_is_a_conflict() {
    let mut order = create("custom-production");
    complete_fully(&mut order, "design_approval", noon(2026, 1, 18));
    let again = full_completion(milestone(&order, "design_approval"));
    let refusal = complete(&order, "design_approval", again, Role::Design, noon(2026, 1, 19));
    assert!(
        matches!(&refusal, Err(DomainError::Conflict(m)) if m.contains("already completed")),
        "{refusal:?}"
    );
    // A completed milestone is not replanned or re-ticked either.
    let moved = change(
        &order,
        "design_approval",
        replan(date(2026, 1, 30), Some("late")),
        Role::AccountManager,
        noon(2026, 1, 19),
    );
    assert!(matches!(moved, Err(DomainError::Conflict(_))), "{moved:?}");
    let reticked = change(
        &order,
        "design_approval",
        ticks(&["Sketches and concepts presented"]),
        Role::Design,
        noon(2026, 1, 19),
    );
    assert!(matches!(reticked, Err(DomainError::Conflict(_))), "{reticked:?}");
}

#[test]
fn only_the_completing_roles_or_the_named_owner_complete_a_milestone() {
    let order = create("custom-production");
    let completion = full_completion(milestone(&order, "design_approval"));
    let refusal = complete(
        &order,
        "design_approval",
        completion.clone(),
        Role::Logistics,
        noon(2026, 1, 18),
    );
    assert!(
        matches!(&refusal, Err(DomainError::RoleNotAllowed { role: Role::Logistics, action }) if action == "complete 'Design approval'")
    );
    // The person named as the milestone's owner may complete it whatever staff role they act in.
    let mut input = new_order("custom-production");
    input.milestone_owners.insert("design_approval".into(), LOGISTICS);
    let order = create_from(input);
    assert!(
        complete(
            &order,
            "design_approval",
            completion,
            Role::Logistics,
            noon(2026, 1, 18)
        )
        .is_ok()
    );
}

#[test]
fn terminal_orders_refuse_milestone_changes() {
    let mut order = create("custom-production");
    let cancel = confirmed("cancelled", &[("cancellation_reason", "Show cancelled")]);
    move_to(&mut order, cancel, Role::AccountManager, noon(2026, 1, 8));
    let completion = full_completion(milestone(&order, "design_approval"));
    let refusal = complete(&order, "design_approval", completion, Role::Design, noon(2026, 1, 9));
    assert!(
        matches!(&refusal, Err(DomainError::Conflict(m)) if m.contains("can no longer change")),
        "{refusal:?}"
    );
    let moved = change(
        &order,
        "design_approval",
        replan(date(2026, 1, 30), Some("x")),
        Role::AccountManager,
        noon(2026, 1, 9),
    );
    assert!(matches!(moved, Err(DomainError::Conflict(_))), "{moved:?}");
    let reassign = MilestoneChange {
        owner_id: Some(Some(DESIGNER)),
        ..MilestoneChange::default()
    };
    assert!(matches!(
        change(
            &order,
            "design_approval",
            reassign,
            Role::AccountManager,
            noon(2026, 1, 9)
        ),
        Err(DomainError::Conflict(_))
    ));
}

#[test]
fn an_unknown_milestone_is_not_found() {
    let order = create("custom-production");
    let nowhere = MilestoneId(Uuid::from_u128(0xdead));
    let by = ctx(&order, acting(Role::AccountManager), noon(2026, 1, 9));
    let refusal = decide::complete_milestone(&order, nowhere, MilestoneCompletion::default(), &by);
    assert_eq!(
        refusal.unwrap_err(),
        DomainError::NotFound {
            what: "milestone".into()
        }
    );
    let refusal = decide::change_milestone(&order, nowhere, replan(date(2026, 2, 1), Some("x")), None, &by);
    assert_eq!(
        refusal.unwrap_err(),
        DomainError::NotFound {
            what: "milestone".into()
        }
    );
}

#[test]
fn milestone_commands_check_the_expected_version() {
    let order = create("custom-production");
    let stale = MilestoneChange {
        expected_version: Some(7),
        ..replan(date(2026, 1, 26), Some("x"))
    };
    assert_eq!(
        change(&order, "design_approval", stale, Role::AccountManager, noon(2026, 1, 9)).unwrap_err(),
        DomainError::StaleVersion { expected: 7, actual: 1 }
    );
    let stale = MilestoneCompletion {
        expected_version: Some(0),
        ..full_completion(milestone(&order, "design_approval"))
    };
    assert_eq!(
        complete(&order, "design_approval", stale, Role::Design, noon(2026, 1, 9)).unwrap_err(),
        DomainError::StaleVersion { expected: 0, actual: 1 }
    );
}

#[test]
fn a_milestone_change_arrives_as_json_with_an_explicit_null_owner() {
    let change: MilestoneChange = serde_json::from_str(r#"{"owner_id": null}"#).unwrap();
    assert_eq!(change.owner_id, Some(None), "null is 'no owner'");
    let change: MilestoneChange = serde_json::from_str("{}").unwrap();
    assert_eq!(change.owner_id, None, "absent is 'unchanged'");
    let unknown: Result<MilestoneChange, _> = serde_json::from_str(r#"{"planned": "2026-01-01"}"#);
    assert!(unknown.is_err());
}
