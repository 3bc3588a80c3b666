//! Follow-through: what Ordertrail sends on its own so nobody has to remember (R3, R25, R33, R35). Each rule is
//! a question asked of one order at a local time ("is a milestone due tomorrow with no reminder queued?") and
//! answers with messages, each with a dedupe key so it is queued once however often the scheduler asks. A
//! message whose moment has long passed is not queued late: each rule has a window after which it is moot (the
//! reminder of a milestone already due, last week's client update). Drafting the client update from what
//! actually happened lives here too. Pure: the scheduler gives `now`, the store finds the orders to ask.

use crate::event::OrderEvent;
use crate::ids::{MilestoneId, UserId};
use crate::order::{Order, OrderType, Relation};
use crate::progress::{Health, HealthPolicy, progress};
use crate::role::Role;
use crate::workflow::Workflow;
use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Weekday};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// When and how the scheduler follows through. Organisation settings, `[organisation.follow_through]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FollowThroughPolicy {
    /// The day of the weekly client update (R3: Friday).
    #[schema(value_type = String)]
    pub client_update_day: Weekday,
    /// The local time client updates go out (daily for rush orders, weekly for the others).
    #[schema(value_type = String)]
    pub client_update_at: NaiveTime,
    /// The local time reminders and chases go out (the start of business hours).
    #[schema(value_type = String)]
    pub reminders_at: NaiveTime,
    /// The local time of the internal daily digest (R35: 17:00).
    #[schema(value_type = String)]
    pub digest_at: NaiveTime,
    /// Client updates wait for the account manager to review and send them (else they go out as drafted).
    pub review_client_updates: bool,
    /// A department is chased this many days before a milestone's planned date (R25)...
    pub chase_days_before: u32,
    /// ...when nothing was logged on the order for this many days.
    pub chase_quiet_days: u32,
    /// A reminder, chase or overdue notice more than this many days past its moment is not sent late.
    pub late_by_days: u32,
}

impl Default for FollowThroughPolicy {
    fn default() -> Self {
        Self {
            client_update_day: Weekday::Fri,
            client_update_at: NaiveTime::from_hms_opt(10, 0, 0).unwrap_or(NaiveTime::MIN),
            reminders_at: NaiveTime::from_hms_opt(9, 0, 0).unwrap_or(NaiveTime::MIN),
            digest_at: NaiveTime::from_hms_opt(17, 0, 0).unwrap_or(NaiveTime::MIN),
            review_client_updates: false,
            chase_days_before: 3,
            chase_quiet_days: 3,
            late_by_days: 2,
        }
    }
}

/// What a message is about; also its template's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    OrderAcknowledgment,
    ClientUpdate,
    MilestoneReminder,
    MilestoneOverdue,
    MilestoneChase,
    MilestoneReached,
    OrderShipped,
    OrderDelivered,
    IssueNotification,
    IssueEscalation,
    ChangeOrderApproval,
    PaymentInvoice,
    PaymentDue,
    PaymentFriendly,
    PaymentFirm,
    PaymentPause,
    PaymentEscalation,
    DailyDigest,
    DraftWaiting,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::OrderAcknowledgment => "order_acknowledgment",
            MessageKind::ClientUpdate => "client_update",
            MessageKind::MilestoneReminder => "milestone_reminder",
            MessageKind::MilestoneOverdue => "milestone_overdue",
            MessageKind::MilestoneChase => "milestone_chase",
            MessageKind::MilestoneReached => "milestone_reached",
            MessageKind::OrderShipped => "order_shipped",
            MessageKind::OrderDelivered => "order_delivered",
            MessageKind::IssueNotification => "issue_notification",
            MessageKind::IssueEscalation => "issue_escalation",
            MessageKind::ChangeOrderApproval => "change_order_approval",
            MessageKind::PaymentInvoice => "payment_invoice",
            MessageKind::PaymentDue => "payment_due",
            MessageKind::PaymentFriendly => "payment_friendly",
            MessageKind::PaymentFirm => "payment_firm",
            MessageKind::PaymentPause => "payment_pause",
            MessageKind::PaymentEscalation => "payment_escalation",
            MessageKind::DailyDigest => "daily_digest",
            MessageKind::DraftWaiting => "draft_waiting",
        }
    }

    /// Whether the customer reads it (else it is internal: staff, Slack).
    pub fn to_customer(self) -> bool {
        matches!(
            self,
            MessageKind::OrderAcknowledgment
                | MessageKind::ClientUpdate
                | MessageKind::MilestoneReached
                | MessageKind::OrderShipped
                | MessageKind::OrderDelivered
                | MessageKind::IssueNotification
                | MessageKind::ChangeOrderApproval
                | MessageKind::PaymentInvoice
                | MessageKind::PaymentDue
                | MessageKind::PaymentFriendly
                | MessageKind::PaymentFirm
        )
    }
}

