//! The outbox worker: it claims due outbox rows (safely with several servers), turns each into what people and
//! systems receive (an email per recipient in their language from the templates, a Slack-compatible message for
//! internal ones, a signed webhook per order event), sends it, and records what happened: on the order's
//! timeline as a `message_sent` / `message_failed` / `message_dropped` event, and on the row. A failed try is
//! retried with exponential back-off and jitter; after `max_attempts`, or at once for a permanent failure (a bad
//! address), the row becomes a dead letter that a person can retry. A message whose moment has passed (the
//! reminder of a milestone since completed or replanned) is dropped with its reason rather than sent late.
//! Nothing on a send path panics: one bad message never stops the batch.

use crate::error::{ApiError, ApiResult};
use crate::scheduler::DIGEST_STREAM;
use crate::state::AppState;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use futures::StreamExt;
use ordertrail_domain::customer::{Customer, Language, User};
use ordertrail_domain::event::{Actor, OrderEvent};
use ordertrail_domain::follow_through::{Audience, Delivery, MessageKind, QueuedMessage};
use ordertrail_domain::ids::{OrderId, UserId};
use ordertrail_domain::money::Money;
use ordertrail_domain::order::{Order, Relation};
use ordertrail_domain::payment::{DunningAction, DunningKind};
use ordertrail_domain::progress::{Health, progress};
use ordertrail_domain::role::Role;
use ordertrail_notify::email::{Attachment, Email, InlineImage, Mailer, SendError, SmtpSettings};
use ordertrail_notify::templates::{Lang, Templates};
use ordertrail_notify::timeline::{Timeline, TimelineMilestone, timeline_png};
use ordertrail_notify::webhook::WebhookClient;
use ordertrail_store::{Meta, OutboxMessage, OutboxOutcome};
use serde::Deserialize;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

/// Where messages go: `[delivery]` in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Email over SMTP; without it, emails are not sent (they stay pending and say why).
    pub smtp: Option<SmtpSettings>,
    /// A Slack-compatible incoming webhook for internal messages (reminders, escalations, digests).
    pub slack_webhook_url: Option<String>,
    /// Systems that receive every order event, signed with their secret.
    pub webhooks: Vec<WebhookTarget>,
    /// A folder of template overrides (`<lang>/<kind>.<subject.txt|txt|html>`).
    pub templates_dir: Option<PathBuf>,
    /// Tries before a message becomes a dead letter.
    pub max_attempts: u32,
    /// The first retry's delay in seconds; each next one doubles (with jitter), up to six hours.
    pub retry_base_seconds: u32,
    /// R40: webhooks and Slack messages carry no customer names, contacts or amounts.
    pub confidential: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookTarget {
    pub url: String,
    pub secret: String,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            smtp: None,
            slack_webhook_url: None,
            webhooks: Vec::new(),
            templates_dir: None,
            max_attempts: 8,
            retry_base_seconds: 60,
            confidential: false,
        }
    }
}

/// The worker's means: templates loaded (and checked) once, the SMTP pool, the HTTP client.
#[derive(Clone)]
pub struct Deliverer {
    pub config: DeliveryConfig,
    templates: Templates,
    mailer: Option<Mailer>,
    /// Built only when Slack or a webhook is configured (reading the system's root certificates takes time).
    http: Option<WebhookClient>,
}

impl Deliverer {
    /// Loads the templates (a broken override is refused here, at start-up, with its file, line and reason)
    /// and prepares the SMTP pool and the HTTP client.
    pub fn new(config: DeliveryConfig) -> Result<Deliverer, String> {
        ordertrail_notify::install_crypto_provider();
        let templates = Templates::load(config.templates_dir.as_deref()).map_err(|e| e.to_string())?;
        let mailer = config
            .smtp
            .as_ref()
            .map(Mailer::new)
            .transpose()
            .map_err(|e| format!("[delivery.smtp]: {e}"))?;
        let http = if config.slack_webhook_url.is_some() || !config.webhooks.is_empty() {
            Some(WebhookClient::new(Duration::from_secs(10)).map_err(|e| e.to_string())?)
        } else {
            None
        };
        Ok(Deliverer {
            config,
            templates,
            mailer,
            http,
        })
    }
}

impl Deliverer {
    /// Whether anything can go out: an SMTP server, a Slack channel or a webhook is configured. Without any,
    /// `serve` queues messages but does not try to send them (they wait, visible in the outbox).
    pub fn can_send(&self) -> bool {
        self.mailer.is_some() || self.config.slack_webhook_url.is_some() || !self.config.webhooks.is_empty()
    }
}

/// What one pass of the worker did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeliveryReport {
    pub sent: usize,
    pub retried: usize,
    pub dead: usize,
    pub dropped: usize,
}

