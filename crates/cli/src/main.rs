//! The `ordertrail` command: serve the API, migrate the database, manage users and tokens, verify the audit
//! log, and benchmark. Thin: every verb calls the same use cases as the HTTP API.

mod bench;
mod bench_tick;
mod demo;

use clap::{Parser, Subcommand};
use ordertrail_domain::Role;
use ordertrail_domain::ids::CustomerId;
use ordertrail_server::app;
use ordertrail_server::clock::Clock;
use ordertrail_server::config::Config;
use ordertrail_server::delivery::Deliverer;
use ordertrail_server::scheduler;
use ordertrail_server::state::AppState;
use ordertrail_store::{Store, StoreError};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "ordertrail",
    version,
    about = "Order tracking and follow-up: orders, workflows, milestones, follow-ups, with an audit log."
)]
struct Cli {
    /// A TOML config file (database_url, listen, durability, workflows_dir, [organisation]).
    #[arg(long, global = true, env = "ORDERTRAIL_CONFIG")]
    config: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER:PASSWORD@HOST/DATABASE [default: sqlite://./ordertrail.db]
    #[arg(long, global = true, env = "ORDERTRAIL_DATABASE_URL")]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the REST API (migrating the database first).
    Serve {
        /// Address to listen on [default: 127.0.0.1:8080]
        #[arg(long, env = "ORDERTRAIL_LISTEN")]
        listen: Option<String>,
        /// Fill an empty database with a demo organisation and orders in every workflow, and print an admin token.
        #[arg(long)]
        demo: bool,
    },
    /// Bring the database schema up to date.
    Migrate,
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Check every event chain of the audit log and report the first broken link of any order.
    Verify,
    /// Do what fell due by NOW (default: now): invoices, payment reminders, production pauses and finance
    /// escalations (R8, R9); milestone reminders, overdue notices and chases, client updates and digests (R3,
    /// R25, R33, R35); each once, including what was missed while nothing ran. `serve` does this every minute.
    Tick {
        /// The time to judge at (RFC 3339, e.g. 2026-11-21T09:00:00Z).
        #[arg(long)]
        now: Option<chrono::DateTime<chrono::Utc>>,
        /// Print what would be done; change nothing.
        #[arg(long, conflicts_with = "deliver")]
        dry_run: bool,
        /// Then deliver what is due (email, Slack, webhooks as configured in [delivery]).
        #[arg(long)]
        deliver: bool,
    },
    /// The outbox: what was sent, what waits for review, the dead letters.
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// Copy a whole organisation (users, customers, orders, events with their hashes, outbox, everything) from
    /// one database to another, e.g. from SQLite to PostgreSQL. The target is migrated first and must be empty.
    Copy {
        /// The database to copy from (at the current schema: run `ordertrail migrate` on it first).
        #[arg(long)]
        from: String,
        /// The database to copy into.
        #[arg(long)]
        to: String,
        /// Empty a target that already holds data, then copy (otherwise a non-empty target is refused).
        #[arg(long)]
        replace: bool,
    },
    /// Measure the HTTP API against a bare SQLite transaction on this machine (starts its own server).
    Bench(bench::BenchArgs),
    /// Measure the scheduler's pass over many orders (index queries, follow-through, dunning) and the outbox's
    /// throughput to a loopback SMTP server.
    BenchTick(bench_tick::TickBenchArgs),
    /// Print the API's OpenAPI 3.1 document (the one served at /api/v1/openapi.json).
    Openapi,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user with one or more roles.
    Add {
        email: String,
        #[arg(long)]
        name: String,
        /// A role (repeat for several): admin, account_manager, sales_coordinator, sales_director, operations,
        /// design, finance, logistics, ip_owner, manufacturer, customer.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// For a customer user: the id of the customer they belong to.
        #[arg(long)]
        customer: Option<uuid::Uuid>,
    },
}

#[derive(Subcommand)]
enum OutboxCommand {
    /// List messages, newest first.
    List {
        /// pending, claimed, sent, failed (dead letters) or draft.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Put a dead letter back in line, its attempts counted afresh.
    Retry { id: uuid::Uuid },
    /// Send a draft that waits for review.
    Send { id: uuid::Uuid },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Issue a bearer token for a user; it is printed once and only its hash is stored.
    Issue { email: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One TLS provider for the process (SMTP over TLS, webhooks, the bench's HTTP client).
    ordertrail_notify::install_crypto_provider();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ORDERTRAIL_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the configuration once and opens the database (`sqlite://` or `postgres://`), without migrating.
async fn open_unmigrated(cli: &Cli) -> Result<(Config, AppState), String> {
    let mut config = Config::load(cli.config.as_deref()).map_err(|e| e.to_string())?;
    if let Some(url) = &cli.database_url {
        config.database_url = url.clone();
    }
    let org = config.organisation().map_err(|e| e.to_string())?;
    let store = ordertrail_store::open(&config.database_url, config.durability, Arc::new(org.workflows.clone()))
        .await
        .map_err(|e| e.to_string())?;
    let state = AppState::new(store, org, Clock::System);
    Ok((config, state))
}

/// Reads the configuration once and opens and migrates the database.
async fn open(cli: &Cli) -> Result<(Config, AppState), String> {
    let (config, state) = open_unmigrated(cli).await?;
    state.store.migrate().await.map_err(|e| e.to_string())?;
    Ok((config, state))
}

/// Migrates before serving. A database that does not answer yet is no reason not to start: the server answers
/// its health check with 503 and the migration is retried until the database is back. A schema newer than
/// this program is: serving it could misread what newer code wrote.
async fn migrate_for_serving(store: Arc<dyn Store>) -> Result<(), String> {
    match store.migrate().await {
        Ok(()) => Ok(()),
        Err(StoreError::Unavailable(reason)) => {
            eprintln!("warning: the database does not answer ({reason}); serving anyway, migrating when it is back");
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                    match store.migrate().await {
                        Ok(()) => {
                            eprintln!("the database is back and migrated");
                            return;
                        }
                        Err(StoreError::Unavailable(_)) => continue,
                        Err(e) => {
                            eprintln!("error: {e}");
                            std::process::exit(1);
                        }
                    }
                }
            });
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

async fn run(cli: Cli) -> Result<ExitCode, String> {
    match &cli.command {
        Command::Serve { listen, demo } => {
            let (mut config, state) = open_unmigrated(&cli).await?;
            migrate_for_serving(state.store.clone()).await?;
            if let Some(listen) = listen {
                config.listen = listen.clone();
            }
            let listener = tokio::net::TcpListener::bind(&config.listen)
                .await
                .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            announce(&format!(
                "Ordertrail {} serving {} on http://{addr}/api/v1/ (OpenAPI: http://{addr}/api/v1/openapi.json)",
                env!("CARGO_PKG_VERSION"),
                config.database_url
            ));
            if *demo {
                let token = demo::ensure(&state).await.map_err(|e| format!("demo data: {e}"))?;
                announce(&format!(
                    "Demo organisation ready. Admin token (shown once):\n  {token}\nTry:\n  curl -H 'Authorization: Bearer {token}' http://{addr}/api/v1/orders"
                ));
            }
            // The scheduler and the outbox worker run inside the server (a broken template override stops here).
            let deliverer = Deliverer::new(config.delivery.clone())?;
            if !deliverer.can_send() {
                announce(
                    "Delivery is off: messages are queued (see `ordertrail outbox list`) but not sent until [delivery.smtp], a Slack URL or a webhook is configured.",
                );
            }
            let every = std::time::Duration::from_secs(config.scheduler_interval_seconds.max(1));
            tokio::spawn(scheduler::run_forever(state.clone(), deliverer, every));
            axum::serve(listener, ordertrail_server::router(state))
                .with_graceful_shutdown(shutdown())
                .await
                .map_err(|e| format!("server stopped: {e}"))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            let (config, state) = open(&cli).await?;
            let (known, applied) = state.store.schema_versions().await.map_err(|e| e.to_string())?;
            println!(
                "{} is at schema version {} (this ordertrail knows {known})",
                config.database_url,
                applied.unwrap_or(0)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::User {
            command:
                UserCommand::Add {
                    email,
                    name,
                    roles,
                    customer,
                },
        } => {
            let roles = roles
                .iter()
                .map(|r| r.parse::<Role>().map_err(|e| e.to_string()))
                .collect::<Result<Vec<_>, _>>()?;
            let (_, state) = open(&cli).await?;
            let user = app::add_user(&state, email, name, roles, customer.map(CustomerId))
                .await
                .map_err(|e| e.to_string())?;
            let roles: Vec<&str> = user.roles.iter().map(|r| r.as_str()).collect();
            println!(
                "added {} <{}> ({}) id {}",
                user.name,
                user.email,
                roles.join(", "),
                user.id
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Token {
            command: TokenCommand::Issue { email },
        } => {
            let (_, state) = open(&cli).await?;
            let (user, token) = app::issue_token(&state, email).await.map_err(|e| e.to_string())?;
            eprintln!("token for {} <{}> (shown once, store it now):", user.name, user.email);
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify => {
            let (_, state) = open(&cli).await?;
            let report = state.store.verify().await.map_err(|e| e.to_string())?;
            if report.broken.is_empty() {
                println!("ok: {} events in {} chains verified", report.events, report.streams);
                Ok(ExitCode::SUCCESS)
            } else {
                for link in &report.broken {
                    let name = link
                        .order_number
                        .as_deref()
                        .map_or_else(|| format!("stream {}", link.stream_id), |n| format!("order {n}"));
                    println!(
                        "BROKEN: {name}: first broken link at event {}: {}",
                        link.seq, link.problem
                    );
                }
                println!(
                    "{} of {} chains broken ({} events read)",
                    report.broken.len(),
                    report.streams,
                    report.events
                );
                Ok(ExitCode::from(2))
            }
        }
        Command::Tick { now, dry_run, deliver } => {
            let (config, state) = open(&cli).await?;
            let now = now.unwrap_or_else(chrono::Utc::now);
            let actions = scheduler::dunning(&state, now, *dry_run)
                .await
                .map_err(|e| e.to_string())?;
            for done in &actions {
                let a = &done.action;
                let told: Vec<&str> = a.told.iter().map(|r| r.as_str()).collect();
                println!(
                    "{}: installment {} ({}) {} at {} days overdue, {} outstanding; told: {} [{}]",
                    done.order_number,
                    a.installment,
                    a.installment_name,
                    a.kind.as_str(),
                    a.days_overdue,
                    a.outstanding.amount_string(),
                    told.join(", "),
                    a.dedupe_key
                );
            }
            let verb = if *dry_run {
                "would be done (dry run: nothing changed)"
            } else {
                "done"
            };
            println!("{} dunning steps {verb} at {now}", actions.len());
            let queued = scheduler::follow_through(&state, now, *dry_run)
                .await
                .map_err(|e| e.to_string())?;
            for q in &queued {
                println!(
                    "{}: {} due at {}{} [{}]",
                    q.order_number.as_deref().unwrap_or("-"),
                    q.kind.as_str(),
                    q.due_at,
                    if q.draft { " (draft, waits for review)" } else { "" },
                    q.dedupe_key
                );
            }
            println!(
                "{} messages {} at {now}",
                queued.len(),
                if *dry_run {
                    "would be queued (dry run)"
                } else {
                    "queued"
                }
            );
            if *deliver {
                let deliverer = Deliverer::new(config.delivery.clone())?;
                let worker = format!("tick-{}", uuid::Uuid::now_v7());
                let mut total = ordertrail_server::delivery::DeliveryReport::default();
                loop {
                    let r = ordertrail_server::delivery::deliver_due(&state, &deliverer, &worker, now, 32)
                        .await
                        .map_err(|e| e.to_string())?;
                    if r.handled() == 0 {
                        break;
                    }
                    total += r;
                }
                println!(
                    "delivered: {} sent, {} to retry, {} dead letters, {} dropped",
                    total.sent, total.retried, total.dead, total.dropped
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Outbox { command } => {
            let (_, state) = open(&cli).await?;
            match command {
                OutboxCommand::List { state: which, limit } => {
                    let rows = state
                        .store
                        .outbox(which.as_deref(), None, *limit)
                        .await
                        .map_err(|e| e.to_string())?;
                    for r in &rows {
                        println!(
                            "{} {:8} {:22} attempts {} due {}{} [{}]",
                            r.id,
                            r.state,
                            r.kind,
                            r.attempts,
                            r.due_at,
                            r.last_error
                                .as_deref()
                                .map(|e| format!(" error: {e}"))
                                .unwrap_or_default(),
                            r.dedupe_key
                        );
                    }
                    println!("{} messages", rows.len());
                }
                OutboxCommand::Retry { id } | OutboxCommand::Send { id } => {
                    let from = if matches!(command, OutboxCommand::Retry { .. }) {
                        "failed"
                    } else {
                        "draft"
                    };
                    if !state
                        .store
                        .release_outbox(*id, &[from], chrono::Utc::now())
                        .await
                        .map_err(|e| e.to_string())?
                    {
                        return Err(format!(
                            "message {id} is not {}",
                            if from == "failed" { "a dead letter" } else { "a draft" }
                        ));
                    }
                    println!("message {id} is back in line to be sent");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Copy { from, to, replace } => copy(&cli, from, to, *replace).await,
        Command::Bench(args) => bench::run(args.clone(), cli.database_url.clone())
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::BenchTick(args) => bench_tick::run(args.clone()).await.map(|()| ExitCode::SUCCESS),
        Command::Openapi => {
            let doc = serde_json::to_string_pretty(&ordertrail_server::openapi()).map_err(|e| e.to_string())?;
            println!("{doc}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `ordertrail copy`: migrate the target, copy in one transaction, then check counts and chains.
async fn copy(cli: &Cli, from: &str, to: &str, replace: bool) -> Result<ExitCode, String> {
    let config = Config::load(cli.config.as_deref()).map_err(|e| e.to_string())?;
    let org = config.organisation().map_err(|e| e.to_string())?;
    let workflows = Arc::new(org.workflows.clone());
    let source = ordertrail_store::open(from, config.durability, workflows.clone())
        .await
        .map_err(|e| format!("source: {e}"))?;
    let target = ordertrail_store::open(to, config.durability, workflows)
        .await
        .map_err(|e| format!("target: {e}"))?;
    let (known, applied) = source.schema_versions().await.map_err(|e| format!("source: {e}"))?;
    if applied != Some(known) {
        return Err(format!(
            "the source is at schema version {} but this ordertrail writes version {known}: run `ordertrail migrate` on it first",
            applied.unwrap_or(0)
        ));
    }
    target.migrate().await.map_err(|e| format!("target: {e}"))?;
    let report = target
        .copy_from(source.as_ref(), replace)
        .await
        .map_err(|e| format!("nothing was copied: {e}"))?;
    let expected = source.table_counts().await.map_err(|e| format!("source: {e}"))?;
    for ((table, copied), (_, held)) in report.tables.iter().zip(&expected) {
        println!("{table:<22} {copied:>9} rows");
        if copied != held {
            return Err(format!(
                "{table}: the source holds {held} rows but {copied} were copied"
            ));
        }
    }
    let verified = target.verify().await.map_err(|e| format!("target: {e}"))?;
    if !verified.broken.is_empty() {
        return Err(format!(
            "the copy's audit log does not verify: {} broken chains",
            verified.broken.len()
        ));
    }
    println!(
        "copied: counts match, {} events in {} chains verified on the target",
        verified.events, verified.streams
    );
    Ok(ExitCode::SUCCESS)
}

/// Prints what a running server tells its operator. A server outlives whoever reads its output: when that
/// reader has gone (a closed pipe), the server goes on serving instead of dying on the write.
fn announce(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
