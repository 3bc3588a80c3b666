//! Change orders (R7, R11, R14, R17): a change of scope or budget drafted with its itemised cost and reason,
//! priced by finance, timed by operations, approved by the sales director, sent to the client and approved in
//! writing by the client (or declined, or withdrawn before the client approves). Each step is done only by the
//! role the RABSIC matrix ([`RABSIC`]) gives it, and only in order. On the client's approval the effects on the
//! order are computed ([`ApprovalEffects`]): new amount, new promised date, milestone shift, extra deposit.
//!
//! Pure: commands take the change order as loaded, the input, the acting person and `now`, and return a
//! [`ChangeOrderChange`] (to be recorded as an order event) or a typed refusal; [`ChangeOrder::apply`] applies it.
//!
//! Decisions an integrator must know:
//! - The change's amount is the sum of its items; finance's cost estimate confirms or replaces the items'
//!   amounts. Amounts are not negative (`Money` refuses signs): a change order adds cost or none; credits are not
//!   modelled.
//! - The responsible role of a step and its backup (R14) may act; the accountable role does not act in the
//!   responsible's place; admin may not act at all (an approval of money is a business act, kept to the business
//!   roles of the matrix). The client (role customer) may record their own decision, e.g. through the portal;
//!   the caller checks that the customer user is the order's customer and that staff are on the order.
//! - A client approval must be written (R7): evidence text or an attachment reference, and not by phone.
//! - The extra deposit (R7): when the cumulative cost increase of approved change orders, this one included,
//!   is more than the policy's threshold of the original order amount (20%), this change needs a deposit of the
//!   policy's share of its amount (50%, rounded half up to the minor unit), due before work on it starts.

use crate::decide::Acting;
use crate::error::{DomainError, GuardFailure, MAX_NAME, MAX_TEXT, Problems};
use crate::follow_up::Channel;
use crate::ids::{OrderId, UserId};
use crate::issue::IssueId;
use crate::money::Money;
use crate::role::Role;
use chrono::{DateTime, Days, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;
use uuid::Uuid;

/// One change order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, format = Uuid)]
pub struct ChangeOrderId(pub Uuid);

impl fmt::Display for ChangeOrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<Uuid> for ChangeOrderId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

/// What the change is (R7's impact list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    DesignComplexity,
    AdditionalPieces,
    MaterialUpgrade,
    TimelineAcceleration,
    Other,
}

/// One line of the itemised cost (R11: "Item 1: $Amount").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeItem {
    pub description: String,
    pub amount: Money,
}

/// A change order as drafted (also the seed an issue's resolution returns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChangeOrder {
    /// Why: the client's request, or the issue it comes from.
    pub reason: String,
    #[serde(default)]
    pub kinds: Vec<ChangeKind>,
    /// At least one item.
    pub items: Vec<ChangeItem>,
    /// The issue this change resolves, if any.
    #[serde(default)]
    pub origin_issue: Option<IssueId>,
}

/// Where a change order is. Only in this order: draft -> director_approved -> sent_to_client -> approved or
/// declined; withdrawn from any of the first three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOrderStatus {
    /// Being drafted, priced by finance and timed by operations.
    Draft,
    /// Approved internally by the sales director; not yet sent.
    DirectorApproved,
    SentToClient,
    /// Approved in writing by the client: in force.
    Approved,
    Declined,
    Withdrawn,
}

impl ChangeOrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOrderStatus::Draft => "draft",
            ChangeOrderStatus::DirectorApproved => "director_approved",
            ChangeOrderStatus::SentToClient => "sent_to_client",
            ChangeOrderStatus::Approved => "approved",
            ChangeOrderStatus::Declined => "declined",
            ChangeOrderStatus::Withdrawn => "withdrawn",
        }
    }

    /// Approved, declined or withdrawn: nothing more happens to it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ChangeOrderStatus::Approved | ChangeOrderStatus::Declined | ChangeOrderStatus::Withdrawn
        )
    }
}