/// Who a message goes to; the delivery layer turns it into addresses.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Audience {
    /// The customer's contact on the order (and the order's customer user).
    Customer,
    /// One person.
    User {
        #[schema(value_type = String, format = Uuid)]
        user_id: UserId,
    },
    /// Everyone holding the role (the order's people first; else the organisation's holders).
    Role { role: Role },
}

/// A message the scheduler decided to send: queued by an event, delivered by the outbox worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QueuedMessage {
    pub kind: MessageKind,
    /// Unique per message: the same key is never queued twice.
    pub dedupe_key: String,
    /// The local moment the rule fell due.
    #[schema(value_type = String)]
    pub due_at: NaiveDateTime,
    pub to: Vec<Audience>,
    /// The milestone it is about (reminders, chases), with the planned date it was about: a replan or a
    /// completion since makes it moot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub milestone_id: Option<MilestoneId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_on: Option<NaiveDate>,
    /// The client update's draft, fixed when it was drafted (R3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_update: Option<ClientUpdate>,
    /// Waits for a person to review and send it.
    #[serde(default)]
    pub draft: bool,
}

/// The client update drafted from what happened (R3, R35): done in the period, under way, coming next, what
/// the client must do, and the honest delivery outlook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClientUpdate {
    pub period_from: NaiveDate,
    pub period_to: NaiveDate,
    pub daily: bool,
    pub completed: Vec<DatedItem>,
    pub in_progress: Vec<String>,
    pub coming_next: Vec<DatedItem>,
    pub client_actions: Vec<String>,
    pub on_track: bool,
    pub delivery_date: NaiveDate,
    /// When not on track: the date the plan now gives, and why.
    pub new_delivery_date: Option<NaiveDate>,
    pub delay_cause: Option<String>,
    pub current_phase: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DatedItem {
    pub name: String,
    pub on: NaiveDate,
}

/// What became of a queued message; recorded on the order's timeline by the delivery worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Delivery {
    /// Sent (email, Slack) to these addresses.
    Sent {
        channel: String,
        to: Vec<String>,
        subject: String,
        message_id: String,
    },
    /// A try failed; `retry_at` when it will be tried again, none when it went to the dead letters.
    Failed {
        channel: String,
        attempt: i64,
        error: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Not sent, and why (its moment passed, the milestone is done, nobody to send it to).
    Dropped { reason: String },
}

/// The messages due for `order` at the local time `now`, not yet queued (the order remembers the keys it
/// queued). Ordered by kind, then key.
pub fn due_messages(
    order: &Order,
    wf: &Workflow,
    policy: &FollowThroughPolicy,
    now: NaiveDateTime,
) -> Vec<QueuedMessage> {
    if !wf.awaits_delivery(&order.status) {
        return Vec::new();
    }
    let today = now.date();
    let mut due = Vec::new();
    let late_by = TimeDelta::days(i64::from(policy.late_by_days));
    for m in order
        .milestones
        .iter()
        .filter(|m| m.completed_at.is_none() && !m.after_delivery)
    {
        let owner = match m.owner_id {
            Some(user_id) => Audience::User { user_id },
            None => Audience::Role { role: m.owner_role },
        };
        let order_owner = order.person(Relation::Owner).map(|user_id| Audience::User { user_id });
        let day = |offset: i64| m.planned_on + TimeDelta::days(offset);
        // (kind, the day it falls due, the last day it is worth sending, who)
        let mut rules = vec![
            (MessageKind::MilestoneReminder, day(-1), day(0), vec![owner.clone()]),
            (
                MessageKind::MilestoneOverdue,
                day(1),
                day(1) + late_by,
                std::iter::once(owner.clone()).chain(order_owner).collect(),
            ),
        ];
        let chase_on = day(-i64::from(policy.chase_days_before));
        let quiet_since = today - TimeDelta::days(i64::from(policy.chase_quiet_days));
        let quiet = order.last_follow_up_at.is_none_or(|at| at.date_naive() < quiet_since);
        if policy.chase_days_before > 1 && quiet {
            rules.push((MessageKind::MilestoneChase, chase_on, day(-2), vec![owner]));
        }
        for (kind, on, until, to) in rules {
            let at = on.and_time(policy.reminders_at);
            if now >= at && today <= until {
                due.push(QueuedMessage {
                    kind,
                    dedupe_key: format!("{}:{}:{}:{}", order.id, kind.as_str(), m.id, m.planned_on),
                    due_at: at,
                    to,
                    milestone_id: Some(m.id),
                    planned_on: Some(m.planned_on),
                    client_update: None,
                    draft: false,
                });
            }
        }
    }
    if let Some((from, at)) = client_update_period(order.order_type, policy, now)
        && order.created_at.date_naive() < from
    {
        let update = draft_client_update(order, wf, from, today, order.order_type == OrderType::Rush);
        // A draft waiting for review is itself a follow-up for the account manager.
        if policy.review_client_updates
            && let Some(owner) = order.person(Relation::Owner)
        {
            due.push(QueuedMessage {
                kind: MessageKind::DraftWaiting,
                dedupe_key: format!("{}:draft_waiting:{from}", order.id),
                due_at: at,
                to: vec![Audience::User { user_id: owner }],
                milestone_id: None,
                planned_on: None,
                client_update: None,
                draft: false,
            });
        }
        due.push(QueuedMessage {
            kind: MessageKind::ClientUpdate,
            dedupe_key: format!("{}:client_update:{from}", order.id),
            due_at: at,
            to: vec![Audience::Customer],
            milestone_id: None,
            planned_on: None,
            client_update: Some(update),
            draft: policy.review_client_updates,
        });
    }
    due.retain(|m| !order.messages_queued.contains(&m.dedupe_key));
    due.sort_by(|a, b| (a.kind, &a.dedupe_key).cmp(&(b.kind, &b.dedupe_key)));
    due
}

