//! The scheduler as operators run it, a process per tick (`ordertrail tick --now T --deliver`, as from cron),
//! killed with SIGKILL at random points and run again for the same T: every message still reaches its
//! recipient, none is queued twice, and a message resent because a kill fell between its sending and the
//! recording of it carries the same Message-ID as the first copy (so the receiving side can drop the copy).
//! The audit log verifies at the end.
//!
//! The parts are real: a SQLite file, the `ordertrail` binary (`serve` once to create the customer, the order
//! and its contract over HTTP; then one `tick` process per simulated tick), and an SMTP server on loopback
//! (`crates/notify/src/smtp_sink.py`, aiosmtpd, started here directly: this crate does not have
//! `ordertrail-notify`'s `testing` feature). What should be sent is computed here from the rules as the product
//! states them, in the organisation's time zone; see `crates/server/tests/simulation.rs` for the same rules
//! over twelve weeks in process.
//!
//! Time zone: the order has to be created and its contract signed at the real time (the server's clock), and
//! `serve` runs one scheduler pass when it starts. The test picks a fixed-offset zone (`Etc/GMT±N`) in which
//! the real time is late morning, so that pass has nothing to do (no digest before 17:00) and the simulated
//! run starts on the day the order was created, whatever the time of day the test runs.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeDelta, TimeZone, Timelike, Utc, Weekday};
use ordertrail_domain::Role;
use ordertrail_domain::ids::OrderId;
use ordertrail_domain::order::{Order, Relation};
use ordertrail_server::config::Config;
use ordertrail_server::scheduler::DIGEST_STREAM;
use ordertrail_store::{OutboxEntry, Store};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Simulated time between two ticks. Each `tick --deliver` process takes about 150 ms in a debug build (most
/// of it building the TLS clients), so hourly ticks keep the run near a minute; the rules' moments (00:00,
/// 09:00, 10:00, 17:00 local) all fall on the hour.
const TICK: TimeDelta = TimeDelta::hours(1);
/// How long the simulated run lasts: long enough for the whole dunning sequence (the escalation on day 15).
const DAYS: i64 = 16;
/// The seed of the kills.
const SEED: u64 = 0x0bad_5eed_2026_0302;
/// At most this many kills in a row at one simulated moment; then it runs to the end.
const KILLS_IN_A_ROW: u32 = 3;

// -------------------------------------------------------------------------------------------------------------
// A small seeded random generator (splitmix64): the kills are reproducible.
// -------------------------------------------------------------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// -------------------------------------------------------------------------------------------------------------
// The SMTP server: `smtp_sink.py` writes each accepted message as N.json (envelope) and N.eml (raw).
// -------------------------------------------------------------------------------------------------------------

struct Sink {
    child: Child,
    // The sink stops when its stdin closes; kept open for as long as the test runs.
    _stdin: ChildStdin,
    port: u16,
    mail_dir: PathBuf,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One mail as the SMTP server received it.
#[derive(Debug, Clone)]
struct Mail {
    message_id: String,
    to: Vec<String>,
    subject: String,
}

impl Sink {
    fn start(dir: &Path) -> Sink {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../notify/src/smtp_sink.py");
        let python = std::env::var("ORDERTRAIL_SMTP_SINK_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
        let mail_dir = dir.join("mail");
        let mut child = Command::new(&python)
            .arg(&script)
            .arg(&mail_dir)
            .arg(dir.join("failure"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("run {python} {}: {e}", script.display()));
        let stdin = child.stdin.take().expect("the sink's stdin");
        let stdout = child.stdout.take().expect("the sink's stdout");
        let mut port = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read the sink's output");
            if let Some(p) = line.trim().strip_prefix("READY ") {
                port = Some(p.trim().parse::<u16>().expect("a port"));
                break;
            }
            assert_ne!(
                line.trim(),
                "MISSING aiosmtpd",
                "{python} cannot import aiosmtpd: apt-get install -y python3-aiosmtpd"
            );
        }
        Sink {
            child,
            _stdin: stdin,
            port: port.expect("the SMTP sink said READY"),
            mail_dir,
        }
    }

    fn files(&self) -> Vec<PathBuf> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.mail_dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    fn count(&self) -> usize {
        self.files().len()
    }

    fn mails(&self) -> Vec<Mail> {
        self.files()
            .iter()
            .map(|eml| {
                let raw = String::from_utf8_lossy(&std::fs::read(eml).expect("read a mail")).into_owned();
                let envelope: Value =
                    serde_json::from_slice(&std::fs::read(eml.with_extension("json")).expect("read an envelope"))
                        .expect("an envelope");
                let to = envelope["rcpt_tos"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_lowercase)).collect())
                    .unwrap_or_default();
                let header = |name: &str| header(&raw, name).unwrap_or_default();
                Mail {
                    message_id: header("message-id")
                        .trim()
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_string(),
                    to,
                    subject: header("subject"),
                }
            })
            .collect()
    }
}

/// A top-level header of a raw message, unfolded (not decoded: only for messages in failures).
fn header(raw: &str, name: &str) -> Option<String> {
    let head = raw.split("\r\n\r\n").next().unwrap_or(raw);
    let mut value: Option<String> = None;
    for line in head.split("\r\n") {
        if let Some(v) = value.as_mut() {
            if line.starts_with([' ', '\t']) {
                v.push_str(line);
                continue;
            }
            break;
        }
        if let Some((n, v)) = line.split_once(':')
            && n.eq_ignore_ascii_case(name)
        {
            value = Some(v.trim().to_string());
        }
    }
    value
}

// -------------------------------------------------------------------------------------------------------------
// The binary.
// -------------------------------------------------------------------------------------------------------------

fn command(config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ordertrail"));
    c.env("ORDERTRAIL_CONFIG", config);
    for var in [
        "ORDERTRAIL_DATABASE_URL",
        "ORDERTRAIL_LISTEN",
        "ORDERTRAIL_TIME_ZONE",
        "ORDERTRAIL_WORKFLOWS_DIR",
        "ORDERTRAIL_DURABILITY",
    ] {
        c.env_remove(var);
    }
    c
}

fn ordertrail(config: &Path, args: &[&str]) -> Output {
    let out = command(config).args(args).output().expect("the binary runs");
    assert!(
        out.status.success(),
        "ordertrail {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// How a tick process is to be killed.
#[derive(Debug, Clone, Copy)]
enum Kill {
    Never,
    /// This long after it started.
    After(Duration),
    /// This long after the SMTP server received its `n`-th mail (between a send and its recording).
    AfterMail(usize, Duration),
}

/// Runs `ordertrail tick --now at --deliver`, killing it as `kill` says; whether it was killed, and how many
/// mails arrived while it ran.
fn tick(config: &Path, sink: &Sink, at: DateTime<Utc>, kill: Kill) -> (bool, usize) {
    let before = sink.count();
    let now = at.to_rfc3339();
    let mut child = command(config)
        .args(["tick", "--now", &now, "--deliver"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tick starts");
    let started = Instant::now();
    let mut mail_seen: Option<Instant> = None;
    loop {
        if let Some(status) = child.try_wait().expect("wait for tick") {
            if !status.success() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("tick --now {now} failed ({status}): {err}");
            }
            return (false, sink.count() - before);
        }
        let fire = match kill {
            Kill::Never => false,
            Kill::After(delay) => started.elapsed() >= delay,
            Kill::AfterMail(n, delay) => {
                if mail_seen.is_none() && sink.count() >= before + n {
                    mail_seen = Some(Instant::now());
                }
                mail_seen.is_some_and(|seen| seen.elapsed() >= delay)
            }
        };
        if fire {
            // SIGKILL on Unix.
            child.kill().expect("kill tick");
            child.wait().expect("reap tick");
            return (true, sink.count() - before);
        }
        assert!(started.elapsed() < Duration::from_secs(120), "tick --now {now} hangs");
        std::thread::sleep(Duration::from_micros(300));
    }
}

// -------------------------------------------------------------------------------------------------------------
// What should be sent, from the rules as stated (see the server's tests/simulation.rs for the list).
// -------------------------------------------------------------------------------------------------------------

/// A message: its kind, what it is about (a milestone's key, a period's first day, an installment's number, a
/// digest's date; empty for the acknowledgment), and its one recipient.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    kind: String,
    about: String,
    to: String,
}

#[derive(Clone, Copy)]
struct Run {
    zone: FixedOffset,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl Run {
    fn at(&self, date: NaiveDate, hour: u32) -> DateTime<Utc> {
        let naive = date.and_hms_opt(hour, 0, 0).expect("a time");
        self.zone
            .from_local_datetime(&naive)
            .single()
            .expect("one instant")
            .with_timezone(&Utc)
    }

    fn date(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.zone).date_naive()
    }

    /// The tick that sends a message due at `moment` and worth sending until the end of the local day
    /// `last_day`: the first tick at or after its moment (the run's first tick when the run starts inside its
    /// window); none when that is outside the window or the run.
    fn tick_for(&self, moment: DateTime<Utc>, last_day: NaiveDate) -> Option<DateTime<Utc>> {
        let at = if moment <= self.start {
            self.start
        } else {
            let (seconds, tick) = ((moment - self.start).num_seconds(), TICK.num_seconds());
            self.start + TimeDelta::seconds((seconds + tick - 1) / tick * tick)
        };
        (at < self.end && at < self.at(last_day + TimeDelta::days(1), 0)).then_some(at)
    }
}

fn expected(order: &Order, users: &[ordertrail_domain::customer::User], run: Run) -> BTreeMap<Key, DateTime<Utc>> {
    let email = |id: ordertrail_domain::ids::UserId| {
        users
            .iter()
            .find(|u| u.id == id)
            .map(|u| u.email.to_lowercase())
            .expect("a known user")
    };
    let holders = |role: Role| -> Vec<String> {
        let all: Vec<_> = users.iter().filter(|u| u.roles.contains(&role)).collect();
        let mine: Vec<String> = all
            .iter()
            .filter(|u| order.people.iter().any(|p| p.user_id == u.id))
            .map(|u| u.email.to_lowercase())
            .collect();
        if mine.is_empty() {
            all.iter().map(|u| u.email.to_lowercase()).collect()
        } else {
            mine
        }
    };
    let person = |relation: Relation| {
        order
            .people
            .iter()
            .find(|p| p.relation == relation)
            .map(|p| email(p.user_id))
            .expect("the person on the order")
    };
    let contact = order
        .customer_contact
        .as_ref()
        .and_then(|c| c.email.clone())
        .expect("the contact's email")
        .to_lowercase();
    let customer = vec![contact, person(Relation::Customer)];
    let owner = person(Relation::Owner);

    let mut out = BTreeMap::new();
    let mut add = |kind: &str, about: &str, to: &[String], at: Option<DateTime<Utc>>| {
        let Some(at) = at else { return };
        for to in to.iter().collect::<BTreeSet<_>>() {
            let key = Key {
                kind: kind.into(),
                about: about.into(),
                to: to.clone(),
            };
            assert!(out.insert(key, at).is_none(), "{kind} {about} to {to} expected twice");
        }
    };
    for m in order
        .milestones
        .iter()
        .filter(|m| m.completed_at.is_none() && !m.after_delivery)
    {
        let owners = match m.owner_id {
            Some(id) => vec![email(id)],
            None => holders(m.owner_role),
        };
        let day = |offset: i64| m.planned_on + TimeDelta::days(offset);
        add(
            "milestone_chase",
            &m.key,
            &owners,
            run.tick_for(run.at(day(-3), 9), day(-2)),
        );
        add(
            "milestone_reminder",
            &m.key,
            &owners,
            run.tick_for(run.at(day(-1), 9), day(0)),
        );
        let mut told = owners.clone();
        told.push(owner.clone());
        add(
            "milestone_overdue",
            &m.key,
            &told,
            run.tick_for(run.at(day(1), 9), day(3)),
        );
    }
    let mut friday = run.date(order.created_at) + TimeDelta::days(1);
    while friday.weekday() != Weekday::Fri {
        friday += TimeDelta::days(1);
    }
    while run.at(friday, 10) < run.end {
        add(
            "client_update",
            &friday.to_string(),
            &customer,
            run.tick_for(run.at(friday, 10), friday + TimeDelta::days(6)),
        );
        friday += TimeDelta::days(7);
    }
    for item in order.payments.iter().flat_map(|p| &p.installments) {
        let Some(due) = item.due_on else { continue };
        let n = item.number.to_string();
        let on = |offset: i64| due + TimeDelta::days(offset);
        let steps = [
            ("payment_invoice", on(-3), customer.clone(), on(10_000)),
            ("payment_due", on(0), customer.clone(), on(4)),
            ("payment_friendly", on(5), customer.clone(), on(6)),
            ("payment_firm", on(7), customer.clone(), on(10_000)),
            ("payment_pause", on(8), holders(Role::SalesDirector), on(10_000)),
            ("payment_escalation", on(15), holders(Role::Finance), on(10_000)),
        ];
        for (kind, day, to, last_day) in steps {
            add(kind, &n, &to, run.tick_for(run.at(day, 9), last_day));
        }
    }
    let mut told = customer.clone();
    told.extend(
        order
            .people
            .iter()
            .filter(|p| p.relation != Relation::Customer)
            .map(|p| email(p.user_id)),
    );
    add("order_acknowledgment", "", &told, Some(run.start));
    let staff: Vec<String> = users
        .iter()
        .filter(|u| u.roles.iter().any(|r| r.is_staff()))
        .map(|u| u.email.to_lowercase())
        .collect();
    let mut day = run.date(run.start);
    while run.at(day, 17) < run.end {
        add(
            "daily_digest",
            &day.to_string(),
            &staff,
            run.tick_for(run.at(day, 17), day),
        );
        day += TimeDelta::days(1);
    }
    out
}

// -------------------------------------------------------------------------------------------------------------
// The test.
// -------------------------------------------------------------------------------------------------------------

#[test]
fn ticks_killed_at_random_points_still_send_every_message_once_and_resends_keep_their_message_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sink = Sink::start(dir.path());
    let db = format!("sqlite://{}", dir.path().join("restarts.db").display());
    // A fixed-offset zone in which it is now 11:xx (see the module's doc).
    let offset_hours = 11 - i32::try_from(Utc::now().hour()).expect("an hour");
    let zone_name = match offset_hours {
        0 => "Etc/GMT".to_string(),
        h if h > 0 => format!("Etc/GMT-{h}"),
        h => format!("Etc/GMT+{}", -h),
    };
    let zone = FixedOffset::east_opt(offset_hours * 3600).expect("an offset");
    let config = dir.path().join("ordertrail.toml");
    std::fs::write(
        &config,
        format!(
            r#"database_url = "{db}"
# serve runs its pass once at start-up; this test runs the ticks itself.
scheduler_interval_seconds = 86400

[organisation]
name = "Restart Studio"
time_zone = "{zone_name}"

[delivery.smtp]
host = "127.0.0.1"
port = {port}
security = "none"
from = "Ordertrail <noreply@ordertrail.test>"
timeout_seconds = 10
"#,
            port = sink.port
        ),
    )
    .expect("write the config");

    // The people, the customer, the order and its contract.
    ordertrail(&config, &["migrate"]);
    for (email, name, role) in [
        ("amy@test.dev", "Amy", "account_manager"),
        ("lea@test.dev", "Léa", "design"),
        ("omar@test.dev", "Omar", "operations"),
        ("dana@test.dev", "Dana", "sales_director"),
        ("fay@test.dev", "Fay", "finance"),
        ("leo@test.dev", "Leo", "logistics"),
    ] {
        ordertrail(&config, &["user", "add", email, "--name", name, "--role", role]);
    }
    let token = String::from_utf8_lossy(&ordertrail(&config, &["token", "issue", "amy@test.dev"]).stdout)
        .trim()
        .to_string();
    let user_id = |out: Output| {
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .last()
            .expect("the new user's id")
            .to_string()
    };
    let mut serve = command(&config)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let mut base = String::new();
    for line in BufReader::new(serve.stdout.take().expect("serve's stdout")).lines() {
        let line = line.expect("serve's output");
        if let Some(rest) = line.split("on http://").nth(1) {
            base = format!("http://{}", rest.split('/').next().unwrap_or_default());
            break;
        }
    }
    assert!(!base.is_empty(), "serve printed its address");
    let today = Utc::now().with_timezone(&zone).date_naive();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let post = |path: &str, body: Value| -> Value {
        let (status, reply) = http_post(&base, &token, path, &body);
        assert!((200..300).contains(&status), "POST {path}: {status} {reply}");
        reply
    };
    let customer = post(
        "/api/v1/customers",
        json!({"name": "Acme Theatre",
               "contacts": [{"name": "Margaret Hale", "email": "buyer@example.com", "title": "Buyer"}]}),
    );
    let customer_id = customer["id"].as_str().expect("a customer id").to_string();
    let margaret = user_id(ordertrail(
        &config,
        &[
            "user",
            "add",
            "margaret@acme.example",
            "--name",
            "Margaret",
            "--role",
            "customer",
            "--customer",
            &customer_id,
        ],
    ));
    let ids: BTreeMap<String, String> = {
        let listed = rt.block_on(async {
            let store = open_store(&db).await;
            store.all_users().await.expect("users")
        });
        listed.into_iter().map(|u| (u.email, u.id.to_string())).collect()
    };
    assert_eq!(ids.get("margaret@acme.example"), Some(&margaret));
    // Ordered ten days ago (design approval in 4 days), promised in 12 (the delivery milestone in the run too).
    let order = post(
        "/api/v1/orders",
        json!({
            "workflow": "custom-production",
            "customer_id": customer_id,
            "title": "Restart-proof costumes",
            "order_type": "custom",
            "amount": {"currency": "USD", "amount": "1250.00"},
            "order_date": (today - TimeDelta::days(10)).to_string(),
            "promised_date": (today + TimeDelta::days(12)).to_string(),
            "line_items": [{"description": "Costume", "quantity": 3}],
            "people": [
                {"relation": "owner", "user_id": ids["amy@test.dev"]},
                {"relation": "design", "user_id": ids["lea@test.dev"]},
                {"relation": "production", "user_id": ids["omar@test.dev"]},
                {"relation": "logistics", "user_id": ids["leo@test.dev"]},
                {"relation": "customer", "user_id": margaret},
            ],
        }),
    );
    let order_id = order["id"].as_str().expect("an order id").to_string();
    post(
        &format!("/api/v1/orders/{order_id}/contract"),
        json!({"signed_on": today.to_string()}),
    );
    serve.kill().expect("stop serve");
    serve.wait().expect("reap serve");
    assert_eq!(sink.count(), 0, "serve's own pass sent nothing");

    // The run: a tick every hour from the next full hour, some killed and run again.
    let next_hour = Utc::now() + TimeDelta::hours(1);
    let start = next_hour
        .with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .expect("a full hour");
    let ticks: Vec<DateTime<Utc>> = (0..DAYS * 24 * 3600 / TICK.num_seconds())
        .map(|k| start + TimeDelta::seconds(k * TICK.num_seconds()))
        .collect();
    let run = Run {
        zone,
        start,
        end: start + TimeDelta::days(DAYS),
    };
    let mut rng = Rng(SEED);
    // The ticks at which a run was killed.
    let mut killed_at: BTreeSet<DateTime<Utc>> = BTreeSet::new();
    let clock = Instant::now();
    let (mut runs, mut kills, mut kills_after_mail, mut kills_during_sending) = (0, 0, 0, 0);
    for (i, at) in ticks.iter().enumerate() {
        let mut in_a_row = 0;
        loop {
            // The last two ticks are never killed: a claim left by a killed worker runs out (5 minutes) before
            // the last one, which sends it.
            let kill = if i + 2 >= ticks.len() || in_a_row >= KILLS_IN_A_ROW {
                Kill::Never
            } else {
                match rng.below(100) {
                    0..15 => Kill::After(Duration::from_millis(rng.below(200))),
                    15..45 => Kill::AfterMail(
                        1 + usize::try_from(rng.below(3)).expect("small"),
                        Duration::from_micros(rng.below(4000)),
                    ),
                    _ => Kill::Never,
                }
            };
            let (killed, mails) = tick(&config, &sink, *at, kill);
            runs += 1;
            if !killed {
                break;
            }
            kills += 1;
            in_a_row += 1;
            killed_at.insert(*at);
            if mails > 0 {
                kills_during_sending += 1;
            }
            if matches!(kill, Kill::AfterMail(..)) {
                kills_after_mail += 1;
            }
        }
    }
    eprintln!(
        "restarts: {} ticks ({DAYS} days, every {} minutes) in {runs} tick processes, {kills} killed \
         ({kills_after_mail} right after a mail arrived, {kills_during_sending} after sending had begun), {:.1} s",
        ticks.len(),
        TICK.num_minutes(),
        clock.elapsed().as_secs_f64()
    );
    assert!(
        kills_during_sending > 0,
        "some kills fell while messages were being sent"
    );

    // The audit log verifies.
    let verify = ordertrail(&config, &["verify"]);
    assert!(
        String::from_utf8_lossy(&verify.stdout).starts_with("ok:"),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );

    // What the product recorded.
    let (order, users, events, sent_rows, left) = rt.block_on(async {
        let store = open_store(&db).await;
        let id = uuid::Uuid::parse_str(&order_id).expect("a uuid");
        let order = store.order(OrderId(id)).await.expect("read").expect("the order");
        let users = store.all_users().await.expect("users");
        let events = store.events(id).await.expect("events");
        let sent = store.outbox(Some("sent"), None, 100_000).await.expect("outbox");
        let mut left = Vec::new();
        for state in ["pending", "claimed", "failed", "draft"] {
            left.extend(store.outbox(Some(state), None, 1000).await.expect("outbox"));
        }
        (order, users, events, sent, left)
    });
    assert!(
        left.is_empty(),
        "nothing is left unsent: {:?}",
        left.iter().map(|m| (&m.state, &m.dedupe_key)).collect::<Vec<_>>()
    );
    let problems: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "message_failed" || e.kind == "message_dropped")
        .map(|e| e.data.to_string())
        .collect();
    assert!(problems.is_empty(), "nothing failed or was dropped: {problems:#?}");
    // The record of each delivery is its outbox row, whose id is in the Message-ID (`<row id>.<n>@ordertrail`):
    // Message-ID -> (kind, dedupe key, when the row was finished).
    let rows: BTreeMap<String, &OutboxEntry> = sent_rows.iter().map(|r| (r.id.to_string(), r)).collect();
    let recorded = |message_id: &str| -> Option<(String, String, DateTime<Utc>, bool)> {
        let row = rows.get(message_id.split('.').next().unwrap_or_default())?;
        let kind = match row.kind.as_str() {
            "message" => serde_json::from_str::<Value>(&row.payload).ok()?["kind"]
                .as_str()?
                .to_string(),
            other => match other.strip_prefix("dunning.")? {
                "invoice" => "payment_invoice",
                "due_reminder" => "payment_due",
                "friendly_reminder" => "payment_friendly",
                "firm_reminder" => "payment_firm",
                "pause_work" => "payment_pause",
                "escalate_to_finance" => "payment_escalation",
                step => panic!("an unknown dunning step {step}"),
            }
            .to_string(),
        };
        let on_order = row.stream_id != DIGEST_STREAM;
        Some((kind, row.dedupe_key.clone(), row.finished_at?, on_order))
    };
    // The order's timeline: each send once, under the kind and key of its outbox row.
    let mut on_timeline: BTreeSet<String> = BTreeSet::new();
    for e in events.iter().filter(|e| e.kind == "message_sent") {
        let message_id = e.data["delivery"]["message_id"]
            .as_str()
            .expect("a Message-ID")
            .to_string();
        let (kind, key, _, _) = recorded(&message_id).unwrap_or_else(|| panic!("{message_id} has a sent outbox row"));
        assert_eq!(e.data["kind"], kind.as_str(), "{message_id}");
        assert_eq!(e.data["dedupe_key"], key.as_str(), "{message_id}");
        assert!(
            on_timeline.insert(message_id.clone()),
            "{message_id} recorded as sent twice"
        );
    }

    // What the SMTP server received.
    let mails = sink.mails();
    let mut copies: BTreeMap<&str, usize> = BTreeMap::new();
    for m in &mails {
        *copies.entry(m.message_id.as_str()).or_default() += 1;
    }
    let resends: usize = copies.values().map(|n| n - 1).sum();
    let never_arrived: Vec<&String> = on_timeline
        .iter()
        .filter(|id| !copies.contains_key(id.as_str()))
        .collect();
    assert!(
        never_arrived.is_empty(),
        "the timeline says sent what never arrived: {never_arrived:?}"
    );
    let milestone_keys: BTreeMap<String, String> = order
        .milestones
        .iter()
        .map(|m| (m.id.to_string(), m.key.clone()))
        .collect();
    let mut received: BTreeMap<Key, (BTreeSet<&str>, DateTime<Utc>, &Mail)> = BTreeMap::new();
    let mut unexplained = Vec::new();
    let mut timeline_gaps = BTreeSet::new();
    for m in &mails {
        let Some((kind, dedupe_key, at, on_order)) = recorded(&m.message_id) else {
            unexplained.push(format!("{} {:?} {}", m.message_id, m.to, m.subject));
            continue;
        };
        if on_order && !on_timeline.contains(&m.message_id) {
            timeline_gaps.insert(format!("{} ({kind}, {} to {:?})", m.message_id, dedupe_key, m.to));
        }
        assert_eq!(m.to.len(), 1, "one recipient per mail: {m:?}");
        let part = |n: usize| dedupe_key.split(':').nth(n).unwrap_or_default().to_string();
        let about = match kind.as_str() {
            "milestone_reminder" | "milestone_overdue" | "milestone_chase" => milestone_keys
                .get(&part(2))
                .cloned()
                .unwrap_or_else(|| format!("unknown milestone in {dedupe_key}")),
            "order_acknowledgment" => String::new(),
            // `{order}:client_update:{period}`, `dunning:{order}:{installment}:{step}`, `digest:{user}:{date}`.
            _ => part(2),
        };
        let key = Key {
            kind,
            about,
            to: m.to[0].clone(),
        };
        received
            .entry(key)
            .or_insert_with(|| (BTreeSet::new(), at, m))
            .0
            .insert(m.message_id.as_str());
    }
    assert!(
        unexplained.is_empty(),
        "mails without a sent outbox row: {unexplained:#?}"
    );
    // Every send is on the order's timeline: the worker records the `message_sent` event before it finishes
    // the outbox row, and a row claimed again after a kill whose delivery is recorded is only finished.
    assert!(
        timeline_gaps.is_empty(),
        "sent but not on the timeline: {timeline_gaps:#?}"
    );
    // A copy only ever shares its Message-ID: one message, one Message-ID, however often it arrived.
    let split: Vec<String> = received
        .iter()
        .filter(|(_, (ids, _, _))| ids.len() > 1)
        .map(|(key, (ids, _, _))| format!("{key:?}: {ids:?}"))
        .collect();
    assert!(split.is_empty(), "a message sent under two Message-IDs: {split:#?}");

    let expected = expected(&order, &users, run);
    let mut missing = Vec::new();
    let mut late = Vec::new();
    let mut delayed = 0;
    for (key, when) in &expected {
        match received.get(key) {
            None => missing.push(format!("{key:?} due {when}")),
            Some((_, at, mail)) => {
                // A kill after a claim delays the message to the next tick (the claim runs out after 5 minutes):
                // it goes out at its tick, or later only when every tick from its own to that one saw a kill.
                let excused = ticks
                    .iter()
                    .filter(|t| *t >= when && *t < at)
                    .all(|t| killed_at.contains(t));
                if *at < *when || !excused {
                    late.push(format!("{key:?} sent at {at}, due {when}: {}", mail.subject));
                } else if at > when {
                    delayed += 1;
                }
            }
        }
    }
    let extra: Vec<String> = received
        .iter()
        .filter(|(key, _)| !expected.contains_key(*key))
        .map(|(key, (_, at, mail))| format!("{key:?} at {at}: {}", mail.subject))
        .collect();
    eprintln!(
        "restarts: {} messages expected, {} mails received, {} distinct Message-IDs, {resends} resent with the \
         same Message-ID after a kill, {delayed} delayed by a kill",
        expected.len(),
        mails.len(),
        copies.len()
    );
    assert!(
        missing.is_empty() && extra.is_empty() && late.is_empty(),
        "missing ({}): {missing:#?}\nunexpected ({}): {extra:#?}\nout of time ({}): {late:#?}",
        missing.len(),
        extra.len(),
        late.len()
    );
    assert_eq!(copies.len(), expected.len(), "one Message-ID per expected message");
    let kinds: BTreeSet<&str> = expected.keys().map(|k| k.kind.as_str()).collect();
    for kind in [
        "order_acknowledgment",
        "milestone_chase",
        "milestone_reminder",
        "milestone_overdue",
        "client_update",
        "payment_invoice",
        "payment_due",
        "payment_friendly",
        "payment_firm",
        "payment_pause",
        "payment_escalation",
        "daily_digest",
    ] {
        assert!(kinds.contains(kind), "the run covers {kind}: {kinds:?}");
    }
}

/// A POST over plain HTTP/1.1 (reqwest is built without a TLS crypto provider in this workspace and panics
/// unless one is installed first; this test needs nothing of it).
fn http_post(base: &str, token: &str, path: &str, body: &Value) -> (u16, Value) {
    use std::io::Write;
    let host = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).expect("connect to serve");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("a timeout");
    let body = body.to_string();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send the request");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read the reply");
    let (head, content) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP status line: {head}"));
    (
        status,
        serde_json::from_str(content).unwrap_or(Value::String(content.to_string())),
    )
}

async fn open_store(db: &str) -> Arc<dyn Store> {
    let workflows = Config::default()
        .organisation()
        .expect("the default organisation")
        .workflows;
    ordertrail_store::open(db, ordertrail_store::sqlite::Durability::Normal, Arc::new(workflows))
        .await
        .expect("open the database")
}
