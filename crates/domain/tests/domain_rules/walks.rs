//! Each preset walked from its first status to its last with the roles the procedures name, and the typed
//! refusals of `decide::transition`.

use crate::support::*;
use ordertrail_domain::Role;
use ordertrail_domain::decide::TransitionRequest;
use ordertrail_domain::error::DomainError;
use ordertrail_domain::event::OrderEvent;
use ordertrail_domain::order::Order;
use ordertrail_domain::progress::{HealthPolicy, progress};

fn step(events: &Events) -> (&str, &str) {
    let (from, to, _) = status_change(events);
    (from, to)
}

fn percent(order: &Order) -> u8 {
    progress(
        order,
        workflow(&order.workflow),
        date(2026, 3, 20),
        &HealthPolicy::default(),
    )
    .percent_complete
}

#[test]
fn a_custom_production_order_walks_from_receipt_to_closed() {
    // R15 receipt -> tracking -> closure, R4 milestones, R14 delivery and sign-off roles.
    let mut order = create("custom-production");
    assert_eq!((order.status.as_str(), order.version), ("receipt", 1));

    // R15: the contract is signed (the deposit falls due, R8) and the deposit paid; then tracking starts.
    let signed = sign_contract(&mut order, date(2026, 1, 5), noon(2026, 1, 5));
    assert_eq!(signed[0].0.kind(), "payment_contract_signed");
    pay_installment(&mut order, 1, noon(2026, 1, 6));
    assert!(order.payments.as_ref().is_some_and(|p| p.tracking_started()));
    let events = move_to(
        &mut order,
        confirmed("design", &[]),
        Role::AccountManager,
        noon(2026, 1, 6),
    );
    assert_eq!(step(&events), ("receipt", "design"));
    assert_eq!(events.len(), 1, "the status change alone");

    complete_fully(&mut order, "design_approval", noon(2026, 1, 16));
    assert_eq!(
        step(&move_to(
            &mut order,
            request("pattern"),
            Role::Design,
            noon(2026, 1, 19)
        )),
        ("design", "pattern")
    );

    let fabric = full_completion(milestone(&order, "fabric_approval"));
    let events = complete(
        &order,
        "fabric_approval",
        fabric,
        Role::SalesCoordinator,
        noon(2026, 1, 30),
    )
    .unwrap();
    apply(&mut order, events, noon(2026, 1, 30));
    let events = move_to(&mut order, request("construction"), Role::Operations, noon(2026, 2, 2));
    assert_eq!(step(&events), ("pattern", "construction"));

    let events = move_to(&mut order, request("fitting"), Role::Operations, noon(2026, 2, 6));
    assert_eq!(step(&events), ("construction", "fitting"));

    complete_fully(&mut order, "first_fitting", noon(2026, 2, 9));
    assert_eq!(
        step(&move_to(&mut order, request("final"), Role::Design, noon(2026, 2, 10))),
        ("fitting", "final")
    );

    complete_fully(&mut order, "final_fitting", noon(2026, 3, 1));
    let unconfirmed = transition(&order, request("delivered"), Role::Logistics, noon(2026, 3, 2));
    assert_eq!(guard_names(unconfirmed), ["confirmed"]);
    let events = move_to(
        &mut order,
        confirmed("delivered", &[]),
        Role::Logistics,
        noon(2026, 3, 2),
    );
    assert_eq!(step(&events), ("final", "delivered"));

    // Delivering completes the Delivery milestone.
    assert_eq!(milestone(&order, "delivery").completed_at, Some(noon(2026, 3, 2)));
    let unsigned = transition(&order, confirmed("closed", &[]), Role::SalesDirector, noon(2026, 3, 3));
    assert_eq!(guard_names(unsigned), ["field:sign_off_by"]);
    let events = move_to(
        &mut order,
        confirmed("closed", &[("sign_off_by", "Maya Lin")]),
        Role::SalesDirector,
        noon(2026, 3, 3),
    );
    assert_eq!(step(&events), ("delivered", "closed"));

    assert_eq!(order.status, "closed");
    assert_eq!(
        order.version,
        1 + 7 + 5 + 4,
        "creation, seven status changes, five milestones, and the payment events: contract signed, deposit paid, \
         first fitting and delivery making installments 2 and 3 due"
    );
    assert_eq!(order.updated_at, noon(2026, 3, 3));
    assert_eq!(
        order.payments.as_ref().and_then(|p| p.contract_signed_on),
        Some(date(2026, 1, 5))
    );
    assert_eq!(order.fields.get("sign_off_by").map(String::as_str), Some("Maya Lin"));
    assert_eq!(percent(&order), 100);
    assert!(workflow("custom-production").is_terminal(&order.status));
    assert!(matches!(
        transition(
            &order,
            confirmed("cancelled", &[("cancellation_reason", "late")]),
            Role::AccountManager,
            noon(2026, 3, 4)
        ),
        Err(DomainError::TransitionNotAllowed { .. })
    ));
}

