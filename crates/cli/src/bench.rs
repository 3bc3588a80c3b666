//! `ordertrail bench`: starts `ordertrail serve` as a child process, drives order creation and status
//! transitions through the HTTP API with keep-alive connections at concurrency 1, 16 and 64, and in the same
//! run measures the bare database transaction of the same writes.
//!
//! - SQLite (the default, or a `sqlite:` database URL): a fresh file in a temporary directory; the bare
//!   transaction (select the order, update its row, insert the event, insert an outbox row; same pragmas, same
//!   driver) runs before and after the c=16 run. The disk's speed here varies several-fold from minute to
//!   minute, so the ratio HTTP/bare taken within one run is the figure that means something.
//! - PostgreSQL (`--database-url postgres://USER:PASSWORD@HOST/DB`, a server the bench may create databases
//!   on): a throwaway database `ordertrail_bench_<random>` for one server, then two servers on it splitting the
//!   load; the bare comparison is pgbench running `bench/pg_bare.sql` (1 order update + 1 event insert + 1
//!   outbox insert, tables and rows shaped like ours, see `bench/pg_bare_setup.sql`) in a second throwaway
//!   database. Both databases are dropped at the end, also on error or Ctrl-C.

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
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::{AssertSqlSafe, ConnectOptions as _, Connection as _, Row};
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The bare comparison on PostgreSQL: the tables and rows, then one transition's writes as a pgbench script.
const PG_BARE_SETUP: &str = include_str!("../../../bench/pg_bare_setup.sql");
const PG_BARE: &str = include_str!("../../../bench/pg_bare.sql");

#[derive(Args, Clone)]
#[command(
    after_help = "The database comes from the global --database-url (or ORDERTRAIL_DATABASE_URL): none or sqlite:... \
benchmarks a fresh SQLite file in a temporary directory; postgres://USER:PASSWORD@HOST/DB names a PostgreSQL server on \
which the bench creates (and drops) its own throwaway databases, and needs pgbench (on PATH or under \
/usr/lib/postgresql/*/bin)."
)]
pub struct BenchArgs {
    /// Orders to create over HTTP before the transitions; raised to what the transitions need (each order takes
    /// 4). [default: 6000 on SQLite, what the transitions need on PostgreSQL]
    #[arg(long)]
    orders: Option<usize>,
    /// Transitions to make at concurrency 1 (per server count on PostgreSQL). [default: 2000 SQLite, 1000 PostgreSQL]
    #[arg(long)]
    transitions_c1: Option<usize>,
    /// Transitions to make at concurrency 16. [default: 16000 SQLite, 8000 PostgreSQL]
    #[arg(long)]
    transitions_c16: Option<usize>,
    /// Transitions to make at concurrency 64 (0 skips). [default: 16000 SQLite, 8000 PostgreSQL]
    #[arg(long)]
    transitions_c64: Option<usize>,
    /// Bare SQLite transactions per measurement.
    #[arg(long, default_value_t = 8000)]
    bare: usize,
    /// SQLite durability for both the server and the bare transaction: normal or full.
    #[arg(long, default_value = "normal")]
    durability: String,
    /// PostgreSQL: seconds of each pgbench run (c=64 before and after the HTTP runs, c=16 after).
    #[arg(long, default_value_t = 10)]
    pgbench_seconds: u64,
    /// PostgreSQL: the pgbench binary [default: pgbench on PATH, else the newest /usr/lib/postgresql/*/bin/pgbench]
    #[arg(long)]
    pgbench: Option<PathBuf>,
    /// PostgreSQL: measure one server only (no second server on the same database).
    #[arg(long)]
    one_server: bool,
}

/// Transition counts per concurrency, with the engine's defaults.
fn plan(args: &BenchArgs, postgres: bool) -> Vec<(usize, usize)> {
    let (c1, c16, c64) = if postgres {
        (1000, 8000, 8000)
    } else {
        (2000, 16000, 16000)
    };
    [
        (1, args.transitions_c1.unwrap_or(c1)),
        (16, args.transitions_c16.unwrap_or(c16)),
        (64, args.transitions_c64.unwrap_or(c64)),
    ]
    .into_iter()
    .filter(|&(concurrency, count)| count >= concurrency)
    .collect()
}

