//! Milestones (list, replan with a reason, reassign, tick checklists, complete with evidence) and follow-up
//! records (R34) over HTTP.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};

struct Setup {
    w: World,
    order: Value,
    id: String,
}

async fn setup(workflow: &str) -> Setup {
    let w = World::new().await;
    let order = w.new_order(workflow).await;
    let id = id_of(&order);
    Setup { w, order, id }
}

impl Setup {
    fn milestone_path(&self, key: &str) -> String {
        format!(
            "/api/v1/orders/{}/milestones/{}",
            self.id,
            milestone(&self.order, key)["id"].as_str().unwrap()
        )
    }
}

#[tokio::test]
async fn the_milestone_list_is_the_orders_plan_in_order() {
    let s = setup("custom-production").await;
    let (status, _, list) =
        s.w.app
            .get(&format!("/api/v1/orders/{}/milestones", s.id), &s.w.design.token, None)
            .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let keys: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "design_approval",
            "fabric_approval",
            "first_fitting",
            "final_fitting",
            "delivery"
        ]
    );
    assert_eq!(list, s.order["milestones"]);
    assert_eq!(list[2]["deliverable"], "Fit notes and required adjustments");
    assert_eq!(list[2]["owner_role"], "operations");
    assert_eq!(
        list[2]["complete_roles"],
        json!(["operations", "design", "account_manager", "sales_coordinator"])
    );
    // The customer sees the plan of their order too.
    let (status, _, _) =
        s.w.app
            .get(
                &format!("/api/v1/orders/{}/milestones", s.id),
                &s.w.acme_user.token,
                None,
            )
            .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn replanning_a_milestone_needs_a_reason_and_records_the_old_and_new_dates() {
    let s = setup("custom-production").await;
    let path = s.milestone_path("fabric_approval");
    let n = s.w.app.event_count().await;
    for body in [
        json!({"planned_on": "2026-04-10"}),
        json!({"planned_on": "2026-04-10", "reason": "  "}),
    ] {
        let reply = s.w.app.patch(&path, &s.w.am.token, None, body).await;
        assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY, "validation");
        assert_eq!(error_fields(&reply.2), ["reason"]);
    }
    let before_order =
        s.w.app
            .patch(
                &path,
                &s.w.am.token,
                None,
                json!({"planned_on": "2026-02-01", "reason": "typo"}),
            )
            .await;
    assert_problem(&before_order, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(error_fields(&before_order.2), ["planned_on"]);
    assert_eq!(s.w.app.event_count().await, n, "refused replans change nothing");

    let (status, _, replanned) =
        s.w.app
            .patch(
                &path,
                &s.w.design.token,
                None,
                json!({"planned_on": "2026-04-10", "reason": "Swatches delayed at the mill"}),
            )
            .await;
    assert_eq!(status, StatusCode::OK, "{replanned}");
    assert_eq!(replanned["planned_on"], "2026-04-10");
    assert_eq!(replanned["original_planned_on"], "2026-03-30");
    assert_eq!(s.w.app.event_count().await, n + 1);

    let events = s.w.events(&s.id).await;
    let last = events.last().unwrap();
    assert_eq!(last["kind"], "milestone_replanned");
    assert_eq!(last["data"]["from"], "2026-03-30");
    assert_eq!(last["data"]["to"], "2026-04-10");
    assert_eq!(
        last["data"]["milestone_id"],
        milestone(&s.order, "fabric_approval")["id"]
    );
    assert_eq!(last["reason"], "Swatches delayed at the mill");
    assert_eq!(last["acting_role"], "design");
    assert_eq!(last["actor_id"], s.w.design.id().as_str());
    assert_eq!(last["occurred_at"], T0);

    // Finance may see the order but not replan it.
    let reply =
        s.w.app
            .patch(
                &path,
                &s.w.finance.token,
                None,
                json!({"planned_on": "2026-04-12", "reason": "x"}),
            )
            .await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "role-not-allowed");
    // Asking for no change is refused.
    let reply = s.w.app.patch(&path, &s.w.am.token, None, json!({})).await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(s.w.app.event_count().await, n + 1);
}

