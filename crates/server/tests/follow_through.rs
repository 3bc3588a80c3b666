//! Follow-through as the procedures describe it, with real parts: the scheduler at a given `now` in London, the
//! outbox worker, a real SMTP server on loopback (aiosmtpd) and a real webhook receiver. Reminders the day
//! before (R33), weekly or daily client updates (R3), what is long past dropped rather than sent late, retries
//! with back-off into dead letters that an admin retries, signed webhooks limited by confidentiality (R40),
//! Chinese for a Chinese customer with the timeline picture, drafts that wait for the account manager.

mod common;

use axum::http::StatusCode;
use chrono::{DateTime, TimeDelta, Utc};
use common::*;
use ordertrail_notify::testing::{ReceivedMail, SmtpSink, WebhookReceiver};
use ordertrail_server::config::Config;
use ordertrail_server::delivery::{Deliverer, DeliveryConfig, WebhookTarget};
use ordertrail_server::scheduler;
use serde_json::{Value, json};

/// A world with a real SMTP server behind its deliverer.
struct Post {
    w: World,
    sink: SmtpSink,
    deliverer: Deliverer,
}

impl Post {
    async fn new() -> Post {
        Post::with(|_| {}, |_| {}).await
    }

    async fn with(config: impl FnOnce(&mut Config), delivery: impl FnOnce(&mut DeliveryConfig)) -> Post {
        let sink = SmtpSink::start()
            .await
            .expect("the SMTP server starts (python3-aiosmtpd)");
        let w = World::on(TestApp::with_config(config).await).await;
        let mut d = DeliveryConfig {
            smtp: Some(sink.settings()),
            retry_base_seconds: 60,
            ..DeliveryConfig::default()
        };
        delivery(&mut d);
        let deliverer = Deliverer::new(d).expect("the deliverer starts");
        Post { w, sink, deliverer }
    }

    /// One scheduler pass at `now` (dunning, follow-through, delivery).
    async fn pass(&self, now: &str) -> scheduler::PassReport {
        self.pass_at(at(now)).await
    }

    async fn pass_at(&self, now: DateTime<Utc>) -> scheduler::PassReport {
        self.w.app.state.clock.set(now);
        scheduler::pass(&self.w.app.state, &self.deliverer, "test", now, 50)
            .await
            .expect("a pass")
    }

    /// Mail received so far whose subject contains `text`, to `rcpt`.
    fn mail(&self, rcpt: &str, text: &str) -> Vec<ReceivedMail> {
        self.sink
            .messages()
            .into_iter()
            .filter(|m| m.envelope_to.iter().any(|t| t == rcpt) && m.subject.contains(text))
            .collect()
    }
}

fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn a_milestone_reminder_reaches_its_owner_the_day_before_once_however_often_tick_runs() {
    let p = Post::new().await;
    let order = p.w.new_order("custom-production").await;
    let number = order["number"].as_str().unwrap_or_default().to_string();
    // Design approval is planned for Monday 16 March; its owner (design, Léa) hears on Sunday at 09:00 London.
    let mut now = at("2026-03-15T07:00:00Z");
    while now < at("2026-03-15T12:00:00Z") {
        p.pass_at(now).await;
        if now < at("2026-03-15T09:00:00Z") {
            assert!(
                p.mail("lea@test.dev", "Design approval").is_empty(),
                "not before 09:00: {now}"
            );
        }
        now += TimeDelta::minutes(15);
    }
    let reminders = p.mail("lea@test.dev", "Design approval");
    assert_eq!(
        reminders.len(),
        1,
        "once: {:?}",
        p.sink.messages().iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    assert!(reminders[0].subject.contains(&number), "{}", reminders[0].subject);
    let text = reminders[0].part_text("text/plain").unwrap_or_default();
    assert!(text.contains("2026"), "{text}");
    // The order's timeline says it was queued and sent, to whom.
    let events = p.w.events(&id_of(&order)).await;
    let sent: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "message_sent" && e["data"]["kind"] == "milestone_reminder")
        .collect();
    assert_eq!(sent.len(), 1, "{:?}", kinds(&events));
    assert_eq!(sent[0]["data"]["delivery"]["to"], json!(["lea@test.dev"]));
}

