//! Follow-ups (R34): every contact and progress note is logged; an exception stays open until a later
//! follow-up on the same subject; outbound contact with the customer is the order's last client update (R12).

use crate::support::*;
use chrono::TimeDelta;
use ordertrail_domain::Role;
use ordertrail_domain::error::DomainError;
use ordertrail_domain::event::OrderEvent;
use ordertrail_domain::follow_up::{
    CounterpartKind, Direction, ExceptionNote, FollowUp, FollowUpStatus, NewFollowUp, Subject,
};
use ordertrail_domain::order::Order;

fn exception(cause: &str) -> ExceptionNote {
    ExceptionNote {
        cause: cause.into(),
        impact: "First fitting moves by four days".into(),
        expected_resolution_at: Some(noon(2026, 1, 28)),
    }
}

/// An internal note from production about `milestone`, reporting an exception.
fn exception_report(order: &Order, milestone: &str, cause: &str) -> NewFollowUp {
    NewFollowUp {
        direction: Direction::Internal,
        milestone_id: Some(milestone_id(order, milestone)),
        status: FollowUpStatus::ExceptionPending,
        exception: Some(exception(cause)),
        ..follow_up("Supplier reports a delay")
    }
}

fn logged(events: &Events) -> &FollowUp {
    match events.as_slice() {
        [(OrderEvent::FollowUpLogged { follow_up }, None)] => follow_up,
        other => panic!("expected one follow-up, got {other:?}"),
    }
}

#[test]
fn an_exception_pending_follow_up_without_the_exception_is_invalid() {
    let order = create("custom-production");
    let record = NewFollowUp {
        status: FollowUpStatus::ExceptionPending,
        ..follow_up("Something is wrong")
    };
    let refusal = log(&order, 1, record, Role::Operations, noon(2026, 1, 20));
    assert!(invalid_message(refusal, "exception").contains("cause and impact"));
    let blank = NewFollowUp {
        exception: Some(ExceptionNote {
            cause: " ".into(),
            impact: String::new(),
            expected_resolution_at: None,
        }),
        ..exception_report(&order, "fabric_approval", "x")
    };
    assert_eq!(
        invalid_fields(log(&order, 1, blank, Role::Operations, noon(2026, 1, 20))),
        ["exception.cause", "exception.impact"]
    );
}

#[test]
fn an_exception_on_a_milestone_stays_open_until_a_done_follow_up_on_it() {
    let mut order = create("custom-production");
    let fabric = milestone_id(&order, "fabric_approval");
    let events = log(
        &order,
        1,
        exception_report(&order, "fabric_approval", "Silk out of stock"),
        Role::Operations,
        noon(2026, 1, 20),
    )
    .unwrap();
    apply(&mut order, events, noon(2026, 1, 20));
    assert_eq!(order.open_exceptions.len(), 1);
    let open = &order.open_exceptions[0];
    assert_eq!(open.subject, Subject::Milestone(fabric));
    assert_eq!(open.cause, "Silk out of stock");
    assert_eq!(open.since, noon(2026, 1, 20));
    assert_eq!(open.expected_resolution_at, Some(noon(2026, 1, 28)));

    let resolved = NewFollowUp {
        direction: Direction::Internal,
        milestone_id: Some(fabric),
        status: FollowUpStatus::Done,
        ..follow_up("Silk arrived from the second supplier")
    };
    let events = log(&order, 2, resolved, Role::Operations, noon(2026, 1, 24)).unwrap();
    apply(&mut order, events, noon(2026, 1, 24));
    assert!(order.open_exceptions.is_empty());
    assert_eq!(order.last_follow_up_at, Some(noon(2026, 1, 24)));
}

#[test]
fn a_follow_up_on_another_subject_leaves_the_exception_open() {
    let mut order = create("custom-production");
    let events = log(
        &order,
        1,
        exception_report(&order, "fabric_approval", "Silk out of stock"),
        Role::Operations,
        noon(2026, 1, 20),
    )
    .unwrap();
    apply(&mut order, events, noon(2026, 1, 20));
    let about_the_order = NewFollowUp {
        status: FollowUpStatus::Done,
        ..follow_up("Weekly update sent")
    };
    let events = log(&order, 2, about_the_order, Role::AccountManager, noon(2026, 1, 21)).unwrap();
    apply(&mut order, events, noon(2026, 1, 21));
    let about_another_milestone = NewFollowUp {
        milestone_id: Some(milestone_id(&order, "first_fitting")),
        status: FollowUpStatus::Done,
        ..follow_up("Fitting room booked")
    };
    let events = log(
        &order,
        3,
        about_another_milestone,
        Role::AccountManager,
        noon(2026, 1, 22),
    )
    .unwrap();
    apply(&mut order, events, noon(2026, 1, 22));
    assert_eq!(order.open_exceptions.len(), 1);
    assert_eq!(order.open_exceptions[0].cause, "Silk out of stock");
}

