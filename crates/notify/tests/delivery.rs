//! Delivery against real servers on loopback: lettre -> TCP -> aiosmtpd (`SmtpSink`), and reqwest -> TCP ->
//! axum (`WebhookReceiver`). Every assertion looks at what actually arrived on the other side.

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use ordertrail_notify::email::{Attachment, Email, InlineImage, Mailer, SendError, SmtpSettings};
use ordertrail_notify::testing::{SmtpSink, StatusCode, WebhookReceiver};
use ordertrail_notify::webhook::{self, WebhookClient};
use sha2::Sha256;

const WAIT: Duration = Duration::from_secs(10);

/// A 1x1 PNG (it contains CR, LF and NUL bytes: a good test that binary parts arrive byte for byte).
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49,
    0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x64, 0x60, 0xf8, 0x5f, 0x0f, 0x00, 0x02, 0x87, 0x01, 0x80, 0xeb, 0x47, 0xba,
    0x92, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// PDF-like bytes: mostly ASCII with bare LFs (which a 7bit encoding would not carry faithfully) and a
/// binary comment line.
const PDF: &[u8] = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n.\ntrailer\n<< >>\n%%EOF\n";

async fn sink() -> SmtpSink {
    match SmtpSink::start().await {
        Ok(sink) => sink,
        Err(e) => panic!("{e}"),
    }
}

fn mailer(settings: &SmtpSettings) -> Mailer {
    Mailer::new(settings).unwrap_or_else(|e| panic!("mailer: {e}"))
}

fn simple(message_id: &str, to: &str, subject: &str) -> Email {
    Email {
        message_id: message_id.to_owned(),
        to: vec![to.to_owned()],
        subject: subject.to_owned(),
        text: format!("Text of {subject}"),
        html: format!("<p>HTML of {subject}</p>"),
        inline_images: vec![],
        attachments: vec![],
    }
}

fn expect_transient(result: Result<(), SendError>, what: &str) -> String {
    match result {
        Err(SendError::Transient(message)) => message,
        other => panic!("{what}: expected a transient error, got {other:?}"),
    }
}