impl DeliveryReport {
    /// Messages handled, whatever became of them.
    pub fn handled(&self) -> usize {
        self.sent + self.retried + self.dead + self.dropped
    }
}

impl std::ops::AddAssign for DeliveryReport {
    fn add_assign(&mut self, other: DeliveryReport) {
        self.sent += other.sent;
        self.retried += other.retried;
        self.dead += other.dead;
        self.dropped += other.dropped;
    }
}

/// How a message ended this time.
enum Outcome {
    Sent(Vec<Sent>),
    /// Its delivery is on the order's timeline already (a worker died before finishing the row).
    AlreadyRecorded,
    Dropped(String),
    Failed {
        error: String,
        permanent: bool,
    },
}

struct Sent {
    channel: &'static str,
    to: Vec<String>,
    subject: String,
    message_id: String,
}

/// Claims up to `batch` due messages for `worker` and delivers them.
pub async fn deliver_due(
    state: &AppState,
    d: &Deliverer,
    worker: &str,
    now: DateTime<Utc>,
    batch: u32,
) -> ApiResult<DeliveryReport> {
    let claimed = state
        .store
        .claim_outbox(worker, batch, now, TimeDelta::minutes(5))
        .await?;
    // Several at a time: a send mostly waits on the network (an SMTP exchange is several round trips, and a
    // server's delayed acknowledgment can hold each message tens of milliseconds).
    let reports: Vec<ApiResult<DeliveryReport>> = futures::stream::iter(claimed)
        .map(|message| async move {
            let outcome = match handle(state, d, &message, now).await {
                Ok(outcome) => outcome,
                Err(e) => Outcome::Failed {
                    error: e.to_string(),
                    permanent: false,
                },
            };
            let mut report = DeliveryReport::default();
            record(state, d, worker, &message, outcome, now, &mut report).await?;
            Ok(report)
        })
        .buffer_unordered(CONCURRENT_SENDS)
        .collect()
        .await;
    let mut report = DeliveryReport::default();
    for r in reports {
        report += r?;
    }
    Ok(report)
}

/// Messages a worker sends at the same time.
const CONCURRENT_SENDS: usize = 8;

/// Records the outcome on the row and, for a message about an order, on its timeline.
async fn record(
    state: &AppState,
    d: &Deliverer,
    worker: &str,
    message: &OutboxMessage,
    outcome: Outcome,
    now: DateTime<Utc>,
    report: &mut DeliveryReport,
) -> ApiResult<()> {
    let (row, deliveries) = match outcome {
        Outcome::Sent(sent) => {
            report.sent += 1;
            let deliveries = sent
                .into_iter()
                .map(|s| Delivery::Sent {
                    channel: s.channel.into(),
                    to: s.to,
                    subject: s.subject,
                    message_id: s.message_id,
                })
                .collect();
            (OutboxOutcome::Sent { at: now }, deliveries)
        }
        Outcome::AlreadyRecorded => {
            report.sent += 1;
            (OutboxOutcome::Sent { at: now }, Vec::new())
        }
        Outcome::Dropped(reason) => {
            report.dropped += 1;
            (OutboxOutcome::Sent { at: now }, vec![Delivery::Dropped { reason }])
        }
        Outcome::Failed { error, permanent } => {
            let dead = permanent || message.attempts >= i64::from(d.config.max_attempts);
            let retry_at = (!dead).then(|| now + backoff(d.config.retry_base_seconds, message.attempts));
            let delivery = Delivery::Failed {
                channel: channel_of(&message.kind).into(),
                attempt: message.attempts,
                error: error.clone(),
                retry_at,
            };
            let row = match retry_at {
                Some(at) => {
                    report.retried += 1;
                    OutboxOutcome::RetryAt { at, error }
                }
                None => {
                    report.dead += 1;
                    OutboxOutcome::Failed { at: now, error }
                }
            };
            (row, vec![delivery])
        }
    };
    // The timeline first, then the row: a crash in between leaves the row claimed, and the worker that claims
    // it again sees the delivery recorded and only finishes the row (nothing is sent twice, nothing is lost).
    if let Some((kind, key)) = timeline_entry(message)
        && !deliveries.is_empty()
    {
        let events: Vec<(OrderEvent, Option<String>)> = deliveries
            .into_iter()
            .map(|delivery| {
                (
                    OrderEvent::MessageDelivered {
                        kind,
                        dedupe_key: key.clone(),
                        delivery,
                    },
                    None,
                )
            })
            .collect();
        let meta = Meta {
            actor: Actor::System,
            at: now,
        };
        let written = state
            .store
            .change_order(OrderId(message.stream_id), meta, Box::new(move |_| Ok(events.clone())))
            .await;
        if let Err(e) = written {
            // Left claimed: tried again when the claim runs out.
            tracing::warn!(message = %message.id, error = %ApiError::from(e), "could not record a delivery on the order's timeline");
            return Ok(());
        }
    }
    // `false`: the claim ran out and another worker has the message; it finds the delivery recorded.
    state.store.finish_outbox(message.id, worker, row).await?;
    Ok(())
}

