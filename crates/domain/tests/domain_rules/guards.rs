//! Guards: what a transition needs before it may be made. Checked both through `decide::transition` (what a
//! person sees) and through `Guard::evaluate` (what each guard says on its own).

use crate::support::*;
use chrono::NaiveDate;
use ordertrail_domain::Role;
use ordertrail_domain::decide::TransitionRequest;
use ordertrail_domain::error::{DomainError, GuardFailure};
use ordertrail_domain::order::Order;
use ordertrail_domain::workflow::{Guard, GuardInput};
use std::collections::BTreeMap;

const UPS_NUMBER: &str = "1Z999AA10123456784";
const FEDEX_NUMBER: &str = "123456789012";
const GOOD_URL: &str = "https://www.ups.com/track?tracknum=1Z999AA10123456784";

/// A make-to-order order in production with its production checklist done: only the tracking URL and the
/// confirmation stand between it and shipping.
fn ready_to_ship() -> Order {
    let mut order = create("make-to-order");
    order.status = "in_production".into();
    complete_fully(&mut order, "production", noon(2026, 1, 12));
    order
}

/// A standard order in production, to be shipped by logistics with a carrier and a tracking number.
fn standard_in_production() -> Order {
    let mut order = create("standard");
    order.status = "in_production".into();
    order
}

fn ship(order: &Order, fields: &[(&str, &str)]) -> Result<Events, DomainError> {
    let to = if order.workflow == "standard" {
        "shipped"
    } else {
        "shipping"
    };
    let role = if order.workflow == "standard" {
        Role::Logistics
    } else {
        Role::Manufacturer
    };
    transition(order, confirmed(to, fields), role, noon(2026, 1, 13))
}

fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn guard_of(workflow_id: &str, from: &str, to: &str, name: &str) -> Guard {
    let t = workflow(workflow_id)
        .transition(from, to)
        .expect("the transition exists");
    t.guards
        .iter()
        .find(|g| g.name() == name)
        .cloned()
        .unwrap_or_else(|| panic!("no guard {name}"))
}

fn evaluate(guard: &Guard, order: &Order, given: &[(&str, &str)], confirmed: bool) -> Result<(), GuardFailure> {
    let fields = fields(given);
    guard.evaluate(&GuardInput {
        order,
        fields: &fields,
        confirmed,
    })
}

#[test]
fn a_shipping_transition_needs_a_tracking_url() {
    // R21.
    let order = ready_to_ship();
    let failures = failed_guards(ship(&order, &[]));
    assert_eq!(
        failures,
        [(
            "field:tracking_url".to_string(),
            vec!["tracking_url is required".to_string()]
        )]
    );
}

#[test]
fn a_shipping_transition_needs_a_valid_tracking_url() {
    // R21: an http(s) URL with a host. The guard names the field and says what is wrong with it.
    let order = ready_to_ship();
    let cases = [
        ("ftp://www.ups.com/track", "must use http or https, not ftp"),
        ("javascript:alert(1)", "must use http or https"),
        ("https://tracking/x", "must name a host"),
        ("not a url", "is not a URL"),
        ("   ", "is required"),
    ];
    for (url, why) in cases {
        let failures = failed_guards(ship(&order, &[("tracking_url", url)]));
        let (_, missing) = failures
            .iter()
            .find(|(g, _)| g == "field:tracking_url")
            .expect("the URL guard fails");
        assert!(missing.iter().any(|m| m.contains(why)), "{url:?}: {missing:?}");
    }
}

#[test]
fn a_valid_tracking_url_ships_the_order_and_stays_on_it_for_the_customer() {
    // R21: the consumer can follow the URL: it is kept on the order.
    let mut order = ready_to_ship();
    let events = ship(&order, &[("tracking_url", GOOD_URL)]).expect("a valid URL ships");
    let (from, to, given) = status_change(&events);
    assert_eq!((from, to), ("in_production", "shipping"));
    assert_eq!(given.get("tracking_url").map(String::as_str), Some(GOOD_URL));
    apply(&mut order, events, noon(2026, 1, 13));
    assert_eq!(order.status, "shipping");
    assert_eq!(order.fields.get("tracking_url").map(String::as_str), Some(GOOD_URL));
    assert!(
        ship(
            &create("make-to-order"),
            &[("tracking_url", "http://localhost/track/1")]
        )
        .is_err(),
        "not from placed"
    );
}