/// A step of the change-order procedure: a row of the RABSIC matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Draft,
    EstimateCost,
    EstimateTimeline,
    ApproveInternally,
    SendToClient,
    RecordClientDecision,
    Withdraw,
}

impl Step {
    /// The step in words, for refusals ("the role design may not estimate a change order's cost").
    pub fn action(self) -> &'static str {
        match self {
            Step::Draft => "draft a change order",
            Step::EstimateCost => "estimate a change order's cost",
            Step::EstimateTimeline => "estimate a change order's timeline impact",
            Step::ApproveInternally => "approve a change order internally",
            Step::SendToClient => "send a change order to the client",
            Step::RecordClientDecision => "record the client's decision on a change order",
            Step::Withdraw => "withdraw a change order",
        }
    }
}

/// One row of the RABSIC matrix (R14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rabsic {
    pub step: Step,
    pub responsible: Role,
    pub accountable: Role,
    /// May act for the responsible (R14).
    pub backup: &'static [Role],
    pub support: &'static [Role],
    /// Told when the step is done.
    pub informed: &'static [Role],
    pub consulted: &'static [Role],
}

use Role::{AccountManager, Design, Finance, Manufacturer, Operations, SalesCoordinator, SalesDirector};

/// The RABSIC matrix of change orders. Seed 001's row "change order approval" (R: sales director, S: finance and
/// operations, C: design and operations) is split into its steps; the account manager drafts, sends and records
/// (seed 001 gives the client relationship to the account manager, with the sales coordinator as backup).
pub const RABSIC: [Rabsic; 7] = [
    Rabsic {
        step: Step::Draft,
        responsible: AccountManager,
        accountable: SalesDirector,
        backup: &[SalesCoordinator],
        support: &[],
        informed: &[Finance, Operations],
        consulted: &[Design, Operations],
    },
    Rabsic {
        step: Step::EstimateCost,
        responsible: Finance,
        accountable: SalesDirector,
        backup: &[],
        support: &[],
        informed: &[AccountManager],
        consulted: &[Operations],
    },
    Rabsic {
        step: Step::EstimateTimeline,
        responsible: Operations,
        accountable: SalesDirector,
        backup: &[Manufacturer],
        support: &[],
        informed: &[AccountManager],
        consulted: &[Design],
    },
    Rabsic {
        step: Step::ApproveInternally,
        responsible: SalesDirector,
        accountable: SalesDirector,
        backup: &[],
        support: &[Finance, Operations],
        informed: &[AccountManager],
        consulted: &[Design, Operations],
    },
    Rabsic {
        step: Step::SendToClient,
        responsible: AccountManager,
        accountable: SalesDirector,
        backup: &[SalesCoordinator],
        support: &[],
        informed: &[SalesDirector],
        consulted: &[],
    },
    Rabsic {
        step: Step::RecordClientDecision,
        responsible: AccountManager,
        accountable: SalesDirector,
        backup: &[SalesCoordinator],
        support: &[],
        informed: &[SalesDirector, Finance, Operations],
        consulted: &[],
    },
    Rabsic {
        step: Step::Withdraw,
        responsible: AccountManager,
        accountable: SalesDirector,
        backup: &[SalesCoordinator],
        support: &[],
        informed: &[SalesDirector, Finance, Operations],
        consulted: &[],
    },
];

/// The matrix row of `step`.
pub fn rabsic(step: Step) -> &'static Rabsic {
    RABSIC.iter().find(|r| r.step == step).unwrap_or(&RABSIC[0])
}

/// Whether `role` may do `step`: the responsible, a backup, or (for the client's decision) the client.
pub fn may_act(step: Step, role: Role) -> bool {
    let row = rabsic(step);
    row.responsible == role
        || row.backup.contains(&role)
        || (step == Step::RecordClientDecision && role == Role::Customer)
}

fn allowed(step: Step, acting: Acting) -> Result<(), DomainError> {
    if may_act(step, acting.role) {
        Ok(())
    } else {
        Err(DomainError::RoleNotAllowed {
            role: acting.role,
            action: step.action().into(),
        })
    }
}