/// Orders the transition runs use up: each worker walks whole orders of 4 transitions.
fn orders_needed(plan: &[(usize, usize)]) -> usize {
    plan.iter()
        .map(|&(concurrency, count)| concurrency * (count / concurrency).div_ceil(4))
        .sum()
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

/// One transition run, for the summary table.
struct Measured {
    engine: &'static str,
    servers: usize,
    concurrency: usize,
    stats: Stats,
    failures: usize,
}

fn print_table(rows: &[Measured]) {
    println!();
    println!(
        "{:<10} {:>7} {:>11} {:>14} {:>9} {:>9}",
        "engine", "servers", "concurrency", "transitions/s", "p50 ms", "p99 ms"
    );
    for m in rows {
        println!(
            "{:<10} {:>7} {:>11} {:>14.0} {:>9.2} {:>9.2}{}",
            m.engine,
            m.servers,
            m.concurrency,
            m.stats.rate(),
            m.stats.p50.as_secs_f64() * 1e3,
            m.stats.p99.as_secs_f64() * 1e3,
            if m.failures > 0 {
                format!("   ({} failed)", m.failures)
            } else {
                String::new()
            }
        );
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

/// Runs the bench; `database_url` is the global `--database-url` / `ORDERTRAIL_DATABASE_URL`, if given.
pub async fn run(args: BenchArgs, database_url: Option<String>) -> Result<(), String> {
    let durability = match args.durability.as_str() {
        "normal" => Durability::Normal,
        "full" => Durability::Full,
        other => return Err(format!("--durability must be normal or full, not '{other}'")),
    };
    match database_url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            run_postgres(&args, durability, &url).await
        }
        Some(url) if !url.starts_with("sqlite:") => Err(format!(
            "unknown database URL '{url}': use postgres://USER:PASSWORD@HOST/DB (or nothing for SQLite)"
        )),
        _ => {
            let dir = std::env::temp_dir().join(format!("ordertrail-bench-{}", Uuid::now_v7()));
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let result = run_sqlite(&args, durability, &dir).await;
            let _ = std::fs::remove_dir_all(&dir);
            result
        }
    }
}

/// A running `ordertrail serve` child (killed when dropped).
struct Server {
    child: tokio::process::Child,
    pid: u32,
    base: String,
    startup: Duration,
}

impl Server {
    /// Starts a server on `url` and waits for its first healthy answer.
    async fn start(client: &reqwest::Client, url: &str, durability: &str) -> Result<Server, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let started = Instant::now();
        let child = tokio::process::Command::new(exe)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("ORDERTRAIL_DATABASE_URL", url)
            .env("ORDERTRAIL_DURABILITY", durability)
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start the server: {e}"))?;
        let pid = child.id().unwrap_or(0);
        tracing::info!(pid, "server started");
        let base = format!("http://127.0.0.1:{port}/api/v1");
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
        Ok(Server {
            child,
            pid,
            base,
            startup,
        })
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .build()
        .map_err(|e| e.to_string())
}

/// What the transition runs share: the client, the token, the orders and the next unused order.
struct Load {
    client: reqwest::Client,
    auth: String,
    orders: Arc<Vec<String>>,
    next_order: Arc<AtomicUsize>,
}

/// Creates the bench's customer, then `count` orders over HTTP at concurrency 16.
async fn create_orders(
    client: &reqwest::Client,
    base: &str,
    auth: &str,
    count: usize,
) -> Result<(Load, Stats), String> {
    let customer: Value = client
        .post(format!("{base}/customers"))
        .header("authorization", auth)
        .header("x-ordertrail-role", "account_manager")
        .json(&json!({"name": "Bench Customer", "contacts": [{"name": "Pat", "email": "pat@example.com"}]}))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let customer_id = customer["id"].as_str().ok_or("customer creation failed")?.to_string();
    let order_body = json!({
        "workflow": "standard", "customer_id": customer_id, "title": "Bench order: 40 cartons", "order_type": "regular",
        "amount": {"currency": "USD", "amount": "1250.00"}, "promised_date": "2030-01-31",
        "line_items": [{"description": "Carton, printed", "quantity": 40}]
    });
    let (created, creation) = drive(16, count, |_| {
        let request = client
            .post(format!("{base}/orders"))
            .header("authorization", auth)
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
    let orders: Vec<String> = created.into_iter().flatten().collect();
    if orders.len() < count {
        return Err(format!("only {} of {count} orders were created", orders.len()));
    }
    let load = Load {
        client: client.clone(),
        auth: auth.to_string(),
        orders: Arc::new(orders),
        next_order: Arc::new(AtomicUsize::new(0)),
    };
    Ok((load, creation))
}

/// Each order walks pending_confirmation -> in_production -> shipped -> delivered -> completed.
fn steps() -> Arc<Vec<(&'static str, Value)>> {
    Arc::new(vec![
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
    ])
}

/// `count` transitions at `concurrency`, each worker walking whole orders so that every request is a valid next
/// step; order i goes to server `i % bases.len()`, so several servers share the load evenly. Returns the stats
/// of the successful transitions and the number of failed ones.
async fn transitions(load: &Load, bases: &[String], concurrency: usize, count: usize) -> (Stats, usize) {
    let per_worker = count / concurrency;
    let steps = steps();
    let bases = Arc::new(bases.to_vec());
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..concurrency {
        let (client, auth, orders, next_order, steps, bases) = (
            load.client.clone(),
            load.auth.clone(),
            load.orders.clone(),
            load.next_order.clone(),
            steps.clone(),
            bases.clone(),
        );
        handles.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_worker + 4);
            let mut failures = 0usize;
            while latencies.len() + failures < per_worker {
                let i = next_order.fetch_add(1, Ordering::Relaxed);
                let Some(id) = orders.get(i) else { break };
                let base = &bases[i % bases.len()];
                for (role, body) in steps.iter() {
                    let t = Instant::now();
                    let response = client
                        .post(format!("{base}/orders/{id}/transitions"))
                        .header("authorization", &auth)
                        .header("x-ordertrail-role", *role)
                        .json(body)
                        .send()
                        .await;
                    // Read the body to its end: a response dropped unread closes its keep-alive connection.
                    let ok = match response {
                        Ok(r) => {
                            let success = r.status().is_success();
                            r.bytes().await.is_ok() && success
                        }
                        Err(_) => false,
                    };
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

async fn run_sqlite(args: &BenchArgs, durability: Durability, dir: &Path) -> Result<(), String> {
    let url = format!("sqlite://{}", dir.join("bench.db").display());
    let token = prepare(&url, durability).await?;
    let client = http_client()?;
    let server = Server::start(&client, &url, &args.durability).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_rss = rss_kib(server.pid, "VmRSS:").unwrap_or(0);

    let plan = plan(args, false);
    let orders = args.orders.unwrap_or(6000).max(orders_needed(&plan));
    let (load, creation) = create_orders(&client, &server.base, &format!("Bearer {token}"), orders).await?;
    let bases = [server.base.clone()];
    let solo = in_process_creation(&dir.join("solo.db"), durability, orders.min(4000)).await?;
    let mut measured = Vec::new();
    let mut bare_before = None;
    for &(concurrency, count) in &plan {
        if concurrency > 1 && bare_before.is_none() {
            bare_before = Some(bare(&dir.join("bare.db"), durability, args.bare).await?);
        }
        let (stats, failures) = transitions(&load, &bases, concurrency, count).await;
        measured.push(Measured {
            engine: "sqlite",
            servers: 1,
            concurrency,
            stats,
            failures,
        });
    }
    let bare_after = bare(&dir.join("bare2.db"), durability, args.bare).await?;
    let peak_rss = rss_kib(server.pid, "VmHWM:").unwrap_or(0);
    let startup = server.startup;
    server.stop().await;

    let bare_rate = bare_before
        .as_ref()
        .map_or(bare_after.rate(), |b| (b.rate() + bare_after.rate()) / 2.0);
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
    for m in &measured {
        println!("{}", m.stats.line(&format!("transition, HTTP, c={}", m.concurrency)));
    }
    if let Some(b) = &bare_before {
        println!("{}", b.line("bare SQLite txn (before c=16)"));
    }
    println!("{}", bare_after.line("bare SQLite txn (after the runs)"));
    for m in measured.iter().rev() {
        println!(
            "{:<36}{:>8.1} %",
            format!("ratio HTTP c={} / bare", m.concurrency),
            100.0 * m.stats.rate() / bare_rate
        );
    }
    print_table(&measured);
    println!(
        "{:<10} {:>7} {:>11} {:>14.0}   (bare SQLite transaction, one at a time)",
        "bare", "-", 1, bare_rate
    );
    Ok(())
}

/// The URL of database `name` on the server of `url` (its user, password, host, port and parameters).
fn with_database(url: &str, name: &str) -> Result<String, String> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority = base.find("://").ok_or_else(|| format!("not a URL: {url}"))? + 3;
    let path = base[authority..].find('/').map_or(base.len(), |i| authority + i);
    let mut out = format!("{}/{name}", &base[..path]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    Ok(out)
}

/// Runs `sql` on the server of `url` (outside any transaction), in a connection of its own.
async fn on_server(url: &str, sql: String) -> Result<(), String> {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", redact(url)))?;
    let result = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await;
    let _ = conn.close().await;
    result.map(|_| ()).map_err(|e| e.to_string())
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

async fn run_postgres(args: &BenchArgs, durability: Durability, server_url: &str) -> Result<(), String> {
    let pgbench = match &args.pgbench {
        Some(path) => path.clone(),
        None => find_pgbench().ok_or("pgbench not found on PATH or under /usr/lib/postgresql/*/bin: use --pgbench")?,
    };
    let tag = Uuid::new_v4().simple().to_string()[..12].to_string();
    let app_db = format!("ordertrail_bench_{tag}");
    let bare_db = format!("ordertrail_bare_{tag}");
    let script = std::env::temp_dir().join(format!("ordertrail-pg-bare-{tag}.sql"));
    std::fs::write(&script, PG_BARE).map_err(|e| format!("cannot write {}: {e}", script.display()))?;
    let mut created = Vec::new();
    let mut result = Ok(());
    for db in [&app_db, &bare_db] {
        result = on_server(server_url, format!("CREATE DATABASE {db}")).await;
        if result.is_err() {
            break;
        }
        created.push(db);
    }
    if result.is_ok() {
        result = tokio::select! {
            r = run_postgres_in(args, durability, server_url, &app_db, &bare_db, &pgbench, &script) => r,
            _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
        };
    }
    // The servers and pgbench are gone by now (killed when dropped); FORCE ends any connection left.
    for db in created {
        if let Err(e) = on_server(server_url, format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await {
            eprintln!("warning: could not drop the bench's database {db}: {e}");
        }
    }
    let _ = std::fs::remove_file(&script);
    result
}

/// pgbench on PATH, else the newest /usr/lib/postgresql/VERSION/bin/pgbench.
fn find_pgbench() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("pgbench"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .filter_map(|entry| {
                let version = entry.file_name().to_str()?.split('.').next()?.parse().ok()?;
                let path = entry.path().join("bin/pgbench");
                path.is_file().then_some((version, path))
            })
            .collect();
        found.sort();
        found.pop().map(|(_, path)| path)
    })
}

/// A pgbench run's figures.
struct Pgbench {
    clients: usize,
    seconds: u64,
    tps: f64,
    latency_ms: f64,
    transactions: u64,
}

async fn run_pgbench(
    pgbench: &Path,
    script: &Path,
    url: &str,
    clients: usize,
    seconds: u64,
) -> Result<Pgbench, String> {
    let threads = clients.min(std::thread::available_parallelism().map_or(1, |n| n.get()));
    let output = tokio::process::Command::new(pgbench)
        .arg("-n")
        .args(["-M", "prepared"])
        .arg("-f")
        .arg(script)
        .args(["-c", &clients.to_string(), "-j", &threads.to_string()])
        .args(["-T", &seconds.to_string()])
        .arg(url)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", pgbench.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let value = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    match (output.status.success(), value("tps = ")) {
        (true, Some(tps)) => Ok(Pgbench {
            clients,
            seconds,
            tps,
            latency_ms: value("latency average = ").unwrap_or(0.0),
            transactions: value("number of transactions actually processed: ").unwrap_or(0.0) as u64,
        }),
        _ => Err(format!(
            "pgbench -c {clients} failed: {}",
            stderr
                .lines()
                .chain(stdout.lines())
                .take(5)
                .collect::<Vec<_>>()
                .join(" | ")
        )),
    }
}

impl Pgbench {
    fn line(&self, what: &str) -> String {
        format!(
            "{what:<34} {:>7} txn in {:>4}s     {:>8.0}/s  mean latency {:.2} ms",
            self.transactions, self.seconds, self.tps, self.latency_ms
        )
    }
}

async fn run_postgres_in(
    args: &BenchArgs,
    durability: Durability,
    server_url: &str,
    app_db: &str,
    bare_db: &str,
    pgbench: &Path,
    script: &Path,
) -> Result<(), String> {
    let app_url = with_database(server_url, app_db)?;
    let bare_url = with_database(server_url, bare_db)?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());

    // The bare comparison's tables and rows, before anything is measured.
    let version = {
        // Not logged: the setup is one long statement, slow by design.
        let options = sqlx::postgres::PgConnectOptions::from_str(&bare_url)
            .map_err(|e| format!("bad PostgreSQL URL {}: {e}", redact(&bare_url)))?
            .disable_statement_logging();
        let mut conn = sqlx::PgConnection::connect_with(&options)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", redact(&bare_url)))?;
        sqlx::raw_sql(PG_BARE_SETUP)
            .execute(&mut conn)
            .await
            .map_err(|e| format!("bench/pg_bare_setup.sql: {e}"))?;
        for table in ["bare_orders", "bare_events", "bare_outbox"] {
            sqlx::raw_sql(AssertSqlSafe(format!("VACUUM ANALYZE {table}")))
                .execute(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
        }
        let version: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let _ = conn.close().await;
        version
    };

    let token = prepare(&app_url, durability).await?;
    let auth = format!("Bearer {token}");
    let client = http_client()?;
    let first = Server::start(&client, &app_url, &args.durability).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_rss = rss_kib(first.pid, "VmRSS:").unwrap_or(0);

    let plan = plan(args, true);
    let server_counts: &[usize] = if args.one_server { &[1] } else { &[1, 2] };
    let orders = args.orders.unwrap_or(0).max(orders_needed(&plan) * server_counts.len());
    let (load, creation) = create_orders(&client, &first.base, &auth, orders).await?;

    let bare_before = run_pgbench(pgbench, script, &bare_url, 64, args.pgbench_seconds).await?;
    let mut measured = Vec::new();
    let mut servers = vec![first];
    for &count in server_counts {
        while servers.len() < count {
            servers.push(Server::start(&client, &app_url, &args.durability).await?);
        }
        let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
        for &(concurrency, transitions_count) in &plan {
            let (stats, failures) = transitions(&load, &bases, concurrency, transitions_count).await;
            measured.push(Measured {
                engine: "postgres",
                servers: count,
                concurrency,
                stats,
                failures,
            });
        }
    }
    let peak_rss: Vec<u64> = servers.iter().map(|s| rss_kib(s.pid, "VmHWM:").unwrap_or(0)).collect();
    let startups: Vec<Duration> = servers.iter().map(|s| s.startup).collect();
    for server in servers {
        server.stop().await;
    }
    let bare_16 = run_pgbench(pgbench, script, &bare_url, 16, args.pgbench_seconds).await?;
    let bare_after = run_pgbench(pgbench, script, &bare_url, 64, args.pgbench_seconds).await?;

    println!(
        "ordertrail bench: PostgreSQL {version}, database {app_db}, {} connections per server, {cores} cores",
        ordertrail_store::postgres::POOL_SIZE
    );
    println!(
        "server start to first 200 /health   {}",
        startups
            .iter()
            .map(|d| format!("{:.1} ms", d.as_secs_f64() * 1e3))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "server idle RSS                     {:>8.1} MB",
        idle_rss as f64 / 1024.0
    );
    println!(
        "server peak RSS                     {}",
        peak_rss
            .iter()
            .map(|k| format!("{:.1} MB", *k as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("{}", creation.line("order create, HTTP, c=16"));
    for m in &measured {
        let servers = if m.servers == 1 { "1 server" } else { "2 servers" };
        println!(
            "{}",
            m.stats
                .line(&format!("transition, HTTP, {servers}, c={}", m.concurrency))
        );
    }
    for (b, when) in [(&bare_before, "before"), (&bare_16, "after"), (&bare_after, "after")] {
        println!("{}", b.line(&format!("bare pgbench txn, c={} ({when})", b.clients)));
    }
    print_table(&measured);
    let bare_64 = (bare_before.tps + bare_after.tps) / 2.0;
    println!(
        "{:<10} {:>7} {:>11} {:>14.0}   (pgbench, bench/pg_bare.sql)",
        "bare", "-", 16, bare_16.tps
    );
    println!(
        "{:<10} {:>7} {:>11} {:>14.0}   (pgbench, mean of {:.0} before and {:.0} after)",
        "bare", "-", 64, bare_64, bare_before.tps, bare_after.tps
    );
    println!();
    for m in measured.iter().filter(|m| m.concurrency == 64) {
        println!(
            "ratio HTTP c=64, {} server(s) / pgbench c=64: {:.1} % (target >= 70 %)",
            m.servers,
            100.0 * m.stats.rate() / bare_64
        );
    }
    for m in measured.iter().filter(|m| m.concurrency == 16) {
        println!(
            "ratio HTTP c=16, {} server(s) / pgbench c=16: {:.1} %",
            m.servers,
            100.0 * m.stats.rate() / bare_16.tps
        );
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

/// Creates the bench's user and token directly in the database (before the server starts), on either engine.
async fn prepare(url: &str, durability: Durability) -> Result<String, String> {
    let org = Config::default().organisation().map_err(|e| e.to_string())?;
    let store = ordertrail_store::open(url, durability, Arc::new(org.workflows.clone()))
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let state = AppState::new(store, org, Clock::System);
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
async fn in_process_creation(path: &Path, durability: Durability, count: usize) -> Result<Stats, String> {
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
async fn bare(path: &Path, durability: Durability, count: usize) -> Result<Stats, String> {
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