#[test]
fn the_tracking_url_guard_says_what_is_wrong_with_the_url() {
    let order = ready_to_ship();
    let guard = guard_of("make-to-order", "in_production", "shipping", "field:tracking_url");
    assert_eq!(
        evaluate(&guard, &order, &[], true),
        Err(GuardFailure {
            guard: "field:tracking_url".into(),
            missing: vec!["tracking_url is required".into()]
        })
    );
    let scheme = evaluate(&guard, &order, &[("tracking_url", "ftp://www.ups.com/x")], true).unwrap_err();
    assert_eq!(scheme.missing, ["tracking_url must use http or https, not ftp"]);
    let host = evaluate(&guard, &order, &[("tracking_url", "https://nodot/x")], true).unwrap_err();
    assert!(host.missing[0].starts_with("tracking_url must name a host"), "{host:?}");
    let blank = evaluate(&guard, &order, &[("tracking_url", "  ")], true).unwrap_err();
    assert_eq!(blank.missing, ["tracking_url is required"]);
    assert_eq!(evaluate(&guard, &order, &[("tracking_url", GOOD_URL)], true), Ok(()));
    assert_eq!(
        evaluate(&guard, &order, &[("tracking_url", "http://localhost:8080/t/1")], true),
        Ok(())
    );
}

#[test]
fn a_field_already_on_the_order_satisfies_its_guard() {
    let mut order = ready_to_ship();
    let guard = guard_of("make-to-order", "in_production", "shipping", "field:tracking_url");
    order.fields.insert("tracking_url".into(), GOOD_URL.into());
    assert_eq!(evaluate(&guard, &order, &[], true), Ok(()));
    // What the person sends wins over what the order holds.
    assert!(evaluate(&guard, &order, &[("tracking_url", "ftp://x.example/1")], true).is_err());
}

#[test]
fn a_standard_shipment_needs_a_carrier_and_a_tracking_number() {
    let order = standard_in_production();
    let failures = failed_guards(ship(&order, &[]));
    assert_eq!(
        failures,
        [
            ("field:carrier".to_string(), vec!["carrier is required".to_string()]),
            (
                "field:tracking_number".to_string(),
                vec!["tracking_number is required".to_string()]
            ),
        ]
    );
}

#[test]
fn a_ups_or_fedex_tracking_number_must_have_that_carriers_shape() {
    let order = standard_in_production();
    let accepted = [
        ("UPS", UPS_NUMBER),
        ("ups", "1z 999 aa1 0123 456 784"),
        ("FedEx", FEDEX_NUMBER),
        ("fedex", "1234-5678-9012"),
        ("Pigeon Post", "anything at all"),
        ("other", "X-1"),
    ];
    for (carrier, number) in accepted {
        let events = ship(&order, &[("carrier", carrier), ("tracking_number", number)]);
        assert!(events.is_ok(), "{carrier} {number}: {events:?}");
    }
    let refused = [
        ("UPS", FEDEX_NUMBER, "is not a valid Ups tracking number"),
        ("UPS", "12345", "is not a valid Ups tracking number"),
        ("FedEx", UPS_NUMBER, "is not a valid Fedex tracking number"),
        ("fedex", "1234567890123", "is not a valid Fedex tracking number"),
    ];
    for (carrier, number, why) in refused {
        let failures = failed_guards(ship(&order, &[("carrier", carrier), ("tracking_number", number)]));
        assert_eq!(failures.len(), 1, "{carrier} {number}: {failures:?}");
        assert_eq!(failures[0].0, "field:tracking_number");
        assert!(
            failures[0].1[0].starts_with(&format!("tracking_number {why}")),
            "{failures:?}"
        );
    }
}

#[test]
fn a_carrier_recorded_on_the_order_shapes_the_tracking_number_check() {
    let mut order = standard_in_production();
    let guard = guard_of("standard", "in_production", "shipped", "field:tracking_number");
    order.fields.insert("carrier".into(), "FedEx".into());
    assert_eq!(
        evaluate(&guard, &order, &[("tracking_number", FEDEX_NUMBER)], false),
        Ok(())
    );
    assert!(evaluate(&guard, &order, &[("tracking_number", UPS_NUMBER)], false).is_err());
    // A carrier sent with the transition is the one that counts.
    assert_eq!(
        evaluate(
            &guard,
            &order,
            &[("carrier", "UPS"), ("tracking_number", UPS_NUMBER)],
            false
        ),
        Ok(())
    );
}

