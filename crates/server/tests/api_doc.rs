//! The OpenAPI document, the health check and the workflows endpoint.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::Value;

#[tokio::test]
async fn the_openapi_document_is_3_1_and_describes_every_path_of_the_api_with_its_methods() {
    let app = TestApp::new().await;
    let (status, headers, doc) = app
        .send(request(Method::GET, "/api/v1/openapi.json", None, None, None))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers.get("content-type").unwrap(), "application/json");
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "Ordertrail API");
    let expected = [
        ("/api/v1/health", vec!["get"]),
        ("/api/v1/workflows", vec!["get"]),
        ("/api/v1/customers", vec!["post"]),
        ("/api/v1/customers/{id}", vec!["get"]),
        ("/api/v1/orders", vec!["get", "post"]),
        ("/api/v1/orders/{id}", vec!["get"]),
        ("/api/v1/orders/{id}/transitions", vec!["post"]),
        ("/api/v1/orders/{id}/milestones", vec!["get"]),
        ("/api/v1/orders/{id}/milestones/{mid}", vec!["patch"]),
        ("/api/v1/orders/{id}/milestones/{mid}/complete", vec!["post"]),
        ("/api/v1/orders/{id}/follow-ups", vec!["get", "post"]),
        ("/api/v1/orders/{id}/events", vec!["get"]),
    ];
    let paths = doc["paths"].as_object().expect("paths");
    for (path, methods) in &expected {
        let item = paths.get(*path).unwrap_or_else(|| panic!("{path} is not documented"));
        for method in methods {
            let operation = &item[*method];
            assert!(operation.is_object(), "{method} {path} is not documented");
            assert!(
                operation["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path} documents no response"
            );
        }
    }
    // The documented error responses are problem+json.
    let transition = &paths["/api/v1/orders/{id}/transitions"]["post"];
    for code in ["200", "403", "409", "422"] {
        assert!(transition["responses"][code].is_object(), "transition response {code}");
    }
    assert!(
        transition["responses"]["422"]["content"]["application/problem+json"].is_object(),
        "{}",
        transition["responses"]["422"]
    );
    assert!(transition["requestBody"].is_object());
    let created = &paths["/api/v1/orders"]["post"]["responses"]["201"];
    assert!(created.is_object(), "order creation documents 201");
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for schema in [
        "NewOrder",
        "TransitionRequest",
        "Problem",
        "OrderView",
        "NewFollowUp",
        "MilestoneChange",
    ] {
        assert!(schemas.contains_key(schema), "schema {schema} is missing");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn the_health_check_answers_without_a_token() {
    let app = TestApp::new().await;
    let (status, _, body) = app.send(request(Method::GET, "/api/v1/health", None, None, None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
    assert!(body["version"].as_str().is_some_and(|v| !v.is_empty()));
}

#[tokio::test]
async fn the_workflows_endpoint_returns_the_three_presets() {
    let w = World::new().await;
    let (status, _, workflows) = w.app.get("/api/v1/workflows", &w.ops.token, None).await;
    assert_eq!(status, StatusCode::OK, "{workflows}");
    let list = workflows.as_array().unwrap();
    let mut ids: Vec<&str> = list.iter().map(|wf| wf["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, ["custom-production", "make-to-order", "standard"]);
    let find = |id: &str| -> &Value { list.iter().find(|wf| wf["id"] == id).unwrap() };

    let custom = find("custom-production");
    assert_eq!(custom["initial"], "receipt");
    let phases: Vec<&str> = custom["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["Design", "Pattern", "Construction", "Fitting", "Final"]);
    let approval = custom["milestones"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == "design_approval")
        .unwrap();
    assert_eq!(approval["due"], serde_json::json!({"from": "order_date", "days": 14}));

    let mto = find("make-to-order");
    let statuses: Vec<&str> = mto["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "placed",
            "confirmed",
            "in_production",
            "shipping",
            "completed",
            "cancelled"
        ]
    );
    let ship = mto["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["to"] == "shipping")
        .unwrap();
    assert_eq!(ship["roles"], serde_json::json!(["manufacturer"]));
    let guard_kinds: Vec<&str> = ship["guards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["kind"].as_str().unwrap())
        .collect();
    assert_eq!(guard_kinds, ["checklist_done", "field", "confirmed"]);
    assert_eq!(ship["guards"][1]["field"], "tracking_url");

    let standard = find("standard");
    assert_eq!(standard["initial"], "pending_confirmation");
    let cancel = standard["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["to"] == "cancelled")
        .unwrap();
    assert_eq!(
        cancel["from"],
        serde_json::json!(["pending_confirmation", "in_production", "shipped", "delivered"])
    );

    let reply = w
        .app
        .send(request(Method::GET, "/api/v1/workflows", None, None, None))
        .await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[test]
fn every_operation_has_a_unique_id_and_every_response_a_description() {
    // What OpenAPI 3.1 requires and generators leave out easily (checked once with openapi-spec-validator).
    let doc = serde_json::to_value(ordertrail_server::openapi()).unwrap();
    let mut ids = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            ids.push(id.to_string());
            for (status, response) in op["responses"].as_object().unwrap() {
                let description = response["description"].as_str().unwrap_or_default();
                assert!(!description.is_empty(), "{method} {path} {status} has no description");
            }
        }
    }
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "operation ids repeat: {ids:?}");
}