#[tokio::test]
async fn a_milestone_can_be_given_an_owner_and_the_owner_removed() {
    let s = setup("custom-production").await;
    let path = s.milestone_path("first_fitting");
    let (status, _, changed) =
        s.w.app
            .patch(&path, &s.w.sc.token, None, json!({"owner_id": s.w.outsider.id()}))
            .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["owner_id"], s.w.outsider.id().as_str());
    let events = s.w.events(&s.id).await;
    let last = events.last().unwrap();
    assert_eq!(last["kind"], "milestone_owner_changed");
    assert!(last["data"]["from"].is_null());
    assert_eq!(last["data"]["to"], s.w.outsider.id().as_str());
    // Otto now owns a milestone of the order, so he sees it.
    let (status, _, _) =
        s.w.app
            .get(&format!("/api/v1/orders/{}", s.id), &s.w.outsider.token, None)
            .await;
    assert_eq!(status, StatusCode::OK);

    let n = s.w.app.event_count().await;
    for nobody in [json!(uuid::Uuid::now_v7()), json!(s.w.acme_user.id())] {
        let reply =
            s.w.app
                .patch(&path, &s.w.sc.token, None, json!({"owner_id": nobody}))
                .await;
        assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY, "validation");
        assert_eq!(error_fields(&reply.2), ["owner_id"]);
    }
    let reply =
        s.w.app
            .patch(&path, &s.w.ops.token, None, json!({"owner_id": s.w.ops.id()}))
            .await;
    assert_eq!(
        reply.0,
        StatusCode::OK,
        "operations replans custom production: {}",
        reply.2
    );
    let reply =
        s.w.app
            .patch(&path, &s.w.logistics.token, None, json!({"owner_id": null}))
            .await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "role-not-allowed");
    assert_eq!(s.w.app.event_count().await, n + 1);
    let (status, _, cleared) =
        s.w.app
            .patch(&path, &s.w.am.token, None, json!({"owner_id": null}))
            .await;
    assert_eq!(status, StatusCode::OK, "{cleared}");
    assert!(cleared["owner_id"].is_null());
}