#[test]
fn tracking_starts_only_once_the_contract_is_signed_and_the_deposit_paid() {
    // R15: custom production moves from receipt to design when the contract is signed and the deposit paid.
    let mut order = create("custom-production");
    let start = |order: &Order| transition(order, confirmed("design", &[]), Role::AccountManager, noon(2026, 1, 6));
    let deposit = |order: &Order| {
        let d = order
            .payments
            .as_ref()
            .and_then(|s| s.installment(1))
            .expect("a deposit");
        format!("{} {}", d.outstanding().amount_string(), d.outstanding().currency)
    };
    assert_eq!(
        failed_guards(start(&order)),
        [(
            "deposit_paid".to_string(),
            vec![
                "waiting for the contract signed".to_string(),
                format!("waiting for the deposit paid: {} outstanding", deposit(&order))
            ]
        )]
    );
    sign_contract(&mut order, date(2026, 1, 5), noon(2026, 1, 5));
    assert_eq!(
        failed_guards(start(&order)),
        [(
            "deposit_paid".to_string(),
            vec![format!("waiting for the deposit paid: {} outstanding", deposit(&order))]
        )],
        "signed, not paid"
    );
    pay_installment(&mut order, 1, noon(2026, 1, 6));
    let events = start(&order).expect("signed and paid");
    assert_eq!(status_change(&events).1, "design");
}

#[test]
fn a_contract_is_signed_once_not_in_the_future_and_by_sales_or_finance() {
    let mut order = create("custom-production");
    let sign = |order: &Order, on: NaiveDate, role: Role| {
        ordertrail_domain::decide::sign_contract(
            order,
            ordertrail_domain::decide::ContractInput { signed_on: on },
            &ctx(order, acting(role), noon(2026, 1, 6)),
        )
    };
    assert_eq!(
        invalid_message(sign(&order, date(2026, 1, 7), Role::AccountManager), "signed_on"),
        "must not be in the future"
    );
    assert!(matches!(
        sign(&order, date(2026, 1, 5), Role::Design),
        Err(DomainError::RoleNotAllowed { .. })
    ));
    assert!(sign(&order, date(2026, 1, 5), Role::Finance).is_ok());
    sign_contract(&mut order, date(2026, 1, 5), noon(2026, 1, 5));
    match sign(&order, date(2026, 1, 6), Role::AccountManager) {
        Err(DomainError::Conflict(why)) => assert_eq!(why, "the contract was already signed on 2026-01-05"),
        other => panic!("a second signature must be refused, got {other:?}"),
    }
}

#[test]
fn a_milestones_done_guard_by_phase_waits_for_every_milestone_of_the_phase() {
    // R4: the order moves to the next phase once the phase's milestone is approved.
    let mut order = create("custom-production");
    order.status = "design".into();
    let next = |order: &Order| transition(order, request("pattern"), Role::Design, noon(2026, 1, 19));
    assert_eq!(
        failed_guards(next(&order)),
        [(
            "milestones_done:design".to_string(),
            vec!["milestone 'Design approval' is not completed".to_string()]
        )]
    );
    complete_fully(&mut order, "design_approval", noon(2026, 1, 18));
    assert_eq!(status_change(&next(&order).unwrap()).1, "pattern");
}

