//! `ordertrail bench-tick`: how the scheduler's pass scales (issue 5). It fills a SQLite database through the
//! product's own write path with N active custom-production orders (five milestones each, order dates spread
//! over four months, one in ten with a signed contract and an unpaid deposit), then times, at a Wednesday
//! morning and a Friday morning: the index queries that find the candidate orders, the follow-through pass
//! (dry and for real), a second pass a minute later (the every-minute cost once all is queued), and dunning.
//! Last, the outbox worker's throughput to a real SMTP server on loopback (aiosmtpd's Sink handler).

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use clap::Args;
use ordertrail_domain::customer::{Contact, Language, NewCustomer};
use ordertrail_domain::decide::{Acting, ContractInput, NewOrder, sign_contract};
use ordertrail_domain::money::Money;
use ordertrail_domain::order::{LineItem, OrderType, Participant, Relation};
use ordertrail_domain::role::Role;
use ordertrail_server::app;
use ordertrail_server::clock::Clock;
use ordertrail_server::config::Config;
use ordertrail_server::delivery::{Deliverer, DeliveryConfig, deliver_due};
use ordertrail_server::scheduler;
use ordertrail_server::state::AppState;
use ordertrail_store::sqlite::Durability;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

#[derive(Args, Clone, Debug)]
pub struct TickBenchArgs {
    /// Active orders to measure at, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [10_000usize, 100_000])]
    orders: Vec<usize>,
    /// Outbox messages to deliver to the loopback SMTP server (0 skips).
    #[arg(long, default_value_t = 2_000)]
    messages: usize,
}

fn at(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| e.to_string())
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// The peak resident memory of this process (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

pub async fn run(args: TickBenchArgs) -> Result<(), String> {
    println!("bench-tick: SQLite, custom-production orders (5 milestones each), London time");
    println!(
        "{:>8} {:>10} {:>12} {:>10} {:>12} {:>10} {:>12} {:>12} {:>10} {:>10}",
        "orders", "fill s", "cand. ms", "cand.", "dry ms", "due", "queue ms", "again ms", "dunning ms", "fri dry ms"
    );
    let mut throughput = None;
    for &n in &args.orders {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let url = format!("sqlite://{}", dir.path().join("tick.db").display());
        let (state, fill) = fill(&url, n).await?;
        let wednesday = at("2026-06-10T08:30:00Z")?;
        let local = wednesday.with_timezone(&state.org.time_zone).naive_local();
        let policy = &state.org.follow_through;
        let periods: Vec<_> = ordertrail_domain::follow_through::client_update_periods(policy, local)
            .into_iter()
            .filter_map(|(t, s)| s.map(|s| (t, s)))
            .collect();
        let today = local.date();
        let t = Instant::now();
        let candidates = state
            .store
            .follow_through_candidates(
                &ordertrail_store::MilestoneWindow {
                    from: today - TimeDelta::days(3),
                    chase_to: today + TimeDelta::days(3),
                    remind_to: today + TimeDelta::days(1),
                    overdue_to: today - TimeDelta::days(1),
                },
                &periods,
            )
            .await
            .map_err(|e| e.to_string())?;
        let candidates_ms = ms(t);
        let t = Instant::now();
        let due = scheduler::follow_through(&state, wednesday, true)
            .await
            .map_err(|e| e.to_string())?;
        let dry_ms = ms(t);
        let t = Instant::now();
        let queued = scheduler::follow_through(&state, wednesday, false)
            .await
            .map_err(|e| e.to_string())?;
        let queue_ms = ms(t);
        let t = Instant::now();
        let again = scheduler::follow_through(&state, wednesday + TimeDelta::minutes(1), false)
            .await
            .map_err(|e| e.to_string())?;
        let again_ms = ms(t);
        let t = Instant::now();
        let dunning = app::tick(&state, wednesday, true).await.map_err(|e| e.to_string())?;
        let dunning_ms = ms(t);
        let t = Instant::now();
        let friday = scheduler::follow_through(&state, at("2026-06-12T09:30:00Z")?, true)
            .await
            .map_err(|e| e.to_string())?;
        let friday_ms = ms(t);
        println!(
            "{n:>8} {fill:>10.1} {candidates_ms:>12.1} {:>10} {dry_ms:>12.1} {:>10} {queue_ms:>12.1} {again_ms:>12.1} {dunning_ms:>10.1} {friday_ms:>10.1}",
            candidates.len(),
            due.len(),
        );
        println!(
            "         (queued {} messages, {} on the minute after, {} dunning steps due, {} due on Friday morning; peak RSS {:.0} MiB)",
            queued.len(),
            again.len(),
            dunning.len(),
            friday.len(),
            peak_rss_mib()
        );
        if throughput.is_none() && args.messages > 0 {
            throughput = Some(deliver(&state, args.messages, wednesday).await?);
        }
    }
    if let Some((messages, emails, seconds)) = throughput {
        println!(
            "outbox to loopback SMTP (aiosmtpd Sink): {messages} outbox rows, {emails} deliveries recorded in {seconds:.2} s: {:.0} rows/s, {:.0} deliveries/s",
            messages as f64 / seconds,
            emails as f64 / seconds
        );
    }
    Ok(())
}

