//! Bad input of every kind: each answer is `application/problem+json` with a clear detail, and nothing changes
//! (the event count does not move).

mod common;

use axum::http::{Method, StatusCode, header};
use common::*;
use serde_json::{Value, json};

struct Case {
    w: World,
    order: Value,
    id: String,
}

async fn case() -> Case {
    let w = World::new().await;
    let order = w.new_order("make-to-order").await;
    let id = id_of(&order);
    Case { w, order, id }
}

impl Case {
    /// POSTs raw bytes as Amy to `path`, checks the problem, that its detail mentions `detail_has`, and that
    /// nothing was written.
    async fn refuses_raw(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        status: StatusCode,
        kind: &str,
        detail_has: &str,
    ) -> Value {
        let before = self.w.app.event_count().await;
        let reply = self
            .w
            .app
            .send(raw_request(Method::POST, path, Some(&self.w.am.token), headers, body))
            .await;
        self.checked(reply, before, status, kind, detail_has).await
    }

    async fn refuses_order(&self, body: Value, status: StatusCode, kind: &str, detail_has: &str) -> Value {
        self.refuses_raw(
            "/api/v1/orders",
            &[],
            body.to_string().into_bytes(),
            status,
            kind,
            detail_has,
        )
        .await
    }

    async fn checked(&self, reply: Reply, before: i64, status: StatusCode, kind: &str, detail_has: &str) -> Value {
        assert_problem(&reply, status, kind);
        let detail = reply.2["detail"].as_str().unwrap();
        assert!(
            detail.to_lowercase().contains(&detail_has.to_lowercase()),
            "detail should mention {detail_has:?}: {detail}"
        );
        assert_eq!(
            self.w.app.event_count().await,
            before,
            "nothing may change: {}",
            reply.2
        );
        reply.2
    }

    async fn transition_refused(
        &self,
        who: &Person,
        role: Option<&str>,
        body: Value,
        status: StatusCode,
        kind: &str,
        detail_has: &str,
    ) -> Value {
        let before = self.w.app.event_count().await;
        let reply = self.w.transition(&self.id, who, role, body).await;
        self.checked(reply, before, status, kind, detail_has).await
    }
}

