//! `Idempotency-Key` on POST: a retry returns the first result without acting twice; the same key with another
//! body is refused; a failed request does not use the key up.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};

async fn post_with_key(w: &World, who: &Person, path: &str, key: &str, body: &Value) -> Reply {
    w.app
        .send(raw_request(
            Method::POST,
            path,
            Some(&who.token),
            &[("idempotency-key", key)],
            body.to_string().into_bytes(),
        ))
        .await
}

async fn order_count(w: &World) -> usize {
    let (_, _, page) = w.app.get("/api/v1/orders?limit=200", &w.admin.token, None).await;
    page["items"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_retried_order_creation_returns_the_first_order_and_creates_only_one() {
    let w = World::new().await;
    let body = w.order_body("standard");
    let before = w.app.event_count().await;

    let (status, headers, first) = post_with_key(&w, &w.am, "/api/v1/orders", "create-chairs-1", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert!(headers.get("idempotent-replayed").is_none());
    assert_eq!(w.app.event_count().await, before + 1);

    let (status, headers, second) = post_with_key(&w, &w.am, "/api/v1/orders", "create-chairs-1", &body).await;
    assert_eq!(status, StatusCode::CREATED, "the retry gets the first status: {second}");
    assert_eq!(headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(headers.get("content-type").unwrap(), "application/json");
    assert_eq!(second, first, "the same body, the same order");
    assert_eq!(w.app.event_count().await, before + 1, "the retry did not act");
    assert_eq!(order_count(&w).await, 1);

    // Another key is another request.
    let (status, _, third) = post_with_key(&w, &w.am, "/api/v1/orders", "create-chairs-2", &body).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(third["id"], first["id"]);
    assert_ne!(third["number"], first["number"]);
    assert_eq!(order_count(&w).await, 2);
}

#[tokio::test]
async fn the_same_key_with_a_different_body_is_422_and_changes_nothing() {
    let w = World::new().await;
    let body = w.order_body("standard");
    let (status, _, _) = post_with_key(&w, &w.am, "/api/v1/orders", "k-1", &body).await;
    assert_eq!(status, StatusCode::CREATED);
    let before = w.app.event_count().await;
    let mut other = body.clone();
    other["title"] = json!("Something else");
    let reply = post_with_key(&w, &w.am, "/api/v1/orders", "k-1", &other).await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused");
    assert!(
        reply.2["detail"].as_str().unwrap().contains("different request"),
        "{}",
        reply.2
    );
    // The same key on another path is another request too.
    let reply = post_with_key(&w, &w.am, "/api/v1/customers", "k-1", &json!({"name": "Initech"})).await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused");
    assert_eq!(w.app.event_count().await, before);
    assert_eq!(order_count(&w).await, 1);
}

#[tokio::test]
async fn a_failed_request_does_not_use_up_its_key() {
    let w = World::new().await;
    let mut body = w.order_body("standard");
    body["title"] = json!("");
    let before = w.app.event_count().await;
    let reply = post_with_key(&w, &w.am, "/api/v1/orders", "retry-me", &body).await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(w.app.event_count().await, before);
    // Fixed and retried with the same key: it acts.
    body["title"] = json!("Office chairs");
    let (status, headers, created) = post_with_key(&w, &w.am, "/api/v1/orders", "retry-me", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(headers.get("idempotent-replayed").is_none());
    assert_eq!(created["title"], "Office chairs");
    assert_eq!(w.app.event_count().await, before + 1);
    // A refused role does not use the key up either.
    let reply = post_with_key(&w, &w.ops, "/api/v1/orders", "ops-key", &body).await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "role-not-allowed");
    let reply = post_with_key(&w, &w.ops, "/api/v1/orders", "ops-key", &body).await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "role-not-allowed");
}

#[tokio::test]
async fn a_retried_transition_returns_the_first_result_instead_of_a_conflict() {
    let w = World::new().await;
    let order = w.new_order("standard").await;
    let path = format!("/api/v1/orders/{}/transitions", id_of(&order));
    let body = json!({"to": "in_production", "note": "go"});
    let (status, _, first) = post_with_key(&w, &w.am, &path, "move-1", &body).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let after_first = w.app.event_count().await;
    let (status, headers, second) = post_with_key(&w, &w.am, &path, "move-1", &body).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(second, first);
    assert_eq!(w.app.event_count().await, after_first);
    // Without the key the same request is a conflict: the order is no longer pending.
    let reply = w.transition(&id_of(&order), &w.am, None, body).await;
    assert_problem(&reply, StatusCode::CONFLICT, "transition-not-allowed");
}

#[tokio::test]
async fn keys_belong_to_their_user_and_must_be_sensible() {
    let w = World::new().await;
    let body = json!({"name": "Initech"});
    let (status, _, amy) = post_with_key(&w, &w.am, "/api/v1/customers", "shared", &body).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, headers, sam) = post_with_key(&w, &w.sc, "/api/v1/customers", "shared", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{sam}");
    assert!(
        headers.get("idempotent-replayed").is_none(),
        "another user's key is not replayed"
    );
    assert_ne!(amy["id"], sam["id"]);

    let before = w.app.event_count().await;
    let long = "k".repeat(256);
    for key in ["   ", long.as_str()] {
        let reply = post_with_key(&w, &w.am, "/api/v1/customers", key, &body).await;
        assert_problem(&reply, StatusCode::BAD_REQUEST, "bad-request");
    }
    let reply = w
        .app
        .send(raw_request(
            Method::POST,
            "/api/v1/customers",
            Some("ot_forged"),
            &[("idempotency-key", "x")],
            body.to_string().into_bytes(),
        ))
        .await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(w.app.event_count().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_simultaneous_retries_with_one_key_create_one_order() {
    let w = World::new().await;
    let body = w.order_body("standard").to_string();
    let before = w.app.event_count().await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let router = w.app.router.clone();
        let token = w.am.token.clone();
        let body = body.clone();
        tasks.spawn(async move {
            let request = raw_request(
                Method::POST,
                "/api/v1/orders",
                Some(&token),
                &[("idempotency-key", "burst")],
                body.into_bytes(),
            );
            read(tower::ServiceExt::oneshot(router, request).await.unwrap()).await
        });
    }
    let mut ids = std::collections::BTreeSet::new();
    let mut in_progress = 0;
    while let Some(done) = tasks.join_next().await {
        let reply = done.unwrap();
        match reply.0 {
            StatusCode::CREATED => {
                ids.insert(reply.2["id"].as_str().unwrap().to_string());
            }
            StatusCode::CONFLICT => {
                assert_problem(&reply, StatusCode::CONFLICT, "idempotency-key-in-use");
                in_progress += 1;
            }
            other => panic!("unexpected {other}: {}", reply.2),
        }
    }
    assert_eq!(ids.len(), 1, "every success is the same order");
    assert!(in_progress < 8);
    assert_eq!(w.app.event_count().await, before + 1, "one order was created");
    assert_eq!(order_count(&w).await, 1);
}

#[tokio::test]
async fn a_key_left_pending_by_a_request_that_died_is_taken_over_after_five_minutes() {
    let w = World::new().await;
    let body = w.order_body("standard");
    // A request claimed the key and died before answering (the server stopped between claim and answer).
    let claimed = w
        .app
        .state
        .store
        .claim_idempotency_key(w.am.user.id, "k-dead", "fingerprint-of-the-dead", w.app.state.now())
        .await;
    assert_eq!(claimed.unwrap(), ordertrail_store::IdempotencyClaim::Claimed);

    let (status, _, problem) = post_with_key(&w, &w.am, "/api/v1/orders", "k-dead", &body).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "still in progress for all we know: {problem}"
    );
    assert_eq!(order_count(&w).await, 0);

    w.app.set_clock("2026-03-02T12:06:00Z");
    let (status, _, order) = post_with_key(&w, &w.am, "/api/v1/orders", "k-dead", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let (status, _, again) = post_with_key(&w, &w.am, "/api/v1/orders", "k-dead", &body).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again["id"], order["id"], "and from then on the key replays as usual");
    assert_eq!(order_count(&w).await, 1);
}

#[tokio::test]
async fn the_same_key_and_body_in_another_role_is_another_request() {
    let w = World::new().await;
    let order = w.create_order(w.order_body("standard")).await;
    let path = format!("/api/v1/orders/{}/follow-ups", id_of(&order));
    let note = json!({"channel": "phone", "direction": "outbound", "counterpart": {"kind": "customer"}, "status": "in_progress", "summary": "Called"});
    let send = |role: &'static str| {
        w.app.send(raw_request(
            Method::POST,
            &path,
            Some(&w.multi.token),
            &[("idempotency-key", "k-role"), ("x-ordertrail-role", role)],
            note.to_string().into_bytes(),
        ))
    };
    let roles = &w.multi.user.roles;
    let (status, _, _) = send(roles[0].as_str()).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, problem) = send(roles[1].as_str()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(problem["type"].as_str().unwrap().ends_with("idempotency-key-reused"));
}