/// The kind and key under which a message's delivery goes on its order's timeline; none for a digest and for
/// webhook deliveries (system-to-system: their state is on the outbox row).
fn timeline_entry(message: &OutboxMessage) -> Option<(MessageKind, String)> {
    if message.stream_id == DIGEST_STREAM {
        return None;
    }
    let queued = as_message(message).ok().flatten()?;
    Some((queued.kind, message.dedupe_key.clone()))
}

fn channel_of(kind: &str) -> &'static str {
    if kind == "webhook.order_event" {
        "webhook"
    } else {
        "email"
    }
}

/// Exponential back-off with ±20% jitter: base, 2×base, 4×base... up to six hours.
pub fn backoff(base_seconds: u32, attempts: i64) -> TimeDelta {
    let exp = attempts.clamp(1, 20) - 1;
    let seconds = (f64::from(base_seconds.max(1)) * 2f64.powi(exp as i32)).min(6.0 * 3600.0);
    let jitter = 0.8 + rand::random::<f64>() * 0.4;
    TimeDelta::milliseconds((seconds * jitter * 1000.0) as i64)
}

/// The message a row asks for: rows queued by the scheduler carry it; rows written by the money and issue
/// rules (dunning steps, escalations, change-order steps) say it in their own words. None: nothing to send to
/// people (a change-order step nobody outside is told of).
fn as_message(m: &OutboxMessage) -> Result<Option<QueuedMessage>, String> {
    let payload: Value = serde_json::from_str(&m.payload).map_err(|e| format!("unreadable payload: {e}"))?;
    let at = m.due_at.naive_utc();
    let message = |kind: MessageKind, to: Vec<Audience>| QueuedMessage {
        kind,
        dedupe_key: m.dedupe_key.clone(),
        due_at: at,
        to,
        milestone_id: None,
        planned_on: None,
        client_update: None,
        draft: false,
    };
    Ok(match m.kind.as_str() {
        "message" => Some(serde_json::from_value(payload).map_err(|e| format!("unreadable message: {e}"))?),
        "issue.escalation" => {
            let role: Role = serde_json::from_value(payload["to_role"].clone()).map_err(|e| e.to_string())?;
            Some(message(MessageKind::IssueEscalation, vec![Audience::Role { role }]))
        }
        "change_order.step" if payload["step"] == "change_order_sent_to_client" => {
            Some(message(MessageKind::ChangeOrderApproval, vec![Audience::Customer]))
        }
        kind if kind.starts_with("dunning.") => {
            let action: DunningAction = serde_json::from_value(payload["action"].clone())
                .map_err(|e| format!("unreadable dunning step: {e}"))?;
            let kind = match action.kind {
                DunningKind::Invoice => MessageKind::PaymentInvoice,
                DunningKind::DueReminder => MessageKind::PaymentDue,
                DunningKind::FriendlyReminder => MessageKind::PaymentFriendly,
                DunningKind::FirmReminder => MessageKind::PaymentFirm,
                DunningKind::PauseWork => MessageKind::PaymentPause,
                DunningKind::EscalateToFinance => MessageKind::PaymentEscalation,
            };
            let to = action
                .told
                .iter()
                .map(|r| match r {
                    Role::Customer => Audience::Customer,
                    role => Audience::Role { role: *role },
                })
                .collect();
            Some(message(kind, to))
        }
        _ => None,
    })
}