fn in_status(co: &ChangeOrder, step: Step, expected: &[ChangeOrderStatus]) -> Result<(), DomainError> {
    if expected.contains(&co.status) {
        return Ok(());
    }
    let wanted = expected.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" or ");
    let hint = match (step, co.status) {
        (Step::RecordClientDecision, ChangeOrderStatus::Draft) => {
            ": the sales director approves it and it is sent to the client first"
        }
        (Step::RecordClientDecision, ChangeOrderStatus::DirectorApproved) => ": it is sent to the client first",
        (Step::SendToClient, ChangeOrderStatus::Draft) => ": the sales director approves it first",
        _ => "",
    };
    Err(DomainError::Conflict(format!(
        "cannot {} while it is {} (only when {wanted}){hint}",
        step.action(),
        co.status.as_str()
    )))
}

/// The money rules of change orders (R7). Deserialisable with defaults (seed 000).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ChangeOrderPolicy {
    /// An extra deposit is due when approved changes add more than this percent of the original amount (20).
    pub extra_deposit_threshold_percent: u32,
    /// The extra deposit as a percent of the change's amount (50).
    pub extra_deposit_percent: u32,
}

impl Default for ChangeOrderPolicy {
    fn default() -> Self {
        Self {
            extra_deposit_threshold_percent: 20,
            extra_deposit_percent: 50,
        }
    }
}

impl ChangeOrderPolicy {
    pub fn from_toml(text: &str) -> Result<Self, DomainError> {
        let policy: Self =
            toml::from_str(text).map_err(|e| DomainError::invalid("change_order_policy", e.message().to_string()))?;
        if policy.extra_deposit_percent > 100 {
            return Err(DomainError::invalid(
                "change_order_policy.extra_deposit_percent",
                "must be at most 100",
            ));
        }
        Ok(policy)
    }
}

/// Finance's pricing of the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CostEstimate {
    /// The change's amount: the sum of the items as priced.
    pub total: Money,
    pub note: Option<String>,
    pub by: UserId,
    pub at: DateTime<Utc>,
}

/// Operations' timing of the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TimelineEstimate {
    /// Days the delivery and the open milestones move (negative: earlier, e.g. an acceleration).
    pub days: i32,
    pub note: Option<String>,
    pub by: UserId,
    pub at: DateTime<Utc>,
}

/// Someone's sign-off of a step (director approval, sending, withdrawal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Signoff {
    pub by: UserId,
    pub role: Role,
    pub at: DateTime<Utc>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientAnswer {
    Approved,
    Declined,
}

/// The client's answer as recorded (R7: written approval).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClientResponse {
    pub answer: ClientAnswer,
    /// The client's name.
    pub client_name: String,
    pub decided_at: DateTime<Utc>,
    pub channel: Channel,
    /// The approval in the client's words (a quoted email).
    pub evidence: Option<String>,
    /// A reference to the signed addendum or the email (a file name or link).
    pub attachment: Option<String>,
    pub recorded_by: UserId,
    pub recorded_as: Role,
    pub recorded_at: DateTime<Utc>,
}

/// The order as it is before a change is approved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderTerms {
    /// The amount at signing, before any change order: the base of the cumulative percentage.
    pub original_amount: Money,
    pub current_amount: Money,
    pub promised_date: NaiveDate,
}

/// What an approved change does to the order (R7), for the integrator to apply in one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApprovalEffects {
    /// The change's amount.
    pub change_amount: Money,
    pub new_order_amount: Money,
    pub new_promised_date: NaiveDate,
    /// Days to shift the milestones not yet completed.
    pub milestone_shift_days: i32,
    /// All approved changes of the order, this one included.
    pub cumulative_increase: Money,
    /// The cumulative increase in basis points of the original amount (2500 = 25.00%).
    pub cumulative_increase_basis_points: i64,
    /// The extra deposit due before work on this change starts, when the threshold is passed.
    pub extra_deposit: Option<Money>,
}

