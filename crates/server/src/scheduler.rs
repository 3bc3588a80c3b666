//! The scheduler's follow-through pass (R3, R25, R33, R35): at `now`, in the organisation's time zone, it asks
//! the store which orders may have something due (by index: open milestones near their date, orders whose
//! client update period started), asks the domain what is due for each, and queues it through the one write
//! path (a `message_queued` event, its outbox row in the same transaction). It also queues each team member's
//! daily digest at its hour. Every message has a dedupe key, so running it every minute, on several servers,
//! or after downtime queues each message once; what is long past is not queued at all.

use crate::error::ApiResult;
use crate::state::AppState;
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use ordertrail_domain::event::Actor;
use ordertrail_domain::follow_through::{self, MessageKind, QueuedMessage, client_update_periods, due_messages};
use ordertrail_domain::ids::OrderId;
use ordertrail_domain::order::Order;
use ordertrail_store::Meta;
use serde::Serialize;
use uuid::Uuid;

/// A message the pass queued (or, dry, would queue).
#[derive(Debug, Clone, Serialize)]
pub struct Queued {
    /// The order's number; none for a digest.
    pub order_number: Option<String>,
    pub kind: MessageKind,
    pub dedupe_key: String,
    /// The local moment it fell due.
    pub due_at: NaiveDateTime,
    /// Waits for a person's review.
    pub draft: bool,
}

/// The stream of messages that belong to no order (the digests): a fixed id, so they list together.
pub const DIGEST_STREAM: Uuid = Uuid::from_u128(0x0d16_e570_0000_4000_8000_0000_0000_0001);

/// Queues what fell due by `now` and was not queued yet. With `dry_run`, says what it would queue and writes
/// nothing.
pub async fn follow_through(state: &AppState, now: DateTime<Utc>, dry_run: bool) -> ApiResult<Vec<Queued>> {
    let policy = state.org.follow_through.clone();
    let local = now.with_timezone(&state.org.time_zone).naive_local();
    let today = local.date();
    // Milestones from those overdue at most `late_by_days` ago to those a chase looks ahead to, with a step
    // whose day has come and that is not queued yet.
    let window = ordertrail_store::MilestoneWindow {
        from: today - TimeDelta::days(1 + i64::from(policy.late_by_days)),
        chase_to: today + TimeDelta::days(i64::from(policy.chase_days_before)),
        remind_to: today + TimeDelta::days(1),
        overdue_to: today - TimeDelta::days(1),
    };
    let periods: Vec<_> = client_update_periods(&policy, local)
        .into_iter()
        .filter_map(|(t, start)| start.map(|s| (t, s)))
        .collect();
    let candidates = state.store.follow_through_candidates(&window, &periods).await?;
    let mut queued = Vec::new();
    for id in candidates {
        let Some(order) = state.store.order(OrderId(id)).await? else {
            continue;
        };
        let Some(wf) = state.workflow(&order.workflow) else {
            continue;
        };
        let due = due_messages(&order, wf, &policy, local);
        if due.is_empty() {
            continue;
        }
        let done = if dry_run {
            due
        } else {
            queue(state, &order, now, local).await?
        };
        queued.extend(done.into_iter().map(|m| summary(Some(&order), m)));
    }
    queued.extend(digests(state, now, dry_run).await?);
    Ok(queued)
}

/// Queues the order's due messages in one write, deciding again on the order as it is in the transaction;
/// returns those this write queued (another server may have queued some just before).
async fn queue(
    state: &AppState,
    order: &Order,
    now: DateTime<Utc>,
    local: NaiveDateTime,
) -> ApiResult<Vec<QueuedMessage>> {
    let policy = state.org.follow_through.clone();
    let workflows = state.org.workflows.clone();
    let meta = Meta {
        actor: Actor::System,
        at: now,
    };
    let before = order.messages_queued.clone();
    let after = state
        .store
        .change_order(
            order.id,
            meta,
            Box::new(move |o: &Order| {
                let due = match workflows.get(&o.workflow) {
                    Some(wf) => due_messages(o, wf, &policy, local),
                    None => Vec::new(),
                };
                Ok(follow_through::queue_events(due))
            }),
        )
        .await?;
    let wf = state.workflow(&order.workflow);
    let mut mine: Vec<QueuedMessage> = match wf {
        Some(wf) => due_messages(order, wf, &state.org.follow_through, local),
        None => Vec::new(),
    };
    mine.retain(|m| after.messages_queued.contains(&m.dedupe_key) && !before.contains(&m.dedupe_key));
    Ok(mine)
}