async fn handle(state: &AppState, d: &Deliverer, m: &OutboxMessage, now: DateTime<Utc>) -> ApiResult<Outcome> {
    if m.kind == "webhook.order_event" {
        return Ok(send_webhooks(state, d, m, now).await);
    }
    let queued = match as_message(m) {
        Ok(Some(q)) => q,
        Ok(None) => return Ok(Outcome::Sent(Vec::new())),
        Err(error) => {
            return Ok(Outcome::Failed { error, permanent: true });
        }
    };
    let order = if m.stream_id == DIGEST_STREAM {
        None
    } else {
        match state.store.order(OrderId(m.stream_id)).await? {
            Some(order) => Some(order),
            None => return Ok(Outcome::Dropped("the order no longer exists".into())),
        }
    };
    if order
        .as_ref()
        .is_some_and(|o| o.messages_delivered.contains(&m.dedupe_key))
    {
        return Ok(Outcome::AlreadyRecorded);
    }
    if let Some(order) = &order
        && let Some(reason) = moot(state, order, &queued, m, now)
    {
        return Ok(Outcome::Dropped(reason));
    }
    let recipients = recipients(state, order.as_ref(), &queued.to).await?;
    let mut sent = Vec::new();
    if queued.kind.to_customer() || !recipients.is_empty() {
        if recipients.is_empty() {
            return Ok(Outcome::Dropped(
                "nobody to send it to: no email address for the customer's contact".into(),
            ));
        }
        let Some(mailer) = &d.mailer else {
            return Ok(Outcome::Failed {
                error: "no SMTP server is configured ([delivery.smtp])".into(),
                permanent: false,
            });
        };
        let context = context(state, order.as_ref(), &queued, m, now).await?;
        for (i, r) in recipients.iter().enumerate() {
            let mut ctx = context.clone();
            ctx["recipient"] = json!({ "name": r.name });
            let rendered = match d.templates.render(queued.kind.as_str(), r.lang, &ctx) {
                Ok(rendered) => rendered,
                Err(e) => {
                    return Ok(Outcome::Failed {
                        error: format!("template {}: {e}", queued.kind.as_str()),
                        permanent: true,
                    });
                }
            };
            let message_id = format!("{}.{i}@ordertrail", m.id);
            let inline_images = match (&order, queued.kind) {
                (Some(order), MessageKind::ClientUpdate) => timeline_image(state, order, now),
                _ => Vec::new(),
            };
            let attachments = match (&order, queued.kind) {
                (Some(order), MessageKind::PaymentInvoice) => invoice_attachment(state, order, m),
                _ => Vec::new(),
            };
            let email = Email {
                message_id: message_id.clone(),
                to: vec![format!("{} <{}>", r.name.replace(['<', '>', '"'], ""), r.email)],
                subject: rendered.subject.clone(),
                text: rendered.text,
                html: rendered.html,
                inline_images,
                attachments,
            };
            if let Err(e) = mailer.send(&email).await {
                return Ok(failure(e));
            }
            sent.push(Sent {
                channel: "email",
                to: vec![r.email.clone()],
                subject: rendered.subject,
                message_id,
            });
        }
    }
    if !queued.kind.to_customer()
        && let Some(url) = &d.config.slack_webhook_url
        && let Some(http) = &d.http
    {
        let text = slack_text(d, order.as_ref(), &queued);
        if let Err(e) = http.post_slack(url, &text).await {
            return Ok(failure(e));
        }
        sent.push(Sent {
            channel: "slack",
            to: vec!["slack".into()],
            subject: text,
            message_id: format!("{}.slack@ordertrail", m.id),
        });
    }
    if sent.is_empty() {
        return Ok(Outcome::Dropped(
            "nobody to send it to: no email address and no Slack channel".into(),
        ));
    }
    Ok(Outcome::Sent(sent))
}

fn failure(e: SendError) -> Outcome {
    Outcome::Failed {
        permanent: e.is_permanent(),
        error: e.to_string(),
    }
}

/// Why a message is no longer worth sending, if it is not: the milestone is done or was replanned, the order
/// no longer awaits delivery, or its moment passed long ago (after downtime).
fn moot(state: &AppState, order: &Order, q: &QueuedMessage, m: &OutboxMessage, now: DateTime<Utc>) -> Option<String> {
    let policy = &state.org.follow_through;
    let local = now.with_timezone(&state.org.time_zone).naive_local();
    let milestone_kinds = [
        MessageKind::MilestoneReminder,
        MessageKind::MilestoneOverdue,
        MessageKind::MilestoneChase,
    ];
    if milestone_kinds.contains(&q.kind) {
        let milestone = q.milestone_id.and_then(|id| order.milestone(id))?;
        if milestone.completed_at.is_some() {
            return Some(format!("{} was completed", milestone.name));
        }
        if Some(milestone.planned_on) != q.planned_on {
            return Some(format!("{} was replanned to {}", milestone.name, milestone.planned_on));
        }
    }
    let internal_reminder = milestone_kinds.contains(&q.kind) || q.kind == MessageKind::ClientUpdate;
    if internal_reminder
        && !state
            .workflow(&order.workflow)
            .is_some_and(|wf| wf.awaits_delivery(&order.status))
    {
        return Some(format!("the order is {} now", order.status));
    }
    if let Some(update) = &q.client_update
        && local.date() > update.period_to
    {
        return Some(format!("its period ended on {}", update.period_to));
    }
    let late = local - q.due_at;
    if milestone_kinds.contains(&q.kind) && late > TimeDelta::days(i64::from(policy.late_by_days) + 1) {
        return Some(format!(
            "its moment passed: it was due at {} (queued {})",
            q.due_at, m.due_at
        ));
    }
    None
}

