//! Twelve weeks of one custom-production order on a fake clock, with real parts: the scheduler's pass
//! (dunning, follow-through, digests, delivery) every 15 minutes of simulated time, the outbox worker, and a
//! real SMTP server on loopback. The messages the order should cause are computed here, from the rules as the
//! product states them (not by calling the product's rule functions), and compared with what the SMTP server
//! received: none missing, none twice, none unexplained, each sent at its local moment (Europe/London, across
//! the change to summer time on 29 March).
//!
//! The rules as stated (the follow-through policy's defaults, the dunning policy's defaults):
//! - a milestone's owner is reminded the day before its planned date at 09:00, chased 3 days before at 09:00
//!   (when nothing was logged on the order for 3 days: nothing is, in this run), and the owner and the order's
//!   owner hear the day after at 09:00 that it is overdue; a reminder is worth sending until the planned day,
//!   a chase until 2 days before it, an overdue notice until 2 days after its moment (`late_by_days`);
//! - the customer (the order's contact and its customer user) gets a weekly client update every Friday at
//!   10:00 after the day the order was created, while the order awaits delivery;
//! - an unpaid installment: its invoice 3 days before it is due, a reminder on the due date, a friendly one
//!   on day 5, a firm one on day 7 (to the customer), a pause notice to the sales director once it is more than
//!   7 days overdue, and the escalation to finance once more than 14; dunning goes by the local date, and its
//!   messages go out from 09:00 local (the first pass at or after it);
//! - every staff user gets a daily digest at 17:00;
//! - the order's acknowledgment goes out when it is created, to the customer and the people on the order.

mod common;

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, TimeZone, Utc, Weekday};
use chrono_tz::Europe::London;
use common::*;
use ordertrail_domain::Role;
use ordertrail_notify::testing::{ReceivedMail, SmtpSink};
use ordertrail_server::delivery::{Deliverer, DeliveryConfig};
use ordertrail_server::scheduler::{self, DIGEST_STREAM};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// Simulated time between two passes.
const TICK: TimeDelta = TimeDelta::minutes(15);
/// How long the simulation runs.
const WEEKS: i64 = 12;

/// One message as the test identifies it: its kind, what it is about (a milestone's key, a period's first
/// day, an installment's number, a digest's date; empty for the acknowledgment), and its one recipient.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    kind: String,
    about: String,
    to: String,
}

impl Key {
    fn new(kind: &str, about: impl Into<String>, to: &str) -> Key {
        Key {
            kind: kind.to_string(),
            about: about.into(),
            to: to.to_lowercase(),
        }
    }
}

/// The UTC instant of a London wall-clock time.
fn london(date: NaiveDate, hour: u32) -> DateTime<Utc> {
    let naive = date.and_hms_opt(hour, 0, 0).expect("a valid time");
    London
        .from_local_datetime(&naive)
        .single()
        .unwrap_or_else(|| panic!("{naive} is one instant in London"))
        .with_timezone(&Utc)
}

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap_or_else(|e| panic!("bad date {text}: {e}"))
}