#[test]
fn a_new_exception_on_the_same_subject_replaces_the_old_one() {
    let mut order = create("custom-production");
    for (id, cause, day) in [(1, "Silk out of stock", 20), (2, "Second supplier late too", 23)] {
        let events = log(
            &order,
            id,
            exception_report(&order, "fabric_approval", cause),
            Role::Operations,
            noon(2026, 1, day),
        )
        .unwrap();
        apply(&mut order, events, noon(2026, 1, day));
    }
    assert_eq!(order.open_exceptions.len(), 1);
    assert_eq!(order.open_exceptions[0].cause, "Second supplier late too");
    let order_level = NewFollowUp {
        milestone_id: None,
        ..exception_report(&order, "fabric_approval", "Budget overrun 12%")
    };
    let events = log(&order, 3, order_level, Role::AccountManager, noon(2026, 1, 24)).unwrap();
    apply(&mut order, events, noon(2026, 1, 24));
    let subjects: Vec<Subject> = order.open_exceptions.iter().map(|e| e.subject).collect();
    assert_eq!(
        subjects,
        [
            Subject::Milestone(milestone_id(&order, "fabric_approval")),
            Subject::Order
        ]
    );
}

#[test]
fn a_follow_up_that_happened_before_the_exception_does_not_clear_it() {
    // Order::apply clears every open exception of the subject whatever the follow-up's occurred_at, so a note
    // entered late about a call on the 18th closes an exception reported on the 20th. last_client_update_at
    // already guards against back-dated records (it keeps the max); open exceptions do not.
    let mut order = create("custom-production");
    let events = log(
        &order,
        1,
        exception_report(&order, "fabric_approval", "Silk out of stock"),
        Role::Operations,
        noon(2026, 1, 20),
    )
    .unwrap();
    apply(&mut order, events, noon(2026, 1, 20));
    let earlier = NewFollowUp {
        occurred_at: Some(noon(2026, 1, 18)),
        milestone_id: Some(milestone_id(&order, "fabric_approval")),
        status: FollowUpStatus::Done,
        ..follow_up("Swatches sent (entered late)")
    };
    let events = log(&order, 2, earlier, Role::Operations, noon(2026, 1, 21)).unwrap();
    apply(&mut order, events, noon(2026, 1, 21));
    assert_eq!(
        order.open_exceptions.len(),
        1,
        "the exception of the 20th is still open"
    );
}

#[test]
fn an_outbound_follow_up_to_the_customer_is_the_last_client_update() {
    // R12: the order record shows the last client update.
    let mut order = create("standard");
    assert_eq!(order.last_client_update_at, None);
    let not_client_updates = [
        NewFollowUp {
            direction: Direction::Inbound,
            ..follow_up("Customer asked for the date")
        },
        NewFollowUp {
            direction: Direction::Internal,
            ..follow_up("Warehouse reports 80% packed")
        },
        NewFollowUp {
            counterpart: ordertrail_domain::follow_up::Counterpart {
                kind: CounterpartKind::Supplier,
                name: None,
            },
            ..follow_up("Chased the supplier")
        },
    ];
    for (i, record) in not_client_updates.into_iter().enumerate() {
        let events = log(&order, i as u128 + 1, record, Role::AccountManager, noon(2026, 1, 10)).unwrap();
        apply(&mut order, events, noon(2026, 1, 10));
    }
    assert_eq!(order.last_client_update_at, None);
    assert_eq!(order.last_follow_up_at, Some(noon(2026, 1, 10)));

    let events = log(
        &order,
        10,
        follow_up("Weekly update: on track for 16 March"),
        Role::AccountManager,
        noon(2026, 1, 16),
    )
    .unwrap();
    assert!(logged(&events).is_client_update());
    apply(&mut order, events, noon(2026, 1, 16));
    assert_eq!(order.last_client_update_at, Some(noon(2026, 1, 16)));

    // A record of an older call, entered later, does not move the last update back.
    let older = NewFollowUp {
        occurred_at: Some(noon(2026, 1, 12)),
        ..follow_up("Call on Monday")
    };
    let events = log(&order, 11, older, Role::AccountManager, noon(2026, 1, 17)).unwrap();
    apply(&mut order, events, noon(2026, 1, 17));
    assert_eq!(order.last_client_update_at, Some(noon(2026, 1, 16)));
    assert_eq!(order.last_follow_up_at, Some(noon(2026, 1, 16)));
}

