//! Derived fields of the order record (R12) over HTTP, at the time asked: phase, % complete, next milestone,
//! health (on_track, at_risk, late) and blockers, moving the manual clock past milestone and promised dates.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::json;

#[tokio::test]
async fn phase_percent_complete_and_next_milestone_follow_the_order() {
    let w = World::new().await;
    let order = w.new_order("custom-production").await;
    let id = id_of(&order);
    let progress = &order["progress"];
    assert_eq!(progress["percent_complete"], 0);
    assert_eq!(
        progress["phase"],
        json!({"id": "design", "name": "Design"}),
        "at receipt, the phase of the next milestone"
    );
    assert_eq!(progress["next_milestone"]["key"], "design_approval");
    assert_eq!(progress["next_milestone"]["name"], "Design approval");
    assert_eq!(progress["next_milestone"]["planned_on"], "2026-03-16");
    assert_eq!(progress["next_milestone"]["days_left"], 14);
    assert_eq!(progress["health"], "on_track");

    w.advance(&id, "design").await;
    let order = w.order(&id).await;
    assert_eq!(order["status"], "design");
    assert_eq!(order["progress"]["phase"], json!({"id": "design", "name": "Design"}));

    w.complete(&id, "design_approval", &w.am, None).await;
    let order = w.order(&id).await;
    assert_eq!(order["progress"]["percent_complete"], 20);
    assert_eq!(order["progress"]["next_milestone"]["key"], "fabric_approval");
    assert_eq!(order["progress"]["next_milestone"]["days_left"], 28);

    w.advance(&id, "pattern").await;
    let order = w.order(&id).await;
    assert_eq!(order["progress"]["phase"], json!({"id": "pattern", "name": "Pattern"}));
    w.advance(&id, "construction").await;
    let order = w.order(&id).await;
    assert_eq!(order["progress"]["phase"]["name"], "Construction");
    assert_eq!(order["progress"]["percent_complete"], 40);

    w.advance(&id, "closed").await;
    let order = w.order(&id).await;
    assert_eq!(order["progress"]["percent_complete"], 100, "{}", order["progress"]);
    assert!(order["progress"]["next_milestone"].is_null());
    assert_eq!(order["progress"]["health"], "on_track");
}