fn summary(order: Option<&Order>, m: QueuedMessage) -> Queued {
    Queued {
        order_number: order.map(|o| o.number.clone()),
        kind: m.kind,
        dedupe_key: m.dedupe_key,
        due_at: m.due_at,
        draft: m.draft,
    }
}

/// The daily digest (R35, R2) for each team member at the policy's hour: queued once per person and day; its
/// content is gathered when it is sent, so it says how things stand at 17:00, not when it was queued.
async fn digests(state: &AppState, now: DateTime<Utc>, dry_run: bool) -> ApiResult<Vec<Queued>> {
    let local = now.with_timezone(&state.org.time_zone).naive_local();
    let at = local.date().and_time(state.org.follow_through.digest_at);
    // Due from its hour until the end of the day: a digest is not worth sending the next morning.
    if local < at {
        return Ok(Vec::new());
    }
    let users = state.store.all_users().await?;
    // The digests queued lately (newest first): today's, when queued, are among them; only the others are tried.
    let recent: std::collections::BTreeSet<String> = state
        .store
        .outbox(
            None,
            Some(DIGEST_STREAM),
            (users.len() as u32).saturating_mul(2).max(10),
        )
        .await?
        .into_iter()
        .map(|m| m.dedupe_key)
        .collect();
    let mut queued = Vec::new();
    for user in users {
        if user.customer_id.is_some() || user.roles.iter().all(|r| !r.is_staff()) {
            continue;
        }
        let key = format!("digest:{}:{}", user.id, local.date());
        if recent.contains(&key) {
            continue;
        }
        let message = QueuedMessage {
            kind: MessageKind::DailyDigest,
            dedupe_key: key.clone(),
            due_at: at,
            to: vec![follow_through::Audience::User { user_id: user.id }],
            milestone_id: None,
            planned_on: None,
            client_update: None,
            draft: false,
        };
        let fresh = if dry_run {
            true
        } else {
            let payload =
                serde_json::to_string(&message).map_err(|e| crate::error::ApiError::internal(e.to_string()))?;
            state
                .store
                .enqueue_once(DIGEST_STREAM, "message", &key, &payload, now)
                .await?
        };
        if fresh {
            queued.push(summary(None, message));
        }
    }
    Ok(queued)
}

/// The dunning steps due at `now` (see `app::tick`), from `reminders_at` on: dunning acts by the day, and its
/// messages go out in business hours, not at midnight.
pub async fn dunning(state: &AppState, now: DateTime<Utc>, dry_run: bool) -> ApiResult<Vec<crate::app::TickAction>> {
    let local = now.with_timezone(&state.org.time_zone).naive_local();
    if local.time() < state.org.follow_through.reminders_at {
        return Ok(Vec::new());
    }
    crate::app::tick(state, now, dry_run).await
}

/// One pass of everything that runs by itself at `now`: the dunning steps, the follow-through messages, then
/// delivery of what is due (until nothing due is left or `max_batches` batches were sent).
pub async fn pass(
    state: &AppState,
    deliverer: &crate::delivery::Deliverer,
    worker: &str,
    now: DateTime<Utc>,
    max_batches: usize,
) -> ApiResult<PassReport> {
    let dunning = dunning(state, now, false).await?.len();
    let queued = follow_through(state, now, false).await?.len();
    let mut delivered = crate::delivery::DeliveryReport::default();
    for _ in 0..max_batches {
        let r = crate::delivery::deliver_due(state, deliverer, worker, now, 32).await?;
        let done = r.handled();
        delivered += r;
        if done == 0 {
            break;
        }
    }
    Ok(PassReport {
        dunning,
        queued,
        delivered,
    })
}

/// What a pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PassReport {
    pub dunning: usize,
    pub queued: usize,
    pub delivered: crate::delivery::DeliveryReport,
}

/// Runs [`pass`] every `every` for as long as the server runs (inside `serve`). A failed pass is logged and
/// the next one tries again: what fell due meanwhile is caught up then.
pub async fn run_forever(state: AppState, deliverer: crate::delivery::Deliverer, every: std::time::Duration) {
    let worker = format!("serve-{}", Uuid::now_v7());
    // Without an SMTP server, Slack or webhook, messages are queued (and visible in the outbox) but not tried.
    let batches = if deliverer.can_send() { 20 } else { 0 };
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        match pass(&state, &deliverer, &worker, state.now(), batches).await {
            Ok(report) if report.queued + report.dunning + report.delivered.sent > 0 => {
                tracing::info!(?report, "scheduler pass");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "scheduler pass failed; the next one catches up"),
        }
    }
}