#[tokio::test]
async fn completing_a_milestone_records_when_by_whom_the_evidence_and_the_checklist() {
    let s = setup("custom-production").await;
    let path = format!("{}/complete", s.milestone_path("design_approval"));
    let items = checklist_items(milestone(&s.order, "design_approval"));
    let n = s.w.app.event_count().await;

    // Finance sees the order but does not complete design approvals.
    let wrong_role =
        s.w.app
            .post(
                &path,
                &s.w.finance.token,
                None,
                json!({"evidence": {"approved_by": "Margaret"}, "checklist": items}),
            )
            .await;
    assert_problem(&wrong_role, StatusCode::FORBIDDEN, "role-not-allowed");
    let future = s
        .w
        .app
        .post(
            &path,
            &s.w.sc.token,
            None,
            json!({"completed_at": "2026-03-05T10:00:00Z", "evidence": {"approved_by": "Margaret"}, "checklist": items}),
        )
        .await;
    assert_problem(&future, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(error_fields(&future.2), ["completed_at"]);
    let unknown_item =
        s.w.app
            .post(
                &path,
                &s.w.sc.token,
                None,
                json!({"evidence": {"approved_by": "Margaret"}, "checklist": ["Champagne opened"]}),
            )
            .await;
    assert_problem(&unknown_item, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert!(error_fields(&unknown_item.2).contains(&"checklist.Champagne opened".to_string()));
    assert_eq!(s.w.app.event_count().await, n);

    let (status, _, done) =
        s.w.app
            .post(
                &path,
                &s.w.sc.token,
                None,
                json!({
                    "completed_at": "2026-03-02T09:30:00Z",
                    "evidence": {
                        "approved_by": "Margaret Hale (Producer)",
                        "note": "Approved at the design review",
                        "attachments": ["https://files.example.com/sketches-v3.pdf"],
                    },
                    "checklist": items,
                }),
            )
            .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["completed_at"], "2026-03-02T09:30:00Z");
    assert_eq!(done["completed_by"], s.w.sc.id().as_str());
    assert_eq!(
        done["evidence"],
        json!({
            "approved_by": "Margaret Hale (Producer)",
            "note": "Approved at the design review",
            "attachments": ["https://files.example.com/sketches-v3.pdf"],
        })
    );
    assert!(
        done["checklist"].as_array().unwrap().iter().all(|c| c["done"] == true),
        "{done}"
    );
    assert_eq!(s.w.app.event_count().await, n + 1);
    let events = s.w.events(&s.id).await;
    let last = events.last().unwrap();
    assert_eq!(last["kind"], "milestone_completed");
    assert_eq!(last["reason"], "Approved at the design review");
    assert_eq!(last["data"]["evidence"]["approved_by"], "Margaret Hale (Producer)");

    // Twice is a conflict, and so is replanning or ticking a completed milestone.
    let again =
        s.w.app
            .post(
                &path,
                &s.w.sc.token,
                None,
                json!({"evidence": {"approved_by": "Margaret"}}),
            )
            .await;
    assert_problem(&again, StatusCode::CONFLICT, "conflict");
    let replan =
        s.w.app
            .patch(
                &s.milestone_path("design_approval"),
                &s.w.am.token,
                None,
                json!({"planned_on": "2026-04-01", "reason": "late"}),
            )
            .await;
    assert_problem(&replan, StatusCode::CONFLICT, "conflict");
    assert_eq!(s.w.app.event_count().await, n + 1);

    let order = s.w.order(&s.id).await;
    assert_eq!(
        milestone(&order, "design_approval")["completed_at"],
        "2026-03-02T09:30:00Z"
    );
    assert_eq!(order["progress"]["percent_complete"], 20);
}

#[tokio::test]
async fn a_milestone_owner_may_complete_it_and_a_stale_version_is_refused() {
    let s = setup("standard").await;
    let path = s.milestone_path("warehoused");
    let n = s.w.app.event_count().await;
    let reply =
        s.w.app
            .post(&format!("{path}/complete"), &s.w.outsider.token, None, json!({}))
            .await;
    assert_problem(&reply, StatusCode::NOT_FOUND, "not-found");
    let reply =
        s.w.app
            .post(&format!("{path}/complete"), &s.w.logistics.token, None, json!({}))
            .await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "role-not-allowed");
    let (status, _, _) =
        s.w.app
            .patch(&path, &s.w.am.token, None, json!({"owner_id": s.w.logistics.id()}))
            .await;
    assert_eq!(status, StatusCode::OK);
    let stale =
        s.w.app
            .post(
                &format!("{path}/complete"),
                &s.w.logistics.token,
                None,
                json!({"expected_version": 1}),
            )
            .await;
    assert_problem(&stale, StatusCode::CONFLICT, "stale-version");
    let (status, _, done) =
        s.w.app
            .post(
                &format!("{path}/complete"),
                &s.w.logistics.token,
                None,
                json!({"expected_version": 2}),
            )
            .await;
    assert_eq!(status, StatusCode::OK, "the owner completes their milestone: {done}");
    assert_eq!(done["completed_at"], T0);
    assert_eq!(s.w.app.event_count().await, n + 2);
    let missing =
        s.w.app
            .post(
                &format!("/api/v1/orders/{}/milestones/{}/complete", s.id, uuid::Uuid::now_v7()),
                &s.w.am.token,
                None,
                json!({}),
            )
            .await;
    assert_problem(&missing, StatusCode::NOT_FOUND, "not-found");
}

fn full_follow_up() -> Value {
    json!({
        "occurred_at": "2026-03-02T09:00:00Z",
        "channel": "phone",
        "direction": "inbound",
        "counterpart": {"kind": "department", "name": "Cutting room"},
        "status": "exception_pending",
        "summary": "Production reports a fabric delay",
        "progress_details": "80% cut, rest tomorrow",
        "next_step": "Call the mill on Wednesday",
        "next_step_due": "2026-03-04",
        "exception": {
            "cause": "Silk organza delayed at the supplier",
            "impact": "Design approval slips about 3 days",
            "expected_resolution_at": "2026-03-05T17:00:00Z",
        },
        "client_feedback": "Client is fine with a short delay",
        "attachments": ["https://files.example.com/mill-email.pdf"],
    })
}