#[tokio::test]
async fn health_goes_from_on_track_to_at_risk_to_late_as_the_clock_passes_a_milestone() {
    let w = World::new().await;
    let order = w.new_order("custom-production").await;
    let id = id_of(&order);
    let health = |order: &serde_json::Value| order["progress"]["health"].as_str().unwrap().to_string();

    // The design approval is planned for 16 March.
    w.app.set_clock("2026-03-16T12:00:00Z");
    let order = w.order(&id).await;
    assert_eq!(health(&order), "on_track", "due today is not overdue");
    assert_eq!(order["progress"]["next_milestone"]["days_left"], 0);

    w.app.set_clock("2026-03-17T12:00:00Z");
    let order = w.order(&id).await;
    assert_eq!(health(&order), "at_risk", "one day overdue");
    assert_eq!(order["progress"]["next_milestone"]["days_left"], -1);
    let blockers = order["progress"]["blockers"].as_array().unwrap();
    assert_eq!(blockers.len(), 1, "{order}");
    assert_eq!(blockers[0]["kind"], "overdue_milestone");
    assert_eq!(blockers[0]["milestone_id"], milestone(&order, "design_approval")["id"]);
    assert!(blockers[0]["description"].as_str().unwrap().contains("Design approval"));

    w.app.set_clock("2026-03-18T12:00:00Z");
    assert_eq!(
        health(&w.order(&id).await),
        "at_risk",
        "two days overdue is still minor"
    );
    w.app.set_clock("2026-03-19T12:00:00Z");
    assert_eq!(health(&w.order(&id).await), "late", "more than two days overdue");

    // Completing the milestone puts the order back on track.
    w.complete(&id, "design_approval", &w.sc, None).await;
    let order = w.order(&id).await;
    assert_eq!(health(&order), "on_track");
    assert_eq!(order["progress"]["blockers"], json!([]));
    assert_eq!(
        milestone(&order, "design_approval")["completed_at"],
        "2026-03-19T12:00:00Z"
    );

    // The list filter agrees with the order at the same moment.
    let (_, _, page) = w.app.get("/api/v1/orders?health=on_track", &w.admin.token, None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    w.app.set_clock("2026-04-20T12:00:00Z");
    let (_, _, page) = w.app.get("/api/v1/orders?health=late", &w.admin.token, None).await;
    assert_eq!(page["items"][0]["id"], id.as_str());
    assert_eq!(page["items"][0]["progress"]["health"], "late");
}

#[tokio::test]
async fn an_order_past_its_promised_date_is_late_until_it_is_delivered() {
    let w = World::new().await;
    let mut body = w.order_body("make-to-order");
    body["promised_date"] = json!("2026-03-20");
    let order = w.create_order(body).await;
    let id = id_of(&order);
    w.advance(&id, "shipping").await;
    // Every milestone but the customer's receipt (due on the promised date) is done.
    let order = w.order(&id).await;
    assert_eq!(order["progress"]["next_milestone"]["key"], "receipt");
    assert_eq!(order["progress"]["health"], "on_track", "{}", order["progress"]);
    assert_eq!(order["progress"]["percent_complete"], 75);

    w.app.set_clock("2026-03-21T09:00:00Z");
    let order = w.order(&id).await;
    assert_eq!(order["progress"]["health"], "late", "one day past the promise is late");

    w.advance(&id, "completed").await;
    let order = w.order(&id).await;
    assert_eq!(
        order["progress"]["health"], "on_track",
        "a completed order is no longer judged"
    );
    assert_eq!(order["progress"]["percent_complete"], 100);
}

#[tokio::test]
async fn a_milestone_replanned_past_the_promised_date_puts_the_order_at_risk() {
    let w = World::new().await;
    let order = w.new_order("custom-production").await;
    let id = id_of(&order);
    let path = format!(
        "/api/v1/orders/{id}/milestones/{}",
        milestone(&order, "final_fitting")["id"].as_str().unwrap()
    );
    let (status, _, _) = w
        .app
        .patch(
            &path,
            &w.am.token,
            None,
            json!({"planned_on": "2026-06-15", "reason": "Lead actor unavailable"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let order = w.order(&id).await;
    assert_eq!(order["progress"]["health"], "at_risk");
    let (_, _, page) = w.app.get("/api/v1/orders?health=at_risk", &w.admin.token, None).await;
    assert_eq!(page["items"][0]["id"], id.as_str());
}

#[tokio::test]
async fn a_new_standard_order_with_time_to_spare_is_on_track() {
    // The after-sales follow-up is planned a week after the promised date on purpose; it must not count
    // against the promise.
    let w = World::new().await;
    let order = w.new_order("standard").await;
    assert_eq!(order["progress"]["health"], "on_track", "{}", order["progress"]);
    assert_eq!(order["progress"]["next_milestone"]["key"], "order_confirmed");
    let (_, _, page) = w.app.get("/api/v1/orders?health=on_track", &w.admin.token, None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn health_is_judged_on_the_organisations_calendar_day() {
    // Design approval planned for 16 July; at 23:30 UTC on 16 July it is already 17 July in London.
    let w = World::new().await;
    w.app.set_clock("2026-07-02T09:00:00Z");
    let mut body = w.order_body("custom-production");
    body["order_date"] = json!("2026-07-02");
    body["promised_date"] = json!("2026-10-01");
    let order = w.create_order(body).await;
    assert_eq!(milestone(&order, "design_approval")["planned_on"], "2026-07-16");
    w.app.set_clock("2026-07-16T22:30:00Z");
    let order = w.order(&id_of(&order)).await;
    assert_eq!(order["progress"]["health"], "on_track", "23:30 in London on the 16th");
    w.app.set_clock("2026-07-16T23:30:00Z");
    let order = w.order(&id_of(&order)).await;
    assert_eq!(order["progress"]["health"], "at_risk", "00:30 in London on the 17th");
    assert_eq!(order["progress"]["next_milestone"]["days_left"], -1);
    let (_, _, page) = w.app.get("/api/v1/orders?health=at_risk", &w.admin.token, None).await;
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        1,
        "the list judges on the same day"
    );
}
