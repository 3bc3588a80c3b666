//! Entering an order (R32, R33): `decide::plan_order` checks every field, reports all mistakes together and
//! plans the milestones; storage only adds the number.

use crate::support::*;
use ordertrail_domain::Role;
use ordertrail_domain::decide::{NewOrder, PlannedOrder};
use ordertrail_domain::error::DomainError;
use ordertrail_domain::event::OrderEvent;
use ordertrail_domain::ids::UserId;
use ordertrail_domain::money::Money;
use ordertrail_domain::order::{LineItem, OrderType, Participant, Relation};
use uuid::Uuid;

fn plan_as_account_manager(input: NewOrder) -> Result<PlannedOrder, DomainError> {
    plan(input, acting(Role::AccountManager))
}

fn with_people(workflow: &str, people: Vec<Participant>) -> NewOrder {
    NewOrder {
        people,
        ..new_order(workflow)
    }
}

#[test]
fn a_new_order_becomes_the_master_record() {
    // R32: number, customer and contact, amount, order date, promised date, order type, people.
    let planned = plan_as_account_manager(new_order("custom-production")).unwrap();
    assert_eq!(planned.order_date(), order_date());
    let event = planned.created("ORD20260105007".into());
    assert_eq!(event.kind(), "order_created");
    let OrderEvent::OrderCreated { order } = event else {
        panic!("not a creation")
    };
    assert_eq!(order.id, planned.id());
    assert_eq!(order.number, "ORD20260105007");
    assert_eq!(order.workflow, "custom-production");
    assert_eq!(order.status, "receipt");
    assert_eq!(
        (order.customer_id, order.customer_name.as_str()),
        (CUSTOMER_ID, "Globe Theatre Company")
    );
    assert_eq!(
        order.customer_contact.as_ref().map(|c| c.name.as_str()),
        Some("Maya Lin"),
        "the customer's first contact"
    );
    assert_eq!(order.amount, Money::parse("USD", "12500.00").unwrap());
    assert_eq!(order.order_type, OrderType::Custom);
    assert_eq!((order.order_date, order.promised_date), (order_date(), promised_date()));
    assert_eq!(order.version, 0, "the creation event makes it version 1");
    assert_eq!(order.milestones.len(), 5);
    assert!(order.fields.is_empty() && order.open_exceptions.is_empty());
    assert_eq!(order.last_client_update_at, None);
}

#[test]
fn the_creator_becomes_the_owner_unless_an_owner_is_named() {
    let order = create("standard");
    assert_eq!(
        order.people[0],
        Participant {
            relation: Relation::Owner,
            user_id: ACCOUNT_MANAGER
        }
    );
    assert_eq!(order.people.iter().filter(|p| p.relation == Relation::Owner).count(), 1);

    let mut input = new_order("standard");
    input.people.push(Participant {
        relation: Relation::Owner,
        user_id: COORDINATOR,
    });
    let order = create_from(input);
    assert_eq!(order.person(Relation::Owner), Some(COORDINATOR));
    assert!(
        !order.involves(ACCOUNT_MANAGER),
        "the creator is not added when an owner is named"
    );
}

#[test]
fn the_order_date_defaults_to_today_and_the_title_is_trimmed() {
    let input = NewOrder {
        order_date: None,
        title: "  Hamlet, second cast  ".into(),
        ..new_order("standard")
    };
    let order = create_from(input);
    assert_eq!(order.order_date, order_date(), "today in the tests is the order date");
    assert_eq!(order.title, "Hamlet, second cast");
}

#[test]
fn only_the_create_roles_may_enter_an_order() {
    for workflow_id in PRESET_IDS {
        let wf = workflow(workflow_id);
        for role in Role::ALL {
            let result = plan(new_order(workflow_id), acting(role));
            if wf.create_roles.contains(&role) {
                assert!(result.is_ok(), "{workflow_id} as {role}: {:?}", result.err());
            } else {
                match result {
                    Err(DomainError::RoleNotAllowed { role: refused, action }) => {
                        assert_eq!(refused, role);
                        assert_eq!(action, format!("create {workflow_id} orders"));
                    }
                    other => {
                        panic!("{workflow_id} as {role}: expected RoleNotAllowed, got {other:?}")
                    }
                }
            }
        }
    }
}

#[test]
fn a_ten_thousand_character_title_is_invalid() {
    let input = NewOrder {
        title: "T".repeat(10_000),
        ..new_order("standard")
    };
    let message = invalid_message(plan_as_account_manager(input), "title");
    assert_eq!(message, "must be at most 200 characters (got 10000)");
    let blank = NewOrder {
        title: " \t ".into(),
        ..new_order("standard")
    };
    assert_eq!(
        invalid_message(plan_as_account_manager(blank), "title"),
        "must not be empty"
    );
    let control = NewOrder {
        title: "Bell\u{7}".into(),
        ..new_order("standard")
    };
    assert_eq!(invalid_fields(plan_as_account_manager(control)), ["title"]);
}