/// A change order of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChangeOrder {
    pub id: ChangeOrderId,
    pub order_id: OrderId,
    pub reason: String,
    pub kinds: Vec<ChangeKind>,
    pub items: Vec<ChangeItem>,
    pub origin_issue: Option<IssueId>,
    pub status: ChangeOrderStatus,
    pub drafted: Signoff,
    pub cost_estimate: Option<CostEstimate>,
    pub timeline_estimate: Option<TimelineEstimate>,
    pub director_approval: Option<Signoff>,
    pub sent: Option<Signoff>,
    pub client_response: Option<ClientResponse>,
    pub withdrawal: Option<Signoff>,
    /// Set when the client approved.
    pub effects: Option<ApprovalEffects>,
}

/// What happened to a change order: each becomes an order event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChangeOrderChange {
    Drafted {
        change_order: Box<ChangeOrder>,
    },
    CostEstimated {
        items: Vec<ChangeItem>,
        estimate: CostEstimate,
    },
    TimelineEstimated {
        estimate: TimelineEstimate,
    },
    ApprovedInternally {
        signoff: Signoff,
    },
    SentToClient {
        signoff: Signoff,
    },
    ClientApproved {
        response: ClientResponse,
        effects: ApprovalEffects,
    },
    ClientDeclined {
        response: ClientResponse,
    },
    Withdrawn {
        signoff: Signoff,
    },
}

impl ChangeOrderChange {
    /// The matrix step this change is.
    pub fn step(&self) -> Step {
        match self {
            ChangeOrderChange::Drafted { .. } => Step::Draft,
            ChangeOrderChange::CostEstimated { .. } => Step::EstimateCost,
            ChangeOrderChange::TimelineEstimated { .. } => Step::EstimateTimeline,
            ChangeOrderChange::ApprovedInternally { .. } => Step::ApproveInternally,
            ChangeOrderChange::SentToClient { .. } => Step::SendToClient,
            ChangeOrderChange::ClientApproved { .. } | ChangeOrderChange::ClientDeclined { .. } => {
                Step::RecordClientDecision
            }
            ChangeOrderChange::Withdrawn { .. } => Step::Withdraw,
        }
    }

    /// The roles to tell (R14 "the informed are told").
    pub fn informed(&self) -> &'static [Role] {
        rabsic(self.step()).informed
    }
}

impl ChangeOrder {
    /// The change's amount: the sum of its items (None when the items mix currencies or overflow).
    pub fn amount(&self) -> Option<Money> {
        sum(&self.items)
    }

    /// Applies a change made by a command of this module.
    pub fn apply(&mut self, change: &ChangeOrderChange) {
        match change {
            ChangeOrderChange::Drafted { change_order } => *self = (**change_order).clone(),
            ChangeOrderChange::CostEstimated { items, estimate } => {
                self.items = items.clone();
                self.cost_estimate = Some(estimate.clone());
            }
            ChangeOrderChange::TimelineEstimated { estimate } => self.timeline_estimate = Some(estimate.clone()),
            ChangeOrderChange::ApprovedInternally { signoff } => {
                self.director_approval = Some(signoff.clone());
                self.status = ChangeOrderStatus::DirectorApproved;
            }
            ChangeOrderChange::SentToClient { signoff } => {
                self.sent = Some(signoff.clone());
                self.status = ChangeOrderStatus::SentToClient;
            }
            ChangeOrderChange::ClientApproved { response, effects } => {
                self.client_response = Some(response.clone());
                self.effects = Some(effects.clone());
                self.status = ChangeOrderStatus::Approved;
            }
            ChangeOrderChange::ClientDeclined { response } => {
                self.client_response = Some(response.clone());
                self.status = ChangeOrderStatus::Declined;
            }
            ChangeOrderChange::Withdrawn { signoff } => {
                self.withdrawal = Some(signoff.clone());
                self.status = ChangeOrderStatus::Withdrawn;
            }
        }
    }
}