#[test]
fn a_milestones_done_guard_by_name_lists_each_open_milestone() {
    let mut order = create("custom-production");
    let guard: Guard =
        serde_json::from_str(r#"{"kind": "milestones_done", "milestones": ["design_approval", "first_fitting"]}"#)
            .unwrap();
    assert_eq!(guard.name(), "milestones_done:design_approval,first_fitting");
    let failure = evaluate(&guard, &order, &[], false).unwrap_err();
    assert_eq!(
        failure.missing,
        [
            "milestone 'Design approval' is not completed",
            "milestone 'First fitting' is not completed"
        ]
    );
    complete_fully(&mut order, "first_fitting", noon(2026, 2, 9));
    let failure = evaluate(&guard, &order, &[], false).unwrap_err();
    assert_eq!(failure.missing, ["milestone 'Design approval' is not completed"]);
    complete_fully(&mut order, "design_approval", noon(2026, 2, 9));
    assert_eq!(evaluate(&guard, &order, &[], false), Ok(()));
}

#[test]
fn production_is_complete_only_when_every_checklist_item_is_done() {
    // R20: fabrication, post-processing and every inspection-and-test-plan item.
    let mut input = new_order("make-to-order");
    input.extra_checklist.insert(
        "production".into(),
        vec!["ITP 4.2: bore diameter within 0.05 mm".into()],
    );
    let mut order = create_from(input);
    order.status = "in_production".into();
    let ticks = [
        ("Fabrication of the part", true),
        ("Post-processing", true),
        ("Inspection and test plan items", true),
    ];
    let tick = decide_change(&ticks);
    let events = change(&order, "production", tick, Role::Manufacturer, noon(2026, 1, 10)).unwrap();
    apply(&mut order, events, noon(2026, 1, 10));
    let failures = failed_guards(ship(&order, &[("tracking_url", GOOD_URL)]));
    assert_eq!(
        failures,
        [(
            "checklist_done:production".to_string(),
            vec![
                "checklist item 'ITP 4.2: bore diameter within 0.05 mm' of 'Production complete' is not done"
                    .to_string()
            ]
        )]
    );
    let tick = decide_change(&[("ITP 4.2: bore diameter within 0.05 mm", true)]);
    let events = change(&order, "production", tick, Role::Manufacturer, noon(2026, 1, 11)).unwrap();
    apply(&mut order, events, noon(2026, 1, 11));
    assert!(ship(&order, &[("tracking_url", GOOD_URL)]).is_ok());
}

fn decide_change(ticks: &[(&str, bool)]) -> ordertrail_domain::decide::MilestoneChange {
    ordertrail_domain::decide::MilestoneChange {
        checklist: ticks.iter().map(|(item, done)| (item.to_string(), *done)).collect(),
        ..Default::default()
    }
}

#[test]
fn a_checklist_item_unticked_again_blocks_shipping_again() {
    let mut order = create("make-to-order");
    order.status = "in_production".into();
    let at = noon(2026, 1, 9);
    let both = decide_change(&[("Fabrication of the part", true), ("Post-processing", true)]);
    let events = change(&order, "production", both, Role::Manufacturer, at).unwrap();
    apply(&mut order, events, at);
    let events = change(
        &order,
        "production",
        decide_change(&[("Post-processing", false)]),
        Role::Manufacturer,
        at,
    )
    .unwrap();
    apply(&mut order, events, at);
    let failures = failed_guards(ship(&order, &[("tracking_url", GOOD_URL)]));
    assert_eq!(failures[0].0, "checklist_done:production");
    assert_eq!(
        failures[0].1,
        [
            "checklist item 'Post-processing' of 'Production complete' is not done",
            "checklist item 'Inspection and test plan items' of 'Production complete' is not done"
        ]
    );
}

#[test]
fn a_status_change_must_be_confirmed() {
    // R22: the double-check before a status change.
    let order = create("make-to-order");
    let unconfirmed = TransitionRequest {
        to: "confirmed".into(),
        confirm: false,
        ..Default::default()
    };
    let failures = failed_guards(transition(&order, unconfirmed, Role::IpOwner, noon(2026, 1, 5)));
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].0, "confirmed");
    assert!(failures[0].1[0].contains("double-check"), "{failures:?}");
    assert!(transition(&order, confirmed("confirmed", &[]), Role::IpOwner, noon(2026, 1, 5)).is_ok());
    assert_eq!(evaluate(&Guard::Confirmed, &order, &[], true), Ok(()));
}

#[test]
fn every_failing_guard_is_reported_together() {
    let mut order = create("make-to-order");
    order.status = "in_production".into();
    let refusal = transition(&order, request("shipping"), Role::Manufacturer, noon(2026, 1, 13));
    let text = refusal.as_ref().unwrap_err().to_string();
    assert_eq!(
        guard_names(refusal),
        ["checklist_done:production", "field:tracking_url", "confirmed"]
    );
    assert!(
        text.contains("guard checklist_done:production not satisfied: checklist item 'Fabrication of the part'"),
        "{text}"
    );
    assert!(
        text.contains("guard field:tracking_url not satisfied: tracking_url is required"),
        "{text}"
    );
}

#[test]
fn guards_travel_as_tagged_json() {
    let guard: Guard = serde_json::from_str(r#"{"kind": "field", "field": "sign_off_by", "format": "text"}"#).unwrap();
    assert_eq!(guard.name(), "field:sign_off_by");
    let json = serde_json::to_value(&guard).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"kind": "field", "field": "sign_off_by", "format": "text"})
    );
    let by_phase = serde_json::to_value(Guard::MilestonesDone {
        phase: Some("final".into()),
        milestones: vec![],
    })
    .unwrap();
    assert_eq!(
        by_phase,
        serde_json::json!({"kind": "milestones_done", "phase": "final"})
    );
    assert_eq!(
        serde_json::to_value(Guard::Confirmed).unwrap(),
        serde_json::json!({"kind": "confirmed"})
    );
}
