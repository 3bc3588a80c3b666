//! The order list: filters, text search, cursor pagination newest first, and refusals of bad query strings.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Four orders with different workflows, customers, owners, types and promised dates.
struct Orders {
    w: World,
    /// standard, Acme, regular, owned by Amy, promised 2026-04-01: "Office chairs".
    chairs: Value,
    /// make-to-order, Globex, rush, owned by Sam, promised 2026-05-01: "Titanium BRACKET".
    bracket: Value,
    /// custom-production, Acme, custom, owned by Amy, promised 2026-07-01: "Hamlet costumes".
    hamlet: Value,
    /// standard, Globex, rush, owned by Amy, promised 2026-03-20, in production: "Printed cartons".
    cartons: Value,
}

async fn orders() -> Orders {
    let w = World::new().await;
    let mut body = w.order_body("standard");
    body["title"] = json!("Office chairs");
    body["promised_date"] = json!("2026-04-01");
    let chairs = w.create_order(body).await;

    let mut body = w.order_body("make-to-order");
    body["title"] = json!("Titanium BRACKET");
    body["customer_id"] = json!(w.globex);
    body["order_type"] = json!("rush");
    body["promised_date"] = json!("2026-05-01");
    body["people"] = json!([
        {"relation": "owner", "user_id": w.sc.id()},
        {"relation": "production", "user_id": w.mfr.id()},
        {"relation": "customer", "user_id": w.globex_user.id()},
    ]);
    let bracket = w.create_order(body).await;

    let mut body = w.order_body("custom-production");
    body["title"] = json!("Hamlet costumes");
    body["order_type"] = json!("custom");
    body["promised_date"] = json!("2026-07-01");
    body["tags"] = json!(["theatre", "Spring-Season"]);
    let hamlet = w.create_order(body).await;

    let mut body = w.order_body("standard");
    body["title"] = json!("Printed cartons");
    body["customer_id"] = json!(w.globex);
    body["order_type"] = json!("rush");
    body["promised_date"] = json!("2026-03-20");
    // Globex's order names no customer user: Acme's user may not be its customer.
    if let Some(people) = body["people"].as_array_mut() {
        people.retain(|p| p["relation"] != "customer");
    }
    let cartons = w.create_order(body).await;
    w.advance(&id_of(&cartons), "in_production").await;
    Orders {
        w,
        chairs,
        bracket,
        hamlet,
        cartons,
    }
}

impl Orders {
    /// The numbers of the orders the admin gets for `query`, in the order given.
    async fn numbers(&self, query: &str) -> Vec<String> {
        self.numbers_as(&self.w.admin, query).await
    }

    async fn numbers_as(&self, who: &Person, query: &str) -> Vec<String> {
        let (status, _, page) = self
            .w
            .app
            .get(&format!("/api/v1/orders{query}"), &who.token, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{query}: {page}");
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["number"].as_str().unwrap().to_string())
            .collect()
    }
}