#[test]
fn a_make_to_order_order_walks_from_placed_to_completed() {
    // R19: the IP owner confirms, the manufacturer produces and ships, the consumer completes.
    let mut order = create("make-to-order");
    assert_eq!(order.status, "placed");

    let events = move_to(&mut order, confirmed("confirmed", &[]), Role::IpOwner, noon(2026, 1, 5));
    assert_eq!(step(&events), ("placed", "confirmed"));
    assert_eq!(
        milestone(&order, "confirmation").completed_by,
        Some(IP_OWNER),
        "confirming completes the milestone"
    );

    let events = move_to(
        &mut order,
        confirmed("in_production", &[]),
        Role::Manufacturer,
        noon(2026, 1, 6),
    );
    assert_eq!(step(&events), ("confirmed", "in_production"));
    complete_fully(&mut order, "production", noon(2026, 1, 15));
    let completed = milestone(&order, "production");
    assert!(
        completed.checklist.iter().all(|c| c.done),
        "the completion ticked every item"
    );
    assert_eq!(completed.completed_by, Some(MANUFACTURER));

    let url = "https://www.fedex.com/fedextrack/?trknbr=123456789012";
    let events = move_to(
        &mut order,
        confirmed("shipping", &[("tracking_url", url)]),
        Role::Manufacturer,
        noon(2026, 1, 16),
    );
    assert_eq!(step(&events), ("in_production", "shipping"));
    assert!(
        milestone(&order, "shipment").completed_at.is_some(),
        "shipping completes the shipment milestone"
    );

    // The customer confirms receipt, which completes the order and its receipt milestone.
    let events = move_to(
        &mut order,
        confirmed("completed", &[]),
        Role::Customer,
        noon(2026, 1, 20),
    );
    assert_eq!(step(&events), ("shipping", "completed"));
    assert_eq!(milestone(&order, "receipt").completed_by, Some(CUSTOMER));
    assert_eq!(order.fields.get("tracking_url").map(String::as_str), Some(url));
    assert_eq!(
        order.version,
        1 + 4 + 4 + 1,
        "creation, four status changes, four milestones, the balance falling due with production"
    );
    assert_eq!(percent(&order), 100);
}

#[test]
fn a_standard_order_walks_from_pending_confirmation_to_completed() {
    // R24, R39: pending confirmation -> in production -> shipped -> delivered -> completed.
    let mut order = create("standard");
    assert_eq!(order.status, "pending_confirmation");

    let events = move_to(&mut order, request("in_production"), Role::Operations, noon(2026, 1, 6));
    assert_eq!(step(&events), ("pending_confirmation", "in_production"));

    let ship = confirmed(
        "shipped",
        &[("carrier", "UPS"), ("tracking_number", "1Z999AA10123456784")],
    );
    let events = move_to(&mut order, ship, Role::Logistics, noon(2026, 3, 9));
    assert_eq!(step(&events), ("in_production", "shipped"));
    assert_eq!(order.fields.get("carrier").map(String::as_str), Some("UPS"));

    let events = move_to(
        &mut order,
        request("delivered"),
        Role::AccountManager,
        noon(2026, 3, 13),
    );
    assert_eq!(step(&events), ("shipped", "delivered"));

    // R28: receipt is confirmed with the customer before the order is completed.
    let early = transition(&order, request("completed"), Role::SalesCoordinator, noon(2026, 3, 14));
    assert_eq!(guard_names(early), ["field:receipt_confirmed_by", "confirmed"]);
    let done = confirmed("completed", &[("receipt_confirmed_by", "Maya Lin, by phone")]);
    let events = move_to(&mut order, done, Role::SalesCoordinator, noon(2026, 3, 14));
    assert_eq!(step(&events), ("delivered", "completed"));
    // Creation, four status changes, the three milestones they complete, and the payment falling due at delivery.
    assert_eq!(order.version, 9);
}

#[test]
fn every_preset_cancels_with_a_reason_and_a_confirmation() {
    let cases = [
        ("custom-production", Role::AccountManager),
        ("make-to-order", Role::IpOwner),
        ("standard", Role::SalesDirector),
    ];
    for (workflow_id, role) in cases {
        let mut order = create(workflow_id);
        let bare = transition(&order, request("cancelled"), role, noon(2026, 1, 7));
        assert_eq!(
            guard_names(bare),
            ["field:cancellation_reason", "confirmed"],
            "{workflow_id}"
        );
        let cancel = confirmed("cancelled", &[("cancellation_reason", "Production budget withdrawn")]);
        let events = move_to(&mut order, cancel, role, noon(2026, 1, 7));
        assert_eq!(step(&events).1, "cancelled");
        assert!(workflow(workflow_id).is_terminal(&order.status));
        let initial = workflow(workflow_id).initial.clone();
        let back = transition(&order, confirmed(&initial, &[]), role, noon(2026, 1, 8));
        assert!(
            matches!(back, Err(DomainError::TransitionNotAllowed { .. })),
            "{workflow_id}: {back:?}"
        );
    }
}