#[tokio::test]
async fn malformed_json_is_400() {
    let c = case().await;
    c.refuses_raw(
        "/api/v1/orders",
        &[],
        br#"{"workflow": "standard", "title": "#.to_vec(),
        StatusCode::BAD_REQUEST,
        "malformed-json",
        "EOF",
    )
    .await;
    c.refuses_raw(
        &format!("/api/v1/orders/{}/transitions", c.id),
        &[],
        b"to=confirmed".to_vec(),
        StatusCode::BAD_REQUEST,
        "malformed-json",
        "as JSON",
    )
    .await;
    c.refuses_raw(
        "/api/v1/customers",
        &[],
        Vec::new(),
        StatusCode::BAD_REQUEST,
        "malformed-json",
        "EOF",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_field_is_422_and_named() {
    let c = case().await;
    let mut body = c.w.order_body("standard");
    body["colour"] = json!("red");
    c.refuses_order(body, StatusCode::UNPROCESSABLE_ENTITY, "invalid-body", "colour")
        .await;
    c.transition_refused(
        &c.w.ip,
        None,
        json!({"to": "confirmed", "confirm": true, "force": true}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-body",
        "force",
    )
    .await;
}

#[tokio::test]
async fn a_wrong_type_is_422_and_names_the_field() {
    let c = case().await;
    let mut body = c.w.order_body("standard");
    body["title"] = json!(["Chairs"]);
    c.refuses_order(body, StatusCode::UNPROCESSABLE_ENTITY, "invalid-body", "title")
        .await;
    let mut body = c.w.order_body("standard");
    body["order_type"] = json!("huge");
    c.refuses_order(body, StatusCode::UNPROCESSABLE_ENTITY, "invalid-body", "order_type")
        .await;
    let mut body = c.w.order_body("standard");
    body["promised_date"] = json!("next friday");
    c.refuses_order(body, StatusCode::UNPROCESSABLE_ENTITY, "invalid-body", "promised_date")
        .await;
    let mut body = c.w.order_body("standard");
    body["amount"] = json!({"currency": "USD", "amount": 12.5});
    c.refuses_order(body, StatusCode::UNPROCESSABLE_ENTITY, "invalid-body", "amount")
        .await;
    let mut body = c.w.order_body("standard");
    body["amount"] = json!({"currency": "USD", "amount": "12.345"});
    c.refuses_order(body, StatusCode::UNPROCESSABLE_ENTITY, "invalid-body", "decimals")
        .await;
    c.transition_refused(
        &c.w.ip,
        None,
        json!({"to": "confirmed", "confirm": "yes"}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-body",
        "confirm",
    )
    .await;
}

#[tokio::test]
async fn a_number_where_an_enum_is_expected_is_a_wrong_type_422_not_malformed_json() {
    // The body is valid JSON of the wrong shape. serde_json reports a non-string where a unit enum is
    // expected as a syntax error ("expected value"), and extract.rs maps every syntax error to 400.
    let c = case().await;
    let mut body = c.w.order_body("standard");
    body["order_type"] = json!(5);
    c.refuses_order(body, StatusCode::UNPROCESSABLE_ENTITY, "invalid-body", "order_type")
        .await;
    let before = c.w.app.event_count().await;
    let reply =
        c.w.app
            .post(
                &format!("/api/v1/orders/{}/follow-ups", c.id),
                &c.w.am.token,
                None,
                json!({"channel": true, "direction": "outbound", "counterpart": {"kind": "customer"},
                   "status": "done", "summary": "Called"}),
            )
            .await;
    c.checked(
        reply,
        before,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-body",
        "channel",
    )
    .await;
}

#[tokio::test]
async fn a_missing_required_field_is_422_and_named() {
    let c = case().await;
    for field in ["title", "customer_id", "workflow", "promised_date", "amount"] {
        let mut body = c.w.order_body("standard");
        body.as_object_mut().unwrap().remove(field);
        c.refuses_order(body, StatusCode::UNPROCESSABLE_ENTITY, "invalid-body", field)
            .await;
    }
    c.transition_refused(
        &c.w.ip,
        None,
        json!({"confirm": true}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-body",
        "missing field `to`",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_status_is_422() {
    let c = case().await;
    c.transition_refused(
        &c.w.ip,
        None,
        json!({"to": "teleported", "confirm": true}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown-status",
        "teleported",
    )
    .await;
}

#[tokio::test]
async fn a_transition_not_allowed_from_the_current_status_is_409() {
    let c = case().await;
    c.transition_refused(
        &c.w.mfr,
        None,
        json!({"to": "shipping", "confirm": true, "fields": {"tracking_url": "https://t.example.com/1"}}),
        StatusCode::CONFLICT,
        "transition-not-allowed",
        "from 'placed' to 'shipping'",
    )
    .await;
}

#[tokio::test]
async fn a_role_not_allowed_is_403_and_names_the_role() {
    let c = case().await;
    c.transition_refused(
        &c.w.am,
        None,
        json!({"to": "confirmed", "confirm": true}),
        StatusCode::FORBIDDEN,
        "role-not-allowed",
        "account_manager",
    )
    .await;
}

#[tokio::test]
async fn a_bad_tracking_url_is_422_and_names_the_guard() {
    let c = case().await;
    c.w.advance(&c.id, "in_production").await;
    let production = milestone(&c.w.order(&c.id).await, "production").clone();
    let ticks: serde_json::Map<String, Value> = checklist_items(&production)
        .into_iter()
        .map(|item| (item, json!(true)))
        .collect();
    let (status, _, _) =
        c.w.app
            .patch(
                &format!(
                    "/api/v1/orders/{}/milestones/{}",
                    c.id,
                    production["id"].as_str().unwrap()
                ),
                &c.w.mfr.token,
                None,
                json!({"checklist": ticks}),
            )
            .await;
    assert_eq!(status, StatusCode::OK);
    let body = c
        .transition_refused(
            &c.w.mfr,
            None,
            json!({"to": "shipping", "confirm": true, "fields": {"tracking_url": "ftp://files.example.com/track"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "guard-failed",
            "tracking_url",
        )
        .await;
    assert_eq!(body["guards"][0]["guard"], "field:tracking_url");
    assert!(
        body["guards"][0]["missing"][0]
            .as_str()
            .unwrap()
            .contains("http or https"),
        "{body}"
    );
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_401() {
    let c = case().await;
    let before = c.w.app.event_count().await;
    let path = format!("/api/v1/orders/{}", c.id);
    let no_token = c.w.app.send(request(Method::GET, &path, None, None, None)).await;
    assert_problem(&no_token, StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(no_token.2["detail"].as_str().unwrap().contains("Bearer"));
    assert_eq!(no_token.1.get(header::WWW_AUTHENTICATE).unwrap(), "Bearer");
    let wrong =
        c.w.app
            .send(request(Method::GET, &path, Some("ot_not-a-real-token"), None, None))
            .await;
    assert_problem(&wrong, StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(wrong.2["detail"].as_str().unwrap().contains("not valid"));
    let basic =
        c.w.app
            .send(raw_request(
                Method::GET,
                &path,
                None,
                &[("authorization", "Basic YTpi")],
                Vec::new(),
            ))
            .await;
    assert_problem(&basic, StatusCode::UNAUTHORIZED, "unauthorized");
    // Writes without a valid token change nothing either.
    let post =
        c.w.app
            .send(request(
                Method::POST,
                "/api/v1/orders",
                None,
                None,
                Some(&c.w.order_body("standard")),
            ))
            .await;
    assert_problem(&post, StatusCode::UNAUTHORIZED, "unauthorized");
    let post =
        c.w.app
            .send(request(
                Method::POST,
                &format!("{path}/transitions"),
                Some("ot_forged"),
                None,
                Some(&json!({"to": "confirmed", "confirm": true})),
            ))
            .await;
    assert_problem(&post, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(c.w.app.event_count().await, before);
}

#[tokio::test]
async fn acting_in_a_role_the_user_does_not_hold_is_403() {
    let c = case().await;
    let body = c
        .transition_refused(
            &c.w.mfr,
            Some("ip_owner"),
            json!({"to": "confirmed", "confirm": true}),
            StatusCode::FORBIDDEN,
            "forbidden",
            "ip_owner",
        )
        .await;
    assert!(body["detail"].as_str().unwrap().contains("do not hold"), "{body}");
    let before = c.w.app.event_count().await;
    let reply =
        c.w.app
            .post(
                "/api/v1/orders",
                &c.w.multi.token,
                Some("account_manager"),
                c.w.order_body("standard"),
            )
            .await;
    c.checked(reply, before, StatusCode::FORBIDDEN, "forbidden", "account_manager")
        .await;
}

#[tokio::test]
async fn a_role_header_that_is_not_text_is_400() {
    let c = case().await;
    let before = c.w.app.event_count().await;
    let request = axum::http::Request::builder()
        .method(Method::GET)
        .uri("/api/v1/me")
        .header(header::AUTHORIZATION, format!("Bearer {}", c.w.multi.token))
        .header(
            "x-ordertrail-role",
            axum::http::HeaderValue::from_bytes(b"log\xffistics").unwrap(),
        )
        .body(axum::body::Body::empty())
        .unwrap();
    let reply = c.w.app.send(request).await;
    c.checked(
        reply,
        before,
        StatusCode::BAD_REQUEST,
        "bad-request",
        "X-Ordertrail-Role",
    )
    .await;
}

#[tokio::test]
async fn another_customers_order_is_404_as_if_it_did_not_exist() {
    let c = case().await;
    let before = c.w.app.event_count().await;
    let path = format!("/api/v1/orders/{}", c.id);
    let get = c.w.app.get(&path, &c.w.globex_user.token, None).await;
    c.checked(get, before, StatusCode::NOT_FOUND, "not-found", "no such order")
        .await;
    let nonexistent =
        c.w.app
            .get(
                &format!("/api/v1/orders/{}", uuid::Uuid::now_v7()),
                &c.w.globex_user.token,
                None,
            )
            .await;
    assert_eq!(
        nonexistent.2["detail"], "no such order",
        "the same answer as for an order that does not exist"
    );
    let transition =
        c.w.app
            .post(
                &format!("{path}/transitions"),
                &c.w.globex_user.token,
                None,
                json!({"to": "completed", "confirm": true}),
            )
            .await;
    c.checked(transition, before, StatusCode::NOT_FOUND, "not-found", "order")
        .await;
    let milestones =
        c.w.app
            .get(&format!("{path}/milestones"), &c.w.globex_user.token, None)
            .await;
    c.checked(milestones, before, StatusCode::NOT_FOUND, "not-found", "order")
        .await;
    let receipt = milestone(&c.order, "receipt")["id"].as_str().unwrap().to_string();
    let complete =
        c.w.app
            .post(
                &format!("{path}/milestones/{receipt}/complete"),
                &c.w.globex_user.token,
                None,
                json!({}),
            )
            .await;
    c.checked(complete, before, StatusCode::NOT_FOUND, "not-found", "order")
        .await;
}

#[tokio::test]
async fn a_body_over_one_mebibyte_is_413() {
    let c = case().await;
    let mut body = c.w.order_body("standard");
    body["special_requirements"] = json!("x".repeat((1 << 20) + 10));
    let bytes = body.to_string().into_bytes();
    c.refuses_raw(
        "/api/v1/orders",
        &[],
        bytes.clone(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
        "1 MiB",
    )
    .await;
    c.refuses_raw(
        "/api/v1/orders",
        &[("idempotency-key", "big-1")],
        bytes,
        StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
        "1 MiB",
    )
    .await;
    // Just under the limit is read, and then judged on its content.
    let mut body = c.w.order_body("standard");
    body["special_requirements"] = json!("x".repeat((1 << 20) - 2048));
    c.refuses_order(
        body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation",
        "special_requirements",
    )
    .await;
}

#[tokio::test]
async fn a_body_with_bytes_that_are_not_utf8_is_400() {
    let c = case().await;
    let mut bytes = br#"{"name": "Caf"#.to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe, 0xe9]);
    bytes.extend_from_slice(br#"", "contacts": []}"#);
    c.refuses_raw(
        "/api/v1/customers",
        &[],
        bytes.clone(),
        StatusCode::BAD_REQUEST,
        "malformed-json",
        "invalid unicode",
    )
    .await;
    c.refuses_raw(
        "/api/v1/customers",
        &[("idempotency-key", "utf8-1")],
        bytes,
        StatusCode::BAD_REQUEST,
        "malformed-json",
        "invalid unicode",
    )
    .await;
}

#[tokio::test]
async fn a_ten_thousand_character_title_or_name_is_422_naming_the_field() {
    let c = case().await;
    let long = "A".repeat(10_000);
    let mut body = c.w.order_body("standard");
    body["title"] = json!(long);
    let problem = c
        .refuses_order(body, StatusCode::UNPROCESSABLE_ENTITY, "validation", "title")
        .await;
    assert_eq!(error_fields(&problem), ["title"]);
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("at most 200"),
        "{problem}"
    );

    let before = c.w.app.event_count().await;
    let reply =
        c.w.app
            .post("/api/v1/customers", &c.w.am.token, None, json!({"name": long}))
            .await;
    let problem = c
        .checked(reply, before, StatusCode::UNPROCESSABLE_ENTITY, "validation", "name")
        .await;
    assert_eq!(error_fields(&problem), ["name"]);
    let reply =
        c.w.app
            .post(
                "/api/v1/customers",
                &c.w.am.token,
                None,
                json!({"name": "Ok", "contacts": [{"name": long}]}),
            )
            .await;
    let problem = c
        .checked(
            reply,
            before,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "contacts[0].name",
        )
        .await;
    assert_eq!(error_fields(&problem), ["contacts[0].name"]);
    // Empty and control characters are refused too.
    let reply =
        c.w.app
            .post("/api/v1/customers", &c.w.am.token, None, json!({"name": "  "}))
            .await;
    c.checked(reply, before, StatusCode::UNPROCESSABLE_ENTITY, "validation", "name")
        .await;
    let reply =
        c.w.app
            .post("/api/v1/customers", &c.w.am.token, None, json!({"name": "Bell\u{7}"}))
            .await;
    c.checked(reply, before, StatusCode::UNPROCESSABLE_ENTITY, "validation", "control")
        .await;
}

#[tokio::test]
async fn a_path_id_that_is_not_a_uuid_is_404() {
    let c = case().await;
    for path in [
        "/api/v1/orders/ORD20260302001".to_string(),
        "/api/v1/customers/acme".to_string(),
        "/api/v1/orders/123/milestones".to_string(),
    ] {
        let before = c.w.app.event_count().await;
        let reply = c.w.app.get(&path, &c.w.admin.token, None).await;
        c.checked(
            reply,
            before,
            StatusCode::NOT_FOUND,
            "not-found",
            "nothing is at this path",
        )
        .await;
    }
    let before = c.w.app.event_count().await;
    let reply =
        c.w.app
            .patch(
                &format!("/api/v1/orders/{}/milestones/first", c.id),
                &c.w.am.token,
                None,
                json!({"planned_on": "2026-04-01", "reason": "x"}),
            )
            .await;
    c.checked(
        reply,
        before,
        StatusCode::NOT_FOUND,
        "not-found",
        "nothing is at this path",
    )
    .await;
    let before = c.w.app.event_count().await;
    let reply =
        c.w.app
            .post(
                "/api/v1/orders/not-a-uuid/transitions",
                &c.w.am.token,
                None,
                json!({"to": "confirmed"}),
            )
            .await;
    c.checked(
        reply,
        before,
        StatusCode::NOT_FOUND,
        "not-found",
        "nothing is at this path",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_route_is_a_404_problem_and_a_wrong_method_a_405_problem() {
    let c = case().await;
    let before = c.w.app.event_count().await;
    for path in ["/api/v1/nothing-here", "/api/v2/orders", "/"] {
        let reply = c.w.app.get(path, &c.w.am.token, None).await;
        c.checked(reply, before, StatusCode::NOT_FOUND, "not-found", "route")
            .await;
    }
    let unauthenticated =
        c.w.app
            .send(request(Method::GET, "/api/v1/nowhere", None, None, None))
            .await;
    assert_problem(&unauthenticated, StatusCode::NOT_FOUND, "not-found");
    let reply =
        c.w.app
            .send(request(
                Method::DELETE,
                &format!("/api/v1/orders/{}", c.id),
                Some(&c.w.admin.token),
                None,
                None,
            ))
            .await;
    c.checked(
        reply,
        before,
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "method",
    )
    .await;
}

#[tokio::test]
async fn a_body_that_is_not_declared_as_json_is_415() {
    let c = case().await;
    let before = c.w.app.event_count().await;
    let request = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/api/v1/customers")
        .header(header::AUTHORIZATION, format!("Bearer {}", c.w.am.token))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(axum::body::Body::from(r#"{"name": "Plain Ltd"}"#))
        .unwrap();
    let reply = c.w.app.send(request).await;
    c.checked(
        reply,
        before,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
        "Content-Type",
    )
    .await;
}
