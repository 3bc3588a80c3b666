//! `ordertrail bench`: starts `ordertrail serve` on a fresh SQLite file as a child process, drives order
//! creation and status transitions through the HTTP API with keep-alive connections, and in the same run
//! measures the bare SQLite transaction of the same writes (select the order, update its row, insert the
//! event, insert an outbox row; same pragmas, same driver). The disk's speed here varies several-fold from
//! minute to minute, so the ratio HTTP/bare taken within one run is the figure that means something.

use clap::Args;
use ordertrail_domain::Role;
use ordertrail_domain::event::{GENESIS_HASH, truncate_to_micros};
use ordertrail_server::app;
use ordertrail_server::clock::Clock;
use ordertrail_server::config::Config;
use ordertrail_server::state::AppState;
use ordertrail_store::sqlite::{Durability, SqliteStore, connect_options};
use ordertrail_store::{Store, format_time};
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::sqlite::SqlitePoolOptions;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

#[derive(Args, Clone)]
pub struct BenchArgs {
    /// Orders to create over HTTP (each later takes 4 transitions).
    #[arg(long, default_value_t = 6000)]
    orders: usize,
    /// Transitions to make at concurrency 1.
    #[arg(long, default_value_t = 2000)]
    transitions_c1: usize,
    /// Transitions to make at concurrency 16.
    #[arg(long, default_value_t = 16000)]
    transitions_c16: usize,
    /// Bare SQLite transactions per measurement.
    #[arg(long, default_value_t = 8000)]
    bare: usize,
    /// SQLite durability for both the server and the bare transaction: normal or full.
    #[arg(long, default_value = "normal")]
    durability: String,
}

