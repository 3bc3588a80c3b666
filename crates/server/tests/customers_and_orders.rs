//! Customers and orders over HTTP: creating and reading them, order numbers, planned milestones, the people on
//! an order, and who may see what.

mod common;

use axum::http::StatusCode;
use common::*;
use ordertrail_domain::Role;
use serde_json::json;
use std::collections::BTreeSet;

#[tokio::test]
async fn a_customer_is_created_with_201_and_read_back_with_200() {
    let w = World::new().await;
    let before = w.app.event_count().await;
    let (status, headers, created) = w
        .app
        .post(
            "/api/v1/customers",
            &w.sc.token,
            None,
            json!({
                "name": "  Royal Lyceum Theatre ",
                "language": "en",
                "contacts": [
                    {"name": "Margaret Hale", "email": "margaret@lyceum.example", "title": "Producer"},
                    {"name": "Tom Baker", "phone": "+44 20 7946 0000"},
                ],
                "notes": "Fittings on Tuesdays.",
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        headers.get("content-type").unwrap(),
        "application/json",
        "a success is plain JSON"
    );
    assert_eq!(created["name"], "Royal Lyceum Theatre", "the name is trimmed");
    assert_eq!(created["contacts"][0]["email"], "margaret@lyceum.example");
    assert_eq!(created["contacts"][1]["phone"], "+44 20 7946 0000");
    assert_eq!(created["notes"], "Fittings on Tuesdays.");
    assert_eq!(created["created_at"], T0);
    assert_eq!(
        w.app.event_count().await,
        before + 1,
        "creating a customer is one event"
    );

    let id = id_of(&created);
    let (status, _, read) = w.app.get(&format!("/api/v1/customers/{id}"), &w.ops.token, None).await;
    assert_eq!(status, StatusCode::OK, "staff see every customer: {read}");
    assert_eq!(read, created);
}

#[tokio::test]
async fn a_customer_user_reads_their_own_customer_and_no_other() {
    let w = World::new().await;
    let (status, _, own) = w
        .app
        .get(&format!("/api/v1/customers/{}", w.acme), &w.acme_user.token, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{own}");
    assert_eq!(own["name"], "Acme Theatre");

    let reply = w
        .app
        .get(&format!("/api/v1/customers/{}", w.globex), &w.acme_user.token, None)
        .await;
    assert_problem(&reply, StatusCode::NOT_FOUND, "not-found");
    let missing = w
        .app
        .get(
            &format!("/api/v1/customers/{}", uuid::Uuid::now_v7()),
            &w.am.token,
            None,
        )
        .await;
    assert_problem(&missing, StatusCode::NOT_FOUND, "not-found");
}

#[tokio::test]
async fn only_sales_roles_and_admin_create_customers() {
    let w = World::new().await;
    let before = w.app.event_count().await;
    for who in [&w.ops, &w.finance, &w.acme_user, &w.mfr] {
        let reply = w
            .app
            .post("/api/v1/customers", &who.token, None, json!({"name": "Nope Ltd"}))
            .await;
        assert_problem(&reply, StatusCode::FORBIDDEN, "role-not-allowed");
    }
    assert_eq!(w.app.event_count().await, before);
    for who in [&w.admin, &w.am, &w.sc, &w.sd] {
        let (status, _, body) = w
            .app
            .post("/api/v1/customers", &who.token, None, json!({"name": "Yes Ltd"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
}

#[tokio::test]
async fn an_order_gets_a_dated_daily_number_and_its_milestones_planned_from_the_workflow() {
    let w = World::new().await;
    let before = w.app.event_count().await;
    let mut body = w.order_body("custom-production");
    body["order_date"] = json!("2026-02-27");
    body["promised_date"] = json!("2026-05-29");
    let first = w.create_order(body.clone()).await;
    assert_eq!(first["number"], "ORD20260227001");
    assert_eq!(w.app.event_count().await, before + 1, "creating an order is one event");
    assert_eq!(first["status"], "receipt");
    assert_eq!(first["status_name"], "Receipt");
    assert_eq!(first["workflow"], "custom-production");
    assert_eq!(first["version"], 1);
    assert_eq!(first["customer_id"], w.acme.as_str());
    assert_eq!(first["customer_name"], "Acme Theatre");
    assert_eq!(
        first["customer_contact"]["name"], "Margaret Hale",
        "the customer's first contact by default"
    );
    assert_eq!(first["amount"], json!({"currency": "USD", "amount": "1250.00"}));
    assert_eq!(first["order_date"], "2026-02-27");
    assert_eq!(first["promised_date"], "2026-05-29");
    assert_eq!(first["line_items"][0]["quantity"], 3);

    let planned: Vec<(String, String)> = first["milestones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["key"].as_str().unwrap().to_string(),
                m["planned_on"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("design_approval", "2026-03-13"),
        ("fabric_approval", "2026-03-27"),
        ("first_fitting", "2026-04-03"),
        ("final_fitting", "2026-04-24"),
        ("delivery", "2026-05-29"),
    ];
    assert_eq!(
        planned,
        expected
            .iter()
            .map(|(k, d)| (k.to_string(), d.to_string()))
            .collect::<Vec<_>>(),
        "design approval at order date + 14 days ... delivery on the promised date"
    );
    let approval = milestone(&first, "design_approval");
    assert_eq!(approval["original_planned_on"], "2026-03-13");
    assert_eq!(approval["owner_role"], "design");
    assert_eq!(approval["client_action"], true);
    assert_eq!(approval["phase"], "design");
    assert_eq!(approval["checklist"].as_array().unwrap().len(), 3);
    assert_eq!(approval["checklist"][0]["done"], false);
    assert!(approval["completed_at"].is_null());

    let second = w.create_order(body.clone()).await;
    assert_eq!(second["number"], "ORD20260227002");
    body["order_date"] = json!("2026-02-28");
    let next_day = w.create_order(body).await;
    assert_eq!(next_day["number"], "ORD20260228001", "the sequence is per day");

    let (status, _, read) = w
        .app
        .get(&format!("/api/v1/orders/{}", id_of(&first)), &w.am.token, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["number"], "ORD20260227001");
    assert_eq!(read["milestones"], first["milestones"]);
}

#[tokio::test]
async fn standard_milestones_are_planned_from_the_order_and_promised_dates() {
    let w = World::new().await;
    let order = w.new_order("standard").await;
    let expected = [
        ("order_confirmed", "2026-03-03"),
        ("production_start", "2026-03-05"),
        ("semi_finished_inspection", "2026-03-12"),
        ("warehoused", "2026-03-16"),
        ("shipped", "2026-05-27"),
        ("customer_signed", "2026-06-01"),
        ("after_sales", "2026-06-08"),
    ];
    for (key, date) in expected {
        assert_eq!(milestone(&order, key)["planned_on"], date, "{key}");
    }
}

#[tokio::test]
async fn an_order_without_an_order_date_is_dated_today_in_the_organisations_time_zone() {
    // 23:30 UTC on 1 July is already 2 July in London (summer time).
    let w = World::new().await;
    w.app.set_clock("2026-07-01T23:30:00Z");
    let mut body = w.order_body("custom-production");
    body.as_object_mut().unwrap().remove("order_date");
    body["promised_date"] = json!("2026-10-01");
    let order = w.create_order(body).await;
    assert_eq!(order["order_date"], "2026-07-02");
    assert_eq!(order["number"], "ORD20260702001");
    assert_eq!(milestone(&order, "design_approval")["planned_on"], "2026-07-16");
}

#[tokio::test]
async fn the_people_on_an_order_are_kept_and_the_creator_owns_it_by_default() {
    let w = World::new().await;
    let order = w.new_order("standard").await;
    let people = order["people"].as_array().unwrap();
    assert_eq!(people.len(), 9);
    assert!(people.contains(&json!({"relation": "owner", "user_id": w.am.id()})));
    assert!(people.contains(&json!({"relation": "logistics", "user_id": w.logistics.id()})));
    assert!(people.contains(&json!({"relation": "customer", "user_id": w.acme_user.id()})));

    let mut body = w.order_body("standard");
    body["people"] = json!([{"relation": "production", "user_id": w.ops.id()}]);
    let (status, _, made_by_sam) = w.app.post("/api/v1/orders", &w.sc.token, None, body).await;
    assert_eq!(status, StatusCode::CREATED, "{made_by_sam}");
    assert_eq!(
        made_by_sam["people"],
        json!([
            {"relation": "owner", "user_id": w.sc.id()},
            {"relation": "production", "user_id": w.ops.id()},
        ])
    );
}

#[tokio::test]
async fn people_who_do_not_exist_or_do_not_fit_their_relation_are_refused() {
    let w = World::new().await;
    let before = w.app.event_count().await;
    let mut body = w.order_body("standard");
    body["people"] = json!([
        {"relation": "owner", "user_id": w.am.id()},
        {"relation": "production", "user_id": uuid::Uuid::now_v7()},
        {"relation": "customer", "user_id": w.ops.id()},
        {"relation": "logistics", "user_id": w.acme_user.id()},
    ]);
    let reply = w.app.post("/api/v1/orders", &w.am.token, None, body).await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(
        error_fields(&reply.2),
        ["people[1].user_id", "people[2].user_id", "people[3].user_id"]
    );
    assert_eq!(w.app.event_count().await, before);
}

#[tokio::test]
async fn a_customer_user_sees_only_the_orders_where_they_are_the_customer() {
    let w = World::new().await;
    let acme_order = w.new_order("standard").await;
    let mut body = w.order_body("standard");
    body["customer_id"] = json!(w.globex);
    body["people"] = json!([
        {"relation": "owner", "user_id": w.am.id()},
        {"relation": "customer", "user_id": w.globex_user.id()},
    ]);
    let globex_order = w.create_order(body).await;

    let (status, _, seen) = w
        .app
        .get(
            &format!("/api/v1/orders/{}", id_of(&acme_order)),
            &w.acme_user.token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert_eq!(seen["number"], acme_order["number"]);
    assert_eq!(seen["amount"]["amount"], "1250.00", "the customer sees what they pay");
    assert!(
        seen.get("people").is_none(),
        "the customer does not see the internal people: {seen}"
    );

    let other = w
        .app
        .get(
            &format!("/api/v1/orders/{}", id_of(&globex_order)),
            &w.acme_user.token,
            None,
        )
        .await;
    assert_problem(&other, StatusCode::NOT_FOUND, "not-found");

    let (status, _, page) = w.app.get("/api/v1/orders", &w.acme_user.token, None).await;
    assert_eq!(status, StatusCode::OK);
    let numbers: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["number"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, [acme_order["number"].as_str().unwrap()]);
    let (_, _, page) = w.app.get("/api/v1/orders", &w.globex_user.token, None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["number"], globex_order["number"]);
}

#[tokio::test]
async fn staff_who_are_not_on_an_order_get_404_unless_their_role_oversees_every_order() {
    let w = World::new().await;
    let order = w.new_order("standard").await;
    let path = format!("/api/v1/orders/{}", id_of(&order));

    // Otto works in operations but is not named on the order.
    let hidden = w.app.get(&path, &w.outsider.token, None).await;
    assert_problem(&hidden, StatusCode::NOT_FOUND, "not-found");
    assert_eq!(
        hidden.2["detail"], "no such order",
        "the answer does not reveal that the order exists"
    );
    let (_, _, page) = w.app.get("/api/v1/orders", &w.outsider.token, None).await;
    assert_eq!(page["items"], json!([]));
    for sub in ["milestones", "events", "follow-ups"] {
        let reply = w.app.get(&format!("{path}/{sub}"), &w.outsider.token, None).await;
        assert_problem(&reply, StatusCode::NOT_FOUND, "not-found");
    }

    for who in [&w.admin, &w.sd, &w.finance] {
        let (status, _, seen) = w.app.get(&path, &who.token, None).await;
        assert_eq!(status, StatusCode::OK, "{}: {seen}", who.user.email);
        let (_, _, page) = w.app.get("/api/v1/orders", &who.token, None).await;
        assert_eq!(page["items"].as_array().unwrap().len(), 1);
    }
    // Omar (operations, named as production) sees it.
    let (status, _, _) = w.app.get(&path, &w.ops.token, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_staff_user_made_milestone_owner_can_see_the_order() {
    let w = World::new().await;
    let mut body = w.order_body("standard");
    body["milestone_owners"] = json!({"warehoused": w.outsider.id()});
    let order = w.create_order(body).await;
    assert_eq!(milestone(&order, "warehoused")["owner_id"], w.outsider.id().as_str());
    let (status, _, _) = w
        .app
        .get(&format!("/api/v1/orders/{}", id_of(&order)), &w.outsider.token, None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_amount_and_customer_contact_are_hidden_from_the_manufacturer() {
    let w = World::new().await;
    let order = w.new_order("make-to-order").await;
    let path = format!("/api/v1/orders/{}", id_of(&order));
    let (status, _, seen) = w.app.get(&path, &w.mfr.token, None).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert!(seen.get("amount").is_none(), "amount shown: {seen}");
    assert!(seen.get("customer_contact").is_none(), "contact shown: {seen}");
    assert_eq!(seen["title"], order["title"]);
    let (_, _, as_ops) = w.app.get(&path, &w.ops.token, None).await;
    assert!(as_ops.get("amount").is_none(), "amount shown to operations");
    for who in [&w.am, &w.finance, &w.sd, &w.admin] {
        let (_, _, seen) = w.app.get(&path, &who.token, None).await;
        assert_eq!(seen["amount"]["amount"], "1250.00", "{}", who.user.email);
    }
    // The same person, acting in another role, sees what that role sees.
    let (_, _, as_manufacturer) = w.app.get(&path, &w.multi.token, Some("manufacturer")).await;
    assert!(as_manufacturer.get("amount").is_none());
    let (_, _, as_coordinator) = w.app.get(&path, &w.multi.token, Some("sales_coordinator")).await;
    assert_eq!(as_coordinator["amount"]["amount"], "1250.00");
}

#[tokio::test]
async fn only_the_workflows_create_roles_may_create_its_orders() {
    let w = World::new().await;
    let before = w.app.event_count().await;
    for (who, workflow) in [
        (&w.ops, "standard"),
        (&w.ip, "standard"),
        (&w.acme_user, "standard"),
        (&w.finance, "custom-production"),
        (&w.mfr, "make-to-order"),
    ] {
        let reply = w
            .app
            .post("/api/v1/orders", &who.token, None, w.order_body(workflow))
            .await;
        assert_problem(&reply, StatusCode::FORBIDDEN, "role-not-allowed");
    }
    assert_eq!(w.app.event_count().await, before);
    let (status, _, order) = w
        .app
        .post("/api/v1/orders", &w.ip.token, None, w.order_body("make-to-order"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
}

#[tokio::test]
async fn an_unknown_workflow_or_customer_is_refused_with_the_field_named() {
    let w = World::new().await;
    let before = w.app.event_count().await;
    let mut body = w.order_body("bespoke");
    body["customer_id"] = json!(uuid::Uuid::now_v7());
    let reply = w.app.post("/api/v1/orders", &w.am.token, None, body).await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(error_fields(&reply.2), ["workflow"]);
    let mut body = w.order_body("standard");
    body["customer_id"] = json!(uuid::Uuid::now_v7());
    let reply = w.app.post("/api/v1/orders", &w.am.token, None, body).await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(error_fields(&reply.2), ["customer_id"]);
    let mut body = w.order_body("standard");
    body["promised_date"] = json!("2026-03-01");
    body["amount"] = json!({"currency": "USD", "amount": "0"});
    let reply = w.app.post("/api/v1/orders", &w.am.token, None, body).await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(error_fields(&reply.2), ["promised_date", "amount"]);
    assert_eq!(w.app.event_count().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_orders_created_at_once_on_one_day_get_thirty_distinct_numbers() {
    let w = World::new().await;
    let before = w.app.event_count().await;
    let mut body = w.order_body("standard");
    body["order_date"] = json!("2026-02-27");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..30 {
        let router = w.app.router.clone();
        let mut body = body.clone();
        body["title"] = json!(format!("Concurrent order {i}"));
        let token = w.am.token.clone();
        tasks.spawn(async move {
            let reply = tower::ServiceExt::oneshot(
                router,
                request(
                    axum::http::Method::POST,
                    "/api/v1/orders",
                    Some(&token),
                    None,
                    Some(&body),
                ),
            )
            .await
            .unwrap();
            read(reply).await
        });
    }
    let mut numbers = BTreeSet::new();
    while let Some(done) = tasks.join_next().await {
        let (status, _, order) = done.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{order}");
        assert!(
            numbers.insert(order["number"].as_str().unwrap().to_string()),
            "duplicate number {}",
            order["number"]
        );
    }
    let expected: BTreeSet<String> = (1..=30).map(|n| format!("ORD20260227{n:03}")).collect();
    assert_eq!(numbers, expected);
    assert_eq!(w.app.event_count().await, before + 30);
    assert!(w.app.state.store.verify().await.unwrap().broken.is_empty());
}

#[tokio::test]
async fn a_user_with_several_roles_must_choose_one_and_may_only_choose_a_role_they_hold() {
    let w = World::new().await;
    let ambiguous = w.app.get("/api/v1/me", &w.multi.token, None).await;
    assert_problem(&ambiguous, StatusCode::BAD_REQUEST, "bad-request");
    assert!(
        ambiguous.2["detail"].as_str().unwrap().contains("X-Ordertrail-Role"),
        "{}",
        ambiguous.2
    );
    let (status, _, me) = w.app.get("/api/v1/me", &w.multi.token, Some("logistics")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["acting_role"], "logistics");
    assert_eq!(me["user"]["email"], "max@test.dev");
    let not_held = w.app.get("/api/v1/me", &w.multi.token, Some("admin")).await;
    assert_problem(&not_held, StatusCode::FORBIDDEN, "forbidden");
    let unknown = w.app.get("/api/v1/me", &w.multi.token, Some("chief")).await;
    assert_problem(&unknown, StatusCode::BAD_REQUEST, "bad-request");
    // A single-role user may name their role, or leave it out.
    let (status, _, me) = w
        .app
        .get("/api/v1/me", &w.ops.token, Some(Role::Operations.as_str()))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["acting_role"], "operations");
}

#[tokio::test]
async fn a_customer_user_of_another_customer_cannot_be_named_as_the_customer_of_an_order() {
    // Wang belongs to Globex. An order for Acme that names him as its customer would show him Acme's order,
    // its amount and its plan.
    let w = World::new().await;
    let before = w.app.event_count().await;
    let mut body = w.order_body("standard");
    body["people"] = json!([
        {"relation": "owner", "user_id": w.am.id()},
        {"relation": "customer", "user_id": w.globex_user.id()},
    ]);
    let (status, headers, reply) = w.app.post("/api/v1/orders", &w.am.token, None, body).await;
    if status == StatusCode::CREATED {
        let (seen, _, _) = w
            .app
            .get(&format!("/api/v1/orders/{}", id_of(&reply)), &w.globex_user.token, None)
            .await;
        panic!(
            "the order was created for Acme with Globex's user as its customer; Globex's user now gets {seen} for it"
        );
    }
    assert_problem(
        &(status, headers, reply.clone()),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation",
    );
    assert_eq!(error_fields(&reply), ["people[1].user_id"]);
    assert_eq!(w.app.event_count().await, before);
}

#[tokio::test]
async fn the_daily_sequence_widens_past_999() {
    let w = World::new().await;
    // 998 orders were numbered on 27 February already.
    w.app
        .tamper(
            "INSERT INTO order_number_counters (scope, last) VALUES ('ORD20260227#', 998)",
            &[],
        )
        .await;
    let mut body = w.order_body("standard");
    body["order_date"] = json!("2026-02-27");
    assert_eq!(w.create_order(body.clone()).await["number"], "ORD20260227999");
    assert_eq!(w.create_order(body.clone()).await["number"], "ORD202602271000");
    assert_eq!(w.create_order(body).await["number"], "ORD202602271001");
}

#[tokio::test]
async fn an_organisation_may_configure_its_own_order_number_pattern() {
    let app =
        TestApp::with_config(|config| config.organisation.order_number_pattern = "SO-{yy}{mm}-{seq:5}".into()).await;
    let w = World::on(app).await;
    assert_eq!(w.new_order("standard").await["number"], "SO-2603-00001");
    let mut body = w.order_body("make-to-order");
    body["order_date"] = json!("2026-03-31");
    assert_eq!(
        w.create_order(body).await["number"],
        "SO-2603-00002",
        "this pattern counts per month"
    );
}

#[tokio::test]
async fn a_customer_user_cannot_be_made_the_owner_of_a_milestone_when_the_order_is_created() {
    // Reassigning a milestone to a customer user is refused ("no such user": owners must be staff); creating
    // the order with that same owner should be refused the same way.
    let w = World::new().await;
    let before = w.app.event_count().await;
    let mut body = w.order_body("standard");
    body["milestone_owners"] = json!({"warehoused": w.acme_user.id()});
    let (status, _, reply) = w.app.post("/api/v1/orders", &w.am.token, None, body).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "warehoused was given the customer user as owner: {}",
        reply["milestones"][3]["owner_id"]
    );
    assert_eq!(error_fields(&reply), ["milestone_owners.warehoused"]);
    assert_eq!(w.app.event_count().await, before);
}
