//! Issues and exceptions through the API, as the procedures describe them: severity from the policy and
//! escalation to the sales director (R5), the R6 protocol, the client told within 24 hours (R10), opened within
//! an hour of discovery (R36), open issues as blockers, and bad input refused without a trace.

mod common;

use axum::http::StatusCode;
use chrono::TimeDelta;
use common::*;
use serde_json::{Value, json};

fn issue_body(w: &World, kind: &str, impact: Value) -> Value {
    json!({
        "kind": kind,
        "description": "Silk from the mill is late",
        "impact": impact,
        "expected_resolution_at": "2026-03-06T12:00:00Z",
        "owner_id": w.am.id(),
    })
}

async fn open(w: &World, order_id: &str, body: Value) -> Value {
    let (status, _, issue) = w
        .app
        .post(&format!("/api/v1/orders/{order_id}/issues"), &w.am.token, None, body)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issue}");
    issue
}

async fn step(w: &World, order_id: &str, issue: &Value, step: &str, body: Value) -> (StatusCode, Value) {
    let (status, _, reply) = w
        .app
        .post(
            &format!("/api/v1/orders/{order_id}/issues/{}/{step}", id_of(issue)),
            &w.am.token,
            None,
            body,
        )
        .await;
    (status, reply)
}

/// The escalation messages waiting in the outbox (claimed here the way a delivery worker would).
async fn escalations(w: &World) -> Vec<Value> {
    let claimed = w
        .app
        .state
        .store
        .claim_outbox("test", 100, at(T0) + TimeDelta::days(30), TimeDelta::minutes(1))
        .await
        .expect("claim");
    claimed
        .into_iter()
        .filter(|m| m.kind == "issue.escalation")
        .map(|m| serde_json::from_str(&m.payload).expect("json"))
        .collect()
}

#[tokio::test]
async fn a_budget_overrun_of_12_percent_escalates_to_the_sales_director() {
    let w = World::new().await;
    let order = w.new_order("custom-production").await;
    let issue = open(
        &w,
        &id_of(&order),
        issue_body(&w, "design_change", json!({"budget_overrun_percent": 12})),
    )
    .await;
    assert_eq!(issue["severity"], "major");
    assert_eq!(issue["escalation"]["to_role"], "sales_director");
    let events = w.events(&id_of(&order)).await;
    let last = events.last().expect("an event");
    assert_eq!(last["kind"], "issue_opened");
    assert_eq!(last["acting_role"], "account_manager");
    let sent = escalations(&w).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["to_role"], "sales_director");
    assert_eq!(sent[0]["issue_id"], issue["id"]);
    assert_eq!(sent[0]["order_number"], order["number"]);
}

