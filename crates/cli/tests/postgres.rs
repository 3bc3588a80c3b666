//! Several `ordertrail serve` processes on one PostgreSQL database, as behind a load balancer: concurrent
//! transitions of one order through both make exactly one change per version (the others get 409), order
//! numbers stay unique across them, every chain verifies; and a server whose database goes away answers its
//! health check with 503 and the reason, and recovers by itself when the database is back. Skipped (saying
//! so) without `ORDERTRAIL_TEST_POSTGRES_URL`; CI sets it.

use ordertrail_store::testing::TestDatabase;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A running `ordertrail serve`; killed when dropped.
struct Server {
    child: Child,
    base: String,
    /// The admin token, when started with `--demo`.
    token: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(db: &str, demo: bool) -> Server {
    let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
    if demo {
        args.push("--demo");
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_ordertrail"))
        .args(&args)
        .env("ORDERTRAIL_DATABASE_URL", db)
        .env_remove("ORDERTRAIL_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (mut base, mut token) = (String::new(), None);
    let started = Instant::now();
    while (base.is_empty() || (demo && token.is_none())) && started.elapsed() < Duration::from_secs(60) {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(rest) = line.split("on http://").nth(1) {
            base = format!("http://{}", rest.split('/').next().unwrap_or_default());
        }
        if let Some(t) = line.split_whitespace().find(|w| w.starts_with("ot_") && w.len() > 20) {
            token = Some(t.to_string());
        }
    }
    assert!(!base.is_empty(), "serve printed its URL");
    Server { child, base, token }
}

async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_on_one_database_make_one_change_per_version_and_unique_numbers() {
    let Some(db) = TestDatabase::postgres("two_servers_on_one_database").await else {
        return;
    };
    let a = serve(&db.url, true);
    let b = serve(&db.url, false);
    let admin = a.token.clone().expect("admin token");
    // Amy, the demo's account manager, creates and moves orders.
    let issued = Command::new(env!("CARGO_BIN_EXE_ordertrail"))
        .args(["token", "issue", "amy@demo.ordertrail.dev"])
        .env("ORDERTRAIL_DATABASE_URL", &db.url)
        .output()
        .expect("token issue runs");
    let token = String::from_utf8_lossy(&issued.stdout).trim().to_string();
    assert!(token.starts_with("ot_"), "{}", String::from_utf8_lossy(&issued.stderr));
    ordertrail_notify::install_crypto_provider();
    let client = reqwest::Client::new();
    let (_, me) = send(
        &client,
        reqwest::Method::GET,
        format!("{}/api/v1/me", b.base),
        &token,
        None,
    )
    .await;
    let amy = me["user"]["id"].clone();
    let servers = [a.base.clone(), b.base.clone()];

    // Orders created through both servers at once get distinct, consecutive numbers.
    let (_, page) = send(
        &client,
        reqwest::Method::GET,
        format!("{}/api/v1/orders?limit=200", a.base),
        &admin,
        None,
    )
    .await;
    let customer = page["items"][0]["customer_id"].clone();
    let mut creations = Vec::new();
    for i in 0..24 {
        let (client, base, token) = (client.clone(), servers[i % 2].clone(), token.clone());
        let (customer, amy) = (customer.clone(), amy.clone());
        creations.push(tokio::spawn(async move {
            let body = json!({
                "workflow": "standard", "customer_id": customer, "title": format!("Race {i}"),
                "order_type": "regular", "amount": {"currency": "USD", "amount": "10.00"},
                "order_date": "2026-11-20", "promised_date": "2026-12-20",
                "people": [{"relation": "owner", "user_id": amy}],
            });
            let (status, order) = send(
                &client,
                reqwest::Method::POST,
                format!("{base}/api/v1/orders"),
                &token,
                Some(body),
            )
            .await;
            assert_eq!(status, 201, "{order}");
            (
                order["id"].as_str().unwrap_or_default().to_string(),
                order["number"].as_str().unwrap_or_default().to_string(),
            )
        }));
    }
    let mut created = Vec::new();
    for c in creations {
        created.push(c.await.expect("task"));
    }
    let mut numbers: Vec<&str> = created.iter().map(|(_, n)| n.as_str()).collect();
    numbers.sort();
    // (The demo may have numbered orders of that day already: the 24 follow on, without gaps or repeats.)
    let first: u32 = numbers[0]
        .trim_start_matches("ORD20261120")
        .parse()
        .expect("a sequence");
    let expected: Vec<String> = (first..first + 24).map(|n| format!("ORD20261120{n:03}")).collect();
    assert_eq!(numbers, expected);

    // 16 requests, split over both servers, move the same order from the version they all saw.
    let (order_id, _) = &created[0];
    let mut racers = Vec::new();
    for i in 0..16 {
        let (client, base, token, id) = (client.clone(), servers[i % 2].clone(), token.clone(), order_id.clone());
        racers.push(tokio::spawn(async move {
            let body = json!({"to": "in_production", "expected_version": 1, "note": format!("racer {i}")});
            send(
                &client,
                reqwest::Method::POST,
                format!("{base}/api/v1/orders/{id}/transitions"),
                &token,
                Some(body),
            )
            .await
        }));
    }
    let mut statuses = Vec::new();
    for r in racers {
        let (status, body) = r.await.expect("task");
        assert!(status == 200 || status == 409, "{status}: {body}");
        statuses.push(status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 15);

    let (_, events) = send(
        &client,
        reqwest::Method::GET,
        format!("{}/api/v1/orders/{order_id}/events", b.base),
        &token,
        None,
    )
    .await;
    let seqs: Vec<i64> = events
        .as_array()
        .map(|e| e.iter().filter_map(|x| x["seq"].as_i64()).collect())
        .unwrap_or_default();
    // Created, moved once (the move completes "Order confirmed"): no event lost or duplicated.
    assert_eq!(seqs, [1, 2, 3]);
    drop((a, b));
    let verify = Command::new(env!("CARGO_BIN_EXE_ordertrail"))
        .arg("verify")
        .env("ORDERTRAIL_DATABASE_URL", &db.url)
        .output()
        .expect("verify runs");
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
}

/// A TCP proxy to PostgreSQL that can be cut: while cut, it refuses connections and closes open ones.
async fn proxy(to: String, open: Arc<AtomicBool>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            if !open.load(Ordering::SeqCst) {
                continue;
            }
            let (to, open) = (to.clone(), open.clone());
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(&to).await else {
                    return;
                };
                let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                let cut = async {
                    while open.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                };
                tokio::select! { _ = copy => {}, _ = cut => {} }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_whose_database_goes_away_says_503_and_recovers_by_itself() {
    let Some(db) = TestDatabase::postgres("a_server_whose_database_goes_away").await else {
        return;
    };
    let mut url = url::Url::parse(&db.url).expect("url");
    let target = format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(5432)
    );
    let open = Arc::new(AtomicBool::new(false));
    let port = proxy(target, open.clone()).await;
    url.set_host(Some("127.0.0.1")).expect("host");
    url.set_port(Some(port)).expect("port");

    // It starts while the database does not answer.
    let server = serve(url.as_str(), false);
    ordertrail_notify::install_crypto_provider();
    let client = reqwest::Client::new();
    let health = || async {
        let response = client
            .get(format!("{}/api/v1/health", server.base))
            .send()
            .await
            .expect("answers");
        (response.status().as_u16(), response.text().await.unwrap_or_default())
    };
    let (status, body) = health().await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("database"), "the reason is given: {body}");

    // The database comes back: the server notices by itself.
    open.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let mut last = (0, String::new());
    while started.elapsed() < Duration::from_secs(30) {
        last = health().await;
        if last.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(last.0, 200, "{}", last.1);

    // And goes away again: 503 again, then back again.
    open.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = health().await;
    assert_eq!(status, 503, "{body}");
    open.store(true, Ordering::SeqCst);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) && health().await.0 != 200 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(health().await.0, 200);
}