#[tokio::test]
async fn a_rush_order_gets_a_daily_client_update_and_a_regular_order_a_weekly_one_on_friday() {
    let p = Post::new().await;
    let mut rush = p.w.order_body("standard");
    rush["order_type"] = json!("rush");
    rush["title"] = json!("Rush brackets");
    let rush = p.w.create_order(rush).await;
    let mut regular = p.w.order_body("standard");
    regular["title"] = json!("Regular brackets");
    let regular = p.w.create_order(regular).await;
    // Every 15 minutes from Monday 2 March 13:00 to Tuesday 10 March 12:00.
    let mut now = at("2026-03-02T13:00:00Z");
    while now < at("2026-03-10T12:00:00Z") {
        p.pass_at(now).await;
        now += TimeDelta::minutes(15);
    }
    let updates = |title: &str| {
        p.mail("buyer@example.com", title)
            .into_iter()
            .filter(|m| m.subject.contains("update"))
            .count()
    };
    // Rush: each business day after the order day (Tue, Wed, Thu, Fri, Mon, Tue).
    assert_eq!(
        updates("Rush brackets"),
        6,
        "{:?}",
        p.sink.messages().iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    // Regular: Friday 6 March only.
    assert_eq!(updates("Regular brackets"), 1);
    let fridays = p.mail("buyer@example.com", "Regular brackets");
    let weekly = fridays
        .iter()
        .find(|m| m.subject.contains("Weekly"))
        .expect("the weekly update");
    let text = weekly.part_text("text/plain").unwrap_or_default();
    assert!(text.contains("Jun 1, 2026"), "the delivery date: {text}");
    // R16: the sends are on the orders' timelines with their times.
    let events = p.w.events(&id_of(&regular)).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e["kind"] == "message_sent" && e["data"]["kind"] == "client_update")
            .count(),
        2,
        "one event per recipient channel: the contact and the customer user: {:?}",
        kinds(&events)
    );
    assert!(!p.w.events(&id_of(&rush)).await.is_empty());
}

#[tokio::test]
async fn a_reminder_whose_milestone_was_completed_meanwhile_is_dropped_with_the_reason() {
    let p = Post::new().await;
    let order = p.w.new_order("custom-production").await;
    let id = id_of(&order);
    // The scheduler queues the reminder at 09:00; before the worker gets to it, the milestone is completed.
    p.w.app.set_clock("2026-03-15T09:05:00Z");
    let queued = scheduler::follow_through(&p.w.app.state, at("2026-03-15T09:05:00Z"), false)
        .await
        .expect("follow-through");
    assert!(
        queued.iter().any(|q| q.kind.as_str() == "milestone_reminder"),
        "{queued:?}"
    );
    p.w.complete(&id, "design_approval", &p.w.am, None).await;
    p.pass("2026-03-15T09:10:00Z").await;
    assert!(p.mail("lea@test.dev", "Design approval").is_empty(), "not sent late");
    let events = p.w.events(&id).await;
    let dropped = events
        .iter()
        .find(|e| e["kind"] == "message_dropped")
        .unwrap_or_else(|| panic!("a dropped message: {:?}", kinds(&events)));
    assert_eq!(dropped["data"]["delivery"]["reason"], "Design approval was completed");
}

#[tokio::test]
async fn after_downtime_the_next_tick_sends_what_fell_due_once_and_not_what_is_long_past() {
    let p = Post::new().await;
    let order = p.w.new_order("custom-production").await;
    p.pass("2026-03-02T13:00:00Z").await;
    let before = p.sink.messages().len();
    // Nothing ran from Monday 2 March to Friday 20 March 10:30: the design approval (16 March) was reminded
    // of and overdue meanwhile; the weekly update of 20 March is due now.
    p.pass("2026-03-20T10:30:00Z").await;
    p.pass("2026-03-20T10:45:00Z").await;
    let after: Vec<ReceivedMail> = p.sink.messages().into_iter().skip(before).collect();
    let subjects: Vec<&str> = after.iter().map(|m| m.subject.as_str()).collect();
    assert!(
        !subjects.iter().any(|s| s.contains("Design approval")),
        "a reminder and an overdue notice days past are not sent late: {subjects:?}"
    );
    let weekly = after
        .iter()
        .filter(|m| m.subject.contains("Weekly") && m.envelope_to.iter().any(|t| t == "buyer@example.com"))
        .count();
    assert_eq!(
        weekly, 1,
        "this week's update once (not the two missed ones): {subjects:?}"
    );
    let text = after
        .iter()
        .find(|m| m.subject.contains("Weekly"))
        .and_then(|m| m.part_text("text/plain"))
        .unwrap_or_default();
    assert!(
        text.contains("Design approval"),
        "the late milestone is named as the cause: {text}"
    );
    assert!(!p.w.events(&id_of(&order)).await.is_empty());
}

