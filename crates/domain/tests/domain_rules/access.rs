//! Who may see an order (role AND relation) and which of its fields (R40: customer data is confidential).

use crate::support::*;
use ordertrail_domain::Role;
use ordertrail_domain::access::{AccessPolicy, FieldVisibility, can_see};
use ordertrail_domain::decide::{self, Acting};
use ordertrail_domain::error::DomainError;
use ordertrail_domain::order::{Participant, Relation};

#[test]
fn a_customer_sees_only_orders_where_they_are_the_customer() {
    let order = create("standard");
    assert!(can_see(&order, CUSTOMER, Role::Customer, policy()));
    assert!(!can_see(&order, OTHER_CUSTOMER, Role::Customer, policy()));
    // Being on the order in a staff relation does not make someone its customer.
    assert!(!can_see(&order, ACCOUNT_MANAGER, Role::Customer, policy()));
    let mut input = new_order("standard");
    input.people.retain(|p| p.relation != Relation::Customer);
    input.people.push(Participant {
        relation: Relation::Customer,
        user_id: OTHER_CUSTOMER,
    });
    let theirs = create_from(input);
    assert!(can_see(&theirs, OTHER_CUSTOMER, Role::Customer, policy()));
    assert!(!can_see(&theirs, CUSTOMER, Role::Customer, policy()));
}

#[test]
fn staff_without_a_relation_and_without_a_see_all_role_cannot_see_an_order() {
    let order = create("custom-production");
    for role in [
        Role::AccountManager,
        Role::SalesCoordinator,
        Role::Operations,
        Role::Design,
        Role::Logistics,
        Role::IpOwner,
        Role::Manufacturer,
    ] {
        assert!(!can_see(&order, STRANGER, role, policy()), "{role}");
        assert!(can_see(&order, user_for(role), role, policy()), "{role} on the order");
    }
    // For them the order does not exist: every command answers not found, before anything else is judged.
    let stranger = Acting {
        user: STRANGER,
        role: Role::AccountManager,
    };
    let by = ctx(&order, stranger, noon(2026, 1, 6));
    let start = confirmed(
        "design",
        &[
            ("contract_signed_on", "2026-01-05"),
            ("deposit_received_on", "2026-01-06"),
        ],
    );
    let not_found = DomainError::NotFound { what: "order".into() };
    assert_eq!(decide::transition(&order, start, &by).unwrap_err(), not_found);
    let id = milestone_id(&order, "design_approval");
    let completion = full_completion(milestone(&order, "design_approval"));
    assert_eq!(
        decide::complete_milestone(&order, id, completion, &by).unwrap_err(),
        not_found
    );
    let tick = decide::MilestoneChange {
        checklist: [("Sketches and concepts presented".to_string(), true)].into(),
        ..Default::default()
    };
    assert_eq!(
        decide::change_milestone(&order, id, tick, None, &by).unwrap_err(),
        not_found
    );
    assert!(
        log(&order, 1, follow_up("hi"), Role::Operations, noon(2026, 1, 6)).is_ok(),
        "someone on the order may"
    );
    let follow = decide::log_follow_up(
        &order,
        ordertrail_domain::ids::FollowUpId(uuid::Uuid::from_u128(9)),
        follow_up("hi"),
        &by,
    );
    assert_eq!(follow.unwrap_err(), not_found);
}

#[test]
fn admin_sales_director_and_finance_see_every_order() {
    let order = create("make-to-order");
    for role in [Role::Admin, Role::SalesDirector, Role::Finance] {
        assert!(policy().sees_all(role), "{role}");
        assert!(can_see(&order, STRANGER, role, policy()), "{role}");
    }
    for role in Role::ALL
        .into_iter()
        .filter(|r| ![Role::Admin, Role::SalesDirector, Role::Finance].contains(r))
    {
        assert!(!policy().sees_all(role), "{role}");
    }
}

#[test]
fn the_see_all_roles_are_a_policy_and_never_include_the_customer() {
    let order = create("standard");
    let narrow = AccessPolicy {
        see_all_roles: vec![Role::Admin],
    };
    assert!(!can_see(&order, STRANGER, Role::Finance, &narrow));
    assert!(can_see(&order, STRANGER, Role::Admin, &narrow));
    let careless = AccessPolicy {
        see_all_roles: vec![Role::Customer, Role::Operations],
    };
    assert!(!careless.sees_all(Role::Customer));
    assert!(!can_see(&order, OTHER_CUSTOMER, Role::Customer, &careless));
    assert!(can_see(&order, STRANGER, Role::Operations, &careless));
    let from_config: AccessPolicy = serde_json::from_str("{}").unwrap();
    assert_eq!(from_config, AccessPolicy::default());
}

#[test]
fn the_owner_of_a_milestone_sees_the_order() {
    let mut input = new_order("custom-production");
    input.milestone_owners.insert("first_fitting".into(), STRANGER);
    let order = create_from(input);
    assert!(order.involves(STRANGER));
    assert!(can_see(&order, STRANGER, Role::Operations, policy()));
    assert!(
        !can_see(&order, STRANGER, Role::Customer, policy()),
        "but not as a customer"
    );
}

#[test]
fn money_is_hidden_from_the_manufacturer() {
    let maker = FieldVisibility::for_role(Role::Manufacturer);
    assert!(!maker.money);
    assert!(!maker.customer_contact);
    assert!(maker.internal);
    for role in [Role::Operations, Role::Design, Role::Logistics, Role::IpOwner] {
        assert!(!FieldVisibility::for_role(role).money, "{role}");
    }
    for role in [
        Role::Admin,
        Role::AccountManager,
        Role::SalesCoordinator,
        Role::SalesDirector,
        Role::Finance,
        Role::Customer,
    ] {
        assert!(FieldVisibility::for_role(role).money, "{role}");
    }
    assert!(
        FieldVisibility::for_role(Role::Logistics).customer_contact,
        "logistics delivers to the contact"
    );
    assert!(
        !FieldVisibility::for_role(Role::Customer).internal,
        "internal notes are not for the customer"
    );
    for role in Role::ALL.into_iter().filter(|r| r.is_staff()) {
        assert!(FieldVisibility::for_role(role).internal, "{role}");
    }
}

#[test]
fn a_person_with_several_roles_acts_in_the_one_selected() {
    // R18: one person may hold several roles and acts in the one selected.
    use ordertrail_domain::customer::{RoleChoiceError, User};
    let roles = vec![Role::AccountManager, Role::SalesDirector, Role::AccountManager];
    let user = User::new(DIRECTOR, " Dana@Studio.Example ", "Dana", roles, None, noon(2026, 1, 1)).unwrap();
    assert_eq!(user.email, "dana@studio.example");
    assert_eq!(
        user.roles,
        [Role::AccountManager, Role::SalesDirector],
        "each role once"
    );
    assert_eq!(user.acting_role(Some("sales_director")), Ok(Role::SalesDirector));
    assert_eq!(
        user.acting_role(Some("finance")),
        Err(RoleChoiceError::NotHeld(Role::Finance))
    );
    assert_eq!(
        user.acting_role(Some("chief")),
        Err(RoleChoiceError::Unknown("chief".into()))
    );
    assert!(matches!(user.acting_role(None), Err(RoleChoiceError::Ambiguous(_))));
    // What the person may do follows the selected role: the same person sees every order as sales
    // director, and only their own as account manager.
    let order = create("standard");
    assert!(can_see(&order, user.id, Role::SalesDirector, policy()));
    assert!(!can_see(&order, user.id, Role::AccountManager, policy()));
}