#[tokio::test]
async fn a_minor_issue_does_not_escalate_but_is_a_blocker_and_puts_the_order_at_risk() {
    let w = World::new().await;
    let order = w.new_order("standard").await;
    assert_eq!(order["progress"]["health"], "on_track");
    let issue = open(
        &w,
        &id_of(&order),
        issue_body(&w, "material_delay", json!({"delay_days": 2})),
    )
    .await;
    assert_eq!(issue["severity"], "minor");
    assert!(issue["escalation"].is_null());
    assert!(escalations(&w).await.is_empty());
    let after = w.order(&id_of(&order)).await;
    assert_eq!(after["progress"]["health"], "at_risk");
    let blockers = after["progress"]["blockers"].as_array().expect("blockers");
    assert!(blockers.iter().any(|b| b["kind"] == "open_issue"), "{blockers:?}");
    // The customer sees neither the issue nor the blocker.
    let (status, _, theirs) = w
        .app
        .get(&format!("/api/v1/orders/{}", id_of(&order)), &w.acme_user.token, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(theirs["progress"]["blockers"], json!([]));
    assert!(theirs.get("issues").is_none());
    let (status, _, _) = w
        .app
        .get(
            &format!("/api/v1/orders/{}/issues", id_of(&order)),
            &w.acme_user.token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_r6_protocol_options_client_decision_and_resolution_lift_the_blocker() {
    let w = World::new().await;
    let order = w.new_order("custom-production").await;
    let id = id_of(&order);
    let issue = open(&w, &id, issue_body(&w, "material_delay", json!({"delay_days": 10}))).await;
    assert_eq!(issue["severity"], "major");

    // A major issue is not resolved before the client has chosen.
    let (status, body) = step(&w, &id, &issue, "resolve", json!({"summary": "Use the backup mill"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let options = json!({
        "consulted": ["operations", "finance"],
        "options": [
            {"summary": "Wait for the mill", "timeline_days": 10, "cost": {"currency": "USD", "amount": "0.00"}},
            {"summary": "Backup mill, similar silk", "timeline_days": 3, "cost": {"currency": "USD", "amount": "0.00"}},
        ],
        "recommended_option": 2,
    });
    let (status, body) = step(&w, &id, &issue, "options", options).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "options_proposed");
    let (status, body) = step(
        &w,
        &id,
        &issue,
        "client-told",
        json!({"channel": "email", "note": "Situation, impact and options sent"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = step(
        &w,
        &id,
        &issue,
        "decision",
        json!({"chosen_option": 2, "decided_by": "Margaret Hale", "evidence": "Email: go with the backup mill", "channel": "email"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "client_decided");
    let (status, body) = step(
        &w,
        &id,
        &issue,
        "resolve",
        json!({"summary": "Backup mill silk ordered", "shift_days": 3}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "resolved");
    // The replan: open milestones and the promise move by three days.
    let replanned = w.order(&id).await;
    assert_eq!(replanned["promised_date"], "2026-06-04");
    assert_eq!(replanned["version"], order["version"].as_i64().unwrap_or(0) + 5);
    for (before, after) in order["milestones"]
        .as_array()
        .into_iter()
        .flatten()
        .zip(replanned["milestones"].as_array().into_iter().flatten())
    {
        let day = |v: &Value| {
            v.as_str()
                .and_then(|d| d.parse::<chrono::NaiveDate>().ok())
                .expect("date")
        };
        assert_eq!(
            day(&after["planned_on"]),
            day(&before["planned_on"]) + TimeDelta::days(3),
            "{}",
            after["key"]
        );
    }
    assert!(body["breaches"].as_array().expect("breaches").is_empty(), "{body}");
    let after = w.order(&id).await;
    let blockers = after["progress"]["blockers"].as_array().expect("blockers");
    assert!(blockers.iter().all(|b| b["kind"] != "open_issue"), "{blockers:?}");
    let kinds: Vec<Value> = w.events(&id).await.iter().map(|e| e["kind"].clone()).collect();
    assert_eq!(
        kinds[kinds.len() - 5..],
        [
            "issue_opened",
            "issue_options_proposed",
            "issue_client_told",
            "issue_client_decided",
            "issue_resolved"
        ]
    );
    // Resolved is resolved.
    let (status, _) = step(&w, &id, &issue, "resolve", json!({"summary": "again"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
}

async fn breached_ids(w: &World) -> Vec<String> {
    let (status, _, list) = w.app.get("/api/v1/issues?breached=true", &w.sd.token, None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list.as_array().expect("list").iter().map(id_of).collect()
}

#[tokio::test]
async fn an_issue_the_client_was_not_told_of_within_24_hours_is_breached() {
    let w = World::new().await;
    let order = w.new_order("standard").await;
    let id = id_of(&order);
    let told = open(&w, &id, issue_body(&w, "scheduling", json!({"delay_days": 1}))).await;
    let untold = open(&w, &id, issue_body(&w, "scheduling", json!({"delay_days": 1}))).await;
    let (status, body) = step(&w, &id, &told, "client-told", json!({"channel": "phone"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    assert!(breached_ids(&w).await.is_empty());

    w.app.set_clock("2026-03-03T12:30:00Z");
    assert_eq!(breached_ids(&w).await, [id_of(&untold)]);
    let (status, _, _) = w.app.get("/api/v1/issues?order_id=not-a-uuid", &w.sd.token, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, _, list) = w.app.get("/api/v1/issues?breached=true", &w.sd.token, None).await;
    assert_eq!(list[0]["breaches"][0]["rule"], "client_not_told");
    // And on the order itself.
    let on_order = w.order(&id).await;
    let shown: Vec<(String, usize)> = on_order["issues"]
        .as_array()
        .expect("issues on the order")
        .iter()
        .map(|i| (id_of(i), i["breaches"].as_array().map_or(0, Vec::len)))
        .collect();
    assert_eq!(shown, [(id_of(&untold), 1), (id_of(&told), 0)]);

    // Told late is still a breach (the record keeps it).
    let (status, body) = step(&w, &id, &untold, "client-told", json!({"channel": "email"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(breached_ids(&w).await, [id_of(&untold)]);
}

#[tokio::test]
async fn an_issue_opened_two_hours_after_discovery_breaches_the_one_hour_rule() {
    let w = World::new().await;
    let order = w.new_order("standard").await;
    let mut body = issue_body(&w, "quality", json!({"quality_affected": true}));
    body["discovered_at"] = json!("2026-03-02T10:00:00Z");
    let issue = open(&w, &id_of(&order), body).await;
    let rules: Vec<Value> = issue["breaches"]
        .as_array()
        .expect("breaches")
        .iter()
        .map(|b| b["rule"].clone())
        .collect();
    assert_eq!(rules, ["opened_late"]);
    let (_, _, list) = w.app.get("/api/v1/issues?breached=true", &w.sd.token, None).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
}

#[tokio::test]
async fn under_seed_004_a_five_day_delay_is_severe_where_seed_000_calls_it_minor() {
    let seed_004 = World::on(
        TestApp::with_config(|c| {
            let mut table = toml::Table::new();
            table.insert("preset".into(), toml::Value::String("seed_004".into()));
            c.organisation.issues = Some(table);
        })
        .await,
    )
    .await;
    let order = seed_004.new_order("standard").await;
    let issue = open(
        &seed_004,
        &id_of(&order),
        issue_body(&seed_004, "material_delay", json!({"delay_days": 5})),
    )
    .await;
    assert_eq!(issue["severity"], "major");

    let seed_000 = World::new().await;
    let order = seed_000.new_order("standard").await;
    let issue = open(
        &seed_000,
        &id_of(&order),
        issue_body(&seed_000, "material_delay", json!({"delay_days": 5})),
    )
    .await;
    assert_eq!(issue["severity"], "minor");
}

#[tokio::test]
async fn a_fitting_the_client_cannot_come_to_shows_the_playbooks_moves() {
    // R13: backup dates, a virtual fitting, a stand-in.
    let w = World::new().await;
    let order = w.new_order("custom-production").await;
    let issue = open(
        &w,
        &id_of(&order),
        issue_body(&w, "fitting_unavailable", json!({"delay_days": 2})),
    )
    .await;
    assert_eq!(
        issue["playbook"],
        json!([
            "Schedule backup fitting dates",
            "Offer a virtual fitting",
            "Fit on a stand-in with the client's measurements"
        ])
    );
    let payment = open(&w, &id_of(&order), issue_body(&w, "payment", json!({}))).await;
    assert_eq!(
        payment["playbook"],
        json!([]),
        "no moves for a kind the playbook does not name"
    );
}

#[tokio::test]
async fn bad_issues_are_refused_and_change_nothing() {
    let w = World::new().await;
    let order = w.new_order("standard").await;
    let id = id_of(&order);
    let before = w.app.event_count().await;
    let path = format!("/api/v1/orders/{id}/issues");

    let mut no_text = issue_body(&w, "quality", json!({}));
    no_text["description"] = json!("  ");
    let reply = w.app.post(&path, &w.am.token, None, no_text).await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(error_fields(&reply.2), ["description"]);

    let mut stranger = issue_body(&w, "quality", json!({}));
    stranger["owner_id"] = json!(w.outsider.id());
    let reply = w.app.post(&path, &w.am.token, None, stranger).await;
    assert_eq!(error_fields(&reply.2), ["owner_id"]);

    let unknown_kind = issue_body(&w, "alien_invasion", json!({}));
    let reply = w.app.post(&path, &w.am.token, None, unknown_kind).await;
    assert_eq!(reply.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.2);

    let reply = w
        .app
        .post(&path, &w.acme_user.token, None, issue_body(&w, "quality", json!({})))
        .await;
    assert_eq!(reply.0, StatusCode::FORBIDDEN, "{}", reply.2);

    let reply = w
        .app
        .post(&path, &w.outsider.token, None, issue_body(&w, "quality", json!({})))
        .await;
    assert_eq!(
        reply.0,
        StatusCode::NOT_FOUND,
        "an order the caller is not on does not exist for them"
    );

    let missing = json!({"id": "01900000-0000-7000-8000-000000000000"});
    let (status, _) = step(&w, &id, &missing, "client-told", json!({"channel": "email"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    assert_eq!(w.app.event_count().await, before, "nothing was written");
    assert!(escalations(&w).await.is_empty());
}