fn expect_permanent(result: Result<(), SendError>, what: &str) -> String {
    match result {
        Err(SendError::Permanent(message)) => message,
        other => panic!("{what}: expected a permanent error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_full_email_arrives_intact() {
    let sink = sink().await;
    let mailer = mailer(&sink.settings());
    // A long line (forces quoted-printable soft breaks), a lone dot (SMTP dot-stuffing), a "From " line,
    // non-ASCII text.
    let text = format!(
        "Hello Ann,\n\nYour order ORD-20261121-0007 is on track for 3 December.\n.\nFrom the workshop: {}\n交货日期：12月3日。\n",
        "all good, ".repeat(20)
    );
    let html = "<html><body><p>Hello Ann — on track.</p><img src=\"cid:timeline\" alt=\"timeline\"><p>交货日期：12月3日</p></body></html>".to_owned();
    let email = Email {
        message_id: "6f1c0d2e-4b7a-4c1e-9d0a-1b2c3d4e5f60@ordertrail".to_owned(),
        to: vec!["Ann Example <ann@example.com>".to_owned(), "li@example.cn".to_owned()],
        subject: "Weekly update: ORD-20261121-0007".to_owned(),
        text: text.clone(),
        html: html.clone(),
        inline_images: vec![InlineImage {
            cid: "timeline".to_owned(),
            content_type: "image/png".to_owned(),
            bytes: PNG.to_vec(),
        }],
        attachments: vec![Attachment {
            filename: "invoice-2.pdf".to_owned(),
            content_type: "application/pdf".to_owned(),
            bytes: PDF.to_vec(),
        }],
    };
    mailer.send(&email).await.unwrap_or_else(|e| panic!("send: {e}"));

    let mails = sink.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1, "one message expected");
    let mail = &mails[0];
    assert_eq!(mail.subject, "Weekly update: ORD-20261121-0007");
    assert_eq!(mail.message_id, email.message_id);
    assert_eq!(mail.envelope_to, vec!["ann@example.com", "li@example.cn"]);
    assert_eq!(mail.envelope_from, "noreply@ordertrail.test");
    let to = mail.header("To").unwrap_or_default();
    assert!(
        to.contains("Ann Example") && to.contains("<ann@example.com>") && to.contains("li@example.cn"),
        "{to}"
    );
    let from = mail.header("From").unwrap_or_default();
    assert!(from.contains("noreply@ordertrail.test"), "{from}");
    assert!(mail.header("Date").is_some_and(|d| !d.is_empty()), "no Date header");
    assert_eq!(
        mail.structure(),
        "multipart/mixed(multipart/related(multipart/alternative(text/plain,text/html),image/png),application/pdf)"
    );
    assert_eq!(mail.part_text("text/plain").as_deref(), Some(text.as_str()));
    assert_eq!(mail.part_text("text/html").as_deref(), Some(html.as_str()));
    assert_eq!(mail.part("image/png").as_deref(), Some(PNG));
    assert_eq!(mail.part("application/pdf").as_deref(), Some(PDF));

    let parts = mail.parts();
    let image = parts.iter().find(|p| p.content_type == "image/png");
    assert_eq!(image.and_then(|p| p.content_id.as_deref()), Some("timeline"));
    assert_eq!(image.and_then(|p| p.disposition.as_deref()), Some("inline"));
    let pdf = parts.iter().find(|p| p.content_type == "application/pdf");
    assert_eq!(pdf.and_then(|p| p.filename.as_deref()), Some("invoice-2.pdf"));
    assert_eq!(pdf.and_then(|p| p.disposition.as_deref()), Some("attachment"));
}

#[tokio::test]
async fn a_chinese_subject_arrives_decoded() {
    let sink = sink().await;
    let mailer = mailer(&sink.settings());
    let subject = "订单 ORD-20261121-0007 每周进度：设计已确认，面料审批进行中，预计十二月三日交付（按计划）";
    let mut email = simple("zh-1@ordertrail", "王芳 <wang@example.cn>", subject);
    email.text = "您好，\n订单按计划进行。\n".to_owned();
    email.html = String::new();
    mailer.send(&email).await.unwrap_or_else(|e| panic!("send: {e}"));

    let mails = sink.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].subject, subject);
    assert!(
        !mails[0].raw.contains("订单"),
        "the subject must travel RFC 2047-encoded, not raw UTF-8"
    );
    assert_eq!(mails[0].structure(), "text/plain");
    assert_eq!(mails[0].part_text("text/plain").as_deref(), Some(email.text.as_str()));
    assert!(mails[0].header("To").is_some_and(|to| to.contains("王芳")));
}

#[tokio::test]
async fn a_bad_recipient_is_permanent_and_sends_nothing() {
    let sink = sink().await;
    let mailer = mailer(&sink.settings());
    let mut email = simple("bad-1@ordertrail", "ann@example.com", "Bad recipient");
    email.to.push("not an address".to_owned());
    let message = expect_permanent(mailer.send(&email).await, "bad recipient");
    assert!(message.contains("not an address"), "{message}");

    // The batch goes on: the next message is delivered, and it is the only one that arrived.
    mailer
        .send(&simple("good-1@ordertrail", "ann@example.com", "Good"))
        .await
        .unwrap_or_else(|e| panic!("send: {e}"));
    let mails = sink.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mails_later = sink.messages();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails_later.len(), 1, "the bad message must not have been sent");
    assert_eq!(mails_later[0].message_id, "good-1@ordertrail");

    let bad_from = SmtpSettings {
        from: "Ordertrail <no at sign>".to_owned(),
        ..sink.settings()
    };
    let message = match Mailer::new(&bad_from) {
        Err(SendError::Permanent(message)) => message,
        other => panic!("bad from: expected a permanent error, got {other:?}"),
    };
    assert!(message.contains("no at sign"), "{message}");

    let mut bad_id = simple("no-at-sign", "ann@example.com", "Bad id");
    bad_id.message_id = "no-at-sign".to_owned();
    expect_permanent(mailer.send(&bad_id).await, "bad Message-ID");
}