#[test]
fn a_promised_date_before_the_order_date_is_invalid() {
    let input = NewOrder {
        promised_date: date(2026, 1, 4),
        ..new_order("standard")
    };
    let message = invalid_message(plan_as_account_manager(input), "promised_date");
    assert_eq!(message, "must not be before the order date 2026-01-05");
    let same_day = NewOrder {
        promised_date: order_date(),
        ..new_order("standard")
    };
    assert!(plan_as_account_manager(same_day).is_ok());
}

#[test]
fn an_amount_of_zero_is_invalid() {
    let input = NewOrder {
        amount: Money::parse("EUR", "0.00").unwrap(),
        ..new_order("standard")
    };
    assert_eq!(
        invalid_message(plan_as_account_manager(input), "amount"),
        "must be more than zero"
    );
    let cent = NewOrder {
        amount: Money::parse("EUR", "0.01").unwrap(),
        ..new_order("standard")
    };
    assert!(plan_as_account_manager(cent).is_ok());
}

#[test]
fn an_unknown_person_is_invalid() {
    let nobody = UserId(Uuid::from_u128(0xbad));
    let input = with_people(
        "standard",
        vec![Participant {
            relation: Relation::Backup,
            user_id: nobody,
        }],
    );
    let refusal = plan_as_account_manager(input);
    assert_eq!(invalid_message(refusal, "people[0].user_id"), "no such user");
}

#[test]
fn people_must_suit_their_relation() {
    let input = with_people(
        "standard",
        vec![
            Participant {
                relation: Relation::Customer,
                user_id: LOGISTICS,
            },
            Participant {
                relation: Relation::Logistics,
                user_id: CUSTOMER,
            },
            Participant {
                relation: Relation::Design,
                user_id: DESIGNER,
            },
            Participant {
                relation: Relation::Design,
                user_id: DESIGNER,
            },
        ],
    );
    let refusal = plan_as_account_manager(input);
    assert_eq!(
        invalid_fields(refusal.clone()),
        ["people[0].user_id", "people[1].user_id", "people[3]"]
    );
    assert!(invalid_message(refusal.clone(), "people[0].user_id").contains("customer role"));
    assert!(invalid_message(refusal, "people[1].user_id").contains("staff user"));
}

#[test]
fn an_order_has_exactly_one_owner() {
    let two = vec![
        Participant {
            relation: Relation::Owner,
            user_id: ACCOUNT_MANAGER,
        },
        Participant {
            relation: Relation::Owner,
            user_id: COORDINATOR,
        },
    ];
    let refusal = plan_as_account_manager(with_people("standard", two));
    assert_eq!(invalid_message(refusal, "people"), "an order has exactly one owner");
}

#[test]
fn milestone_owners_and_checklists_must_name_real_milestones_and_users() {
    let mut input = new_order("standard");
    input.milestone_owners.insert("fitting".into(), OPERATIONS);
    input
        .milestone_owners
        .insert("shipped".into(), UserId(Uuid::from_u128(0xbad)));
    input.extra_checklist.insert("polishing".into(), vec!["Shine".into()]);
    input.extra_checklist.insert("shipped".into(), vec![String::new()]);
    let fields = invalid_fields(plan_as_account_manager(input));
    assert_eq!(
        fields,
        [
            "milestone_owners.fitting",
            "milestone_owners.shipped",
            "extra_checklist.polishing",
            "extra_checklist.shipped[0]"
        ]
    );
}

#[test]
fn every_mistake_of_a_new_order_is_reported_at_once() {
    let mut input = new_order("standard");
    input.title = String::new();
    input.amount = Money::parse("USD", "0").unwrap();
    input.promised_date = date(2025, 12, 24);
    input.line_items = vec![LineItem {
        description: "Doublets".into(),
        quantity: 0,
        notes: None,
    }];
    input.tags = (0..21).map(|i| format!("tag{i}")).collect();
    input.people = vec![Participant {
        relation: Relation::Backup,
        user_id: UserId(Uuid::from_u128(0xbad)),
    }];
    let fields = invalid_fields(plan_as_account_manager(input));
    for field in [
        "title",
        "promised_date",
        "amount",
        "line_items[0].quantity",
        "tags",
        "people[0].user_id",
    ] {
        assert!(fields.iter().any(|f| f == field), "{field} missing from {fields:?}");
    }
}

#[test]
fn a_new_order_arrives_as_json_and_unknown_fields_are_refused() {
    let json = serde_json::json!({
        "workflow": "standard",
        "customer_id": CUSTOMER_ID,
        "title": "Ushers' uniforms",
        "order_type": "rush",
        "amount": {"currency": "USD", "amount": "980.50"},
        "promised_date": "2026-01-20",
        "line_items": [{"description": "Jacket", "quantity": 12}],
    });
    let input: NewOrder = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(input.amount.minor, 98_050);
    assert_eq!(input.order_type, OrderType::Rush);
    let order = create_from(input);
    assert_eq!(order.line_items[0].quantity, 12);
    let mut extra = json;
    extra["colour"] = serde_json::json!("red");
    assert!(serde_json::from_value::<NewOrder>(extra).is_err());
}