#[tokio::test]
async fn a_message_that_keeps_failing_becomes_a_dead_letter_that_an_admin_retries() {
    let sink = SmtpSink::start_failing(451)
        .await
        .expect("an SMTP server that answers 451");
    let w = World::new().await;
    let deliverer = Deliverer::new(DeliveryConfig {
        smtp: Some(sink.settings()),
        max_attempts: 3,
        retry_base_seconds: 60,
        ..DeliveryConfig::default()
    })
    .expect("deliverer");
    let order = w.new_order("standard").await;
    let id = id_of(&order);
    let run = |now: DateTime<Utc>| {
        let state = w.app.state.clone();
        let deliverer = deliverer.clone();
        async move {
            state.clock.set(now);
            ordertrail_server::delivery::deliver_due(&state, &deliverer, "test", now, 50)
                .await
                .expect("deliver")
        }
    };
    let t = at(T0);
    let first = run(t + TimeDelta::seconds(1)).await;
    assert_eq!(first.retried, 1, "the acknowledgment: {first:?}");
    assert_eq!(
        run(t + TimeDelta::seconds(2)).await.retried,
        0,
        "not before its back-off"
    );
    let second = run(t + TimeDelta::minutes(3)).await;
    assert_eq!(second.retried, 1, "{second:?}");
    let third = run(t + TimeDelta::minutes(10)).await;
    assert_eq!(third.dead, 1, "the third failure is the last: {third:?}");
    let events = w.events(&id).await;
    let failed: Vec<&Value> = events.iter().filter(|e| e["kind"] == "message_failed").collect();
    assert_eq!(failed.len(), 3, "{:?}", kinds(&events));
    assert!(failed[0]["data"]["delivery"]["retry_at"].is_string());
    assert!(failed[2]["data"]["delivery"]["retry_at"].is_null(), "dead: no retry");
    assert!(
        failed[0]["data"]["delivery"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("451")
    );

    // The dead letter is visible to an admin (not to the account manager) and can be retried.
    let (status, _, dead) = w.app.get("/api/v1/outbox?state=failed", &w.admin.token, None).await;
    assert_eq!(status, StatusCode::OK, "{dead}");
    let dead = dead.as_array().cloned().unwrap_or_default();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0]["last_error"].as_str().unwrap_or_default().contains("451"));
    let (status, _, _) = w.app.get("/api/v1/outbox?state=failed", &w.am.token, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, reply) = w.app.get("/api/v1/outbox?state=lost", &w.admin.token, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
    sink.fail_with(None).expect("the server recovers");
    let path = format!("/api/v1/outbox/{}/retry", dead[0]["id"].as_str().unwrap_or_default());
    let (status, _, reply) = w.app.post(&path, &w.admin.token, None, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let (status, _, reply) = w.app.post(&path, &w.admin.token, None, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "not a dead letter any more: {reply}");
    let fourth = run(t + TimeDelta::minutes(11)).await;
    assert_eq!(fourth.sent, 1, "{fourth:?}");
    assert!(!sink.messages().is_empty(), "delivered after the retry");
}

#[tokio::test]
async fn a_bad_address_is_a_dead_letter_at_once_and_does_not_stop_the_batch() {
    let p = Post::with(|_| {}, |d| d.max_attempts = 5).await;
    // An address that looks plausible to a person but that no mail system takes (two dots in a row).
    let (status, _, bad) =
        p.w.app
            .post(
                "/api/v1/customers",
                &p.w.am.token,
                None,
                json!({"name": "Broken Mail Ltd", "contacts": [{"name": "Nobody", "email": "no..body@example.com"}]}),
            )
            .await;
    assert_eq!(status, StatusCode::CREATED, "{bad}");
    let mut body = p.w.order_body("standard");
    body["customer_id"] = bad["id"].clone();
    body["people"] = json!([{"relation": "owner", "user_id": p.w.am.id()}]);
    let broken = p.w.create_order(body).await;
    p.w.new_order("standard").await;
    let report = p.pass(T0).await;
    assert_eq!(report.delivered.dead, 1, "dead at once, not retried: {report:?}");
    assert!(report.delivered.sent >= 2, "the other messages still went: {report:?}");
    assert!(
        !p.mail("buyer@example.com", "").is_empty(),
        "the good order's customer got mail"
    );
    let events = p.w.events(&id_of(&broken)).await;
    let failed = events
        .iter()
        .find(|e| e["kind"] == "message_failed")
        .unwrap_or_else(|| panic!("{:?}", kinds(&events)));
    assert!(failed["data"]["delivery"]["retry_at"].is_null());
    assert!(
        failed["data"]["delivery"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("no..body"),
        "the error names the address: {failed}"
    );
}

#[tokio::test]
async fn order_events_reach_a_webhook_signed_and_confidentiality_keeps_the_customer_out() {
    for confidential in [false, true] {
        let receiver = WebhookReceiver::start(b"s3cret").await;
        let p = Post::with(
            |_| {},
            |d| {
                d.webhooks = vec![WebhookTarget {
                    url: receiver.url("/hooks/orders"),
                    secret: "s3cret".into(),
                }];
                d.confidential = confidential;
            },
        )
        .await;
        let order = p.w.new_order("standard").await;
        p.pass(T0).await;
        let hooks = receiver.received();
        let created = hooks
            .iter()
            .find(|h| h.body["kind"] == "order_created")
            .unwrap_or_else(|| panic!("the creation event: {hooks:?}"));
        assert!(created.signature_ok, "signed with the shared secret");
        assert_eq!(created.body["order_id"], order["id"]);
        assert!(
            created.event_id.as_deref().is_some_and(|e| !e.is_empty()),
            "an event id for dedupe"
        );
        let text = created.body.to_string();
        assert_eq!(
            text.contains("Acme Theatre"),
            !confidential,
            "R40: the customer's name only when not confidential: {text}"
        );
        // A second pass sends nothing again.
        let n = receiver.received().len();
        p.pass("2026-03-02T12:30:00Z").await;
        assert_eq!(receiver.received().len(), n);
    }
}

#[tokio::test]
async fn a_chinese_customer_reads_the_weekly_update_in_chinese_with_the_timeline_picture() {
    let p = Post::new().await;
    let (status, _, customer) =
        p.w.app
            .post(
                "/api/v1/customers",
                &p.w.am.token,
                None,
                json!({"name": "上海戏剧学院", "language": "zh-CN",
                   "contacts": [{"name": "王蕾", "email": "wang.lei@example.cn"}]}),
            )
            .await;
    assert_eq!(status, StatusCode::CREATED, "{customer}");
    let mut body = p.w.order_body("custom-production");
    body["customer_id"] = customer["id"].clone();
    body["title"] = json!("《雷雨》戏服");
    body["people"] = json!([{"relation": "owner", "user_id": p.w.am.id()}]);
    p.w.create_order(body).await;
    p.pass("2026-03-06T10:15:00Z").await;
    let mail = p.mail("wang.lei@example.cn", "《雷雨》戏服");
    let update = mail.iter().find(|m| m.subject.contains("每周")).unwrap_or_else(|| {
        panic!(
            "the weekly update in Chinese: {:?}",
            mail.iter().map(|m| &m.subject).collect::<Vec<_>>()
        )
    });
    let html = update.part_text("text/html").unwrap_or_default();
    assert!(html.contains("cid:timeline"), "{html}");
    let png = update.part("image/png").expect("the timeline picture");
    assert!(png.starts_with(&[0x89, b'P', b'N', b'G']), "a PNG");
    assert!(png.len() > 2_000, "a picture, not an empty image: {} bytes", png.len());
    let ack = mail
        .iter()
        .find(|m| !m.subject.contains("每周"))
        .expect("the acknowledgment");
    assert!(
        ack.part_text("text/plain")
            .unwrap_or_default()
            .chars()
            .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
    );
}

#[tokio::test]
async fn a_broken_template_override_is_refused_at_start_up_with_its_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("en")).expect("mkdir");
    std::fs::write(
        dir.path().join("en/client_update.html"),
        "<p>Hello</p>\n<p>{% if on_track %}on track</p>\n",
    )
    .expect("write");
    let refused = Deliverer::new(DeliveryConfig {
        templates_dir: Some(dir.path().to_path_buf()),
        ..DeliveryConfig::default()
    })
    .err()
    .expect("refused");
    assert!(refused.contains("client_update.html"), "{refused}");
    assert!(refused.contains(":2") || refused.contains("line 2"), "{refused}");
}