fn numbers(orders: &[&Value]) -> Vec<String> {
    orders
        .iter()
        .map(|o| o["number"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_list_shows_every_visible_order_newest_first() {
    let o = orders().await;
    assert_eq!(
        o.numbers("").await,
        numbers(&[&o.cartons, &o.hamlet, &o.bracket, &o.chairs])
    );
    let (_, _, page) = o.w.app.get("/api/v1/orders", &o.w.admin.token, None).await;
    assert!(page["next_cursor"].is_null(), "one page: {page}");
    assert_eq!(page["items"][0]["status"], "in_production");
    assert!(page["items"][0]["progress"]["percent_complete"].is_u64());
    // Staff see only the orders they are on.
    assert_eq!(
        o.numbers_as(&o.w.mfr, "").await,
        numbers(&[&o.cartons, &o.hamlet, &o.bracket, &o.chairs])
    );
    assert_eq!(
        o.numbers_as(&o.w.logistics, "").await,
        numbers(&[&o.cartons, &o.hamlet, &o.chairs])
    );
    assert_eq!(o.numbers_as(&o.w.globex_user, "").await, numbers(&[&o.bracket]));
    assert!(o.numbers_as(&o.w.outsider, "").await.is_empty());
}

#[tokio::test]
async fn the_list_filters_by_status_owner_customer_type_and_due_date() {
    let o = orders().await;
    assert_eq!(o.numbers("?status=in_production").await, numbers(&[&o.cartons]));
    assert_eq!(o.numbers("?status=pending_confirmation").await, numbers(&[&o.chairs]));
    assert_eq!(o.numbers("?status=placed").await, numbers(&[&o.bracket]));
    assert!(o.numbers("?status=nowhere").await.is_empty());
    assert_eq!(
        o.numbers(&format!("?owner={}", o.w.sc.id())).await,
        numbers(&[&o.bracket])
    );
    assert_eq!(
        o.numbers(&format!("?owner={}", o.w.am.id())).await,
        numbers(&[&o.cartons, &o.hamlet, &o.chairs])
    );
    assert_eq!(
        o.numbers(&format!("?customer={}", o.w.globex)).await,
        numbers(&[&o.cartons, &o.bracket])
    );
    assert_eq!(o.numbers("?order_type=rush").await, numbers(&[&o.cartons, &o.bracket]));
    assert_eq!(o.numbers("?order_type=custom").await, numbers(&[&o.hamlet]));
    assert_eq!(
        o.numbers("?due_before=2026-04-15").await,
        numbers(&[&o.cartons, &o.chairs])
    );
    assert!(
        o.numbers("?due_before=2026-03-20").await.is_empty(),
        "due before is strict"
    );
    assert_eq!(
        o.numbers(&format!("?customer={}&order_type=rush&status=placed", o.w.globex))
            .await,
        numbers(&[&o.bracket]),
        "filters combine"
    );
}

#[tokio::test]
async fn the_text_search_is_case_insensitive_over_number_title_customer_and_tags() {
    let o = orders().await;
    assert_eq!(o.numbers("?q=bracket").await, numbers(&[&o.bracket]));
    assert_eq!(o.numbers("?q=CHAIRS").await, numbers(&[&o.chairs]));
    assert_eq!(o.numbers("?q=globex").await, numbers(&[&o.cartons, &o.bracket]));
    assert_eq!(o.numbers("?q=spring-season").await, numbers(&[&o.hamlet]));
    let number = o.hamlet["number"].as_str().unwrap();
    assert_eq!(
        o.numbers(&format!("?q={}", number.to_lowercase())).await,
        numbers(&[&o.hamlet])
    );
    assert_eq!(o.numbers("?q=ORD2026").await.len(), 4);
    assert!(o.numbers("?q=submarine").await.is_empty());
    // LIKE wildcards are taken literally.
    assert!(o.numbers("?q=%25").await.is_empty());
    assert!(o.numbers("?q=_").await.is_empty());
    // A customer's search stays within their own orders.
    assert!(o.numbers_as(&o.w.acme_user, "?q=bracket").await.is_empty());
}

#[tokio::test]
async fn the_list_filters_by_health_now() {
    let w = World::new().await;
    let on_track = w.new_order("custom-production").await;
    let at_risk = w.new_order("custom-production").await;
    let (status, _, body) = w
        .app
        .post(
            &format!("/api/v1/orders/{}/follow-ups", id_of(&at_risk)),
            &w.am.token,
            None,
            json!({
                "channel": "email", "direction": "inbound", "counterpart": {"kind": "supplier", "name": "Silk Co"},
                "status": "exception_pending",
                "exception": {"cause": "Organza delayed", "impact": "3 days"},
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut body = w.order_body("custom-production");
    body["order_date"] = json!("2026-01-05");
    body["promised_date"] = json!("2026-03-01");
    let late = w.create_order(body).await;

    let admin = &w.admin.token;
    for (health, expected) in [("on_track", &on_track), ("at_risk", &at_risk), ("late", &late)] {
        let (status, _, page) = w.app.get(&format!("/api/v1/orders?health={health}"), admin, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{health}: {page}");
        assert_eq!(items[0]["number"], expected["number"], "{health}");
        assert_eq!(items[0]["progress"]["health"], health, "the list and the order agree");
    }
    let bad = w.app.get("/api/v1/orders?health=doomed", admin, None).await;
    assert_problem(&bad, StatusCode::BAD_REQUEST, "bad-query");
}

#[tokio::test]
async fn cursor_pagination_walks_every_order_once_newest_first() {
    let w = World::new().await;
    let mut created = Vec::new();
    for i in 0..7 {
        let mut body = w.order_body("standard");
        body["title"] = json!(format!("Order {i}"));
        created.push(w.create_order(body).await["id"].as_str().unwrap().to_string());
    }
    created.reverse();
    let mut seen = Vec::new();
    let mut path = "/api/v1/orders?limit=2".to_string();
    let mut pages = 0;
    loop {
        let (status, _, page) = w.app.get(&path, &w.am.token, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(id_of));
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                assert_eq!(items.len(), 2, "only the last page is short");
                path = format!("/api/v1/orders?limit=2&cursor={cursor}");
            }
            None => break,
        }
        assert!(pages < 10, "the cursor must end");
    }
    assert_eq!(pages, 4);
    assert_eq!(seen, created, "every order once, newest first");
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 7);

    // Exactly a page's worth: no dangling cursor to an empty page.
    let (_, _, page) = w.app.get("/api/v1/orders?limit=7", &w.am.token, None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 7);
    assert!(page["next_cursor"].is_null(), "{page}");
    // Pagination combines with filters.
    let (_, _, page) = w.app.get("/api/v1/orders?limit=3&q=order%201", &w.am.token, None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_limits_cursors_and_unknown_parameters_are_refused_with_400() {
    let w = World::new().await;
    w.new_order("standard").await;
    for (query, kind) in [
        ("?limit=0", "bad-request"),
        ("?limit=201", "bad-request"),
        ("?limit=abc", "bad-query"),
        ("?limit=-1", "bad-query"),
        ("?colour=red", "bad-query"),
        ("?cursor=not-a-cursor", "bad-request"),
        ("?due_before=tomorrow", "bad-query"),
        ("?order_type=huge", "bad-query"),
        ("?owner=bob", "bad-query"),
    ] {
        let reply = w.app.get(&format!("/api/v1/orders{query}"), &w.am.token, None).await;
        assert_problem(&reply, StatusCode::BAD_REQUEST, kind);
    }
    let unknown = w.app.get("/api/v1/orders?colour=red", &w.am.token, None).await;
    assert!(
        unknown.2["detail"].as_str().unwrap().contains("colour"),
        "{}",
        unknown.2
    );
    let limit = w.app.get("/api/v1/orders?limit=0", &w.am.token, None).await;
    assert!(limit.2["detail"].as_str().unwrap().contains("limit"), "{}", limit.2);
    let long = format!("/api/v1/orders?q={}", "a".repeat(201));
    let reply = w.app.get(&long, &w.am.token, None).await;
    assert_problem(&reply, StatusCode::BAD_REQUEST, "bad-request");
    let (status, _, page) = w.app.get("/api/v1/orders?limit=200", &w.am.token, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
}