/// The client-update period running at `now` for an order of `order_type` and its moment: rush orders daily on
/// business days, the others weekly on the policy's day (R3). None before the period's moment (today's update
/// time not reached, or a weekend for daily updates). A missed moment is caught up within its period.
pub fn client_update_period(
    order_type: OrderType,
    policy: &FollowThroughPolicy,
    now: NaiveDateTime,
) -> Option<(NaiveDate, NaiveDateTime)> {
    let today = now.date();
    let start = if order_type == OrderType::Rush {
        if matches!(today.weekday(), Weekday::Sat | Weekday::Sun) {
            return None;
        }
        today
    } else {
        let back = (7 + today.weekday().num_days_from_monday() - policy.client_update_day.num_days_from_monday()) % 7;
        today - TimeDelta::days(i64::from(back))
    };
    let at = start.and_time(policy.client_update_at);
    (now >= at).then_some((start, at))
}

/// The earliest day a weekly (or, for rush orders, daily) client update is due at `now`: the store asks for
/// orders whose last update is before it.
pub fn client_update_periods(policy: &FollowThroughPolicy, now: NaiveDateTime) -> [(OrderType, Option<NaiveDate>); 3] {
    [OrderType::Regular, OrderType::Custom, OrderType::Rush]
        .map(|t| (t, client_update_period(t, policy, now).map(|(from, _)| from)))
}

/// Drafts the client update of the period from `from` to `today` from what actually happened (R3, R35).
pub fn draft_client_update(
    order: &Order,
    wf: &Workflow,
    from: NaiveDate,
    today: NaiveDate,
    daily: bool,
) -> ClientUpdate {
    let period_to = if daily { from } else { from + TimeDelta::days(6) };
    let last_from = if daily {
        from - TimeDelta::days(1)
    } else {
        from - TimeDelta::days(7)
    };
    let next_until = if daily {
        today + TimeDelta::days(1)
    } else {
        today + TimeDelta::days(7)
    };
    let done_since = |m: &&crate::order::Milestone| {
        m.completed_at
            .is_some_and(|at| at.date_naive() >= last_from && at.date_naive() <= today)
    };
    let progress = progress(order, wf, today, &HealthPolicy::default());
    let current_phase = progress.phase.as_ref().map(|p| p.name.clone());
    let open: Vec<_> = order.milestones.iter().filter(|m| m.completed_at.is_none()).collect();
    let in_phase = |m: &&&crate::order::Milestone| {
        progress
            .phase
            .as_ref()
            .is_some_and(|p| m.phase.as_deref() == Some(p.id.as_str()))
    };
    let last_planned = open.iter().map(|m| m.planned_on).max();
    let on_track = progress.health == Health::OnTrack;
    let new_delivery_date = (!on_track).then(|| last_planned.unwrap_or(order.promised_date).max(order.promised_date));
    let delay_cause = (!on_track).then(|| {
        let issues: Vec<_> = order
            .issues
            .iter()
            .filter(|i| i.is_open())
            .map(|i| i.description.clone())
            .collect();
        if !issues.is_empty() {
            return issues.join("; ");
        }
        match open
            .iter()
            .filter(|m| m.planned_on < today)
            .min_by_key(|m| m.planned_on)
        {
            Some(m) => format!("{} is {} days behind plan", m.name, (today - m.planned_on).num_days()),
            None => "the remaining work is planned past the promised date".to_string(),
        }
    });
    ClientUpdate {
        period_from: from,
        period_to,
        daily,
        completed: order
            .milestones
            .iter()
            .filter(done_since)
            .filter_map(|m| {
                m.completed_at.map(|at| DatedItem {
                    name: m.name.clone(),
                    on: at.date_naive(),
                })
            })
            .collect(),
        in_progress: open.iter().filter(in_phase).map(|m| m.name.clone()).collect(),
        coming_next: open
            .iter()
            .filter(|m| m.planned_on <= next_until)
            .map(|m| DatedItem {
                name: m.name.clone(),
                on: m.planned_on,
            })
            .collect(),
        client_actions: open
            .iter()
            .filter(|m| m.client_action && m.planned_on <= next_until)
            .map(|m| format!("{} by {}", m.name, m.planned_on))
            .collect(),
        on_track,
        delivery_date: order.promised_date,
        new_delivery_date,
        delay_cause,
        current_phase,
    }
}