/// A store with `n` active orders made through the product's write path; returns it and the seconds it took.
async fn fill(url: &str, n: usize) -> Result<(AppState, f64), String> {
    let mut config = Config::default();
    config.organisation.time_zone = "Europe/London".into();
    let org = config.organisation().map_err(|e| e.to_string())?;
    let store = ordertrail_store::open(url, Durability::Normal, Arc::new(org.workflows.clone()))
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let start = at("2026-06-09T12:00:00Z")?;
    let state = AppState::new(store, org, Clock::manual(start));
    let e = |e: ordertrail_server::error::ApiError| e.to_string();
    let amy = app::add_user(&state, "amy@bench.test", "Amy", vec![Role::AccountManager], None)
        .await
        .map_err(e)?;
    let lea = app::add_user(&state, "lea@bench.test", "Léa", vec![Role::Design], None)
        .await
        .map_err(e)?;
    let acting = Acting {
        user: amy.id,
        role: Role::AccountManager,
    };
    let customer = app::create_customer(
        &state,
        acting,
        NewCustomer {
            name: "Bench Theatre".into(),
            language: Language::English,
            contacts: vec![Contact {
                name: "Margaret Hale".into(),
                email: Some("buyer@bench.test".into()),
                phone: None,
                title: None,
            }],
            notes: None,
        },
    )
    .await
    .map_err(e)?;
    let t = Instant::now();
    for i in 0..n {
        // Order dates spread over the four months before the measured day.
        let order_date = NaiveDate::from_ymd_opt(2026, 6, 9).unwrap_or_default() - TimeDelta::days((i % 120) as i64);
        state
            .clock
            .set(order_date.and_hms_opt(11, 0, 0).unwrap_or_default().and_utc());
        let order = app::create_order(
            &state,
            acting,
            NewOrder {
                workflow: "custom-production".into(),
                customer_id: customer.id,
                customer_contact: None,
                title: format!("Costumes {i}"),
                order_type: if i % 10 == 0 {
                    OrderType::Rush
                } else {
                    OrderType::Custom
                },
                amount: Money {
                    currency: "USD".into(),
                    minor: 480_000,
                },
                order_date: Some(order_date),
                promised_date: order_date + TimeDelta::days(150),
                line_items: vec![LineItem {
                    description: "Costume".into(),
                    quantity: 1,
                    notes: None,
                }],
                special_requirements: None,
                people: vec![
                    Participant {
                        relation: Relation::Owner,
                        user_id: amy.id,
                    },
                    Participant {
                        relation: Relation::Design,
                        user_id: lea.id,
                    },
                ],
                department_contacts: vec![],
                tags: vec![],
                custom_fields: BTreeMap::new(),
                milestone_owners: BTreeMap::new(),
                extra_checklist: BTreeMap::new(),
            },
        )
        .await
        .map_err(e)?;
        if i % 10 == 3 {
            let input = ContractInput { signed_on: order_date };
            app::change_order(&state, acting, order.id, move |o, ctx| {
                sign_contract(o, input.clone(), ctx)
            })
            .await
            .map_err(e)?;
        }
    }
    let seconds = t.elapsed().as_secs_f64();
    state.clock.set(at("2026-06-10T08:30:00Z")?);
    Ok((state, seconds))
}

/// Delivers at least `wanted` outbox messages to aiosmtpd's Sink on loopback; returns (messages, emails, s).
async fn deliver(state: &AppState, wanted: usize, now: DateTime<Utc>) -> Result<(usize, i64, f64), String> {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        l.local_addr().map_err(|e| e.to_string())?.port()
    };
    let mut sink = tokio::process::Command::new("/usr/bin/python3")
        .args(["-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink", "-l"])
        .arg(format!("127.0.0.1:{port}"))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("start aiosmtpd (apt-get install python3-aiosmtpd): {e}"))?;
    let mut ready = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    if !ready {
        return Err("aiosmtpd did not start".into());
    }
    let settings: ordertrail_notify::email::SmtpSettings = serde_json::from_value(serde_json::json!({
        "host": "127.0.0.1", "port": port, "security": "none", "from": "Ordertrail <noreply@bench.test>"
    }))
    .map_err(|e| e.to_string())?;
    let deliverer = Deliverer::new(DeliveryConfig {
        smtp: Some(settings),
        ..DeliveryConfig::default()
    })?;
    let events_before = state.store.count_events().await.map_err(|e| e.to_string())?;
    let t = Instant::now();
    let mut messages = 0;
    while messages < wanted {
        let r = deliver_due(state, &deliverer, "bench", now, 64)
            .await
            .map_err(|e| e.to_string())?;
        let done = r.handled();
        if done == 0 {
            break;
        }
        messages += done;
    }
    let seconds = t.elapsed().as_secs_f64();
    let emails = state.store.count_events().await.map_err(|e| e.to_string())? - events_before;
    let _ = sink.kill().await;
    Ok((messages, emails, seconds))
}