struct Recipient {
    name: String,
    email: String,
    lang: Lang,
}

fn lang_of(language: Language) -> Lang {
    match language {
        Language::English => Lang::En,
        Language::SimplifiedChinese => Lang::ZhCn,
    }
}

/// The addresses of an audience: the customer's contact (and its portal user) in the customer's language; a
/// person; the people on the order holding a role, else everyone in the organisation who holds it.
async fn recipients(state: &AppState, order: Option<&Order>, audience: &[Audience]) -> ApiResult<Vec<Recipient>> {
    let mut out: Vec<Recipient> = Vec::new();
    let mut everyone: Option<Vec<User>> = None;
    for a in audience {
        match a {
            Audience::Customer => {
                let Some(order) = order else { continue };
                let customer: Option<Customer> = state.store.customer(order.customer_id).await?;
                let lang = customer.as_ref().map(|c| lang_of(c.language)).unwrap_or(Lang::En);
                if let Some(contact) = &order.customer_contact
                    && let Some(email) = &contact.email
                {
                    out.push(Recipient {
                        name: contact.name.clone(),
                        email: email.clone(),
                        lang,
                    });
                }
                if let Some(user_id) = order.person(Relation::Customer)
                    && let Some(user) = state.store.user(user_id).await?
                {
                    out.push(Recipient {
                        name: user.name,
                        email: user.email,
                        lang,
                    });
                }
            }
            Audience::User { user_id } => {
                if let Some(user) = state.store.user(*user_id).await? {
                    out.push(staff(user));
                }
            }
            Audience::Role { role } => {
                if everyone.is_none() {
                    everyone = Some(state.store.all_users().await?);
                }
                let users = everyone.as_deref().unwrap_or_default();
                let on_order: Vec<UserId> = order
                    .map(|o| o.people.iter().map(|p| p.user_id).collect())
                    .unwrap_or_default();
                let holders: Vec<&User> = users.iter().filter(|u| u.roles.contains(role)).collect();
                let mine: Vec<&User> = holders.iter().copied().filter(|u| on_order.contains(&u.id)).collect();
                let chosen = if mine.is_empty() { holders } else { mine };
                out.extend(chosen.into_iter().cloned().map(staff));
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|r| seen.insert(r.email.to_lowercase()));
    Ok(out)
}

fn staff(user: User) -> Recipient {
    Recipient {
        name: user.name,
        email: user.email,
        lang: Lang::En,
    }
}

fn money(m: &Money) -> String {
    format!("{} {}", m.amount_string(), m.currency)
}

fn order_json(state: &AppState, order: &Order, today: NaiveDate) -> Value {
    let wf = state.workflow(&order.workflow);
    let status_name = wf
        .and_then(|wf| wf.status(&order.status))
        .map(|s| s.name.clone())
        .unwrap_or_else(|| order.status.clone());
    let phase = wf
        .map(|wf| progress(order, wf, today, &state.org.health))
        .and_then(|p| p.phase.map(|p| p.name));
    json!({
        "number": order.number, "title": order.title, "customer_name": order.customer_name,
        "promised_date": order.promised_date.to_string(), "order_date": order.order_date.to_string(),
        "status_name": status_name, "phase": phase, "portal_url": Value::Null,
    })
}

/// The template context of a message (see the notify crate's templates for what each kind uses).
async fn context(
    state: &AppState,
    order: Option<&Order>,
    q: &QueuedMessage,
    m: &OutboxMessage,
    now: DateTime<Utc>,
) -> ApiResult<Value> {
    let today = state.local_date(now);
    let mut ctx = json!({ "org": { "name": state.org.name } });
    let Some(order) = order else {
        ctx["date"] = json!(today.to_string());
        let user = q.to.iter().find_map(|a| match a {
            Audience::User { user_id } => Some(*user_id),
            _ => None,
        });
        let digest = digest(state, user, today).await?;
        if let Value::Object(map) = digest {
            for (k, v) in map {
                ctx[k] = v;
            }
        }
        return Ok(ctx);
    };
    ctx["order"] = order_json(state, order, today);
    let payload: Value = serde_json::from_str(&m.payload).unwrap_or(Value::Null);
    let milestone = q.milestone_id.and_then(|id| order.milestone(id));
    match q.kind {
        MessageKind::OrderAcknowledgment => {
            ctx["items_summary"] = json!((!order.line_items.is_empty()).then(|| {
                order
                    .line_items
                    .iter()
                    .map(|i| i.description.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            }));
            ctx["next_steps"] = json!(
                order
                    .milestones
                    .iter()
                    .filter(|m| m.completed_at.is_none())
                    .take(3)
                    .map(|m| format!("{} ({})", m.name, m.planned_on))
                    .collect::<Vec<_>>()
            );
        }
        MessageKind::ClientUpdate => {
            if let Some(u) = &q.client_update {
                ctx["period"] =
                    json!({"from": u.period_from.to_string(), "to": u.period_to.to_string(), "daily": u.daily});
                ctx["completed"] = json!(
                    u.completed
                        .iter()
                        .map(|c| json!({"name": c.name, "on": c.on.to_string()}))
                        .collect::<Vec<_>>()
                );
                ctx["in_progress"] = json!(u.in_progress.iter().map(|n| json!({"name": n})).collect::<Vec<_>>());
                ctx["coming_next"] = json!(
                    u.coming_next
                        .iter()
                        .map(|c| json!({"name": c.name, "planned_on": c.on.to_string()}))
                        .collect::<Vec<_>>()
                );
                ctx["client_actions"] = json!(u.client_actions);
                ctx["on_track"] = json!(u.on_track);
                ctx["delivery_date"] = json!(u.delivery_date.to_string());
                ctx["new_delivery_date"] = json!(u.new_delivery_date.map(|d| d.to_string()));
                ctx["delay_cause"] = json!(u.delay_cause);
                ctx["timeline_cid"] = json!("timeline");
            }
        }
        MessageKind::MilestoneReminder | MessageKind::MilestoneOverdue | MessageKind::MilestoneChase => {
            if let Some(ms) = milestone {
                ctx["milestone"] = json!({
                    "name": ms.name, "planned_on": ms.planned_on.to_string(), "deliverable": ms.deliverable,
                    "open_checklist": ms.checklist.iter().filter(|i| !i.done).map(|i| i.item.clone()).collect::<Vec<_>>(),
                    "days_late": (today - ms.planned_on).num_days().max(0),
                    "days_left": (ms.planned_on - today).num_days(),
                });
                ctx["last_update_on"] = json!(order.last_follow_up_at.map(|t| t.date_naive().to_string()));
            }
        }
        MessageKind::MilestoneReached => {
            if let Some(ms) = milestone {
                ctx["milestone"] = json!({
                    "name": ms.name, "deliverable": ms.deliverable,
                    "completed_on": ms.completed_at.map(|t| t.date_naive().to_string()),
                });
            }
            let next = order
                .milestones
                .iter()
                .filter(|m| m.completed_at.is_none())
                .min_by_key(|m| m.planned_on)
                .map(|m| json!({"name": m.name, "planned_on": m.planned_on.to_string()}));
            ctx["next"] = json!(next);
        }
        MessageKind::OrderShipped => {
            ctx["shipment"] = json!({
                "carrier": order.fields.get("carrier"), "tracking_number": order.fields.get("tracking_number"),
                "tracking_url": order.fields.get("tracking_url"),
            });
        }
        MessageKind::OrderDelivered => ctx["delivered_on"] = json!(today.to_string()),
        MessageKind::IssueNotification | MessageKind::IssueEscalation => {
            let issue_id = payload["issue_id"]
                .as_str()
                .map(str::to_string)
                .or_else(|| q.dedupe_key.split(':').nth(2).map(str::to_string));
            let issue = order
                .issues
                .iter()
                .find(|i| Some(i.id.to_string()) == issue_id)
                .or_else(|| order.issues.iter().rev().find(|i| i.is_open()));
            if let Some(i) = issue {
                let owner = state.store.user(i.owner_id).await?.map(|u| u.name);
                ctx["issue"] = json!({
                    "kind_name": i.kind.as_str().replace('_', " "), "severity": i.severity.as_str(),
                    "description": i.description,
                    "impact": {"delay_days": i.impact.delay_days, "budget_overrun_percent": i.impact.budget_overrun_percent,
                               "quality_affected": i.impact.quality_affected},
                    "plan": Value::Null,
                    "options": i.options.iter().map(|o| json!({"summary": o.summary, "timeline_days": o.timeline_days, "cost": money(&o.cost)})).collect::<Vec<_>>(),
                    "recommendation": i.recommended_option.and_then(|n| i.options.get(n)).map(|o| o.summary.clone()),
                    "reasons": i.severity_reasons, "owner_name": owner,
                });
            }
        }
        MessageKind::ChangeOrderApproval => {
            let id = payload["change_order_id"].as_str().unwrap_or_default().to_string();
            if let Some((n, co)) = order
                .change_orders
                .iter()
                .enumerate()
                .find(|(_, c)| c.id.to_string() == id)
            {
                let total = co.amount();
                let days = co.timeline_estimate.as_ref().map(|t| t.days).unwrap_or(0);
                // R7: an extra deposit when approved changes add more than the threshold of the original amount.
                let policy = &state.org.change_order_policy;
                let deposit = total.as_ref().filter(|t| t.minor > 0).and_then(|t| {
                    let original = i128::from(order.original_amount().minor);
                    let added = i128::from(order.amount.minor + t.minor) - original;
                    (added * 100 > original * i128::from(policy.extra_deposit_threshold_percent)).then(|| Money {
                        minor: t.minor * i64::from(policy.extra_deposit_percent) / 100,
                        currency: t.currency.clone(),
                    })
                });
                ctx["change_order"] = json!({
                    "number": n + 1, "reason": co.reason,
                    "items": co.items.iter().map(|i| json!({"description": i.description, "amount": money(&i.amount)})).collect::<Vec<_>>(),
                    "total": total.as_ref().map(money), "timeline_days": days,
                    "new_delivery_date": (days != 0).then(|| (order.promised_date + TimeDelta::days(i64::from(days))).to_string()),
                    "deposit": deposit.as_ref().map(money), "deposit_due": Value::Null,
                });
            }
        }
        MessageKind::PaymentInvoice
        | MessageKind::PaymentDue
        | MessageKind::PaymentFriendly
        | MessageKind::PaymentFirm
        | MessageKind::PaymentPause
        | MessageKind::PaymentEscalation => {
            let action: Option<DunningAction> = serde_json::from_value(payload["action"].clone()).ok();
            if let Some(a) = action {
                let installment = order.payments.as_ref().and_then(|p| p.installment(a.installment));
                ctx["installment"] = json!({
                    "number": a.installment, "name": a.installment_name,
                    "amount": installment.map(|i| money(&i.amount)).unwrap_or_else(|| money(&a.outstanding)),
                    "outstanding": money(&a.outstanding), "due_on": a.due_on.to_string(),
                    "days_overdue": (a.days_overdue > 0).then_some(a.days_overdue),
                    "invoice_number": payload["invoice_number"],
                });
            }
        }
        MessageKind::DraftWaiting => {
            ctx["draft_kind"] = json!("client_update");
            ctx["drafted_at"] = json!(q.due_at.to_string());
        }
        MessageKind::DailyDigest => {}
    }
    Ok(ctx)
}

/// The digest of one person (R35, R2): their orders, exceptions first.
async fn digest(state: &AppState, user: Option<UserId>, today: NaiveDate) -> ApiResult<Value> {
    let Some(user) = user else {
        return Ok(json!({ "exceptions": [], "orders": [], "drafts_waiting": [] }));
    };
    let orders = state
        .store
        .list_orders(&ordertrail_store::OrderQuery {
            visibility: ordertrail_store::Visibility::All,
            status: None,
            health: None,
            owner: None,
            customer: None,
            order_type: None,
            due_before: None,
            text: None,
            before: None,
            limit: 500,
            today,
            late_after_days: state.org.health.late_after_days,
        })
        .await?;
    let mut exceptions = Vec::new();
    let mut rows = Vec::new();
    for order in orders
        .iter()
        .filter(|o| o.people.iter().any(|p| p.user_id == user) || o.milestones.iter().any(|m| m.owner_id == Some(user)))
    {
        let Some(wf) = state.workflow(&order.workflow) else {
            continue;
        };
        if !wf.awaits_delivery(&order.status) {
            continue;
        }
        let p = progress(order, wf, today, &state.org.health);
        for b in &p.blockers {
            exceptions.push(json!({"order_number": order.number, "title": order.title, "text": b.description}));
        }
        if p.health != Health::OnTrack && p.blockers.is_empty() {
            exceptions.push(json!({"order_number": order.number, "title": order.title,
                "text": format!("{} against the promised date {}", p.health.as_str().replace('_', " "), order.promised_date)}));
        }
        rows.push(json!({
            "number": order.number, "title": order.title, "phase": p.phase.map(|ph| ph.name),
            "health": p.health.as_str(), "next_milestone": p.next_milestone.as_ref().map(|n| n.name.clone()),
            "next_due": p.next_milestone.as_ref().map(|n| n.planned_on.to_string()),
        }));
    }
    let drafts: Vec<Value> = state
        .store
        .outbox(Some("draft"), None, 200)
        .await?
        .into_iter()
        .filter_map(|m| {
            let q: QueuedMessage = serde_json::from_str(&m.payload).ok()?;
            let order = orders.iter().find(|o| o.id.0 == m.stream_id)?;
            (order.person(Relation::Owner) == Some(user))
                .then(|| json!({"order_number": order.number, "kind": q.kind.as_str()}))
        })
        .collect();
    Ok(json!({ "exceptions": exceptions, "orders": rows, "drafts_waiting": drafts }))
}

/// The order's timeline picture for the client update (R3); none when it cannot be drawn (logged).
fn timeline_image(state: &AppState, order: &Order, now: DateTime<Utc>) -> Vec<InlineImage> {
    let today = state.local_date(now);
    let phase = state
        .workflow(&order.workflow)
        .and_then(|wf| progress(order, wf, today, &state.org.health).phase)
        .map(|p| p.id);
    let timeline = Timeline {
        title: format!("{} {}", order.number, order.title),
        today,
        start: order.order_date,
        promised: order.promised_date,
        current_phase: phase,
        milestones: order
            .milestones
            .iter()
            .map(|m| TimelineMilestone {
                name: m.name.clone(),
                phase: m.phase.clone(),
                planned_on: m.planned_on,
                completed_on: m.completed_at.map(|t| t.date_naive()),
            })
            .collect(),
    };
    match timeline_png(&timeline) {
        Ok(bytes) => vec![InlineImage {
            cid: "timeline".into(),
            content_type: "image/png".into(),
            bytes,
        }],
        Err(e) => {
            tracing::warn!(order = %order.number, error = %e, "the timeline picture could not be drawn");
            Vec::new()
        }
    }
}

/// The invoice itself, as a printable HTML file, on the invoice email (R8).
fn invoice_attachment(state: &AppState, order: &Order, m: &OutboxMessage) -> Vec<Attachment> {
    let payload: Value = serde_json::from_str(&m.payload).unwrap_or(Value::Null);
    let Some(number) = payload["action"]["installment"]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
    else {
        return Vec::new();
    };
    match crate::routes::invoices::render(state, order, number) {
        Ok(Some(html)) => {
            let name = payload["invoice_number"].as_str().unwrap_or("invoice");
            vec![Attachment {
                filename: format!("{name}.html"),
                content_type: "text/html; charset=utf-8".into(),
                bytes: html.into_bytes(),
            }]
        }
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::warn!(order = %order.number, error = %e, "the invoice could not be attached");
            Vec::new()
        }
    }
}

/// The Slack line of an internal message; under R40's confidentiality, without the customer's name.
fn slack_text(d: &Deliverer, order: Option<&Order>, q: &QueuedMessage) -> String {
    let what = q.kind.as_str().replace('_', " ");
    match order {
        None => format!("Ordertrail: {what}"),
        Some(o) if d.config.confidential => format!("Ordertrail {}: {what}", o.number),
        Some(o) => format!("Ordertrail {} ({}, {}): {what}", o.number, o.title, o.customer_name),
    }
}

/// Posts an order event to every configured webhook, signed; R40 limits what it carries.
async fn send_webhooks(state: &AppState, d: &Deliverer, m: &OutboxMessage, now: DateTime<Utc>) -> Outcome {
    let Some(http) = d.http.as_ref().filter(|_| !d.config.webhooks.is_empty()) else {
        return Outcome::Sent(Vec::new());
    };
    let payload: Value = serde_json::from_str(&m.payload).unwrap_or(Value::Null);
    let order = match state.store.order(OrderId(m.stream_id)).await {
        Ok(order) => order,
        Err(e) => {
            return Outcome::Failed {
                error: e.to_string(),
                permanent: false,
            };
        }
    };
    let mut body = json!({
        "event_id": payload["event_id"], "kind": payload["kind"], "order_id": payload["order_id"],
        "order_number": payload["order_number"], "occurred_at": m.due_at,
    });
    if let Some(o) = &order {
        body["order"] = json!({"number": o.number, "status": o.status, "promised_date": o.promised_date});
        if !d.config.confidential {
            body["order"]["title"] = json!(o.title);
            body["order"]["customer_name"] = json!(o.customer_name);
            body["order"]["amount"] = json!(money(&o.amount));
        }
    }
    let bytes = body.to_string().into_bytes();
    let event_id = payload["event_id"].as_str().unwrap_or_default().to_string();
    let mut sent = Vec::new();
    for target in &d.config.webhooks {
        if let Err(e) = http
            .post_signed(
                &target.url,
                target.secret.as_bytes(),
                &event_id,
                &bytes,
                now.timestamp(),
            )
            .await
        {
            return failure(e);
        }
        sent.push(Sent {
            channel: "webhook",
            to: vec![target.url.clone()],
            subject: event_id.clone(),
            message_id: event_id.clone(),
        });
    }
    Outcome::Sent(sent)
}