#[tokio::test]
async fn smtp_451_is_transient_and_a_retry_succeeds() {
    let sink = SmtpSink::start_failing(451).await.unwrap_or_else(|e| panic!("{e}"));
    let mailer = mailer(&sink.settings());
    let email = simple("retry-1@ordertrail", "ann@example.com", "Retry me");
    let message = expect_transient(mailer.send(&email).await, "451");
    assert!(message.contains("451"), "{message}");
    assert!(sink.messages().is_empty());

    sink.fail_with(None).unwrap_or_else(|e| panic!("{e}"));
    mailer.send(&email).await.unwrap_or_else(|e| panic!("retry: {e}"));
    let mails = sink.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].message_id, "retry-1@ordertrail");
}

#[tokio::test]
async fn smtp_550_is_permanent() {
    let sink = SmtpSink::start_failing(550).await.unwrap_or_else(|e| panic!("{e}"));
    let mailer = mailer(&sink.settings());
    let message = expect_permanent(
        mailer
            .send(&simple("perm-1@ordertrail", "ann@example.com", "Refused"))
            .await,
        "550",
    );
    assert!(message.contains("550"), "{message}");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn a_closed_port_is_transient() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        listener.local_addr().unwrap_or_else(|e| panic!("{e}")).port()
    };
    let settings = SmtpSettings {
        host: "127.0.0.1".to_owned(),
        port,
        security: ordertrail_notify::email::Security::None,
        username: None,
        password: None,
        from: "noreply@ordertrail.test".to_owned(),
        timeout_seconds: 5,
    };
    let started = Instant::now();
    expect_transient(
        mailer(&settings)
            .send(&simple("closed-1@ordertrail", "ann@example.com", "Nobody home"))
            .await,
        "closed port",
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a refused connection must fail fast"
    );
}

#[tokio::test]
async fn a_silent_server_times_out_transiently() {
    // Accepts TCP connections and never says a word: the SMTP greeting never comes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let port = listener.local_addr().unwrap_or_else(|e| panic!("{e}")).port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let settings = SmtpSettings {
        host: "127.0.0.1".to_owned(),
        port,
        security: ordertrail_notify::email::Security::None,
        username: None,
        password: None,
        from: "noreply@ordertrail.test".to_owned(),
        timeout_seconds: 1,
    };
    let started = Instant::now();
    expect_transient(
        mailer(&settings)
            .send(&simple("silent-1@ordertrail", "ann@example.com", "Hello?"))
            .await,
        "silent server",
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    holder.abort();
}

#[tokio::test]
async fn a_caller_that_stops_waiting_does_not_break_the_pool() {
    let sink = sink().await;
    let mailer = mailer(&sink.settings());
    // Warm the pool so the abandoned delivery runs on a pooled connection.
    mailer
        .send(&simple("warm-1@ordertrail", "ann@example.com", "Warm"))
        .await
        .unwrap_or_else(|e| panic!("warm: {e}"));
    // Give up on the second one almost at once: its delivery goes on in its own task and completes.
    let abandoned = simple("abandoned-1@ordertrail", "ann@example.com", "Abandoned");
    let _ = tokio::time::timeout(Duration::from_millis(1), mailer.send(&abandoned)).await;
    let mails = sink.wait_for(2, WAIT).await;
    assert_eq!(mails.len(), 2, "the abandoned delivery still completes");
    // The pool is still in step with the server: the next messages go through, each exactly once.
    for i in 0..3 {
        let id = format!("after-{i}@ordertrail");
        mailer
            .send(&simple(&id, "ann@example.com", "After"))
            .await
            .unwrap_or_else(|e| panic!("after {i}: {e}"));
    }
    let mails = sink.wait_for(5, WAIT).await;
    let ids: Vec<&str> = mails.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(
        ids,
        vec![
            "warm-1@ordertrail",
            "abandoned-1@ordertrail",
            "after-0@ordertrail",
            "after-1@ordertrail",
            "after-2@ordertrail"
        ]
    );
}

