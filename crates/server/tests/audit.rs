//! The audit log over HTTP: every change is an event with its actor, acting role, kind and reason, numbered
//! per order and hash-chained; `verify` finds a row edited or deleted behind the product's back.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::json;
use uuid::Uuid;

/// seq, kind, acting role, actor, reason, time.
type Summary<'a> = (i64, &'a str, &'a str, Option<&'a str>, Option<&'a str>, &'a str);

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[tokio::test]
async fn the_events_of_an_order_show_who_did_what_in_which_role_and_why_in_a_hash_chain() {
    let w = World::new().await;
    let order = w.new_order("standard").await;
    let id = id_of(&order);
    w.app.set_clock("2026-03-02T13:00:00Z");
    let (status, _, _) = w
        .transition(
            &id,
            &w.multi,
            Some("sales_coordinator"),
            json!({"to": "in_production", "note": "Acknowledged by phone"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    w.app.set_clock("2026-03-02T14:00:00Z");
    let inspection = milestone(&order, "semi_finished_inspection")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _, _) = w
        .app
        .patch(
            &format!("/api/v1/orders/{id}/milestones/{inspection}"),
            &w.multi.token,
            Some("operations"),
            json!({"planned_on": "2026-03-13", "reason": "Inspector away"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, _, events) = w
        .app
        .get(&format!("/api/v1/orders/{id}/events"), &w.am.token, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{events}");
    let events = events.as_array().unwrap();
    let summary: Vec<Summary> = events
        .iter()
        .map(|e| {
            (
                e["seq"].as_i64().unwrap(),
                e["kind"].as_str().unwrap(),
                e["acting_role"].as_str().unwrap(),
                e["actor_id"].as_str(),
                e["reason"].as_str(),
                e["occurred_at"].as_str().unwrap(),
            )
        })
        .collect();
    let (amy, max) = (w.am.id(), w.multi.id());
    assert_eq!(
        summary,
        [
            (1, "order_created", "account_manager", Some(amy.as_str()), None, T0),
            (
                2,
                "status_changed",
                "sales_coordinator",
                Some(max.as_str()),
                Some("Acknowledged by phone"),
                "2026-03-02T13:00:00Z"
            ),
            // Confirming the order completes its "order confirmed" milestone in the same change.
            (
                3,
                "milestone_completed",
                "sales_coordinator",
                Some(max.as_str()),
                None,
                "2026-03-02T13:00:00Z"
            ),
            (
                4,
                "milestone_replanned",
                "operations",
                Some(max.as_str()),
                Some("Inspector away"),
                "2026-03-02T14:00:00Z"
            ),
        ]
    );
    assert!(events.iter().all(|e| e["stream_id"] == id.as_str()));
    assert_eq!(events[0]["data"]["order"]["number"], order["number"]);
    assert_eq!(
        events[1]["data"],
        json!({"type": "status_changed", "from": "pending_confirmation", "to": "in_production", "fields": {}})
    );
    assert_eq!(events[0]["prev_hash"], GENESIS);
    for pair in events.windows(2) {
        assert_eq!(
            pair[1]["prev_hash"], pair[0]["hash"],
            "each event links to the one before"
        );
    }
    for e in events {
        let hash = e["hash"].as_str().unwrap();
        assert_eq!(hash.len(), 64);
        assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
    }
    let ids: std::collections::BTreeSet<&str> = events.iter().map(|e| e["hash"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len(), "hashes are distinct");

    // The customer does not read the internal log.
    let reply = w
        .app
        .get(&format!("/api/v1/orders/{id}/events"), &w.acme_user.token, None)
        .await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "forbidden");
    let report = w.app.state.store.verify().await.unwrap();
    assert!(report.broken.is_empty(), "{:?}", report.broken);
    assert!(report.events >= 4);
}

#[tokio::test]
async fn verify_reports_the_order_and_the_first_broken_seq_after_a_row_is_edited_behind_the_products_back() {
    let w = World::new().await;
    let intact = w.new_order("standard").await;
    let order = w.new_order("custom-production").await;
    let id = id_of(&order);
    w.advance(&id, "pattern").await;
    let events = w.events(&id).await;
    assert!(events.len() >= 4, "{}", events.len());
    let before = w.app.state.store.verify().await.unwrap();
    assert!(before.broken.is_empty(), "{:?}", before.broken);
    assert!(before.streams >= 4, "org, customers and orders are chained: {before:?}");

    // Someone rewrites the day the contract was signed (seq 2) directly in the database.
    assert_eq!(events[1]["kind"], "payment_contract_signed");
    let done = w
        .app
        .tamper(
            "UPDATE events SET payload = replace(payload, '2026-03-01', '2026-01-01') WHERE CAST(stream_id AS TEXT) = $1 AND seq = 2",
            &[Raw::Text(&id)],
        )
        .await;
    assert_eq!(done, 1);

    let report = w.app.state.store.verify().await.unwrap();
    assert_eq!(report.broken.len(), 1, "{:?}", report.broken);
    let broken = &report.broken[0];
    assert_eq!(broken.stream_id, Uuid::parse_str(&id).unwrap());
    assert_eq!(broken.seq, 2, "the first broken link");
    assert_eq!(broken.order_number.as_deref(), order["number"].as_str());
    assert!(broken.problem.contains("altered"), "{}", broken.problem);
    assert!(report.broken.iter().all(|b| b.stream_id.to_string() != id_of(&intact)));
}

#[tokio::test]
async fn verify_notices_a_deleted_last_event_and_a_changed_acting_role() {
    let w = World::new().await;
    let a = w.new_order("standard").await;
    let b = w.new_order("standard").await;
    w.advance(&id_of(&a), "shipped").await;
    w.advance(&id_of(&b), "in_production").await;
    let last = w.events(&id_of(&a)).await.len() as i64;

    let (a_id, b_id) = (id_of(&a), id_of(&b));
    let deleted = w
        .app
        .tamper(
            "DELETE FROM events WHERE CAST(stream_id AS TEXT) = $1 AND seq = $2",
            &[Raw::Text(&a_id), Raw::Int(last)],
        )
        .await;
    let changed = w
        .app
        .tamper(
            "UPDATE events SET acting_role = 'admin' WHERE CAST(stream_id AS TEXT) = $1 AND seq = 1",
            &[Raw::Text(&b_id)],
        )
        .await;
    assert_eq!((deleted, changed), (1, 1));

    let report = w.app.state.store.verify().await.unwrap();
    let mut found: Vec<(String, i64)> = report
        .broken
        .iter()
        .map(|l| (l.order_number.clone().unwrap_or_default(), l.seq))
        .collect();
    found.sort();
    let mut expected = vec![
        // The order says it has `last` events; its chain ends one short.
        (a["number"].as_str().unwrap().to_string(), last),
        (b["number"].as_str().unwrap().to_string(), 1),
    ];
    expected.sort();
    assert_eq!(found, expected, "{:?}", report.broken);
}

#[tokio::test]
async fn the_event_log_does_not_show_the_manufacturer_what_the_order_view_hides_from_them() {
    // R40: the order view leaves out the amount and the customer contact for production and marketplace roles,
    // but the order_created event carries the whole order, and the events route hands it to any staff role.
    let w = World::new().await;
    let order = w.new_order("make-to-order").await;
    let id = id_of(&order);
    let (_, _, view) = w.app.get(&format!("/api/v1/orders/{id}"), &w.mfr.token, None).await;
    assert!(view.get("amount").is_none() && view.get("customer_contact").is_none());
    let (status, _, events) = w
        .app
        .get(&format!("/api/v1/orders/{id}/events"), &w.mfr.token, None)
        .await;
    if status == StatusCode::OK {
        let text = events.to_string();
        assert!(
            !text.contains("1250.00"),
            "the manufacturer reads the amount in the log: {}",
            events[0]["data"]["order"]["amount"]
        );
        assert!(
            !text.contains("buyer@example.com"),
            "the manufacturer reads the customer contact in the log"
        );
    } else {
        assert_eq!(status, StatusCode::FORBIDDEN, "{events}");
    }
}