/// How far the scheduler got with a milestone at its current planned date: 0 nothing queued, 1 the chase,
/// 2 the reminder, 3 the overdue notice. The store keeps it on the milestone's row so the scheduler asks only
/// about milestones with a step still to come.
pub fn milestone_stage(order: &Order, milestone: &crate::order::Milestone) -> i64 {
    [
        (MessageKind::MilestoneChase, 1),
        (MessageKind::MilestoneReminder, 2),
        (MessageKind::MilestoneOverdue, 3),
    ]
    .iter()
    .filter(|(kind, _)| {
        let key = format!(
            "{}:{}:{}:{}",
            order.id,
            kind.as_str(),
            milestone.id,
            milestone.planned_on
        );
        order.messages_queued.contains(&key)
    })
    .map(|(_, stage)| *stage)
    .max()
    .unwrap_or(0)
}

/// The events that queue `messages` on the order (one each: the log says what was queued and why).
pub fn queue_events(messages: Vec<QueuedMessage>) -> Vec<(OrderEvent, Option<String>)> {
    messages
        .into_iter()
        .map(|message| (OrderEvent::MessageQueued { message }, None))
        .collect()
}

/// The messages an event sends by itself (R23, R27, R10): the acknowledgment of a new order to the customer and
/// the people on it, the customer told at a milestone that needed them, at shipment (with the tracking link)
/// and delivery, and of an issue once its options are ready. `event_key` makes each dedupe key unique (the
/// event's id). `order` is the order after the event.
pub fn on_event(order: &Order, wf: &Workflow, event: &OrderEvent, event_key: &str) -> Vec<QueuedMessage> {
    let message = |kind: MessageKind, key: String, to: Vec<Audience>| QueuedMessage {
        kind,
        dedupe_key: format!("{}:{}:{key}", order.id, kind.as_str()),
        due_at: order.updated_at.naive_utc(),
        to,
        milestone_id: None,
        planned_on: None,
        client_update: None,
        draft: false,
    };
    match event {
        OrderEvent::OrderCreated { .. } => {
            let people = order
                .people
                .iter()
                .filter(|p| p.relation != Relation::Customer)
                .map(|p| Audience::User { user_id: p.user_id });
            let to = std::iter::once(Audience::Customer).chain(people).collect();
            vec![message(MessageKind::OrderAcknowledgment, "created".into(), to)]
        }
        OrderEvent::MilestoneCompleted { milestone_id, .. } => match order.milestone(*milestone_id) {
            Some(m) if m.client_action => {
                let mut reached = message(
                    MessageKind::MilestoneReached,
                    milestone_id.to_string(),
                    vec![Audience::Customer],
                );
                reached.milestone_id = Some(*milestone_id);
                vec![reached]
            }
            _ => Vec::new(),
        },
        OrderEvent::StatusChanged { from, to, fields } => {
            let mut sent = Vec::new();
            if let Some(url) = fields.get("tracking_url") {
                sent.push(message(
                    MessageKind::OrderShipped,
                    url.clone(),
                    vec![Audience::Customer],
                ));
            }
            let delivered = |s: &str| wf.status(s).is_some_and(|s| s.delivered);
            if delivered(to) && !delivered(from) {
                sent.push(message(
                    MessageKind::OrderDelivered,
                    event_key.into(),
                    vec![Audience::Customer],
                ));
            }
            sent
        }
        OrderEvent::IssueChanged {
            issue_id,
            change: crate::issue::IssueChange::OptionsProposed { .. },
        } => vec![message(
            MessageKind::IssueNotification,
            format!("{issue_id}:{event_key}"),
            vec![Audience::Customer],
        )],
        _ => Vec::new(),
    }
}