#[tokio::test]
async fn client_updates_wait_for_review_when_the_policy_says_so_and_the_account_manager_sends_them() {
    let p = Post::with(|c| c.organisation.follow_through.review_client_updates = true, |_| {}).await;
    let order = p.w.new_order("standard").await;
    let id = id_of(&order);
    p.pass("2026-03-06T10:15:00Z").await;
    assert!(p.mail("buyer@example.com", "Weekly").is_empty(), "waits for review");
    assert_eq!(
        p.sink
            .messages()
            .iter()
            .filter(|m| m.envelope_to.iter().any(|t| t == "amy@test.dev")
                && m.subject.contains(order["number"].as_str().unwrap_or("?")))
            .filter(|m| m.subject.to_lowercase().contains("draft") || m.subject.to_lowercase().contains("review"))
            .count(),
        1,
        "the account manager is told a draft waits: {:?}",
        p.sink.messages().iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    let (status, _, drafts) =
        p.w.app
            .get(
                &format!("/api/v1/outbox?state=draft&order_id={id}"),
                &p.w.am.token,
                None,
            )
            .await;
    assert_eq!(status, StatusCode::OK, "{drafts}");
    let drafts = drafts.as_array().cloned().unwrap_or_default();
    assert_eq!(drafts.len(), 1, "{drafts:?}");
    assert!(
        drafts[0]["payload"]["client_update"]["delivery_date"].is_string(),
        "the drafted update: {drafts:?}"
    );
    let send = format!("/api/v1/outbox/{}/send", drafts[0]["id"].as_str().unwrap_or_default());
    let (status, _, _) = p.w.app.post(&send, &p.w.ops.token, None, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "operations does not send client updates");
    let (status, _, reply) = p.w.app.post(&send, &p.w.am.token, None, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    p.pass("2026-03-06T10:30:00Z").await;
    assert_eq!(p.mail("buyer@example.com", "Weekly").len(), 1);
}

#[tokio::test]
async fn the_invoice_reaches_the_customer_with_the_invoice_attached_and_is_sent_once() {
    let p = Post::new().await;
    let order = p.w.new_order("custom-production").await;
    let id = id_of(&order);
    // The contract is signed today: the deposit falls due today, so its invoice goes out at once (R8).
    p.w.sign_contract(&id, TODAY).await;
    p.pass("2026-03-02T12:05:00Z").await;
    p.pass("2026-03-02T12:20:00Z").await;
    let invoices: Vec<ReceivedMail> = p
        .sink
        .messages()
        .into_iter()
        .filter(|m| m.envelope_to.iter().any(|t| t == "buyer@example.com") && m.subject.contains("INV-"))
        .collect();
    assert_eq!(
        invoices.len(),
        1,
        "{:?}",
        p.sink.messages().iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    let attached = invoices[0]
        .parts()
        .into_iter()
        .find(|part| {
            part.filename
                .as_deref()
                .is_some_and(|f| f.starts_with("INV-") && f.ends_with(".html"))
        })
        .expect("the invoice is attached");
    let html = String::from_utf8_lossy(&attached.body);
    assert!(html.contains("625.00"), "the deposit's amount: {html}");
}

#[tokio::test]
async fn internal_messages_go_to_slack_without_the_customer_when_confidential() {
    for confidential in [false, true] {
        let slack = WebhookReceiver::start(b"unused").await;
        let p = Post::with(
            |_| {},
            |d| {
                d.slack_webhook_url = Some(slack.url("/services/T000/B000/XXXX"));
                d.confidential = confidential;
            },
        )
        .await;
        let order = p.w.new_order("custom-production").await;
        p.pass("2026-03-15T09:05:00Z").await;
        let posts = slack.received();
        let reminder = posts
            .iter()
            .find(|h| {
                h.body["text"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("milestone reminder")
            })
            .unwrap_or_else(|| panic!("the reminder on Slack: {posts:?}"));
        let text = reminder.body["text"].as_str().unwrap_or_default();
        assert!(text.contains(order["number"].as_str().unwrap_or("?")), "{text}");
        assert_eq!(text.contains("Acme Theatre"), !confidential, "R40: {text}");
        assert!(
            !posts
                .iter()
                .any(|h| h.body["text"].as_str().unwrap_or_default().contains("acknowledgment")),
            "customer messages do not go to Slack: {posts:?}"
        );
    }
}
