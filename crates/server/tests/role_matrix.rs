//! The role matrix over HTTP: for every preset, every transition from every status it starts from, and every
//! role, a user holding only that role (and on the order, or its customer) asks for the transition. The answer
//! is 403 exactly when the workflow does not give the transition to that role; otherwise the role gets past the
//! role check (200, or 422 when a guard still needs something).

mod common;

use axum::http::StatusCode;
use common::*;
use ordertrail_domain::Role;
use serde_json::json;

async fn check_workflow(w: &World, workflow: &str) -> usize {
    let wf = w.app.workflow(workflow);
    let mut checked = 0;
    for t in &wf.transitions {
        for from in &t.from {
            let mut order: Option<String> = None;
            for role in Role::ALL {
                let id = match &order {
                    Some(id) => id.clone(),
                    None => {
                        let id = id_of(&w.new_order(workflow).await);
                        w.advance(&id, from).await;
                        order = Some(id.clone());
                        id
                    }
                };
                let before = w.app.event_count().await;
                // Nothing but the target: guarded transitions stop at their guards, after the role check.
                let reply = w.transition(&id, w.holder_of(role), None, json!({"to": t.to})).await;
                let case = format!("{workflow}: {from} -> {} as {role}", t.to);
                if t.roles.contains(&role) {
                    match reply.0 {
                        StatusCode::OK => {
                            assert_eq!(reply.2["status"], t.to.as_str(), "{case}");
                            // The order moved on: the next role needs a fresh one.
                            order = None;
                        }
                        StatusCode::UNPROCESSABLE_ENTITY => {
                            assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY, "guard-failed");
                            assert!(!t.guards.is_empty(), "{case}: refused by a guard it does not have");
                            assert_eq!(w.app.event_count().await, before, "{case}");
                        }
                        other => panic!("{case}: allowed by the workflow but got {other}: {}", reply.2),
                    }
                } else {
                    assert_eq!(reply.0, StatusCode::FORBIDDEN, "{case}: {}", reply.2);
                    assert_problem(&reply, StatusCode::FORBIDDEN, "role-not-allowed");
                    assert_eq!(w.app.event_count().await, before, "{case}");
                }
                checked += 1;
            }
        }
    }
    checked
}

#[tokio::test]
async fn every_custom_production_transition_is_allowed_exactly_to_the_roles_the_workflow_names() {
    let w = World::new().await;
    // 7 transitions plus a cancel from 6 statuses, times 11 roles.
    assert_eq!(check_workflow(&w, "custom-production").await, 13 * 11);
}

#[tokio::test]
async fn every_make_to_order_transition_is_allowed_exactly_to_the_roles_the_workflow_names() {
    let w = World::new().await;
    assert_eq!(check_workflow(&w, "make-to-order").await, 6 * 11);
}

#[tokio::test]
async fn every_standard_transition_is_allowed_exactly_to_the_roles_the_workflow_names() {
    let w = World::new().await;
    assert_eq!(check_workflow(&w, "standard").await, 8 * 11);
}

#[tokio::test]
async fn the_transitions_an_order_offers_are_those_the_acting_role_may_make() {
    let w = World::new().await;
    let order = w.new_order("make-to-order").await;
    let path = format!("/api/v1/orders/{}", id_of(&order));
    let offered = |body: &serde_json::Value| -> Vec<String> {
        body["allowed_transitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["to"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, _, as_ip) = w.app.get(&path, &w.ip.token, None).await;
    assert_eq!(offered(&as_ip), ["confirmed", "cancelled"]);
    assert_eq!(
        as_ip["allowed_transitions"][1]["guards"],
        json!(["field:cancellation_reason", "confirmed"])
    );
    let (_, _, as_mfr) = w.app.get(&path, &w.mfr.token, None).await;
    assert!(offered(&as_mfr).is_empty());
    let (_, _, as_admin) = w.app.get(&path, &w.admin.token, None).await;
    assert!(offered(&as_admin).is_empty(), "admin makes no make-to-order transition");
}