#[tokio::test]
async fn the_same_email_sent_twice_keeps_its_message_id() {
    let sink = sink().await;
    let mailer = mailer(&sink.settings());
    let email = simple("dup-1@ordertrail", "ann@example.com", "Sent twice");
    mailer.send(&email).await.unwrap_or_else(|e| panic!("first: {e}"));
    mailer.send(&email).await.unwrap_or_else(|e| panic!("second: {e}"));
    let other = simple("dup-2@ordertrail", "ann@example.com", "Another");
    mailer.send(&other).await.unwrap_or_else(|e| panic!("third: {e}"));

    let mails = sink.wait_for(3, WAIT).await;
    let ids: Vec<&str> = mails.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(ids, vec!["dup-1@ordertrail", "dup-1@ordertrail", "dup-2@ordertrail"]);
    let mut distinct = ids.clone();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        2,
        "a receiver deduping on Message-ID keeps two messages"
    );
}

// ------------------------------------------------------------------------------------------------------------
// Webhooks
// ------------------------------------------------------------------------------------------------------------

const SECRET: &[u8] = b"whsec_test_secret";

fn client() -> WebhookClient {
    WebhookClient::new(webhook::DEFAULT_WEBHOOK_TIMEOUT).unwrap_or_else(|e| panic!("client: {e}"))
}

#[test]
fn the_signature_matches_independent_computations() {
    let timestamp = 1_700_000_000;
    let body = br#"{"event":"order.shipped","order":"ORD-20261121-0007"}"#;
    // From: printf '%s' '1700000000.{"event":...}' | openssl dgst -sha256 -hmac 'whsec_test_secret'
    let openssl = "sha256=6530607237f225b585ce4c7d8882f9efe0aed2eca45130485a04d720a4dc27c1";
    assert_eq!(webhook::signature(SECRET, timestamp, body), openssl);

    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap_or_else(|e| panic!("{e}"));
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    let direct = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(webhook::signature(SECRET, timestamp, body), direct);
}

#[test]
fn verify_rejects_tampering() {
    let body = br#"{"event":"payment.received","amount_minor":125000}"#;
    let sig = webhook::signature(SECRET, 1_700_000_000, body);
    assert!(webhook::verify(SECRET, 1_700_000_000, body, &sig));
    let changed = br#"{"event":"payment.received","amount_minor":925000}"#;
    assert!(!webhook::verify(SECRET, 1_700_000_000, changed, &sig), "changed body");
    assert!(!webhook::verify(SECRET, 1_700_000_001, body, &sig), "changed timestamp");
    assert!(
        !webhook::verify(b"another secret", 1_700_000_000, body, &sig),
        "wrong secret"
    );
    assert!(!webhook::verify(SECRET, 1_700_000_000, body, "sha256=00"), "garbage");
}

#[tokio::test]
async fn a_signed_webhook_arrives_verified() {
    let receiver = WebhookReceiver::start(SECRET).await;
    let body = serde_json::json!({"event": "order.shipped", "order": "ORD-20261121-0007", "tracking": "https://track.example/1Z"});
    let bytes = serde_json::to_vec(&body).unwrap_or_else(|e| panic!("{e}"));
    let now = chrono::Utc::now().timestamp();
    client()
        .post_signed(&receiver.url("/hooks/orders"), SECRET, "evt-0001", &bytes, now)
        .await
        .unwrap_or_else(|e| panic!("post: {e}"));

    let hooks = receiver.wait_for(1, WAIT).await;
    assert_eq!(hooks.len(), 1);
    let hook = &hooks[0];
    assert_eq!(hook.method, "POST");
    assert_eq!(hook.path, "/hooks/orders");
    assert!(hook.signature_ok, "signature did not verify: {hook:?}");
    assert_eq!(hook.event_id.as_deref(), Some("evt-0001"));
    assert_eq!(hook.timestamp, Some(now));
    assert_eq!(hook.body, body);
    assert_eq!(hook.raw_body, bytes);
    assert_eq!(hook.header("content-type"), Some("application/json"));

    // A receiver with another secret sees the same request as unsigned.
    let stranger = WebhookReceiver::start(b"not the secret").await;
    client()
        .post_signed(&stranger.url("/x"), SECRET, "evt-0002", &bytes, now)
        .await
        .unwrap_or_else(|e| panic!("post: {e}"));
    let hooks = stranger.wait_for(1, WAIT).await;
    assert_eq!(hooks.len(), 1);
    assert!(!hooks[0].signature_ok);
}