fn sum(items: &[ChangeItem]) -> Option<Money> {
    let currency = items.first()?.amount.currency.clone();
    let mut minor: i64 = 0;
    for item in items {
        if item.amount.currency != currency {
            return None;
        }
        minor = minor.checked_add(item.amount.minor)?;
    }
    Some(Money { currency, minor })
}

/// At most this many items in a change order.
const MAX_ITEMS: usize = 100;
const MAX_SHIFT_DAYS: i32 = 3650;
const CLOCK_SKEW: TimeDelta = TimeDelta::minutes(5);

fn check_items(p: &mut Problems, field: &str, items: &[ChangeItem], currency: &str) {
    if items.is_empty() {
        p.add(field, "a change order needs at least one item");
    }
    if items.len() > MAX_ITEMS {
        p.add(field, format!("at most {MAX_ITEMS} items"));
    }
    for (i, item) in items.iter().enumerate() {
        p.text(&format!("{field}[{i}].description"), &item.description, MAX_TEXT);
        if item.amount.currency != currency {
            p.add(
                format!("{field}[{i}].amount"),
                format!("must be in the order's currency {currency}"),
            );
        } else if item.amount.minor < 0 {
            p.add(format!("{field}[{i}].amount"), "must not be negative");
        }
    }
    if items.iter().all(|i| i.amount.currency == currency) && !items.is_empty() && sum(items).is_none() {
        p.add(field, "the total is too large");
    }
}

/// Drafts a change order on `order_id`, whose amounts are in `currency` (R7: document the requested changes).
pub fn draft(
    id: ChangeOrderId,
    order_id: OrderId,
    currency: &str,
    input: NewChangeOrder,
    acting: Acting,
    now: DateTime<Utc>,
) -> Result<ChangeOrderChange, DomainError> {
    allowed(Step::Draft, acting)?;
    let mut p = Problems::new();
    p.text("reason", &input.reason, MAX_TEXT);
    check_items(&mut p, "items", &input.items, currency);
    p.into_result()?;
    Ok(ChangeOrderChange::Drafted {
        change_order: Box::new(ChangeOrder {
            id,
            order_id,
            reason: input.reason,
            kinds: input.kinds,
            items: input.items,
            origin_issue: input.origin_issue,
            status: ChangeOrderStatus::Draft,
            drafted: Signoff {
                by: acting.user,
                role: acting.role,
                at: now,
                note: None,
            },
            cost_estimate: None,
            timeline_estimate: None,
            director_approval: None,
            sent: None,
            client_response: None,
            withdrawal: None,
            effects: None,
        }),
    })
}

/// Finance's estimate: confirms the drafted items' amounts or replaces the items.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CostEstimateInput {
    /// The items as priced by finance (default: the drafted items, confirmed as they are).
    #[serde(default)]
    pub items: Option<Vec<ChangeItem>>,
    #[serde(default)]
    pub note: Option<String>,
}