#[test]
fn a_customer_may_not_log_follow_ups() {
    let order = create("standard");
    let refusal = log(
        &order,
        1,
        follow_up("Where is my order?"),
        Role::Customer,
        noon(2026, 1, 10),
    );
    assert!(
        matches!(
            refusal,
            Err(DomainError::RoleNotAllowed {
                role: Role::Customer,
                ..
            })
        ),
        "{refusal:?}"
    );
    // A customer of another order does not even learn that the order exists.
    let by = ordertrail_domain::decide::Acting {
        user: OTHER_CUSTOMER,
        role: Role::Customer,
    };
    let refusal = ordertrail_domain::decide::log_follow_up(
        &order,
        ordertrail_domain::ids::FollowUpId(uuid::Uuid::from_u128(2)),
        follow_up("Hello"),
        &ctx(&order, by, noon(2026, 1, 10)),
    );
    assert_eq!(refusal.unwrap_err(), DomainError::NotFound { what: "order".into() });
}

#[test]
fn a_follow_up_records_who_logged_it_in_which_role_and_when() {
    // R26, R40: every follow-up is logged and leaves a trace.
    let order = create("standard");
    let now = noon(2026, 1, 10);
    let events = log(&order, 7, follow_up("Confirmation sent"), Role::SalesCoordinator, now).unwrap();
    let record = logged(&events);
    assert_eq!(record.id.0, uuid::Uuid::from_u128(7));
    assert_eq!(record.order_id, order.id);
    assert_eq!(
        (record.recorded_by, record.recorded_as),
        (COORDINATOR, Role::SalesCoordinator)
    );
    assert_eq!(
        (record.occurred_at, record.recorded_at),
        (now, now),
        "occurred_at defaults to now"
    );
    assert_eq!(record.subject(), Subject::Order);
}

#[test]
fn a_follow_up_needs_content_and_a_time_that_has_passed() {
    let order = create("standard");
    let now = noon(2026, 1, 10);
    let empty = NewFollowUp {
        summary: Some("   ".into()),
        ..follow_up("")
    };
    assert_eq!(
        invalid_fields(log(&order, 1, empty, Role::AccountManager, now)),
        ["summary"]
    );
    let feedback_only = NewFollowUp {
        summary: None,
        client_feedback: Some("Very happy".into()),
        ..follow_up("")
    };
    assert!(log(&order, 2, feedback_only, Role::AccountManager, now).is_ok());
    let future = NewFollowUp {
        occurred_at: Some(now + TimeDelta::hours(2)),
        ..follow_up("Tomorrow's call")
    };
    assert_eq!(
        invalid_fields(log(&order, 3, future, Role::AccountManager, now)),
        ["occurred_at"]
    );
    let long = follow_up(&"x".repeat(10_001));
    assert_eq!(
        invalid_fields(log(&order, 4, long, Role::AccountManager, now)),
        ["summary"]
    );
    let attachments = NewFollowUp {
        attachments: vec!["a.pdf".into(); 21],
        ..follow_up("Photos")
    };
    assert_eq!(
        invalid_fields(log(&order, 5, attachments, Role::AccountManager, now)),
        ["attachments"]
    );
}

#[test]
fn a_follow_up_about_a_milestone_of_another_order_is_refused() {
    let order = create("standard");
    let other = create("custom-production");
    let record = NewFollowUp {
        milestone_id: Some(milestone_id(&other, "first_fitting")),
        ..follow_up("Fitting booked")
    };
    assert_eq!(
        invalid_fields(log(&order, 1, record, Role::AccountManager, noon(2026, 1, 10))),
        ["milestone_id"]
    );
}
