//! The role matrix: for every preset, every transition (from each of its source statuses) and every role,
//! `decide::transition` refuses with `RoleNotAllowed` exactly when the workflow does not name the role. The
//! acting person is always one who may see the order, so visibility is never the reason for a refusal.

use crate::support::*;
use ordertrail_domain::Role;
use ordertrail_domain::error::DomainError;
use ordertrail_domain::ids::UserId;
use ordertrail_domain::order::Relation;

/// Someone who sees the order whatever role they act in: the owner for staff roles, the order's customer
/// participant for the customer role.
fn who_sees_it(role: Role) -> UserId {
    if role == Role::Customer {
        CUSTOMER
    } else {
        ACCOUNT_MANAGER
    }
}

#[test]
fn only_the_roles_a_transition_names_may_make_it() {
    let mut checked = 0;
    for workflow_id in PRESET_IDS {
        let wf = workflow(workflow_id);
        let base = create(workflow_id);
        assert_eq!(base.person(Relation::Owner), Some(ACCOUNT_MANAGER));
        assert_eq!(base.person(Relation::Customer), Some(CUSTOMER));
        for t in &wf.transitions {
            for from in &t.from {
                let mut order = base.clone();
                order.status = from.clone();
                for role in Role::ALL {
                    let by = ordertrail_domain::decide::Acting {
                        user: who_sees_it(role),
                        role,
                    };
                    let ctx = ordertrail_domain::decide::ChangeContext {
                        workflow: wf,
                        access: policy(),
                        acting: by,
                        now: noon(2026, 1, 10),
                        today: noon(2026, 1, 10).date_naive(),
                        dunning: &Default::default(),
                    };
                    let result = ordertrail_domain::decide::transition(&order, request(&t.to), &ctx);
                    let what = format!("{workflow_id}: {from} -> {} as {role}", t.to);
                    if t.roles.contains(&role) {
                        // Allowed: it goes through, or fails on its guards, never on the role or visibility.
                        assert!(
                            matches!(result, Ok(_) | Err(DomainError::GuardsFailed(_))),
                            "{what} should be allowed, got {result:?}"
                        );
                    } else {
                        match result {
                            Err(DomainError::RoleNotAllowed { role: refused, .. }) => {
                                assert_eq!(refused, role, "{what}")
                            }
                            other => panic!("{what} should be refused for the role, got {other:?}"),
                        }
                    }
                    checked += 1;
                }
            }
        }
    }
    // Every (transition, source status) pair of the presets (13 + 6 + 8 today), each for every role.
    let pairs: usize = PRESET_IDS
        .iter()
        .flat_map(|id| &workflow(id).transitions)
        .map(|t| t.from.len())
        .sum();
    assert!(pairs >= 27, "the presets lost transitions: {pairs}");
    assert_eq!(checked, pairs * Role::ALL.len());
}

#[test]
fn the_customer_may_only_confirm_receipt_of_a_make_to_order_order() {
    for workflow_id in PRESET_IDS {
        let wf = workflow(workflow_id);
        let customer_moves: Vec<(String, String)> = wf
            .statuses
            .iter()
            .flat_map(|s| {
                wf.transitions_for(&s.id, Role::Customer)
                    .map(|t| (s.id.clone(), t.to.clone()))
            })
            .collect();
        let expected: Vec<(String, String)> = if workflow_id == "make-to-order" {
            vec![("shipping".into(), "completed".into())]
        } else {
            vec![]
        };
        assert_eq!(customer_moves, expected, "{workflow_id}");
    }
}

#[test]
fn no_preset_lets_finance_or_admin_move_an_order() {
    // Seeing every order (admin, finance) is not the same as running it.
    for workflow_id in PRESET_IDS {
        let wf = workflow(workflow_id);
        for t in &wf.transitions {
            assert!(!t.roles.contains(&Role::Finance), "{workflow_id} -> {}", t.to);
            assert!(!t.roles.contains(&Role::Admin), "{workflow_id} -> {}", t.to);
        }
    }
}