/// Finance prices the change (R7: cost estimate from Finance). While a draft; again replaces.
pub fn estimate_cost(
    current: &ChangeOrder,
    input: CostEstimateInput,
    acting: Acting,
    now: DateTime<Utc>,
) -> Result<ChangeOrderChange, DomainError> {
    allowed(Step::EstimateCost, acting)?;
    in_status(current, Step::EstimateCost, &[ChangeOrderStatus::Draft])?;
    let items = input.items.unwrap_or_else(|| current.items.clone());
    let currency = current
        .items
        .first()
        .or(items.first())
        .map(|i| i.amount.currency.clone())
        .unwrap_or_default();
    let mut p = Problems::new();
    check_items(&mut p, "items", &items, &currency);
    p.optional_text("note", input.note.as_deref(), MAX_TEXT);
    p.into_result()?;
    let total = sum(&items).ok_or_else(|| DomainError::invalid("items", "the total is too large"))?;
    Ok(ChangeOrderChange::CostEstimated {
        items,
        estimate: CostEstimate {
            total,
            note: input.note,
            by: acting.user,
            at: now,
        },
    })
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimelineEstimateInput {
    /// Days the delivery moves (negative: earlier).
    pub days: i32,
    #[serde(default)]
    pub note: Option<String>,
}

/// Operations times the change (R7: timeline impact from Operations). While a draft; again replaces.
pub fn estimate_timeline(
    current: &ChangeOrder,
    input: TimelineEstimateInput,
    acting: Acting,
    now: DateTime<Utc>,
) -> Result<ChangeOrderChange, DomainError> {
    allowed(Step::EstimateTimeline, acting)?;
    in_status(current, Step::EstimateTimeline, &[ChangeOrderStatus::Draft])?;
    let mut p = Problems::new();
    if input.days.abs() > MAX_SHIFT_DAYS {
        p.add("days", format!("must be within {MAX_SHIFT_DAYS} days"));
    }
    p.optional_text("note", input.note.as_deref(), MAX_TEXT);
    p.into_result()?;
    Ok(ChangeOrderChange::TimelineEstimated {
        estimate: TimelineEstimate {
            days: input.days,
            note: input.note,
            by: acting.user,
            at: now,
        },
    })
}

/// The sales director approves the change internally: needs finance's cost and operations' timeline.
pub fn approve_internally(
    current: &ChangeOrder,
    note: Option<String>,
    acting: Acting,
    now: DateTime<Utc>,
) -> Result<ChangeOrderChange, DomainError> {
    allowed(Step::ApproveInternally, acting)?;
    in_status(current, Step::ApproveInternally, &[ChangeOrderStatus::Draft])?;
    let mut missing = Vec::new();
    if current.cost_estimate.is_none() {
        missing.push(GuardFailure {
            guard: "change_order:cost_estimate".into(),
            missing: vec!["the cost estimate from finance".into()],
        });
    }
    if current.timeline_estimate.is_none() {
        missing.push(GuardFailure {
            guard: "change_order:timeline_estimate".into(),
            missing: vec!["the timeline impact from operations".into()],
        });
    }
    if !missing.is_empty() {
        return Err(DomainError::GuardsFailed(missing));
    }
    let mut p = Problems::new();
    p.optional_text("note", note.as_deref(), MAX_TEXT);
    p.into_result()?;
    Ok(ChangeOrderChange::ApprovedInternally {
        signoff: Signoff {
            by: acting.user,
            role: acting.role,
            at: now,
            note,
        },
    })
}

/// The account manager sends the approved change to the client (R11's change-order approval message).
pub fn send_to_client(
    current: &ChangeOrder,
    note: Option<String>,
    acting: Acting,
    now: DateTime<Utc>,
) -> Result<ChangeOrderChange, DomainError> {
    allowed(Step::SendToClient, acting)?;
    in_status(current, Step::SendToClient, &[ChangeOrderStatus::DirectorApproved])?;
    let mut p = Problems::new();
    p.optional_text("note", note.as_deref(), MAX_TEXT);
    p.into_result()?;
    Ok(ChangeOrderChange::SentToClient {
        signoff: Signoff {
            by: acting.user,
            role: acting.role,
            at: now,
            note,
        },
    })
}

/// The client's answer as entered.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientResponseInput {
    pub answer: ClientAnswer,
    pub client_name: String,
    /// When (default: now). Not in the future, not before it was sent.
    #[serde(default)]
    pub decided_at: Option<DateTime<Utc>>,
    pub channel: Channel,
    #[serde(default)]
    pub evidence: Option<String>,
    #[serde(default)]
    pub attachment: Option<String>,
}

/// What an approval needs to know of the order.
#[derive(Debug, Clone, Copy)]
pub struct ApprovalContext<'a> {
    pub terms: &'a OrderTerms,
    /// The order's change orders (this one may be among them; it is not counted twice).
    pub change_orders: &'a [ChangeOrder],
    pub policy: &'a ChangeOrderPolicy,
}