#[test]
fn a_role_the_transition_does_not_name_is_refused() {
    let order = create("custom-production");
    let refusal = transition(&order, confirmed("design", &[]), Role::Design, noon(2026, 1, 6));
    match refusal {
        Err(DomainError::RoleNotAllowed { role, action }) => {
            assert_eq!(role, Role::Design);
            assert_eq!(action, "move an order from receipt to design");
        }
        other => panic!("expected RoleNotAllowed, got {other:?}"),
    }
    let mut order = create("make-to-order");
    order.status = "shipping".into();
    let refusal = transition(
        &order,
        confirmed("completed", &[]),
        Role::Manufacturer,
        noon(2026, 1, 20),
    );
    assert!(
        matches!(
            refusal,
            Err(DomainError::RoleNotAllowed {
                role: Role::Manufacturer,
                ..
            })
        ),
        "{refusal:?}"
    );
}

#[test]
fn a_transition_that_does_not_leave_from_the_current_status_is_refused() {
    let order = create("standard");
    let refusal = transition(&order, request("delivered"), Role::Logistics, noon(2026, 1, 6));
    assert_eq!(
        refusal.unwrap_err(),
        DomainError::TransitionNotAllowed {
            workflow: "standard".into(),
            from: "pending_confirmation".into(),
            to: "delivered".into()
        }
    );
    let to_itself = transition(
        &order,
        request("pending_confirmation"),
        Role::AccountManager,
        noon(2026, 1, 6),
    );
    assert!(matches!(to_itself, Err(DomainError::TransitionNotAllowed { .. })));
}

#[test]
fn an_unknown_status_is_refused() {
    let order = create("standard");
    let refusal = transition(&order, request("teleported"), Role::AccountManager, noon(2026, 1, 6));
    assert_eq!(
        refusal.unwrap_err(),
        DomainError::UnknownStatus {
            workflow: "standard".into(),
            status: "teleported".into()
        }
    );
    // A status of another workflow is unknown here too.
    let refusal = transition(&order, request("fitting"), Role::AccountManager, noon(2026, 1, 6));
    assert!(matches!(refusal, Err(DomainError::UnknownStatus { .. })));
}

#[test]
fn a_stale_expected_version_is_refused() {
    let mut order = create("standard");
    let stale = TransitionRequest {
        expected_version: Some(0),
        ..request("in_production")
    };
    assert_eq!(
        transition(&order, stale, Role::Operations, noon(2026, 1, 6)).unwrap_err(),
        DomainError::StaleVersion { expected: 0, actual: 1 }
    );
    let current = TransitionRequest {
        expected_version: Some(1),
        ..request("in_production")
    };
    move_to(&mut order, current, Role::Operations, noon(2026, 1, 6));
    // The status change and the "order confirmed" milestone it completes.
    assert_eq!(order.version, 3);
    let stale = TransitionRequest {
        expected_version: Some(1),
        ..confirmed("cancelled", &[("cancellation_reason", "x")])
    };
    assert_eq!(
        transition(&order, stale, Role::AccountManager, noon(2026, 1, 7)).unwrap_err(),
        DomainError::StaleVersion { expected: 1, actual: 3 }
    );
}

#[test]
fn a_transition_keeps_its_note_for_the_log() {
    let order = create("standard");
    let req = TransitionRequest {
        note: Some("Customer confirmed by phone".into()),
        ..request("in_production")
    };
    let events = transition(&order, req, Role::SalesCoordinator, noon(2026, 1, 6)).unwrap();
    assert_eq!(events[0].1.as_deref(), Some("Customer confirmed by phone"));
    assert!(matches!(&events[0].0, OrderEvent::StatusChanged { fields, .. } if fields.is_empty()));
}

#[test]
fn a_transition_with_oversized_input_is_refused() {
    let order = create("standard");
    let long_note = TransitionRequest {
        note: Some("n".repeat(10_001)),
        ..request("in_production")
    };
    assert_eq!(
        invalid_fields(transition(&order, long_note, Role::Operations, noon(2026, 1, 6))),
        ["note"]
    );
    let many: Vec<(String, String)> = (0..21).map(|i| (format!("f{i}"), "v".to_string())).collect();
    let crowded = TransitionRequest {
        fields: many.into_iter().collect(),
        ..request("in_production")
    };
    assert_eq!(
        invalid_fields(transition(&order, crowded, Role::Operations, noon(2026, 1, 6))),
        ["fields"]
    );
    let huge = confirmed("in_production", &[("carrier", &"c".repeat(2001))]);
    assert_eq!(
        invalid_fields(transition(&order, huge, Role::Operations, noon(2026, 1, 6))),
        ["fields.carrier"]
    );
}