#[tokio::test]
async fn a_follow_up_is_recorded_with_every_field_of_r34() {
    let s = setup("custom-production").await;
    let path = format!("/api/v1/orders/{}/follow-ups", s.id);
    let n = s.w.app.event_count().await;
    let (status, _, logged) = s.w.app.post(&path, &s.w.ops.token, None, full_follow_up()).await;
    assert_eq!(status, StatusCode::CREATED, "{logged}");
    assert_eq!(s.w.app.event_count().await, n + 1);
    for field in [
        "occurred_at",
        "channel",
        "direction",
        "counterpart",
        "status",
        "summary",
        "progress_details",
        "next_step",
        "next_step_due",
        "exception",
        "client_feedback",
        "attachments",
    ] {
        assert_eq!(logged[field], full_follow_up()[field], "{field}");
    }
    assert_eq!(logged["order_id"], s.id.as_str());
    assert_eq!(logged["recorded_by"], s.w.ops.id().as_str());
    assert_eq!(logged["recorded_as"], "operations");
    assert_eq!(logged["recorded_at"], T0);
    assert!(logged["milestone_id"].is_null());

    let (status, _, list) = s.w.app.get(&path, &s.w.am.token, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!([logged]));
    let events = s.w.events(&s.id).await;
    assert_eq!(events.last().unwrap()["kind"], "follow_up_logged");
    assert_eq!(events.last().unwrap()["data"]["follow_up"]["id"], logged["id"]);
}

#[tokio::test]
async fn follow_ups_are_listed_newest_first() {
    let s = setup("standard").await;
    let path = format!("/api/v1/orders/{}/follow-ups", s.id);
    for (at, summary) in [
        ("2026-03-01T10:00:00Z", "second"),
        ("2026-02-28T10:00:00Z", "first"),
        ("2026-03-02T08:00:00Z", "third"),
    ] {
        let (status, _, body) =
            s.w.app
                .post(
                    &path,
                    &s.w.am.token,
                    None,
                    json!({"occurred_at": at, "channel": "email", "direction": "outbound",
                       "counterpart": {"kind": "customer"}, "status": "done", "summary": summary}),
                )
                .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (_, _, list) = s.w.app.get(&path, &s.w.sd.token, None).await;
    let summaries: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["summary"].as_str().unwrap())
        .collect();
    assert_eq!(summaries, ["third", "second", "first"]);
}

#[tokio::test]
async fn an_open_exception_puts_the_order_at_risk_with_a_blocker_until_a_later_follow_up_clears_it() {
    let s = setup("custom-production").await;
    assert_eq!(s.order["progress"]["health"], "on_track");
    assert_eq!(s.order["progress"]["blockers"], json!([]));
    let path = format!("/api/v1/orders/{}/follow-ups", s.id);
    let (status, _, _) = s.w.app.post(&path, &s.w.ops.token, None, full_follow_up()).await;
    assert_eq!(status, StatusCode::CREATED);
    let order = s.w.order(&s.id).await;
    assert_eq!(order["progress"]["health"], "at_risk");
    let blockers = order["progress"]["blockers"].as_array().unwrap();
    assert_eq!(blockers.len(), 1, "{order}");
    assert_eq!(blockers[0]["kind"], "open_exception");
    assert!(
        blockers[0]["description"]
            .as_str()
            .unwrap()
            .contains("Silk organza delayed at the supplier"),
        "{}",
        blockers[0]
    );
    // The customer is not shown internal blockers.
    let (_, _, as_customer) =
        s.w.app
            .get(&format!("/api/v1/orders/{}", s.id), &s.w.acme_user.token, None)
            .await;
    assert_eq!(as_customer["progress"]["blockers"], json!([]));

    let (status, _, _) =
        s.w.app
            .post(
                &path,
                &s.w.ops.token,
                None,
                json!({"channel": "phone", "direction": "internal", "counterpart": {"kind": "department"},
                   "status": "done", "progress_details": "Organza arrived, cutting resumed"}),
            )
            .await;
    assert_eq!(status, StatusCode::CREATED);
    let order = s.w.order(&s.id).await;
    assert_eq!(order["progress"]["health"], "on_track");
    assert_eq!(order["progress"]["blockers"], json!([]));
}

