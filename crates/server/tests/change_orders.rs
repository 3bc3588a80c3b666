//! Change orders through the API, as seed 000 runs them (R7, R14, R17): drafted by the account manager,
//! priced by finance, timed by operations, approved by the sales director, sent, and approved by the client in
//! writing; the approval moves the order's amount, promise and milestones in one event; steps out of turn or by
//! the wrong role are refused and change nothing.

mod common;

use axum::http::StatusCode;
use chrono::{NaiveDate, TimeDelta};
use common::*;
use serde_json::{Value, json};

fn draft_body(items: &[(&str, &str)]) -> Value {
    json!({
        "reason": "The client wants a matching cape",
        "kinds": ["additional_pieces"],
        "items": items.iter().map(|(d, a)| json!({"description": d, "amount": {"currency": "USD", "amount": a}})).collect::<Vec<_>>(),
    })
}

async fn step(w: &World, who: &Person, order_id: &str, co: &Value, step: &str, body: Value) -> (StatusCode, Value) {
    let (status, _, reply) = w
        .app
        .post(
            &format!("/api/v1/orders/{order_id}/change-orders/{}/{step}", id_of(co)),
            &who.token,
            None,
            body,
        )
        .await;
    (status, reply)
}

async fn drafted(w: &World, order_id: &str, items: &[(&str, &str)]) -> Value {
    let (status, _, co) = w
        .app
        .post(
            &format!("/api/v1/orders/{order_id}/change-orders"),
            &w.am.token,
            None,
            draft_body(items),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{co}");
    co
}

/// Takes a drafted change order to the client: priced, timed (`days`), approved internally, sent.
async fn to_client(w: &World, order_id: &str, co: &Value, days: i32) {
    for (who, name, body) in [
        (&w.finance, "cost-estimate", json!({})),
        (&w.ops, "timeline-estimate", json!({"days": days})),
        (&w.sd, "approve", json!({"note": "fine"})),
        (&w.am, "send", json!({})),
    ] {
        let (status, reply) = step(w, who, order_id, co, name, body).await;
        assert_eq!(status, StatusCode::OK, "{name}: {reply}");
    }
}

fn approval() -> Value {
    json!({"answer": "approved", "client_name": "Margaret Hale", "channel": "email", "evidence": "Yes, go ahead with the cape"})
}

fn date(value: &Value) -> NaiveDate {
    value.as_str().and_then(|s| s.parse().ok()).expect("a date")
}

#[tokio::test]
async fn a_change_order_raising_cost_by_25_percent_moves_the_order_and_asks_an_extra_deposit() {
    let w = World::new().await;
    // 1250.00; the change adds 312.50 = 25% (> 20%): an extra deposit of half the change.
    let order = w.new_order("custom-production").await;
    let id = id_of(&order);
    let co = drafted(&w, &id, &[("Cape", "250.00"), ("Lining", "62.50")]).await;
    assert_eq!(co["status"], "draft");
    to_client(&w, &id, &co, 7).await;
    let (status, approved) = step(&w, &w.am, &id, &co, "client-response", approval()).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["status"], "approved");
    let effects = &approved["effects"];
    assert_eq!(effects["new_order_amount"]["amount"], "1562.50");
    assert_eq!(effects["extra_deposit"]["amount"], "156.25");
    assert_eq!(effects["milestone_shift_days"], 7);

    let after = w.order(&id).await;
    assert_eq!(after["amount"]["amount"], "1562.50");
    assert_eq!(
        date(&after["promised_date"]),
        date(&order["promised_date"]) + TimeDelta::days(7)
    );
    for (before, now) in order["milestones"]
        .as_array()
        .into_iter()
        .flatten()
        .zip(after["milestones"].as_array().into_iter().flatten())
    {
        assert_eq!(
            date(&now["planned_on"]),
            date(&before["planned_on"]) + TimeDelta::days(7),
            "{}",
            now["key"]
        );
    }
    // The list's columns moved with it: the promise is no longer before 2026-06-05.
    let (_, _, page) = w
        .app
        .get("/api/v1/orders?due_before=2026-06-05", &w.admin.token, None)
        .await;
    assert!(
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|o| o["id"] != order["id"]),
        "{page}"
    );

    let kinds: Vec<Value> = w.events(&id).await.iter().map(|e| e["kind"].clone()).collect();
    assert_eq!(
        kinds[1..],
        [
            "change_order_drafted",
            "change_order_cost_estimated",
            "change_order_timeline_estimated",
            "change_order_approved_internally",
            "change_order_sent_to_client",
            "change_order_client_approved",
            "payment_change_order_applied"
        ]
    );
    assert!(w.app.state.store.verify().await.expect("verify").broken.is_empty());
}