#[tokio::test]
async fn webhook_statuses_are_classified() {
    let receiver = WebhookReceiver::start(SECRET).await;
    let client = client();
    let url = receiver.url("/hooks/status");
    let post = |event: &'static str| {
        let client = client.clone();
        let url = url.clone();
        async move { client.post_signed(&url, SECRET, event, b"{}", 1_700_000_000).await }
    };

    receiver.set_status(StatusCode::INTERNAL_SERVER_ERROR);
    let message = expect_transient(post("evt-500").await, "500");
    assert!(message.contains("500"), "{message}");

    receiver.set_status(StatusCode::BAD_REQUEST);
    let message = expect_permanent(post("evt-400").await, "400");
    assert!(message.contains("400"), "{message}");
    assert!(
        !message.contains("/hooks/status"),
        "errors must not show the URL's path: {message}"
    );

    receiver.set_status(StatusCode::TOO_MANY_REQUESTS);
    expect_transient(post("evt-429").await, "429");

    receiver.set_status(StatusCode::REQUEST_TIMEOUT);
    expect_transient(post("evt-408").await, "408");

    receiver.set_status(StatusCode::MOVED_PERMANENTLY);
    expect_permanent(post("evt-301").await, "301 (redirects are not followed)");

    receiver.set_status(StatusCode::NO_CONTENT);
    post("evt-204").await.unwrap_or_else(|e| panic!("204: {e}"));

    let ids: Vec<Option<String>> = receiver.received().into_iter().map(|h| h.event_id).collect();
    assert_eq!(ids.len(), 6, "every attempt reached the receiver: {ids:?}");
}

#[tokio::test]
async fn webhook_network_trouble_is_transient_and_bad_urls_permanent() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        listener.local_addr().unwrap_or_else(|e| panic!("{e}")).port()
    };
    let client = client();
    expect_transient(
        client
            .post_signed(&format!("http://127.0.0.1:{port}/x"), SECRET, "e", b"{}", 1)
            .await,
        "closed port",
    );
    expect_permanent(client.post_slack("not a url", "hi").await, "bad URL");
    expect_permanent(client.post_slack("file:///etc/passwd", "hi").await, "file URL");

    let receiver = WebhookReceiver::start(SECRET).await;
    receiver.set_delay(Duration::from_secs(3));
    let impatient = WebhookClient::new(Duration::from_millis(300)).unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    expect_transient(impatient.post_slack(&receiver.url("/slow"), "hi").await, "timeout");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn post_slack_sends_text_json() {
    let receiver = WebhookReceiver::start(SECRET).await;
    let text = "ORD-20261121-0007 is *late* by 3 days — \"fabric\" delayed; 面料延误";
    client()
        .post_slack(&receiver.url("/services/T000/B000/XXXX"), text)
        .await
        .unwrap_or_else(|e| panic!("slack: {e}"));
    let hooks = receiver.wait_for(1, WAIT).await;
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].body, serde_json::json!({ "text": text }));
    assert_eq!(hooks[0].header("content-type"), Some("application/json"));
    assert_eq!(hooks[0].path, "/services/T000/B000/XXXX");
}
