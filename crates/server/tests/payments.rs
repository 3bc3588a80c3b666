//! The payment schedule and dunning through the API and the scheduler, as seed 000 runs them (R8, R9, R15):
//! 50/25/25 installments in exact money, due when their triggers happen; reminders once each however often the
//! scheduler runs; production paused on the eighth day overdue and resumed by a payment; an extra deposit when
//! change orders add more than 20%; bad payments refused without a trace.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};

async fn payments(w: &World, order_id: &str) -> Value {
    let (status, _, body) = w
        .app
        .get(&format!("/api/v1/orders/{order_id}/payments"), &w.finance.token, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn amounts(schedule: &Value) -> Vec<String> {
    schedule["installments"]
        .as_array()
        .expect("installments")
        .iter()
        .map(|i| i["amount"]["amount"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn pay(w: &World, order_id: &str, body: Value) -> (StatusCode, Value) {
    let (status, _, reply) = w
        .app
        .post(
            &format!("/api/v1/orders/{order_id}/payments"),
            &w.finance.token,
            None,
            body,
        )
        .await;
    (status, reply)
}

fn transfer(installment: u32, amount: &str, on: &str) -> Value {
    json!({"installment": installment, "amount": {"currency": "USD", "amount": amount}, "paid_on": on,
           "method": "bank_transfer", "reference": "BANK-REF-1"})
}

/// A custom-production order whose contract was signed on 2026-03-01 (the deposit falls due that day), the
/// deposit not paid yet.
async fn signed_order(w: &World) -> String {
    let order = w.new_order("custom-production").await;
    let id = id_of(&order);
    w.sign_contract(&id, "2026-03-01").await;
    id
}

/// A custom-production order in Design: contract signed and deposit paid on 2026-03-01, tracking started (R15).
async fn started_order(w: &World) -> String {
    let order = w.new_order("custom-production").await;
    let id = id_of(&order);
    w.advance(&id, "design").await;
    id
}

#[tokio::test]
async fn a_custom_production_order_pays_50_25_25_and_the_deposit_falls_due_at_signing() {
    let w = World::new().await;
    let order = w.new_order("custom-production").await;
    let id = id_of(&order);
    let before = payments(&w, &id).await;
    assert_eq!(amounts(&before), ["625.00", "312.50", "312.50"]);
    assert!(before["installments"][0]["due_on"].is_null(), "not signed yet");
    assert_eq!(before["tracking_started"], false);

    let n = w.app.event_count().await;
    for (who, on, status) in [
        (&w.design, "2026-03-01", StatusCode::FORBIDDEN),
        (&w.am, "2026-03-03", StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let (got, _, reply) = w
            .app
            .post(
                &format!("/api/v1/orders/{id}/contract"),
                &who.token,
                None,
                json!({"signed_on": on}),
            )
            .await;
        assert_eq!(got, status, "{reply}");
    }
    assert_eq!(w.app.event_count().await, n, "refused signatures change nothing");
    w.sign_contract(&id, "2026-03-01").await;
    let (status, _, reply) = w
        .app
        .post(
            &format!("/api/v1/orders/{id}/contract"),
            &w.am.token,
            None,
            json!({"signed_on": "2026-03-01"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "signed once: {reply}");
    let after = payments(&w, &id).await;
    assert_eq!(after["contract_signed_on"], "2026-03-01");
    assert_eq!(
        after["tracking_waits_for"],
        json!(["the deposit paid: 625.00 USD outstanding"])
    );
    assert_eq!(after["installments"][0]["due_on"], "2026-03-01");
    assert!(
        after["installments"][1]["due_on"].is_null(),
        "due when the first fitting is done"
    );
    let (status, reply) = pay(&w, &id, transfer(1, "625.00", "2026-03-02")).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(reply["tracking_started"], true, "R15: contract signed and deposit paid");
    assert_eq!(reply["paid"]["amount"], "625.00");
    let (status, _, _) = w
        .app
        .get(&format!("/api/v1/orders/{id}/payments"), &w.ops.token, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "operations does not see the money");
}

#[tokio::test]
async fn an_installment_8_days_late_pauses_production_and_a_payment_lifts_the_pause() {
    // The first fitting is done on 2026-03-02 (today): the mid-project installment (25%) falls due that day.
    let w = World::new().await;
    let id = started_order(&w).await;
    w.advance(&id, "fitting").await;
    w.complete(&id, "first_fitting", &w.design, None).await;
    assert_eq!(payments(&w, &id).await["installments"][1]["due_on"], "2026-03-02");
    let to_final = json!({"to": "final", "confirm": true});

    // Day 7 overdue (2026-03-09): still working, though the firm reminder is due.
    w.app.set_clock("2026-03-09T12:00:00Z");
    assert!(payments(&w, &id).await["paused"].is_null());
    // Day 8: production work is refused, with the reason.
    w.app.set_clock("2026-03-10T12:00:00Z");
    assert_eq!(
        payments(&w, &id).await["paused"],
        "paused: installment 2 is 8 days overdue"
    );
    let before = w.app.event_count().await;
    let refused = w.transition(&id, &w.ops, None, to_final.clone()).await;
    assert_problem(&refused, StatusCode::UNPROCESSABLE_ENTITY, "paused");
    assert_eq!(refused.2["detail"], "paused: installment 2 is 8 days overdue");
    assert_eq!(w.app.event_count().await, before, "nothing was written");

    // A partial payment does not lift the pause; paying the rest does.
    let (status, reply) = pay(&w, &id, transfer(2, "300.00", "2026-03-10")).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert!(!reply["paused"].is_null());
    let (status, reply) = pay(&w, &id, transfer(2, "12.50", "2026-03-10")).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert!(reply["paused"].is_null(), "{reply}");
    let (status, _, moved) = w.transition(&id, &w.ops, None, to_final).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
}

#[tokio::test]
async fn the_day_5_reminder_is_sent_once_even_if_the_scheduler_runs_every_minute() {
    let w = World::new().await;
    let id = signed_order(&w).await;
    let number = w.order(&id).await["number"].as_str().unwrap_or_default().to_string();
    // Day 5 overdue: the friendly reminder (the invoice and the due-date reminder were missed: the invoice is
    // still sent, the earlier reminder is not sent late).
    let day_5 = at("2026-03-06T09:00:00Z");
    let dry = ordertrail_server::app::tick(&w.app.state, day_5, true)
        .await
        .expect("tick");
    let kinds = |actions: &[ordertrail_server::app::TickAction]| -> Vec<String> {
        actions
            .iter()
            .map(|a| format!("{}:{}", a.order_number, a.action.kind.as_str()))
            .collect()
    };
    assert_eq!(
        kinds(&dry),
        [format!("{number}:invoice"), format!("{number}:friendly_reminder")]
    );
    let first = ordertrail_server::app::tick(&w.app.state, day_5, false)
        .await
        .expect("tick");
    assert_eq!(kinds(&first), kinds(&dry), "the dry run said what the run did");
    for minute in 1..=5 {
        let again = ordertrail_server::app::tick(&w.app.state, day_5 + chrono::TimeDelta::minutes(minute), false)
            .await
            .expect("tick");
        assert!(again.is_empty(), "minute {minute}: {again:?}");
    }
    let schedule = payments(&w, &id).await;
    assert_eq!(schedule["installments"][0]["state"], "invoiced", "{schedule}");
    // The invoice prints as HTML.
    let (status, headers, page) = w
        .app
        .get(&format!("/api/v1/orders/{id}/invoices/1"), &w.finance.token, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        headers[axum::http::header::CONTENT_TYPE]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/html")
    );
    let html = page.as_str().unwrap_or_default();
    assert!(html.contains(&format!("Invoice INV-{number}-1")), "{html}");
    assert!(html.contains("625.00"), "{html}");
    let (status, _, _) = w
        .app
        .get(&format!("/api/v1/orders/{id}/invoices/2"), &w.finance.token, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "installment 2 is not invoiced yet");
    let kinds: Vec<Value> = w.events(&id).await.iter().map(|e| e["kind"].clone()).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "dunning_step").count(), 2);

    // Day 14 later: the firm reminder, the pause notice to the sales director, the finance escalation.
    let day_15 = at("2026-03-16T09:00:00Z");
    let late = ordertrail_server::app::tick(&w.app.state, day_15, false)
        .await
        .expect("tick");
    let late: Vec<(String, Vec<String>)> = late
        .iter()
        .map(|a| {
            (
                a.action.kind.as_str().to_string(),
                a.action.told.iter().map(|r| r.as_str().to_string()).collect(),
            )
        })
        .collect();
    assert_eq!(
        late,
        [
            ("firm_reminder".to_string(), vec!["customer".to_string()]),
            ("pause_work".to_string(), vec!["sales_director".to_string()]),
            ("escalate_to_finance".to_string(), vec!["finance".to_string()]),
        ]
    );
}

#[tokio::test]
async fn a_change_order_raising_cost_by_25_percent_adds_a_deposit_installment_and_the_sum_stays_exact() {
    let w = World::new().await;
    let id = started_order(&w).await;
    let (status, _, co) = w
        .app
        .post(
            &format!("/api/v1/orders/{id}/change-orders"),
            &w.am.token,
            None,
            json!({"reason": "A cape", "items": [{"description": "Cape", "amount": {"currency": "USD", "amount": "312.50"}}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{co}");
    let co_path = format!("/api/v1/orders/{id}/change-orders/{}", id_of(&co));
    for (who, step, body) in [
        (&w.finance, "cost-estimate", json!({})),
        (&w.ops, "timeline-estimate", json!({"days": 0})),
        (&w.sd, "approve", json!({})),
        (&w.am, "send", json!({})),
        (
            &w.am,
            "client-response",
            json!({"answer": "approved", "client_name": "Margaret Hale", "channel": "email", "evidence": "Approved"}),
        ),
    ] {
        let (status, _, reply) = w.app.post(&format!("{co_path}/{step}"), &who.token, None, body).await;
        assert_eq!(status, StatusCode::OK, "{step}: {reply}");
    }
    let schedule = payments(&w, &id).await;
    assert_eq!(schedule["amount"]["amount"], "1562.50");
    let lines = schedule["installments"].as_array().expect("installments");
    let deposit = lines.last().expect("an installment");
    assert_eq!(deposit["amount"]["amount"], "156.25", "{schedule}");
    let total: i64 = lines
        .iter()
        .map(|i| {
            let text = i["amount"]["amount"].as_str().unwrap_or("0").replace('.', "");
            text.parse::<i64>().unwrap_or(0)
        })
        .sum();
    assert_eq!(
        total, 156_250,
        "the installments sum to the new amount exactly: {schedule}"
    );

    // Work waits for the extra deposit: production work is refused until it is paid.
    w.complete(&id, "design_approval", &w.design, None).await;
    let to_pattern = json!({"to": "pattern", "confirm": true});
    let refused = w.transition(&id, &w.design, None, to_pattern.clone()).await;
    assert_problem(&refused, StatusCode::UNPROCESSABLE_ENTITY, "paused");
    let number = deposit["number"].as_u64().unwrap_or_default() as u32;
    assert!(
        refused.2["detail"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("installment {number}")),
        "{}",
        refused.2
    );
    let (status, reply) = pay(&w, &id, transfer(number, "156.25", "2026-03-02")).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let (status, _, moved) = w.transition(&id, &w.design, None, to_pattern).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
}

#[tokio::test]
async fn bad_payments_are_refused_and_change_nothing() {
    let w = World::new().await;
    let id = signed_order(&w).await;
    let before = w.app.event_count().await;
    let (status, reply) = pay(&w, &id, transfer(1, "700.00", "2026-03-02")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "overpayment: {reply}");
    assert_eq!(error_fields(&reply), ["amount"]);
    let (status, reply) = pay(&w, &id, transfer(9, "10.00", "2026-03-02")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "no installment 9: {reply}");
    let (status, reply) = pay(&w, &id, transfer(1, "10.00", "2027-01-01")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "in the future: {reply}");
    let mut euros = transfer(1, "10.00", "2026-03-02");
    euros["amount"]["currency"] = json!("EUR");
    let (status, reply) = pay(&w, &id, euros).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
    let (status, _, reply) = w
        .app
        .post(
            &format!("/api/v1/orders/{id}/payments"),
            &w.am.token,
            None,
            transfer(1, "10.00", "2026-03-02"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "finance records payments: {reply}");
    assert_eq!(w.app.event_count().await, before, "nothing was written");

    // A cancelled order takes no payment.
    let (status, _, cancelled) = w
        .transition(
            &id,
            &w.am,
            None,
            json!({"to": "cancelled", "confirm": true, "fields": {"cancellation_reason": "Client withdrew"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    let (status, reply) = pay(&w, &id, transfer(1, "10.00", "2026-03-02")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{reply}");
}