#[tokio::test]
async fn only_finance_may_price_a_change_and_the_client_cannot_approve_before_the_sales_director() {
    let w = World::new().await;
    let order = w.new_order("standard").await;
    let id = id_of(&order);
    let co = drafted(&w, &id, &[("Rush fee", "100.00")]).await;
    let before = w.app.event_count().await;

    let (status, reply) = step(&w, &w.am, &id, &co, "cost-estimate", json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{reply}");
    let (status, reply) = step(&w, &w.am, &id, &co, "client-response", approval()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{reply}");
    let (status, reply) = step(&w, &w.sd, &id, &co, "approve", json!({})).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the estimates come first: {reply}"
    );
    let (status, reply) = step(&w, &w.ops, &id, &co, "timeline-estimate", json!({"days": "soon"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
    let (status, _, reply) = w
        .app
        .post(
            &format!("/api/v1/orders/{id}/change-orders"),
            &w.am.token,
            None,
            draft_body(&[]),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a change order has items: {reply}"
    );
    assert_eq!(w.app.event_count().await, before, "nothing was written");
}

#[tokio::test]
async fn a_withdrawn_change_order_cannot_be_approved() {
    let w = World::new().await;
    let order = w.new_order("standard").await;
    let id = id_of(&order);
    let co = drafted(&w, &id, &[("Extra pieces", "40.00")]).await;
    to_client(&w, &id, &co, 0).await;
    let (status, reply) = step(
        &w,
        &w.am,
        &id,
        &co,
        "withdraw",
        json!({"reason": "The client changed their mind"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let (status, reply) = step(&w, &w.am, &id, &co, "client-response", approval()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{reply}");
    assert_eq!(w.order(&id).await["amount"], order["amount"]);
}

#[tokio::test]
async fn change_order_frequency_and_amounts_per_order() {
    let w = World::new().await;
    let order = w.new_order("standard").await;
    let id = id_of(&order);
    let small = drafted(&w, &id, &[("Gift wrap", "125.00")]).await;
    to_client(&w, &id, &small, 0).await;
    let (status, approved) = step(&w, &w.am, &id, &small, "client-response", approval()).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert!(
        approved["effects"]["extra_deposit"].is_null(),
        "10% is under the threshold"
    );
    drafted(&w, &id, &[("Engraving", "50.00")]).await;

    let (status, _, list) = w
        .app
        .get(&format!("/api/v1/orders/{id}/change-orders"), &w.finance.token, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let summary = &list["summary"];
    assert_eq!(summary["total"], 2);
    assert_eq!(summary["approved"], 1);
    assert_eq!(summary["draft"], 1);
    assert_eq!(summary["approved_amount"]["amount"], "125.00");
    assert_eq!(summary["pending_amount"]["amount"], "50.00");
    assert_eq!(summary["approved_percent"], "10.00");
}

#[tokio::test]
async fn an_issue_resolution_that_changes_the_scope_opens_a_change_order() {
    let w = World::new().await;
    let order = w.new_order("standard").await;
    let id = id_of(&order);
    let (status, _, issue) = w
        .app
        .post(
            &format!("/api/v1/orders/{id}/issues"),
            &w.am.token,
            None,
            json!({"kind": "design_change", "description": "Client wants a second colour", "impact": {"delay_days": 1},
                   "expected_resolution_at": "2026-03-05T12:00:00Z", "owner_id": w.am.id()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issue}");
    let (status, _, resolved) = w
        .app
        .post(
            &format!("/api/v1/orders/{id}/issues/{}/resolve", id_of(&issue)),
            &w.am.token,
            None,
            json!({"summary": "Second colour agreed", "changes_scope": true,
                   "change_items": [{"description": "Second colour run", "amount": {"currency": "USD", "amount": "80.00"}}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    let after = w.order(&id).await;
    let (_, _, list) = w
        .app
        .get(&format!("/api/v1/orders/{id}/change-orders"), &w.am.token, None)
        .await;
    let drafts = list["change_orders"].as_array().expect("change orders");
    assert_eq!(drafts.len(), 1, "{list}");
    assert_eq!(drafts[0]["status"], "draft");
    assert_eq!(drafts[0]["origin_issue"], issue["id"]);
    assert_eq!(drafts[0]["items"][0]["amount"]["amount"], "80.00");
    assert_eq!(after["amount"], order["amount"], "a draft changes no money yet");
}