/// Records the client's written approval or their decline (R7). Approval computes the [`ApprovalEffects`].
pub fn record_client_response(
    current: &ChangeOrder,
    input: ClientResponseInput,
    ctx: ApprovalContext<'_>,
    acting: Acting,
    now: DateTime<Utc>,
) -> Result<ChangeOrderChange, DomainError> {
    allowed(Step::RecordClientDecision, acting)?;
    in_status(current, Step::RecordClientDecision, &[ChangeOrderStatus::SentToClient])?;
    let decided_at = input.decided_at.unwrap_or(now);
    let mut p = Problems::new();
    p.text("client_name", &input.client_name, MAX_NAME);
    p.optional_text("evidence", input.evidence.as_deref(), MAX_TEXT);
    p.optional_text("attachment", input.attachment.as_deref(), 2000);
    if decided_at > now + CLOCK_SKEW {
        p.add("decided_at", "must not be in the future");
    } else if current.sent.as_ref().is_some_and(|s| decided_at < s.at) {
        p.add("decided_at", "must not be before the change order was sent");
    }
    let written = |t: &Option<String>| t.as_deref().is_some_and(|t| !t.trim().is_empty());
    if input.answer == ClientAnswer::Approved {
        if !written(&input.evidence) && !written(&input.attachment) {
            p.add(
                "evidence",
                "a client approval must be written: quote the email or reference the signed addendum",
            );
        }
        if input.channel == Channel::Phone {
            p.add(
                "channel",
                "a phone call is not a written approval: record the confirming email or signed addendum",
            );
        }
    }
    p.into_result()?;
    let response = ClientResponse {
        answer: input.answer,
        client_name: input.client_name,
        decided_at,
        channel: input.channel,
        evidence: input.evidence,
        attachment: input.attachment,
        recorded_by: acting.user,
        recorded_as: acting.role,
        recorded_at: now,
    };
    match response.answer {
        ClientAnswer::Declined => Ok(ChangeOrderChange::ClientDeclined { response }),
        ClientAnswer::Approved => {
            let effects = approval_effects(current, ctx)?;
            Ok(ChangeOrderChange::ClientApproved { response, effects })
        }
    }
}

/// Withdraws the change before the client approves it (a declined one is already over).
pub fn withdraw(
    current: &ChangeOrder,
    reason: String,
    acting: Acting,
    now: DateTime<Utc>,
) -> Result<ChangeOrderChange, DomainError> {
    allowed(Step::Withdraw, acting)?;
    in_status(
        current,
        Step::Withdraw,
        &[
            ChangeOrderStatus::Draft,
            ChangeOrderStatus::DirectorApproved,
            ChangeOrderStatus::SentToClient,
        ],
    )?;
    let mut p = Problems::new();
    p.text("reason", &reason, MAX_TEXT);
    p.into_result()?;
    Ok(ChangeOrderChange::Withdrawn {
        signoff: Signoff {
            by: acting.user,
            role: acting.role,
            at: now,
            note: Some(reason),
        },
    })
}

