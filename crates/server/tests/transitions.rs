//! Moving orders through their workflows over HTTP: one walk per preset from the first status to the last with
//! the right roles, the guards on the way, the status codes of every kind of refusal, and concurrent
//! transitions on one order.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};

/// The status changes of an order's log: (from, to, acting role, reason).
async fn status_changes(w: &World, order_id: &str) -> Vec<(String, String, String, Option<String>)> {
    w.events(order_id)
        .await
        .iter()
        .filter(|e| e["kind"] == "status_changed")
        .map(|e| {
            (
                e["data"]["from"].as_str().unwrap().to_string(),
                e["data"]["to"].as_str().unwrap().to_string(),
                e["acting_role"].as_str().unwrap().to_string(),
                e["reason"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn change(from: &str, to: &str, role: &str, reason: Option<&str>) -> (String, String, String, Option<String>) {
    (from.into(), to.into(), role.into(), reason.map(str::to_string))
}

/// Asserts a refusal and that it left the event log as it was.
async fn refused(w: &World, reply: Reply, status: StatusCode, kind: &str, events_before: i64) -> Value {
    assert_problem(&reply, status, kind);
    assert_eq!(
        w.app.event_count().await,
        events_before,
        "a refusal must change nothing: {}",
        reply.2
    );
    reply.2
}

async fn ok(reply: Reply) -> Value {
    let (status, _, body) = reply;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn a_custom_production_order_walks_from_receipt_to_closed_with_the_right_roles() {
    let w = World::new().await;
    let order = w.new_order("custom-production").await;
    let id = id_of(&order);
    let n = w.app.event_count().await;

    // Receipt -> Design: tracking starts when the contract is signed and the deposit paid (R15).
    let body = refused(
        &w,
        w.transition(&id, &w.am, None, json!({"to": "design"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "guard-failed",
        n,
    )
    .await;
    assert_eq!(guard_names(&body), ["deposit_paid"]);
    assert_eq!(
        body["guards"][0]["missing"],
        json!([
            "waiting for the contract signed",
            "waiting for the deposit paid: 625.00 USD outstanding"
        ])
    );
    w.sign_contract(&id, "2026-02-28").await;
    let n = w.app.event_count().await;
    let body = refused(
        &w,
        w.transition(&id, &w.am, None, json!({"to": "design"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "guard-failed",
        n,
    )
    .await;
    assert_eq!(
        body["guards"][0]["missing"],
        json!(["waiting for the deposit paid: 625.00 USD outstanding"])
    );
    w.pay(&id, 1, "USD", "625.00", "2026-03-01").await;
    let moved = ok(w
        .transition(
            &id,
            &w.am,
            None,
            json!({"to": "design", "note": "Contract signed, deposit in"}),
        )
        .await)
    .await;
    assert_eq!(moved["status"], "design");
    assert_eq!(
        moved["version"], 4,
        "the signature (the deposit falls due, R8), the deposit paid, the status change"
    );
    assert_eq!(moved["progress"]["phase"]["name"], "Design");

    // Design -> Pattern needs the design approval, a client action: approver and every checklist item.
    let n = w.app.event_count().await;
    let body = refused(
        &w,
        w.transition(&id, &w.design, None, json!({"to": "pattern"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "guard-failed",
        n,
    )
    .await;
    assert_eq!(guard_names(&body), ["milestones_done:design"]);
    assert_eq!(
        body["guards"][0]["missing"],
        json!(["milestone 'Design approval' is not completed"])
    );
    let approval = milestone(&moved, "design_approval");
    let complete_path = format!(
        "/api/v1/orders/{id}/milestones/{}/complete",
        approval["id"].as_str().unwrap()
    );
    let items = checklist_items(approval);
    let body = refused(
        &w,
        w.app
            .post(&complete_path, &w.sc.token, None, json!({"checklist": items}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation",
        n,
    )
    .await;
    assert_eq!(error_fields(&body), ["evidence.approved_by"]);
    let body = refused(
        &w,
        w.app
            .post(
                &complete_path,
                &w.sc.token,
                None,
                json!({"evidence": {"approved_by": "Margaret Hale"}, "checklist": items[..2]}),
            )
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation",
        n,
    )
    .await;
    assert_eq!(error_fields(&body), ["checklist"]);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Feedback and approval documented"),
        "{body}"
    );
    let done = ok(w
        .app
        .post(
            &complete_path,
            &w.sc.token,
            None,
            json!({"evidence": {"approved_by": "Margaret Hale"}, "checklist": items}),
        )
        .await)
    .await;
    assert_eq!(done["completed_by"], w.sc.id().as_str());
    let moved = ok(w.transition(&id, &w.design, None, json!({"to": "pattern"})).await).await;
    assert_eq!(moved["status"], "pattern");

    // Pattern -> Construction -> Fitting -> Final -> Delivered -> Closed.
    w.complete(&id, "fabric_approval", &w.am, None).await;
    ok(w.transition(&id, &w.ops, None, json!({"to": "construction"})).await).await;
    ok(w.transition(&id, &w.ops, None, json!({"to": "fitting"})).await).await;
    w.complete(&id, "first_fitting", &w.design, None).await;
    ok(w.transition(&id, &w.design, None, json!({"to": "final"})).await).await;
    w.complete(&id, "final_fitting", &w.am, None).await;
    let n = w.app.event_count().await;
    let body = refused(
        &w,
        w.transition(&id, &w.logistics, None, json!({"to": "delivered"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "guard-failed",
        n,
    )
    .await;
    assert_eq!(guard_names(&body), ["confirmed"]);
    let delivered = ok(w
        .transition(&id, &w.logistics, None, json!({"to": "delivered", "confirm": true}))
        .await)
    .await;
    assert_eq!(
        milestone(&delivered, "delivery")["completed_by"],
        w.logistics.id().as_str(),
        "delivering completes the delivery milestone"
    );
    let n = w.app.event_count().await;
    let body = refused(
        &w,
        w.transition(&id, &w.sd, None, json!({"to": "closed", "confirm": true}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "guard-failed",
        n,
    )
    .await;
    assert_eq!(guard_names(&body), ["field:sign_off_by"]);
    let closed = ok(w
        .transition(
            &id,
            &w.sd,
            None,
            json!({"to": "closed", "confirm": true, "fields": {"sign_off_by": "Margaret Hale"}, "note": "All signed"}),
        )
        .await)
    .await;
    assert_eq!(closed["status"], "closed");
    assert_eq!(closed["allowed_transitions"], json!([]));
    assert_eq!(closed["progress"]["health"], "on_track");

    assert_eq!(
        status_changes(&w, &id).await,
        [
            change(
                "receipt",
                "design",
                "account_manager",
                Some("Contract signed, deposit in")
            ),
            change("design", "pattern", "design", None),
            change("pattern", "construction", "operations", None),
            change("construction", "fitting", "operations", None),
            change("fitting", "final", "design", None),
            change("final", "delivered", "logistics", None),
            change("delivered", "closed", "sales_director", Some("All signed")),
        ]
    );
    // Closed is the end: nothing moves it any more.
    let n = w.app.event_count().await;
    refused(
        &w,
        w.transition(
            &id,
            &w.am,
            None,
            json!({"to": "cancelled", "confirm": true, "fields": {"cancellation_reason": "x"}}),
        )
        .await,
        StatusCode::CONFLICT,
        "transition-not-allowed",
        n,
    )
    .await;
}

#[tokio::test]
async fn a_make_to_order_order_is_confirmed_produced_shipped_with_a_tracking_url_and_completed_by_the_customer() {
    let w = World::new().await;
    let order = w.new_order("make-to-order").await;
    let id = id_of(&order);
    assert_eq!(order["status"], "placed");

    // Every status change needs the explicit double-check (R22).
    let n = w.app.event_count().await;
    let body = refused(
        &w,
        w.transition(&id, &w.ip, None, json!({"to": "confirmed"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "guard-failed",
        n,
    )
    .await;
    assert_eq!(guard_names(&body), ["confirmed"]);
    ok(
        w.transition(&id, &w.ip, None, json!({"to": "confirmed", "confirm": true}))
            .await,
    )
    .await;

    // Max holds several roles and acts as the manufacturer.
    let ambiguous = w
        .transition(&id, &w.multi, None, json!({"to": "in_production", "confirm": true}))
        .await;
    assert_problem(&ambiguous, StatusCode::BAD_REQUEST, "bad-request");
    let as_operations = w
        .transition(
            &id,
            &w.multi,
            Some("operations"),
            json!({"to": "in_production", "confirm": true}),
        )
        .await;
    assert_problem(&as_operations, StatusCode::FORBIDDEN, "role-not-allowed");
    ok(w.transition(
        &id,
        &w.multi,
        Some("manufacturer"),
        json!({"to": "in_production", "confirm": true}),
    )
    .await)
    .await;

    // Shipping needs every production checklist item done (R20) and a valid tracking URL (R21).
    let n = w.app.event_count().await;
    let body = refused(
        &w,
        w.transition(&id, &w.multi, Some("manufacturer"), json!({"to": "shipping"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "guard-failed",
        n,
    )
    .await;
    assert_eq!(
        guard_names(&body),
        ["checklist_done:production", "field:tracking_url", "confirmed"]
    );
    assert_eq!(
        body["guards"][0]["missing"],
        json!([
            "checklist item 'Fabrication of the part' of 'Production complete' is not done",
            "checklist item 'Post-processing' of 'Production complete' is not done",
            "checklist item 'Inspection and test plan items' of 'Production complete' is not done",
        ])
    );
    assert_eq!(body["guards"][1]["missing"], json!(["tracking_url is required"]));
    let production = milestone(&w.order(&id).await, "production").clone();
    let tick_path = format!("/api/v1/orders/{id}/milestones/{}", production["id"].as_str().unwrap());
    let ticked = ok(w
        .app
        .patch(
            &tick_path,
            &w.multi.token,
            Some("manufacturer"),
            json!({"checklist": {"Fabrication of the part": true, "Post-processing": true}}),
        )
        .await)
    .await;
    assert_eq!(
        ticked["checklist"],
        json!([
            {"item": "Fabrication of the part", "done": true},
            {"item": "Post-processing", "done": true},
            {"item": "Inspection and test plan items", "done": false},
        ])
    );
    let url = "https://track.example.com/p/1Z999AA10123456784";
    let n = w.app.event_count().await;
    let body = refused(
        &w,
        w.transition(
            &id,
            &w.multi,
            Some("manufacturer"),
            json!({"to": "shipping", "confirm": true, "fields": {"tracking_url": url}}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "guard-failed",
        n,
    )
    .await;
    assert_eq!(guard_names(&body), ["checklist_done:production"]);
    assert_eq!(body["guards"][0]["missing"].as_array().unwrap().len(), 1);
    ok(w.app
        .patch(
            &tick_path,
            &w.multi.token,
            Some("manufacturer"),
            json!({"checklist": {"Inspection and test plan items": true}}),
        )
        .await)
    .await;
    let n = w.app.event_count().await;
    for bad in [
        "ftp://track.example.com/1",
        "not a url",
        "https://",
        "javascript:alert(1)",
    ] {
        let body = refused(
            &w,
            w.transition(
                &id,
                &w.multi,
                Some("manufacturer"),
                json!({"to": "shipping", "confirm": true, "fields": {"tracking_url": bad}}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "guard-failed",
            n,
        )
        .await;
        assert_eq!(guard_names(&body), ["field:tracking_url"], "{bad}: {body}");
        assert!(
            body["guards"][0]["missing"][0]
                .as_str()
                .unwrap()
                .starts_with("tracking_url "),
            "{bad}: {body}"
        );
    }
    let shipped = ok(w
        .transition(
            &id,
            &w.multi,
            Some("manufacturer"),
            json!({"to": "shipping", "confirm": true, "fields": {"tracking_url": url}}),
        )
        .await)
    .await;
    assert_eq!(shipped["status"], "shipping");
    assert_eq!(shipped["fields"]["tracking_url"], url);

    // The consumer completes the order on receipt (R19).
    let n = w.app.event_count().await;
    refused(
        &w,
        w.transition(&id, &w.mfr, None, json!({"to": "completed", "confirm": true}))
            .await,
        StatusCode::FORBIDDEN,
        "role-not-allowed",
        n,
    )
    .await;
    let (status, _, as_customer) = w
        .app
        .get(&format!("/api/v1/orders/{id}"), &w.acme_user.token, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        as_customer["allowed_transitions"],
        json!([{"to": "completed", "name": "Confirm receipt", "guards": ["confirmed"]}])
    );
    let completed = ok(w
        .transition(&id, &w.acme_user, None, json!({"to": "completed", "confirm": true}))
        .await)
    .await;
    assert_eq!(completed["status"], "completed");

    assert_eq!(
        status_changes(&w, &id).await,
        [
            change("placed", "confirmed", "ip_owner", None),
            change("confirmed", "in_production", "manufacturer", None),
            change("in_production", "shipping", "manufacturer", None),
            change("shipping", "completed", "customer", None),
        ]
    );
    let events = w.events(&id).await;
    let ticks: Vec<&Value> = events.iter().filter(|e| e["kind"] == "checklist_updated").collect();
    assert_eq!(ticks.len(), 2);
    assert!(
        ticks
            .iter()
            .all(|e| e["acting_role"] == "manufacturer" && e["actor_id"] == w.multi.id().as_str())
    );
}

#[tokio::test]
async fn a_standard_order_is_shipped_with_a_carrier_tracking_number_and_completed_on_confirmed_receipt() {
    let w = World::new().await;
    let order = w.new_order("standard").await;
    let id = id_of(&order);
    assert_eq!(order["status"], "pending_confirmation");

    ok(w.transition(
        &id,
        &w.multi,
        Some("sales_coordinator"),
        json!({"to": "in_production", "note": "PO acknowledged"}),
    )
    .await)
    .await;

    let n = w.app.event_count().await;
    let body = refused(
        &w,
        w.transition(&id, &w.multi, Some("logistics"), json!({"to": "shipped"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "guard-failed",
        n,
    )
    .await;
    assert_eq!(guard_names(&body), ["field:carrier", "field:tracking_number"]);
    let body = refused(
        &w,
        w.transition(
            &id,
            &w.multi,
            Some("logistics"),
            json!({"to": "shipped", "fields": {"carrier": "UPS", "tracking_number": "12345"}}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "guard-failed",
        n,
    )
    .await;
    assert_eq!(guard_names(&body), ["field:tracking_number"]);
    assert!(
        body["guards"][0]["missing"][0]
            .as_str()
            .unwrap()
            .starts_with("tracking_number "),
        "{body}"
    );
    // A FedEx number is not a UPS number.
    let body = refused(
        &w,
        w.transition(
            &id,
            &w.multi,
            Some("logistics"),
            json!({"to": "shipped", "fields": {"carrier": "UPS", "tracking_number": "123456789012"}}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "guard-failed",
        n,
    )
    .await;
    assert_eq!(guard_names(&body), ["field:tracking_number"]);
    // A tracking URL is checked even where no guard asks for one: the customer will follow it (R21).
    let body = refused(
        &w,
        w.transition(
            &id,
            &w.multi,
            Some("logistics"),
            json!({"to": "shipped", "fields": {"carrier": "UPS", "tracking_number": "1Z999AA10123456784", "tracking_url": "javascript:alert(1)"}}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation",
        n,
    )
    .await;
    assert_eq!(error_fields(&body), ["fields.tracking_url"]);
    let shipped = ok(w
        .transition(
            &id,
            &w.multi,
            Some("logistics"),
            json!({"to": "shipped", "fields": {"carrier": "UPS", "tracking_number": "1Z999AA10123456784"}}),
        )
        .await)
    .await;
    assert_eq!(shipped["fields"]["carrier"], "UPS");
    assert_eq!(shipped["fields"]["tracking_number"], "1Z999AA10123456784");
    ok(
        w.transition(&id, &w.multi, Some("logistics"), json!({"to": "delivered"}))
            .await,
    )
    .await;

    let n = w.app.event_count().await;
    let body = refused(
        &w,
        w.transition(&id, &w.am, None, json!({"to": "completed"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "guard-failed",
        n,
    )
    .await;
    assert_eq!(guard_names(&body), ["field:receipt_confirmed_by", "confirmed"]);
    let completed = ok(w
        .transition(
            &id,
            &w.multi,
            Some("sales_coordinator"),
            json!({"to": "completed", "confirm": true, "fields": {"receipt_confirmed_by": "Tom Baker"}}),
        )
        .await)
    .await;
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["status_name"], "Completed");
    assert_eq!(
        status_changes(&w, &id).await,
        [
            change(
                "pending_confirmation",
                "in_production",
                "sales_coordinator",
                Some("PO acknowledged")
            ),
            change("in_production", "shipped", "logistics", None),
            change("shipped", "delivered", "logistics", None),
            change("delivered", "completed", "sales_coordinator", None),
        ]
    );
}

#[tokio::test]
async fn other_carriers_tracking_numbers_are_checked_against_their_own_patterns() {
    let w = World::new().await;
    let cases = [
        ("FedEx", "123456789012", true),
        ("FedEx", "1Z999AA10123456784", false),
        ("DHL", "1234567890", true),
        ("DHL", "12345", false),
        ("USPS", "9400111899223197428490", true),
        ("USPS", "ABC", false),
        ("SF Express", "SF1234567890123", true),
        ("SF Express", "SF12", false),
        ("Acme Freight", "anything-goes-42", true),
    ];
    for (carrier, number, valid) in cases {
        let order = w.new_order("standard").await;
        let id = id_of(&order);
        w.advance(&id, "in_production").await;
        let n = w.app.event_count().await;
        let reply = w
            .transition(
                &id,
                &w.logistics,
                None,
                json!({"to": "shipped", "fields": {"carrier": carrier, "tracking_number": number}}),
            )
            .await;
        if valid {
            assert_eq!(reply.0, StatusCode::OK, "{carrier} {number}: {}", reply.2);
        } else {
            let body = refused(&w, reply, StatusCode::UNPROCESSABLE_ENTITY, "guard-failed", n).await;
            assert_eq!(guard_names(&body), ["field:tracking_number"], "{carrier} {number}");
        }
    }
}

#[tokio::test]
async fn each_kind_of_refused_transition_has_its_own_status_code_and_changes_nothing() {
    let w = World::new().await;
    let order = w.new_order("standard").await;
    let id = id_of(&order);
    let n = w.app.event_count().await;

    // 403: finance sees every order but may not move this one.
    let body = refused(
        &w,
        w.transition(&id, &w.finance, None, json!({"to": "in_production"}))
            .await,
        StatusCode::FORBIDDEN,
        "role-not-allowed",
        n,
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("finance"), "{body}");
    // 409: a stale expected version.
    let body = refused(
        &w,
        w.transition(&id, &w.am, None, json!({"to": "in_production", "expected_version": 0}))
            .await,
        StatusCode::CONFLICT,
        "stale-version",
        n,
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("version 1"), "{body}");
    // 409: no such transition from the current status.
    let body = refused(
        &w,
        w.transition(&id, &w.am, None, json!({"to": "delivered"})).await,
        StatusCode::CONFLICT,
        "transition-not-allowed",
        n,
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("'pending_confirmation' to 'delivered'"),
        "{body}"
    );
    // 422: a status the workflow does not have.
    let body = refused(
        &w,
        w.transition(&id, &w.am, None, json!({"to": "teleported"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown-status",
        n,
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("teleported"), "{body}");
    // 422: a guard that does not hold names the guard and what is missing.
    let body = refused(
        &w,
        w.transition(&id, &w.am, None, json!({"to": "cancelled", "confirm": true}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "guard-failed",
        n,
    )
    .await;
    assert_eq!(
        body["guards"],
        json!([{"guard": "field:cancellation_reason", "missing": ["cancellation_reason is required"]}])
    );
    // 404: an order that does not exist.
    let reply = w
        .transition(
            &uuid::Uuid::now_v7().to_string(),
            &w.am,
            None,
            json!({"to": "in_production"}),
        )
        .await;
    refused(&w, reply, StatusCode::NOT_FOUND, "not-found", n).await;

    // The right version goes through, and the version moves on.
    let moved = ok(w
        .transition(&id, &w.am, None, json!({"to": "in_production", "expected_version": 1}))
        .await)
    .await;
    assert_eq!(moved["status"], "in_production");
    assert!(
        !milestone(&moved, "order_confirmed")["completed_at"].is_null(),
        "confirming completes the order_confirmed milestone: {moved}"
    );
    let version = moved["version"].as_i64().unwrap();
    assert_eq!(version, 3, "status change and milestone completion");
    assert_eq!(w.app.event_count().await, n + version - 1);
}

#[tokio::test]
async fn an_order_can_be_cancelled_from_any_open_status_with_a_reason() {
    let w = World::new().await;
    for from in ["pending_confirmation", "in_production", "shipped", "delivered"] {
        let order = w.new_order("standard").await;
        let id = id_of(&order);
        w.advance(&id, from).await;
        let cancelled = ok(w
            .transition(
                &id,
                &w.sd,
                None,
                json!({"to": "cancelled", "confirm": true, "fields": {"cancellation_reason": "Client withdrew"}}),
            )
            .await)
        .await;
        assert_eq!(cancelled["status"], "cancelled", "from {from}");
        assert_eq!(cancelled["fields"]["cancellation_reason"], "Client withdrew");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_concurrent_transitions_with_the_same_version_let_exactly_one_through() {
    let w = World::new().await;
    let order = w.new_order("standard").await;
    let id = id_of(&order);
    let version = order["version"].as_i64().unwrap();
    let n = w.app.event_count().await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16 {
        let router = w.app.router.clone();
        let token = w.am.token.clone();
        let path = format!("/api/v1/orders/{id}/transitions");
        let body = json!({"to": "in_production", "expected_version": version, "note": format!("attempt {i}")});
        tasks.spawn(async move {
            let response = tower::ServiceExt::oneshot(
                router,
                request(axum::http::Method::POST, &path, Some(&token), None, Some(&body)),
            )
            .await
            .unwrap();
            read(response).await
        });
    }
    let (mut wins, mut conflicts) = (0, 0);
    while let Some(done) = tasks.join_next().await {
        let reply = done.unwrap();
        match reply.0 {
            StatusCode::OK => wins += 1,
            StatusCode::CONFLICT => {
                assert_problem(&reply, StatusCode::CONFLICT, "stale-version");
                conflicts += 1;
            }
            other => panic!("unexpected {other}: {}", reply.2),
        }
    }
    assert_eq!((wins, conflicts), (1, 15));
    let after_one = w.order(&id).await;
    assert_eq!(after_one["status"], "in_production");
    assert_eq!(
        w.app.event_count().await,
        n + after_one["version"].as_i64().unwrap() - version,
        "only the winner wrote"
    );

    // Then sixteen more changes at once, each without a version: all go through, one after the other.
    let mut tasks = tokio::task::JoinSet::new();
    let inspection = milestone(&order, "semi_finished_inspection")["id"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 0..16 {
        let router = w.app.router.clone();
        let token = w.am.token.clone();
        let path = format!("/api/v1/orders/{id}/milestones/{inspection}");
        let body = json!({"planned_on": format!("2026-04-{:02}", i + 1), "reason": format!("replan {i}")});
        tasks.spawn(async move {
            let response = tower::ServiceExt::oneshot(
                router,
                request(axum::http::Method::PATCH, &path, Some(&token), None, Some(&body)),
            )
            .await
            .unwrap();
            read(response).await
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (status, _, body) = done.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    let events = w.events(&id).await;
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    let version = w.order(&id).await["version"].as_i64().unwrap();
    assert_eq!(version, after_one["version"].as_i64().unwrap() + 16);
    assert_eq!(seqs, (1..=version).collect::<Vec<i64>>(), "no gaps, no repeats");
    for pair in events.windows(2) {
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"]);
    }
    assert_eq!(events.iter().filter(|e| e["kind"] == "status_changed").count(), 1);
    assert_eq!(events.iter().filter(|e| e["kind"] == "milestone_replanned").count(), 16);
    let report = w.app.state.store.verify().await.unwrap();
    assert!(report.broken.is_empty(), "{:?}", report.broken);
}

#[tokio::test]
async fn a_role_that_may_make_a_transition_still_gets_404_on_an_order_its_holder_is_not_on() {
    let w = World::new().await;
    let order = w.new_order("standard").await;
    let id = id_of(&order);
    let n = w.app.event_count().await;
    // Operations may confirm standard orders, but Otto is not on this one.
    let body = refused(
        &w,
        w.transition(&id, &w.outsider, None, json!({"to": "in_production"}))
            .await,
        StatusCode::NOT_FOUND,
        "not-found",
        n,
    )
    .await;
    assert_eq!(body["detail"], "no such order");
    let moved = ok(w.transition(&id, &w.ops, None, json!({"to": "in_production"})).await).await;
    assert_eq!(moved["status"], "in_production");
}