struct Stats {
    count: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

impl Stats {
    fn new(mut latencies: Vec<Duration>, elapsed: Duration) -> Stats {
        latencies.sort();
        let at = |q: f64| {
            latencies
                .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        Stats {
            count: latencies.len(),
            elapsed,
            p50: at(0.50),
            p99: at(0.99),
        }
    }
    fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }
    fn line(&self, what: &str) -> String {
        format!(
            "{what:<34} {:>7} ops in {:>6.2}s  {:>8.0}/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
            self.count,
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3
        )
    }
}

fn rss_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub async fn run(args: BenchArgs) -> Result<(), String> {
    let durability = match args.durability.as_str() {
        "normal" => Durability::Normal,
        "full" => Durability::Full,
        other => return Err(format!("--durability must be normal or full, not '{other}'")),
    };
    let dir = std::env::temp_dir().join(format!("ordertrail-bench-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let result = run_in(&args, durability, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_in(args: &BenchArgs, durability: Durability, dir: &std::path::Path) -> Result<(), String> {
    let url = format!("sqlite://{}", dir.join("bench.db").display());
    let token = prepare(&url, durability).await?;

    // Start the server and time its first healthy answer.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(exe)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("ORDERTRAIL_DATABASE_URL", &url)
        .env("ORDERTRAIL_DURABILITY", &args.durability)
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start the server: {e}"))?;
    let pid = child.id().unwrap_or(0);
    tracing::info!(pid, "server started");
    let base = format!("http://127.0.0.1:{port}/api/v1");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .map_err(|e| e.to_string())?;
    let startup = loop {
        if let Ok(r) = client.get(format!("{base}/health")).send().await
            && r.status().is_success()
        {
            break started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(20) {
            return Err("the server did not answer /api/v1/health within 20 s".into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_rss = rss_kib(pid, "VmRSS:").unwrap_or(0);

    let auth = format!("Bearer {token}");
    let customer: Value = client
        .post(format!("{base}/customers"))
        .header("authorization", &auth)
        .header("x-ordertrail-role", "account_manager")
        .json(&json!({"name": "Bench Customer", "contacts": [{"name": "Pat", "email": "pat@example.com"}]}))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let customer_id = customer["id"].as_str().ok_or("customer creation failed")?.to_string();

    // Order creation at concurrency 16.
    let order_body = json!({
        "workflow": "standard", "customer_id": customer_id, "title": "Bench order: 40 cartons", "order_type": "regular",
        "amount": {"currency": "USD", "amount": "1250.00"}, "promised_date": "2030-01-31",
        "line_items": [{"description": "Carton, printed", "quantity": 40}]
    });
    let (created, creation) = drive(16, args.orders, |_| {
        let request = client
            .post(format!("{base}/orders"))
            .header("authorization", &auth)
            .header("x-ordertrail-role", "account_manager")
            .json(&order_body);
        async move {
            let r = match request.send().await {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("order creation failed: {e}");
                    return None;
                }
            };
            if r.status().as_u16() != 201 {
                eprintln!(
                    "order creation failed: {} {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                );
                return None;
            }
            // Only the id: the client shares the server's two cores, so it reads no more than it needs.
            #[derive(serde::Deserialize)]
            struct Created {
                id: String,
            }
            r.json::<Created>().await.ok().map(|c| c.id)
        }
    })
    .await;
    let orders: Arc<Vec<String>> = Arc::new(created.into_iter().flatten().collect());
    if orders.len() < args.orders {
        return Err(format!("only {} of {} orders were created", orders.len(), args.orders));
    }

    // Transitions: each order walks pending_confirmation -> in_production -> shipped -> delivered -> completed.
    let steps = [
        ("account_manager", json!({"to": "in_production"})),
        (
            "logistics",
            json!({"to": "shipped", "fields": {"carrier": "UPS", "tracking_number": "1Z999AA10123456784"}}),
        ),
        ("logistics", json!({"to": "delivered"})),
        (
            "account_manager",
            json!({"to": "completed", "fields": {"receipt_confirmed_by": "Pat"}, "confirm": true}),
        ),
    ];
    let next_order = Arc::new(AtomicUsize::new(0));
    let transitions = |concurrency: usize, count: usize| {
        let (client, base, auth, orders, next_order, steps) =
            (&client, &base, &auth, orders.clone(), next_order.clone(), &steps);
        async move {
            // Each worker walks whole orders so that every request is a valid next step.
            let per_worker = count / concurrency;
            let started = Instant::now();
            let mut handles = Vec::new();
            for _ in 0..concurrency {
                let (client, base, auth, orders, next_order, steps) = (
                    client.clone(),
                    base.clone(),
                    auth.clone(),
                    orders.clone(),
                    next_order.clone(),
                    steps.clone(),
                );
                handles.push(tokio::spawn(async move {
                    let mut latencies = Vec::with_capacity(per_worker);
                    let mut failures = 0usize;
                    while latencies.len() + failures < per_worker {
                        let i = next_order.fetch_add(1, Ordering::Relaxed);
                        let Some(id) = orders.get(i) else { break };
                        for (role, body) in &steps {
                            let t = Instant::now();
                            let ok = client
                                .post(format!("{base}/orders/{id}/transitions"))
                                .header("authorization", &auth)
                                .header("x-ordertrail-role", *role)
                                .json(body)
                                .send()
                                .await
                                .is_ok_and(|r| r.status().is_success());
                            if ok { latencies.push(t.elapsed()) } else { failures += 1 }
                        }
                    }
                    (latencies, failures)
                }));
            }
            let mut all = Vec::new();
            let mut failures = 0;
            for h in handles {
                if let Ok((l, f)) = h.await {
                    all.extend(l);
                    failures += f;
                }
            }
            (Stats::new(all, started.elapsed()), failures)
        }
    };

    let solo = in_process_creation(&dir.join("solo.db"), durability, args.orders.min(4000)).await?;
    let (c1, f1) = transitions(1, args.transitions_c1).await;
    let bare_before = bare(&dir.join("bare.db"), durability, args.bare).await?;
    let (c16, f16) = transitions(16, args.transitions_c16).await;
    let bare_after = bare(&dir.join("bare2.db"), durability, args.bare).await?;
    let peak_rss = rss_kib(pid, "VmHWM:").unwrap_or(0);
    let _ = child.kill().await;

    let bare_rate = (bare_before.rate() + bare_after.rate()) / 2.0;
    println!(
        "ordertrail bench: SQLite WAL, synchronous={}, {} cores",
        args.durability.to_uppercase(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "server start to first 200 /health   {:>8.1} ms",
        startup.as_secs_f64() * 1e3
    );
    println!(
        "server idle RSS                     {:>8.1} MB",
        idle_rss as f64 / 1024.0
    );
    println!(
        "server peak RSS                     {:>8.1} MB",
        peak_rss as f64 / 1024.0
    );
    println!("{}", creation.line("order create, HTTP, c=16"));
    println!("{}", solo.line("order create, in-process, c=16"));
    println!("{}", c1.line("transition, HTTP, c=1"));
    println!("{}", c16.line("transition, HTTP, c=16"));
    println!("{}", bare_before.line("bare SQLite txn (before c=16)"));
    println!("{}", bare_after.line("bare SQLite txn (after c=16)"));
    println!(
        "ratio HTTP c=16 / bare              {:>8.1} %",
        100.0 * c16.rate() / bare_rate
    );
    println!(
        "ratio HTTP c=1 / bare               {:>8.1} %",
        100.0 * c1.rate() / bare_rate
    );
    if f1 + f16 > 0 {
        println!("failed transitions: {} (c=1), {} (c=16)", f1, f16);
    }
    Ok(())
}

/// Runs `count` requests made by `make(i)` at `concurrency`, returning their results and timing.
async fn drive<F, Fut, T>(concurrency: usize, count: usize, make: F) -> (Vec<Option<T>>, Stats)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    use futures::StreamExt as _;
    let started = Instant::now();
    let timed = |i| {
        let fut = make(i);
        async move {
            let t = Instant::now();
            let out = fut.await;
            (out, t.elapsed())
        }
    };
    let done: Vec<(Option<T>, Duration)> = futures::stream::iter(0..count)
        .map(timed)
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let (results, latencies): (Vec<_>, Vec<_>) = done.into_iter().unzip();
    (results, Stats::new(latencies, started.elapsed()))
}

/// Creates the bench's user and token directly in the database (before the server starts).
async fn prepare(url: &str, durability: Durability) -> Result<String, String> {
    let org = Config::default().organisation().map_err(|e| e.to_string())?;
    let store = SqliteStore::open(url, durability, Arc::new(org.workflows.clone()))
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let state = AppState::new(Arc::new(store) as Arc<dyn Store>, org, Clock::System);
    app::add_user(
        &state,
        "bench@example.com",
        "Bench",
        vec![Role::AccountManager, Role::Logistics],
        None,
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(app::issue_token(&state, "bench@example.com")
        .await
        .map_err(|e| e.to_string())?
        .1)
}

/// Order creation through the use case, in this process, without HTTP: what the store and domain cost alone.
async fn in_process_creation(path: &std::path::Path, durability: Durability, count: usize) -> Result<Stats, String> {
    let url = format!("sqlite://{}", path.display());
    let org = Config::default().organisation().map_err(|e| e.to_string())?;
    let store = SqliteStore::open(&url, durability, Arc::new(org.workflows.clone()))
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let state = AppState::new(Arc::new(store) as Arc<dyn Store>, org, Clock::System);
    let user = app::add_user(&state, "solo@example.com", "Solo", vec![Role::AccountManager], None)
        .await
        .map_err(|e| e.to_string())?;
    let acting = ordertrail_domain::decide::Acting {
        user: user.id,
        role: Role::AccountManager,
    };
    let customer = ordertrail_domain::customer::NewCustomer {
        name: "Bench Customer".into(),
        language: Default::default(),
        contacts: vec![],
        notes: None,
    };
    let customer = app::create_customer(&state, acting, customer)
        .await
        .map_err(|e| e.to_string())?;
    let order: ordertrail_domain::decide::NewOrder = serde_json::from_value(json!({
        "workflow": "standard", "customer_id": customer.id, "title": "Bench order: 40 cartons", "order_type": "regular",
        "amount": {"currency": "USD", "amount": "1250.00"}, "promised_date": "2030-01-31",
        "line_items": [{"description": "Carton, printed", "quantity": 40}]
    }))
    .map_err(|e| e.to_string())?;
    let (_, stats) = drive(16, count, |_| {
        let (state, order) = (state.clone(), order.clone());
        async move { app::create_order(&state, acting, order).await.ok() }
    })
    .await;
    Ok(stats)
}

/// The bare transaction of one transition's writes, on the product's schema, pragmas and driver.
async fn bare(path: &std::path::Path, durability: Durability, count: usize) -> Result<Stats, String> {
    let url = format!("sqlite://{}", path.display());
    let _ = std::fs::remove_file(path);
    {
        let org = Config::default().organisation().map_err(|e| e.to_string())?;
        let store = SqliteStore::open(&url, durability, Arc::new(org.workflows))
            .await
            .map_err(|e| e.to_string())?;
        store.migrate().await.map_err(|e| e.to_string())?;
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(connect_options(&url, durability).map_err(|e| e.to_string())?)
        .await
        .map_err(|e| e.to_string())?;
    // The same background checkpoints as the product.
    let alive = Arc::new(());
    let checkpoints = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(connect_options(&url, durability).map_err(|e| e.to_string())?)
        .await
        .map_err(|e| e.to_string())?;
    ordertrail_store::sqlite::spawn_checkpointer(checkpoints, Arc::downgrade(&alive));
    let now = format_time(truncate_to_micros(chrono::Utc::now()));
    let body = "x".repeat(2500);
    sqlx::query(
        "INSERT INTO customers (id, name, body, version, head_hash, created_at) VALUES ('c', 'c', '{}', 1, '', $1)",
    )
    .bind(&now)
    .execute(&pool)
    .await
    .map_err(|e| e.to_string())?;
    let ids: Vec<String> = (0..200).map(|_| Uuid::now_v7().to_string()).collect();
    for (i, id) in ids.iter().enumerate() {
        sqlx::query(
            "INSERT INTO orders (id, number, workflow, status, customer_id, order_type, amount_minor, currency, order_date, promised_date,
               awaits_delivery, open_exceptions, search_text, body, version, head_hash, created_at, updated_at)
             VALUES ($1, $2, 'standard', 's0', 'c', 'regular', 1, 'USD', '2026-01-01', '2026-02-01', 1, 0, '', $3, 0, $4, $5, $5)",
        )
        .bind(id)
        .bind(format!("B{i}"))
        .bind(&body)
        .bind(GENESIS_HASH)
        .bind(&now)
        .execute(&pool)
        .await
        .map_err(|e| e.to_string())?;
    }
    let payload = r#"{"type":"status_changed","from":"a","to":"b","fields":{}}"#;
    let mut latencies = Vec::with_capacity(count);
    let started = Instant::now();
    for i in 0..count {
        let t = Instant::now();
        let id = &ids[i % ids.len()];
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(|e| e.to_string())?;
        let row = sqlx::query("SELECT body, version, head_hash FROM orders WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
        let version: i64 = row.try_get("version").map_err(|e| e.to_string())?;
        let body: String = row.try_get("body").map_err(|e| e.to_string())?;
        let event_id = Uuid::now_v7().to_string();
        sqlx::query("UPDATE orders SET status = $1, version = $2, body = $3, head_hash = $4, updated_at = $5 WHERE id = $6 AND version = $7")
            .bind(format!("s{}", version + 1))
            .bind(version + 1)
            .bind(&body)
            .bind(&event_id)
            .bind(&now)
            .bind(id)
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
        sqlx::query(
            "INSERT INTO events (id, stream_id, seq, occurred_at, actor_id, acting_role, kind, reason, payload, prev_hash, hash)
             VALUES ($1, $2, $3, $4, NULL, 'system', 'status_changed', NULL, $5, $6, $7)",
        )
        .bind(&event_id)
        .bind(id)
        .bind(version + 1)
        .bind(&now)
        .bind(payload)
        .bind(GENESIS_HASH)
        .bind(GENESIS_HASH)
        .execute(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
        sqlx::query(
            "INSERT INTO outbox (id, stream_id, event_id, kind, dedupe_key, payload, due_at, state, attempts, created_at)
             VALUES ($1, $2, $3, 'webhook.order_event', $4, $5, $6, 'pending', 0, $6)",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(id)
        .bind(&event_id)
        .bind(format!("order_event:{event_id}"))
        .bind(payload)
        .bind(&now)
        .execute(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())?;
        latencies.push(t.elapsed());
    }
    Ok(Stats::new(latencies, started.elapsed()))
}