/// The simulated run: passes at `start`, `start + TICK`, ... before `end`.
#[derive(Clone, Copy)]
struct Run {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl Run {
    /// The pass that sends a message whose rule falls due at `moment` and which is worth sending until the end
    /// of the local day `last_day`: the first pass at or after its moment (the first pass of the run when the
    /// run starts inside its window); none when that pass is outside the window or the run.
    fn pass_for(&self, moment: DateTime<Utc>, last_day: NaiveDate) -> Option<DateTime<Utc>> {
        let at = if moment <= self.start {
            self.start
        } else {
            let (seconds, tick) = ((moment - self.start).num_seconds(), TICK.num_seconds());
            let ticks = (seconds + tick - 1) / tick;
            self.start + TICK * i32::try_from(ticks).expect("ticks fit")
        };
        let window_ends = london(last_day + TimeDelta::days(1), 0);
        (at < self.end && at < window_ends).then_some(at)
    }
}

/// Someone in the world: their email and roles.
struct Member {
    id: String,
    email: String,
    roles: Vec<Role>,
}

fn members(w: &World) -> Vec<Member> {
    [
        &w.admin,
        &w.am,
        &w.sc,
        &w.sd,
        &w.ops,
        &w.design,
        &w.finance,
        &w.logistics,
        &w.ip,
        &w.mfr,
        &w.multi,
        &w.outsider,
        &w.acme_user,
        &w.globex_user,
    ]
    .into_iter()
    .map(|p| Member {
        id: p.id(),
        email: p.user.email.to_lowercase(),
        roles: p.user.roles.clone(),
    })
    .collect()
}

/// The expected messages of the order, with the pass each should go out with.
fn expected(w: &World, order: &Value, payments: &Value, run: Run) -> BTreeMap<Key, DateTime<Utc>> {
    let members = members(w);
    let email_of = |id: &str| -> String {
        members
            .iter()
            .find(|m| m.id == id)
            .map(|m| m.email.clone())
            .unwrap_or_else(|| panic!("user {id} is in the world"))
    };
    let on_order: Vec<(String, String)> = order["people"]
        .as_array()
        .expect("the admin sees the order's people")
        .iter()
        .map(|p| {
            (
                p["relation"].as_str().unwrap_or_default().to_string(),
                p["user_id"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(!on_order.is_empty(), "people on the order: {order}");
    // A role: its holders among the people on the order, else everyone holding it.
    let holders = |role: Role| -> Vec<String> {
        let all: Vec<&Member> = members.iter().filter(|m| m.roles.contains(&role)).collect();
        let mine: Vec<String> = all
            .iter()
            .filter(|m| on_order.iter().any(|(_, id)| *id == m.id))
            .map(|m| m.email.clone())
            .collect();
        if mine.is_empty() {
            all.iter().map(|m| m.email.clone()).collect()
        } else {
            mine
        }
    };
    let contact = order["customer_contact"]["email"]
        .as_str()
        .expect("the order's contact has an email")
        .to_lowercase();
    let customer_user = on_order
        .iter()
        .find(|(relation, _)| relation == "customer")
        .map(|(_, id)| email_of(id))
        .expect("a customer user on the order");
    let customer = vec![contact, customer_user];
    let owner = on_order
        .iter()
        .find(|(relation, _)| relation == "owner")
        .map(|(_, id)| email_of(id))
        .expect("an owner");

    let mut out: BTreeMap<Key, DateTime<Utc>> = BTreeMap::new();
    let mut add = |kind: &str, about: &str, to: &[String], at: Option<DateTime<Utc>>| {
        let Some(at) = at else { return };
        let unique: BTreeSet<&String> = to.iter().collect();
        for to in unique {
            let previous = out.insert(Key::new(kind, about, to), at);
            assert!(previous.is_none(), "the test expects {kind} {about} to {to} twice");
        }
    };

    // Milestones: reminder, chase, overdue notice.
    for m in order["milestones"].as_array().expect("milestones") {
        if !m["completed_at"].is_null() || m["after_delivery"] == json!(true) {
            continue;
        }
        let key = m["key"].as_str().expect("a key");
        let planned = date(m["planned_on"].as_str().expect("a planned date"));
        let owners = match m["owner_id"].as_str() {
            Some(id) => vec![email_of(id)],
            None => holders(serde_json::from_value(m["owner_role"].clone()).expect("an owner role")),
        };
        let day = |offset: i64| planned + TimeDelta::days(offset);
        add(
            "milestone_chase",
            key,
            &owners,
            run.pass_for(london(day(-3), 9), day(-2)),
        );
        add(
            "milestone_reminder",
            key,
            &owners,
            run.pass_for(london(day(-1), 9), day(0)),
        );
        let mut told = owners.clone();
        told.push(owner.clone());
        add("milestone_overdue", key, &told, run.pass_for(london(day(1), 9), day(3)));
    }

    // The weekly client update, Fridays at 10:00 after the creation day, while the order awaits delivery (it
    // never leaves its first status in this run).
    let created = DateTime::parse_from_rfc3339(order["created_at"].as_str().expect("created_at"))
        .expect("an RFC 3339 time")
        .with_timezone(&London)
        .date_naive();
    let mut friday = created + TimeDelta::days(1);
    while friday.weekday() != Weekday::Fri {
        friday += TimeDelta::days(1);
    }
    while london(friday, 10) < run.end {
        add(
            "client_update",
            &friday.to_string(),
            &customer,
            run.pass_for(london(friday, 10), friday + TimeDelta::days(6)),
        );
        friday += TimeDelta::days(7);
    }

    // Dunning of every unpaid installment with a due date: by the local date, from 09:00 (business hours).
    for item in payments["installments"].as_array().expect("installments") {
        let Some(due) = item["due_on"].as_str().map(date) else {
            continue;
        };
        let n = item["number"].to_string();
        let on = |offset: i64| due + TimeDelta::days(offset);
        // (kind, its day, who, the last day it is worth sending: a reminder until the next one is due, since
        // the latest reminder reached supersedes the earlier ones)
        let steps = [
            ("payment_invoice", on(-3), customer.clone(), on(10_000)),
            ("payment_due", on(0), customer.clone(), on(4)),
            ("payment_friendly", on(5), customer.clone(), on(6)),
            ("payment_firm", on(7), customer.clone(), on(10_000)),
            // "After 7 days": once more than 7 days overdue, i.e. from day 8; "after 14": from day 15.
            ("payment_pause", on(8), holders(Role::SalesDirector), on(10_000)),
            ("payment_escalation", on(15), holders(Role::Finance), on(10_000)),
        ];
        for (kind, day, to, last_day) in steps {
            add(kind, &n, &to, run.pass_for(london(day, 9), last_day));
        }
    }

    // The acknowledgment when the order was created: the customer and the people on it.
    let mut told = customer.clone();
    told.extend(
        on_order
            .iter()
            .filter(|(relation, _)| relation != "customer")
            .map(|(_, id)| email_of(id)),
    );
    add("order_acknowledgment", "", &told, Some(run.start));

    // Every staff user's digest at 17:00.
    let staff: Vec<String> = members
        .iter()
        .filter(|m| m.roles.iter().any(|r| *r != Role::Customer))
        .map(|m| m.email.clone())
        .collect();
    let mut day = run.start.with_timezone(&London).date_naive();
    while london(day, 17) < run.end {
        add(
            "daily_digest",
            &day.to_string(),
            &staff,
            run.pass_for(london(day, 17), day),
        );
        day += TimeDelta::days(1);
    }
    out
}

/// What the product says it sent: by Message-ID, the kind, the dedupe key, when, and to whom.
struct Sent {
    kind: String,
    dedupe_key: String,
    at: DateTime<Utc>,
    to: Vec<String>,
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("a time, not {v}: {e}"))
        .with_timezone(&Utc)
}

/// The subject's start (or a part of it) that says which kind of message a mail is.
fn subject_says(kind: &str, about: &str, milestones: &BTreeMap<String, String>) -> String {
    let name = || milestones.get(about).cloned().unwrap_or_default();
    match kind {
        "milestone_reminder" => format!("Reminder: {}", name()),
        "milestone_overdue" => format!("Overdue: {}", name()),
        "milestone_chase" => format!("Update needed: {}", name()),
        "client_update" => "Weekly update".into(),
        "order_acknowledgment" => "Order confirmed:".into(),
        "payment_invoice" => "Invoice INV-".into(),
        "payment_due" => "Payment reminder:".into(),
        "payment_friendly" => "Friendly reminder:".into(),
        "payment_firm" => "Payment overdue:".into(),
        "payment_pause" => "Work paused:".into(),
        "payment_escalation" => "Collection needed:".into(),
        "daily_digest" => format!("Daily digest {}", date(about).format("%a, %b %-d, %Y")),
        other => panic!("no subject known for {other}"),
    }
}

#[tokio::test]
async fn a_twelve_week_custom_order_on_a_fake_clock_gets_exactly_the_expected_messages() {
    let sink = SmtpSink::start()
        .await
        .expect("the SMTP server starts (python3-aiosmtpd)");
    let w = World::new().await;
    let deliverer = Deliverer::new(DeliveryConfig {
        smtp: Some(sink.settings()),
        ..DeliveryConfig::default()
    })
    .expect("the deliverer starts");
    let state = &w.app.state;
    let start = at(T0);
    let run = Run {
        start,
        end: start + TimeDelta::weeks(WEEKS),
    };

    // Monday 2 March 2026, 12:00 London: the order, its contract signed today, its deposit never paid, no
    // milestone ever completed. Promised on 20 May so that the delivery milestone falls inside the run too.
    let mut body = w.order_body("custom-production");
    body["order_type"] = json!("custom");
    body["title"] = json!("Twelve-week costumes");
    body["promised_date"] = json!("2026-05-20");
    let created = w.create_order(body).await;
    let id = id_of(&created);
    w.sign_contract(&id, "2026-03-02").await;
    let order = w.order(&id).await;
    let (status, _, payments) = w
        .app
        .get(&format!("/api/v1/orders/{id}/payments"), &w.finance.token, None)
        .await;
    assert_eq!(status, axum::http::StatusCode::OK, "{payments}");
    assert_eq!(
        payments["installments"][0]["due_on"], "2026-03-02",
        "the deposit is due at signing: {payments}"
    );
    let milestones: BTreeMap<String, String> = order["milestones"]
        .as_array()
        .expect("milestones")
        .iter()
        .map(|m| {
            (
                m["key"].as_str().unwrap_or_default().to_string(),
                m["name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let milestone_keys: BTreeMap<String, String> = order["milestones"]
        .as_array()
        .expect("milestones")
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap_or_default().to_string(),
                m["key"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let expected = expected(&w, &order, &payments, run);

    // The simulation: a pass every 15 minutes for twelve weeks.
    let clock = Instant::now();
    let mut now = run.start;
    let mut passes = 0;
    while now < run.end {
        state.clock.set(now);
        scheduler::pass(state, &deliverer, "simulation", now, 50)
            .await
            .unwrap_or_else(|e| panic!("the pass at {now}: {e}"));
        passes += 1;
        now += TICK;
    }
    let elapsed = clock.elapsed();
    eprintln!(
        "simulation: {passes} passes ({WEEKS} weeks, every {} minutes) in {:.1} s",
        TICK.num_minutes(),
        elapsed.as_secs_f64()
    );
    assert_eq!(passes, WEEKS * 7 * 24 * 4);

    // What the product says it sent: the order's timeline, and the digests' outbox rows.
    let events = w.events(&id).await;
    let mut sent: BTreeMap<String, Sent> = BTreeMap::new();
    for e in events.iter().filter(|e| e["kind"] == "message_sent") {
        let d = &e["data"];
        let message_id = d["delivery"]["message_id"].as_str().expect("a Message-ID").to_string();
        let entry = Sent {
            kind: d["kind"].as_str().expect("a kind").to_string(),
            dedupe_key: d["dedupe_key"].as_str().expect("a dedupe key").to_string(),
            at: time(&e["occurred_at"]),
            to: d["delivery"]["to"]
                .as_array()
                .expect("recipients")
                .iter()
                .map(|t| t.as_str().unwrap_or_default().to_lowercase())
                .collect(),
        };
        assert!(
            sent.insert(message_id.clone(), entry).is_none(),
            "two message_sent events for {message_id}"
        );
    }
    let digests = state
        .store
        .outbox(Some("sent"), Some(DIGEST_STREAM), 100_000)
        .await
        .expect("the digests");
    for d in &digests {
        let message_id = format!("{}.0@ordertrail", d.id);
        sent.insert(
            message_id,
            Sent {
                kind: "daily_digest".into(),
                dedupe_key: d.dedupe_key.clone(),
                at: d.finished_at.expect("a sent digest has its time"),
                to: Vec::new(),
            },
        );
    }
    let problems: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "message_failed" || e["kind"] == "message_dropped")
        .collect();
    assert!(problems.is_empty(), "nothing fails or is dropped: {problems:?}");
    for state_name in ["pending", "claimed", "failed", "draft"] {
        let left = state
            .store
            .outbox(Some(state_name), None, 100)
            .await
            .expect("the outbox");
        assert!(
            left.is_empty(),
            "no message is left {state_name}: {:?}",
            left.iter().map(|m| &m.dedupe_key).collect::<Vec<_>>()
        );
    }

    // What the SMTP server received, each mail identified through its Message-ID.
    let mails = sink.messages();
    let mut seen_ids: BTreeMap<&str, usize> = BTreeMap::new();
    for m in &mails {
        *seen_ids.entry(m.message_id.as_str()).or_default() += 1;
    }
    let twice: Vec<(&&str, &usize)> = seen_ids.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "no Message-ID arrives twice: {twice:?}");
    let mut received: BTreeMap<Key, Vec<(DateTime<Utc>, &ReceivedMail)>> = BTreeMap::new();
    let mut unexplained = Vec::new();
    for m in &mails {
        let Some(s) = sent.get(&m.message_id) else {
            unexplained.push(format!("{} {:?} {}", m.message_id, m.envelope_to, m.subject));
            continue;
        };
        assert_eq!(m.envelope_to.len(), 1, "one recipient per mail: {:?}", m.envelope_to);
        let to = m.envelope_to[0].to_lowercase();
        if s.kind != "daily_digest" {
            assert_eq!(
                s.to,
                vec![to.clone()],
                "the timeline names the recipient of {}",
                m.message_id
            );
        }
        let parts: Vec<&str> = s.dedupe_key.split(':').collect();
        let about = match s.kind.as_str() {
            "milestone_reminder" | "milestone_overdue" | "milestone_chase" => milestone_keys
                .get(parts.get(2).copied().unwrap_or_default())
                .cloned()
                .unwrap_or_else(|| format!("unknown milestone in {}", s.dedupe_key)),
            "client_update" => parts.get(2).copied().unwrap_or_default().to_string(),
            kind if kind.starts_with("payment_") => parts.get(2).copied().unwrap_or_default().to_string(),
            "daily_digest" => parts.get(2).copied().unwrap_or_default().to_string(),
            _ => String::new(),
        };
        received
            .entry(Key::new(&s.kind, about, &to))
            .or_default()
            .push((s.at, m));
    }
    assert!(
        unexplained.is_empty(),
        "every mail is one the product recorded as sent: {unexplained:#?}"
    );

    let mut missing = Vec::new();
    let mut wrong = Vec::new();
    for (key, when) in &expected {
        match received.get(key) {
            None => missing.push(format!("{key:?} due {when}")),
            Some(got) if got.len() > 1 => wrong.push(format!("{key:?} arrived {} times", got.len())),
            Some(got) => {
                let (at, mail) = got[0];
                if at < *when || at >= *when + TICK {
                    wrong.push(format!("{key:?} sent at {at}, expected at {when} (within {TICK})"));
                }
                let says = subject_says(&key.kind, &key.about, &milestones);
                if !mail.subject.contains(&says) {
                    wrong.push(format!("{key:?}: the subject {:?} should say {says:?}", mail.subject));
                }
            }
        }
    }
    let extra: Vec<String> = received
        .iter()
        .filter(|(key, _)| !expected.contains_key(*key))
        .map(|(key, got)| format!("{key:?} at {:?}: {:?}", got[0].0, got[0].1.subject))
        .collect();
    let by_kind = |set: &mut dyn Iterator<Item = &Key>| {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for k in set {
            *counts.entry(k.kind.clone()).or_default() += 1;
        }
        counts
    };
    eprintln!(
        "simulation: {} mails expected {:?}; {} received",
        expected.len(),
        by_kind(&mut expected.keys()),
        mails.len()
    );
    assert!(
        missing.is_empty() && extra.is_empty() && wrong.is_empty(),
        "missing ({}): {missing:#?}\nunexpected ({}): {extra:#?}\nwrong ({}): {wrong:#?}",
        missing.len(),
        extra.len(),
        wrong.len()
    );
    assert_eq!(mails.len(), expected.len());
}