#[tokio::test]
async fn an_outbound_follow_up_with_the_customer_is_the_last_client_update() {
    let s = setup("custom-production").await;
    assert!(s.order["progress"]["last_client_update_at"].is_null());
    let path = format!("/api/v1/orders/{}/follow-ups", s.id);
    let mut internal = full_follow_up();
    internal["status"] = json!("in_progress");
    internal.as_object_mut().unwrap().remove("exception");
    let (status, _, _) = s.w.app.post(&path, &s.w.am.token, None, internal).await;
    assert_eq!(status, StatusCode::CREATED);
    let order = s.w.order(&s.id).await;
    assert!(
        order["progress"]["last_client_update_at"].is_null(),
        "an inbound note from a department is no client update"
    );
    assert_eq!(order["last_follow_up_at"], "2026-03-02T09:00:00Z");

    let (status, _, _) =
        s.w.app
            .post(
                &path,
                &s.w.am.token,
                None,
                json!({"occurred_at": "2026-03-02T11:15:00Z", "channel": "email", "direction": "outbound",
                   "counterpart": {"kind": "customer", "name": "Margaret Hale"},
                   "status": "done", "summary": "Weekly update sent", "next_step": "Fitting next week"}),
            )
            .await;
    assert_eq!(status, StatusCode::CREATED);
    let order = s.w.order(&s.id).await;
    assert_eq!(order["progress"]["last_client_update_at"], "2026-03-02T11:15:00Z");
    assert_eq!(order["last_follow_up_at"], "2026-03-02T11:15:00Z");
}

#[tokio::test]
async fn customers_may_not_log_or_read_follow_ups_and_bad_follow_ups_are_refused() {
    let s = setup("make-to-order").await;
    let path = format!("/api/v1/orders/{}/follow-ups", s.id);
    let n = s.w.app.event_count().await;
    let post = s.w.app.post(&path, &s.w.acme_user.token, None, full_follow_up()).await;
    assert_problem(&post, StatusCode::FORBIDDEN, "role-not-allowed");
    let get = s.w.app.get(&path, &s.w.acme_user.token, None).await;
    assert_problem(&get, StatusCode::FORBIDDEN, "forbidden");
    let other = s.w.app.get(&path, &s.w.globex_user.token, None).await;
    assert_problem(&other, StatusCode::NOT_FOUND, "not-found");

    let mut no_exception = full_follow_up();
    no_exception.as_object_mut().unwrap().remove("exception");
    let reply = s.w.app.post(&path, &s.w.am.token, None, no_exception).await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(error_fields(&reply.2), ["exception"]);
    let empty =
        json!({"channel": "email", "direction": "outbound", "counterpart": {"kind": "customer"}, "status": "done"});
    let reply = s.w.app.post(&path, &s.w.am.token, None, empty).await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(error_fields(&reply.2), ["summary"]);
    let mut future = full_follow_up();
    future["occurred_at"] = json!("2026-03-03T12:00:00Z");
    let reply = s.w.app.post(&path, &s.w.am.token, None, future).await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(error_fields(&reply.2), ["occurred_at"]);
    let mut bad_channel = full_follow_up();
    bad_channel["channel"] = json!("carrier pigeon");
    let reply = s.w.app.post(&path, &s.w.am.token, None, bad_channel).await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY, "invalid-body");
    let mut foreign_milestone = full_follow_up();
    foreign_milestone["milestone_id"] = json!(uuid::Uuid::now_v7());
    let reply = s.w.app.post(&path, &s.w.am.token, None, foreign_milestone).await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(error_fields(&reply.2), ["milestone_id"]);
    assert_eq!(s.w.app.event_count().await, n);
}

#[tokio::test]
async fn the_after_sales_follow_up_can_be_recorded_after_the_order_is_completed() {
    // Seed 004's last node, after-sales, is planned a week after the promised date, i.e. after the customer
    // has signed and the order has been completed. A completed order is terminal, and completing a milestone of
    // a terminal order is refused with 409, so the node can never be recorded at its time and the order stays
    // below 100% complete for ever.
    let s = setup("standard").await;
    for key in ["production_start", "semi_finished_inspection", "warehoused"] {
        s.w.complete(&s.id, key, &s.w.ops, None).await;
    }
    s.w.advance(&s.id, "completed").await;
    s.w.app.set_clock("2026-06-08T12:00:00Z");
    let (status, _, body) =
        s.w.app
            .post(
                &format!("{}/complete", s.milestone_path("after_sales")),
                &s.w.sc.token,
                None,
                json!({"evidence": {"note": "Customer happy, no returns"}}),
            )
            .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(s.w.order(&s.id).await["progress"]["percent_complete"], 100);
}