fn percent_of(minor: i64, percent: u32) -> i64 {
    // Half up, in i128 so that no amount overflows.
    let v = (i128::from(minor) * i128::from(percent) + 50).div_euclid(100);
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn basis_points(part: i64, whole: i64) -> i64 {
    if whole <= 0 {
        return 0;
    }
    let v = (i128::from(part) * 10_000 + i128::from(whole) / 2).div_euclid(i128::from(whole));
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// What approving `co` does to the order (R7), from the order's terms and its other change orders.
pub fn approval_effects(co: &ChangeOrder, ctx: ApprovalContext<'_>) -> Result<ApprovalEffects, DomainError> {
    let terms = ctx.terms;
    let currency = &terms.original_amount.currency;
    let change = co
        .amount()
        .ok_or_else(|| DomainError::Conflict("the change order's items do not add up in one currency".into()))?;
    if &change.currency != currency || &terms.current_amount.currency != currency {
        return Err(DomainError::Conflict(format!(
            "the change order is in {}, the order in {currency}",
            change.currency
        )));
    }
    let days = co.timeline_estimate.as_ref().map_or(0, |t| t.days);
    let earlier: i64 = ctx
        .change_orders
        .iter()
        .filter(|c| c.id != co.id && c.status == ChangeOrderStatus::Approved)
        .filter_map(|c| c.amount())
        .filter(|m| &m.currency == currency)
        .map(|m| m.minor)
        .sum();
    let too_large = || DomainError::Conflict("the amounts are too large".into());
    let cumulative = earlier.checked_add(change.minor).ok_or_else(too_large)?;
    let new_amount = terms
        .current_amount
        .minor
        .checked_add(change.minor)
        .ok_or_else(too_large)?;
    let shift = Days::new(u64::from(days.unsigned_abs()));
    let new_promised_date = if days >= 0 {
        terms.promised_date.checked_add_days(shift)
    } else {
        terms.promised_date.checked_sub_days(shift)
    }
    .ok_or_else(|| DomainError::Conflict("the new promised date is out of range".into()))?;
    let threshold = ctx.policy.extra_deposit_threshold_percent;
    let over = i128::from(cumulative) * 100 > i128::from(terms.original_amount.minor) * i128::from(threshold);
    let extra_deposit = (over && change.minor > 0).then(|| Money {
        currency: currency.clone(),
        minor: percent_of(change.minor, ctx.policy.extra_deposit_percent),
    });
    Ok(ApprovalEffects {
        change_amount: change,
        new_order_amount: Money {
            currency: currency.clone(),
            minor: new_amount,
        },
        new_promised_date,
        milestone_shift_days: days,
        cumulative_increase: Money {
            currency: currency.clone(),
            minor: cumulative,
        },
        cumulative_increase_basis_points: basis_points(cumulative, terms.original_amount.minor),
        extra_deposit,
    })
}

/// How many change orders an order has and what they add up to (R17).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChangeOrderSummary {
    pub total: usize,
    pub draft: usize,
    pub director_approved: usize,
    pub sent_to_client: usize,
    pub approved: usize,
    pub declined: usize,
    pub withdrawn: usize,
    /// The sum of the approved change orders.
    pub approved_amount: Money,
    /// The sum of those still in progress (draft, director approved, sent).
    pub pending_amount: Money,
    /// The approved amount in basis points of the original order amount (2500 = 25.00%).
    pub approved_basis_points: i64,
    /// The same as a percentage with two decimals, e.g. "25.00".
    pub approved_percent: String,
}

/// Summarises an order's change orders against its original amount (R17: change-order frequency and amounts).
/// Change orders in another currency than the original amount are counted but not summed.
pub fn summarize(change_orders: &[ChangeOrder], original_amount: &Money) -> ChangeOrderSummary {
    let currency = &original_amount.currency;
    let mut s = ChangeOrderSummary {
        total: change_orders.len(),
        draft: 0,
        director_approved: 0,
        sent_to_client: 0,
        approved: 0,
        declined: 0,
        withdrawn: 0,
        approved_amount: Money {
            currency: currency.clone(),
            minor: 0,
        },
        pending_amount: Money {
            currency: currency.clone(),
            minor: 0,
        },
        approved_basis_points: 0,
        approved_percent: String::new(),
    };
    for co in change_orders {
        let amount = co.amount().filter(|m| &m.currency == currency).map_or(0, |m| m.minor);
        match co.status {
            ChangeOrderStatus::Draft => s.draft += 1,
            ChangeOrderStatus::DirectorApproved => s.director_approved += 1,
            ChangeOrderStatus::SentToClient => s.sent_to_client += 1,
            ChangeOrderStatus::Approved => s.approved += 1,
            ChangeOrderStatus::Declined => s.declined += 1,
            ChangeOrderStatus::Withdrawn => s.withdrawn += 1,
        }
        match co.status {
            ChangeOrderStatus::Approved => s.approved_amount.minor = s.approved_amount.minor.saturating_add(amount),
            status if !status.is_final() => s.pending_amount.minor = s.pending_amount.minor.saturating_add(amount),
            _ => {}
        }
    }
    s.approved_basis_points = basis_points(s.approved_amount.minor, original_amount.minor);
    s.approved_percent = format!("{}.{:02}", s.approved_basis_points / 100, s.approved_basis_points % 100);
    s
}
