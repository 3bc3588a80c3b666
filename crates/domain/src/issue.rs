//! Issues and exceptions on an order (R5, R6, R10, R34, R36): what went wrong, its impact, how severe the
//! [`IssuePolicy`] judges it, whom it escalates to, the protocol of R6 (options, a recommendation, the client's
//! decision, the resolution and its replan), and the two clocks (client told within 24 hours, issue opened within
//! 1 hour of discovery).
//!
//! Pure: every command takes the issue as loaded, the input, the acting person and `now`, and returns an
//! [`IssueChange`] (to be recorded as an order event) or a typed refusal; [`Issue::apply`] applies a change.
//!
//! Decisions an integrator must know:
//! - Only staff act on issues; the customer role may not (a client's complaint is opened by staff for them).
//! - Severity is two-level, [`Severity::Minor`] and [`Severity::Major`]; seed 004 calls major "severe" (accepted
//!   on the wire as `severe`). Everything the policy does not call major is minor: under seed 004 a delay of
//!   exactly 3 days is minor (the seed says minor "1-2 days", severe "> 3 days"; the threshold is the policy value).
//! - Severity is never silently lowered: a change of impact that computes a lower severity keeps the current one;
//!   lowering is an explicit [`set_severity`] with a reason, by the escalation role only, and never below what the
//!   policy computes from the current impact (correct the impact first). Raising needs a reason too, by any staff.
//! - An issue escalates once, when it first becomes major (on opening, on a new impact, or when raised); the
//!   change carries the [`Escalation`] so that it can become an event and an outbox message.
//! - A minor issue may be resolved at once (seed 000: "minor issues: resolve immediately"); a major one needs the
//!   R6 protocol first: 2-3 options with a recommendation, then the client's decision.
//! - A resolution that changes budget or scope (or picks an option that costs money) returns a
//!   [`NewChangeOrder`] seed for [`crate::change_order::draft`].

use crate::change_order::{ChangeItem, NewChangeOrder};
use crate::decide::Acting;
use crate::error::{DomainError, MAX_NAME, MAX_TEXT, Problems};
use crate::follow_up::Channel;
use crate::ids::{OrderId, UserId};
use crate::money::Money;
use crate::role::Role;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use utoipa::ToSchema;
use uuid::Uuid;

/// One issue (an exception, in seed 004's words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, format = Uuid)]
pub struct IssueId(pub Uuid);

impl fmt::Display for IssueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<Uuid> for IssueId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

/// What kind of trouble it is (R5's examples, seed 004's causes, and R13's playbook situations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IssueKind {
    MaterialDelay,
    DesignChange,
    /// Production behind schedule.
    Scheduling,
    Quality,
    ScopeDispute,
    Payment,
    ClientDissatisfaction,
    /// The client does not answer the updates (R13).
    ClientUnresponsive,
    /// The client cannot come to a fitting (R13; seed 001: 20% of orders).
    FittingUnavailable,
    Other,
}

impl IssueKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueKind::MaterialDelay => "material_delay",
            IssueKind::DesignChange => "design_change",
            IssueKind::Scheduling => "scheduling",
            IssueKind::Quality => "quality",
            IssueKind::ScopeDispute => "scope_dispute",
            IssueKind::Payment => "payment",
            IssueKind::ClientDissatisfaction => "client_dissatisfaction",
            IssueKind::ClientUnresponsive => "client_unresponsive",
            IssueKind::FittingUnavailable => "fitting_unavailable",
            IssueKind::Other => "other",
        }
    }
}

/// Minor or major (seed 000); seed 004 says "severe" for major.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Minor,
    #[serde(alias = "severe")]
    Major,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Minor => "minor",
            Severity::Major => "major",
        }
    }
}

/// The impact of an issue (R6 step 1: timeline, budget, quality; R36: the customer's core need).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Impact {
    /// How many days the delivery slips if nothing is done.
    #[serde(default)]
    pub delay_days: u32,
    /// The budget overrun in whole percent of the order amount.
    #[serde(default)]
    pub budget_overrun_percent: u32,
    /// The quality of the work is affected (a production quality concern).
    #[serde(default)]
    pub quality_affected: bool,
    /// The customer's core need is hurt (seed 004's severe exception).
    #[serde(default)]
    pub core_need_hurt: bool,
}

/// How issues are judged and timed. Default: seed 000; [`IssuePolicy::preset`] names the others.
/// Deserialisable (TOML or JSON) with every field optional (missing fields take seed 000's value);
/// [`IssuePolicy::from_toml`] also accepts `preset = "seed_004"` as the base for the fields that follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct IssuePolicy {
    /// Major when the delay is more than this many days (seed 000: 7, "> 1 week"; seed 004: 3).
    pub major_delay_days: u32,
    /// Major when the budget overrun is more than this percentage (seed 000: 10); none: budget does not count.
    pub major_budget_overrun_percent: Option<u32>,
    /// Major when the quality is affected (seed 000: a production quality concern).
    pub major_when_quality_affected: bool,
    /// Major when the customer's core need is hurt (seed 004).
    pub major_when_core_need_hurt: bool,
    /// Kinds that are major whatever their impact (seed 000: client dissatisfaction, scope dispute, quality).
    pub major_kinds: Vec<IssueKind>,
    /// The role a major issue escalates to (seed 000: the sales director).
    pub escalate_to: Role,
    /// The client must be told within this many hours of opening (R10: 24).
    pub client_notice_hours: u32,
    /// An issue must be opened within this many minutes of its discovery (R36: 60).
    pub open_within_minutes: u32,
    /// R13: the moves the studio tries first for an issue of each kind, shown on the issue. A kind absent from
    /// the map has none.
    pub playbook: BTreeMap<IssueKind, Vec<String>>,
}

impl Default for IssuePolicy {
    fn default() -> Self {
        Self::seed_000()
    }
}

/// The names [`IssuePolicy::preset`] knows.
pub const ISSUE_POLICY_PRESETS: [&str; 2] = ["seed_000", "seed_004"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    preset: Option<String>,
    major_delay_days: Option<u32>,
    major_budget_overrun_percent: Option<u32>,
    major_when_quality_affected: Option<bool>,
    major_when_core_need_hurt: Option<bool>,
    major_kinds: Option<Vec<IssueKind>>,
    escalate_to: Option<Role>,
    client_notice_hours: Option<u32>,
    open_within_minutes: Option<u32>,
    /// Replaces the playbook's moves of the kinds it names; the others keep the preset's.
    playbook: Option<BTreeMap<IssueKind, Vec<String>>>,
}

impl IssuePolicy {
    /// The costume studio (seed 000, R5): major when late > 1 week, over budget > 10%, a quality concern, client
    /// dissatisfaction or a scope dispute; escalates to the sales director. The hurt core need of seed 004 counts
    /// too (it is at least a quality concern).
    pub fn seed_000() -> Self {
        Self {
            major_delay_days: 7,
            major_budget_overrun_percent: Some(10),
            major_when_quality_affected: true,
            major_when_core_need_hurt: true,
            major_kinds: vec![
                IssueKind::ClientDissatisfaction,
                IssueKind::ScopeDispute,
                IssueKind::Quality,
            ],
            escalate_to: Role::SalesDirector,
            client_notice_hours: 24,
            open_within_minutes: 60,
            playbook: Self::seed_playbook(),
        }
    }

    /// R13, seeds 000 and 001: what to do when the client does not answer, production falls behind, or the
    /// client cannot come to a fitting.
    pub fn seed_playbook() -> BTreeMap<IssueKind, Vec<String>> {
        let moves = |items: &[&str]| items.iter().map(|m| m.to_string()).collect::<Vec<_>>();
        let behind = moves(&[
            "Assess the impact on the delivery date",
            "Tell the client before they ask",
            "Offer a rush fee to keep the date",
            "Offer phased delivery",
        ]);
        BTreeMap::from([
            (
                IssueKind::ClientUnresponsive,
                moves(&[
                    "Call the client directly",
                    "Try another channel than the one left unanswered",
                ]),
            ),
            (IssueKind::Scheduling, behind.clone()),
            (IssueKind::MaterialDelay, behind),
            (
                IssueKind::FittingUnavailable,
                moves(&[
                    "Schedule backup fitting dates",
                    "Offer a virtual fitting",
                    "Fit on a stand-in with the client's measurements",
                ]),
            ),
        ])
    }

    /// The playbook's moves for an issue of `kind` (R13); empty when it has none.
    pub fn playbook_for(&self, kind: IssueKind) -> &[String] {
        self.playbook.get(&kind).map(Vec::as_slice).unwrap_or_default()
    }

    /// The follow-up toolkit (seed 004, R36): severe when > 3 days late or the customer's core need is hurt;
    /// nothing else (budget and kind do not count in that seed).
    pub fn seed_004() -> Self {
        Self {
            major_delay_days: 3,
            major_budget_overrun_percent: None,
            major_when_quality_affected: false,
            major_when_core_need_hurt: true,
            major_kinds: vec![],
            ..Self::seed_000()
        }
    }

    /// A named preset ([`ISSUE_POLICY_PRESETS`]).
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "seed_000" => Some(Self::seed_000()),
            "seed_004" => Some(Self::seed_004()),
            _ => None,
        }
    }

    /// Reads a policy from TOML: an optional `preset` (default `seed_000`), then any field to override.
    pub fn from_toml(text: &str) -> Result<Self, DomainError> {
        let file: PolicyFile =
            toml::from_str(text).map_err(|e| DomainError::invalid("issue_policy", e.message().to_string()))?;
        let preset = file.preset.as_deref().unwrap_or("seed_000");
        let mut policy = Self::preset(preset).ok_or_else(|| {
            DomainError::invalid(
                "issue_policy.preset",
                format!("unknown preset '{preset}' (known: {})", ISSUE_POLICY_PRESETS.join(", ")),
            )
        })?;
        if let Some(v) = file.major_delay_days {
            policy.major_delay_days = v;
        }
        if let Some(v) = file.major_budget_overrun_percent {
            policy.major_budget_overrun_percent = Some(v);
        }
        if let Some(v) = file.major_when_quality_affected {
            policy.major_when_quality_affected = v;
        }
        if let Some(v) = file.major_when_core_need_hurt {
            policy.major_when_core_need_hurt = v;
        }
        if let Some(v) = file.major_kinds {
            policy.major_kinds = v;
        }
        if let Some(v) = file.escalate_to {
            policy.escalate_to = v;
        }
        if let Some(v) = file.client_notice_hours {
            policy.client_notice_hours = v;
        }
        if let Some(v) = file.open_within_minutes {
            policy.open_within_minutes = v;
        }
        if let Some(moves) = file.playbook {
            policy.playbook.extend(moves);
        }
        policy.check()?;
        Ok(policy)
    }

    /// Refuses a policy that cannot work: escalation to the customer, clocks of zero.
    pub fn check(&self) -> Result<(), DomainError> {
        let mut p = Problems::new();
        if !self.escalate_to.is_staff() {
            p.add(
                "issue_policy.escalate_to",
                "issues escalate to a staff role, not the customer",
            );
        }
        if self.client_notice_hours == 0 {
            p.add("issue_policy.client_notice_hours", "must be at least 1 hour");
        }
        if self.open_within_minutes == 0 {
            p.add("issue_policy.open_within_minutes", "must be at least 1 minute");
        }
        for (kind, moves) in &self.playbook {
            if moves.iter().any(|m| m.trim().is_empty()) {
                p.add(
                    format!("issue_policy.playbook.{}", kind.as_str()),
                    "a move must say what to do (empty text)",
                );
            }
        }
        p.into_result()
    }

    /// The severity of an issue of `kind` with `impact`, and the reasons that make it major (empty when minor).
    pub fn assess(&self, kind: IssueKind, impact: &Impact) -> Assessment {
        let mut reasons = Vec::new();
        if impact.delay_days > self.major_delay_days {
            reasons.push(format!(
                "a delay of {} days is more than {} days",
                impact.delay_days, self.major_delay_days
            ));
        }
        if let Some(limit) = self.major_budget_overrun_percent
            && impact.budget_overrun_percent > limit
        {
            reasons.push(format!(
                "a budget overrun of {}% is more than {limit}%",
                impact.budget_overrun_percent
            ));
        }
        if self.major_when_quality_affected && impact.quality_affected {
            reasons.push("the quality is affected".into());
        }
        if self.major_when_core_need_hurt && impact.core_need_hurt {
            reasons.push("the customer's core need is hurt".into());
        }
        if self.major_kinds.contains(&kind) {
            reasons.push(format!("{} is always major", kind.as_str()));
        }
        let severity = if reasons.is_empty() {
            Severity::Minor
        } else {
            Severity::Major
        };
        Assessment { severity, reasons }
    }
}

/// What the policy says of an issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Assessment {
    pub severity: Severity,
    /// Why it is major, in words (empty when minor).
    pub reasons: Vec<String>,
}

/// A major issue handed up (R5): to be recorded as an event and sent as an outbox notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Escalation {
    pub to_role: Role,
    pub at: DateTime<Utc>,
    /// Why: the policy's reasons, or the reason given when a person raised the severity.
    pub reasons: Vec<String>,
}

/// Where the issue is in the protocol of R6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IssueStatus {
    /// Opened; impact known; no options yet.
    Open,
    /// 2-3 options with a recommendation are ready to present to the client.
    OptionsProposed,
    /// The client has chosen an option.
    ClientDecided,
    /// Resolved, with its replan recorded. The only state that is not a blocker.
    Resolved,
}

impl IssueStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueStatus::Open => "open",
            IssueStatus::OptionsProposed => "options_proposed",
            IssueStatus::ClientDecided => "client_decided",
            IssueStatus::Resolved => "resolved",
        }
    }
}

/// One way out (R6 step 3), as presented to the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueOption {
    /// E.g. "Wait 1 week for the original fabric; delivery moves to 23 March".
    pub summary: String,
    /// How many days the delivery moves (negative: earlier).
    pub timeline_days: i32,
    /// What it costs the client on top of the order amount (zero when nothing).
    pub cost: Money,
}

/// The client was told of the issue (R10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClientNotice {
    pub told_at: DateTime<Utc>,
    pub channel: Channel,
    pub told_by: UserId,
    pub note: Option<String>,
}

/// The client's choice among the options (R6 step 5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClientDecision {
    /// 1-based number of the chosen option.
    pub chosen_option: usize,
    /// The client's name, as the person who decided.
    pub decided_by: String,
    pub decided_at: DateTime<Utc>,
    /// The decision in the client's words, or where it is (an email's subject, a call note).
    pub evidence: String,
    pub recorded_by: UserId,
}

/// How the issue ended and what it changes (R6 step 5, R36 "result recorded").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Resolution {
    pub summary: String,
    /// Days the open milestones and the delivery shift (negative: earlier).
    pub shift_days: i32,
    /// The new promised date, when it changes.
    pub new_promised_date: Option<NaiveDate>,
    pub changes_budget: bool,
    pub changes_scope: bool,
    pub resolved_at: DateTime<Utc>,
    pub resolved_by: UserId,
}

/// An issue on an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Issue {
    pub id: IssueId,
    pub order_id: OrderId,
    pub kind: IssueKind,
    pub description: String,
    pub impact: Impact,
    /// When someone found out (R36); opening more than the policy's minutes later is a breach.
    pub discovered_at: DateTime<Utc>,
    pub opened_at: DateTime<Utc>,
    pub opened_by: UserId,
    pub opened_as: Role,
    /// When it should be resolved (R34).
    pub expected_resolution_at: DateTime<Utc>,
    /// Who drives it to resolution (R36: a plan with an owner).
    pub owner_id: UserId,
    /// What the policy computes from the current impact.
    pub computed_severity: Severity,
    /// The severity in force: at least the computed one unless lowered with a reason.
    pub severity: Severity,
    /// Why it is major (the policy's reasons and any reason given when raised).
    pub severity_reasons: Vec<String>,
    /// Set once the issue has escalated.
    pub escalation: Option<Escalation>,
    pub status: IssueStatus,
    /// The roles consulted for the options (R6 step 2).
    pub consulted: Vec<Role>,
    pub options: Vec<IssueOption>,
    /// 1-based number of the recommended option (R6 step 4).
    pub recommended_option: Option<usize>,
    pub client_notice: Option<ClientNotice>,
    pub client_decision: Option<ClientDecision>,
    pub resolution: Option<Resolution>,
}

/// What happened to an issue: each becomes an order event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum IssueChange {
    Opened {
        issue: Box<Issue>,
    },
    ImpactChanged {
        impact: Impact,
        computed_severity: Severity,
        severity: Severity,
        severity_reasons: Vec<String>,
        escalation: Option<Escalation>,
    },
    SeverityChanged {
        from: Severity,
        to: Severity,
        reason: String,
        escalation: Option<Escalation>,
    },
    OptionsProposed {
        consulted: Vec<Role>,
        options: Vec<IssueOption>,
        recommended_option: usize,
    },
    ClientTold {
        notice: ClientNotice,
    },
    ClientDecided {
        decision: ClientDecision,
        /// Set when the client had not been recorded as told: deciding is being told, at the decision's time.
        notice: Option<ClientNotice>,
    },
    Resolved {
        resolution: Resolution,
        /// The change order to draft when the resolution changes budget or scope (R6 step 6).
        change_order: Option<NewChangeOrder>,
    },
}

impl IssueChange {
    /// The escalation this change reports, if any (to send to the escalation role).
    pub fn escalation(&self) -> Option<&Escalation> {
        match self {
            IssueChange::Opened { issue } => issue.escalation.as_ref(),
            IssueChange::ImpactChanged { escalation, .. } | IssueChange::SeverityChanged { escalation, .. } => {
                escalation.as_ref()
            }
            _ => None,
        }
    }
}

impl Issue {
    /// Open issues are blockers of their order (R12).
    pub fn is_open(&self) -> bool {
        self.status != IssueStatus::Resolved
    }

    /// The option the client chose, if any.
    pub fn chosen_option(&self) -> Option<&IssueOption> {
        let n = self.client_decision.as_ref()?.chosen_option;
        self.options.get(n.checked_sub(1)?)
    }

    /// Applies a change made by a command of this module.
    pub fn apply(&mut self, change: &IssueChange) {
        match change {
            IssueChange::Opened { issue } => *self = (**issue).clone(),
            IssueChange::ImpactChanged {
                impact,
                computed_severity,
                severity,
                severity_reasons,
                escalation,
            } => {
                self.impact = impact.clone();
                self.computed_severity = *computed_severity;
                self.severity = *severity;
                self.severity_reasons = severity_reasons.clone();
                if escalation.is_some() {
                    self.escalation = escalation.clone();
                }
            }
            IssueChange::SeverityChanged {
                to, reason, escalation, ..
            } => {
                self.severity = *to;
                self.severity_reasons.push(reason.clone());
                if escalation.is_some() {
                    self.escalation = escalation.clone();
                }
            }
            IssueChange::OptionsProposed {
                consulted,
                options,
                recommended_option,
            } => {
                self.consulted = consulted.clone();
                self.options = options.clone();
                self.recommended_option = Some(*recommended_option);
                self.status = IssueStatus::OptionsProposed;
            }
            IssueChange::ClientTold { notice } => self.client_notice = Some(notice.clone()),
            IssueChange::ClientDecided { decision, notice } => {
                self.client_decision = Some(decision.clone());
                if self.client_notice.is_none() {
                    self.client_notice = notice.clone();
                }
                self.status = IssueStatus::ClientDecided;
            }
            IssueChange::Resolved { resolution, .. } => {
                self.resolution = Some(resolution.clone());
                self.status = IssueStatus::Resolved;
            }
        }
    }
}

/// Whether `issue` is still open (a blocker of its order).
pub fn is_open(issue: &Issue) -> bool {
    issue.is_open()
}

/// An issue as reported through the API.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewIssue {
    pub kind: IssueKind,
    pub description: String,
    #[serde(default)]
    pub impact: Impact,
    /// When it was found (default: now). Not in the future.
    #[serde(default)]
    pub discovered_at: Option<DateTime<Utc>>,
    /// When it should be resolved; after the discovery.
    pub expected_resolution_at: DateTime<Utc>,
    /// Who drives it (the caller checks that this person is on the order).
    pub owner_id: UserId,
}

/// Longest accepted delay (ten years).
const MAX_DELAY_DAYS: u32 = 3650;
/// Largest accepted budget overrun in percent.
const MAX_OVERRUN_PERCENT: u32 = 10_000;
/// Largest timeline shift of an option or a resolution, in days.
const MAX_SHIFT_DAYS: i32 = 3650;
/// Clock tolerance for times given by people ("not in the future").
const CLOCK_SKEW: TimeDelta = TimeDelta::minutes(5);

fn staff_only(acting: Acting, action: &str) -> Result<(), DomainError> {
    if acting.role.is_staff() {
        Ok(())
    } else {
        Err(DomainError::RoleNotAllowed {
            role: acting.role,
            action: action.into(),
        })
    }
}

fn not_resolved(issue: &Issue, action: &str) -> Result<(), DomainError> {
    if issue.is_open() {
        Ok(())
    } else {
        Err(DomainError::Conflict(format!(
            "the issue is resolved: it cannot {action}"
        )))
    }
}

fn check_impact(p: &mut Problems, impact: &Impact) {
    if impact.delay_days > MAX_DELAY_DAYS {
        p.add("impact.delay_days", format!("must be at most {MAX_DELAY_DAYS}"));
    }
    if impact.budget_overrun_percent > MAX_OVERRUN_PERCENT {
        p.add(
            "impact.budget_overrun_percent",
            format!("must be at most {MAX_OVERRUN_PERCENT}"),
        );
    }
}

/// Opens an issue on `order_id` (R5, R36). Any staff role may; the escalation, if the policy judges the issue
/// major, is in the returned issue (`escalation`) and in [`IssueChange::escalation`].
pub fn open(
    id: IssueId,
    order_id: OrderId,
    input: NewIssue,
    policy: &IssuePolicy,
    acting: Acting,
    now: DateTime<Utc>,
) -> Result<IssueChange, DomainError> {
    staff_only(acting, "open issues")?;
    let mut p = Problems::new();
    p.text("description", &input.description, MAX_TEXT);
    check_impact(&mut p, &input.impact);
    let discovered_at = input.discovered_at.unwrap_or(now);
    if discovered_at > now + CLOCK_SKEW {
        p.add("discovered_at", "must not be in the future");
    }
    if input.expected_resolution_at <= discovered_at {
        p.add("expected_resolution_at", "must be after the issue was discovered");
    }
    p.into_result()?;
    let assessment = policy.assess(input.kind, &input.impact);
    let escalation = (assessment.severity == Severity::Major).then(|| Escalation {
        to_role: policy.escalate_to,
        at: now,
        reasons: assessment.reasons.clone(),
    });
    Ok(IssueChange::Opened {
        issue: Box::new(Issue {
            id,
            order_id,
            kind: input.kind,
            description: input.description,
            impact: input.impact,
            discovered_at: discovered_at.min(now),
            opened_at: now,
            opened_by: acting.user,
            opened_as: acting.role,
            expected_resolution_at: input.expected_resolution_at,
            owner_id: input.owner_id,
            computed_severity: assessment.severity,
            severity: assessment.severity,
            severity_reasons: assessment.reasons,
            escalation,
            status: IssueStatus::Open,
            consulted: vec![],
            options: vec![],
            recommended_option: None,
            client_notice: None,
            client_decision: None,
            resolution: None,
        }),
    })
}

/// Records a new estimate of the impact. The severity is recomputed but never lowered by this (see
/// [`set_severity`]); an issue that becomes major escalates now if it had not already.
pub fn change_impact(
    current: &Issue,
    impact: Impact,
    policy: &IssuePolicy,
    acting: Acting,
    now: DateTime<Utc>,
) -> Result<IssueChange, DomainError> {
    staff_only(acting, "change an issue's impact")?;
    not_resolved(current, "change its impact")?;
    let mut p = Problems::new();
    check_impact(&mut p, &impact);
    p.into_result()?;
    if impact == current.impact {
        return Err(DomainError::Conflict("the impact is unchanged".into()));
    }
    let assessment = policy.assess(current.kind, &impact);
    let severity = current.severity.max(assessment.severity);
    let mut reasons = assessment.reasons;
    if severity == Severity::Major && reasons.is_empty() {
        reasons = current.severity_reasons.clone();
    }
    let escalation = (severity == Severity::Major && current.escalation.is_none()).then(|| Escalation {
        to_role: policy.escalate_to,
        at: now,
        reasons: reasons.clone(),
    });
    Ok(IssueChange::ImpactChanged {
        impact,
        computed_severity: assessment.severity,
        severity,
        severity_reasons: reasons,
        escalation,
    })
}

/// A person's change of severity, with the reason.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeverityChange {
    pub severity: Severity,
    pub reason: String,
}

/// Raises or lowers the severity by hand. Raising: any staff, with a reason; a raise to major escalates.
/// Lowering: only the policy's escalation role, with a reason, and never below what the policy computes from the
/// current impact (the impact is corrected with [`change_impact`] first).
pub fn set_severity(
    current: &Issue,
    input: SeverityChange,
    policy: &IssuePolicy,
    acting: Acting,
    now: DateTime<Utc>,
) -> Result<IssueChange, DomainError> {
    staff_only(acting, "change an issue's severity")?;
    not_resolved(current, "change its severity")?;
    let mut p = Problems::new();
    p.text("reason", &input.reason, MAX_TEXT);
    p.into_result()?;
    let (from, to) = (current.severity, input.severity);
    if to == from {
        return Err(DomainError::Conflict(format!("the issue is already {}", to.as_str())));
    }
    if to < from {
        if acting.role != policy.escalate_to {
            return Err(DomainError::RoleNotAllowed {
                role: acting.role,
                action: format!("lower an issue's severity (only {} may)", policy.escalate_to),
            });
        }
        if to < current.computed_severity {
            return Err(DomainError::Conflict(format!(
                "the impact makes this issue {} ({}): correct the impact before lowering it",
                current.computed_severity.as_str(),
                current.severity_reasons.join("; ")
            )));
        }
    }
    let escalation = (to == Severity::Major && current.escalation.is_none()).then(|| Escalation {
        to_role: policy.escalate_to,
        at: now,
        reasons: vec![input.reason.clone()],
    });
    Ok(IssueChange::SeverityChanged {
        from,
        to,
        reason: input.reason,
        escalation,
    })
}

/// Options worked out with the affected function (R6 steps 2-4).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposedOptions {
    /// The functions consulted (e.g. design, operations): at least one.
    pub consulted: Vec<Role>,
    /// Two or three options.
    pub options: Vec<IssueOption>,
    /// 1-based number of the recommended option.
    pub recommended_option: usize,
}

/// Records 2-3 options and the recommendation (R6). Allowed while no client decision is recorded: proposing
/// again replaces the options.
pub fn propose_options(
    current: &Issue,
    input: ProposedOptions,
    acting: Acting,
    _now: DateTime<Utc>,
) -> Result<IssueChange, DomainError> {
    staff_only(acting, "propose options for an issue")?;
    if !matches!(current.status, IssueStatus::Open | IssueStatus::OptionsProposed) {
        return Err(DomainError::Conflict(format!(
            "the issue is {}: options can be proposed only before the client decides",
            current.status.as_str()
        )));
    }
    let mut p = Problems::new();
    if input.consulted.is_empty() {
        p.add(
            "consulted",
            "name the functions consulted (R6: consult the affected function)",
        );
    }
    for (i, role) in input.consulted.iter().enumerate() {
        if !role.is_staff() {
            p.add(format!("consulted[{i}]"), "must be a staff role");
        }
    }
    let n = input.options.len();
    if !(2..=3).contains(&n) {
        p.add("options", format!("give 2 or 3 options (got {n})"));
    }
    for (i, o) in input.options.iter().enumerate() {
        p.text(&format!("options[{i}].summary"), &o.summary, MAX_TEXT);
        if o.timeline_days.abs() > MAX_SHIFT_DAYS {
            p.add(
                format!("options[{i}].timeline_days"),
                format!("must be within {MAX_SHIFT_DAYS} days"),
            );
        }
        if let Some(first) = input.options.first()
            && o.cost.currency != first.cost.currency
        {
            p.add(format!("options[{i}].cost"), "all options must be in the same currency");
        }
    }
    if input.recommended_option == 0 || input.recommended_option > n {
        p.add(
            "recommended_option",
            format!("must be the number of one of the options (1 to {n})"),
        );
    }
    p.into_result()?;
    Ok(IssueChange::OptionsProposed {
        consulted: input.consulted,
        options: input.options,
        recommended_option: input.recommended_option,
    })
}

/// The client was told (R10).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientToldInput {
    /// When (default: now). Not in the future, not before the issue was discovered.
    #[serde(default)]
    pub told_at: Option<DateTime<Utc>>,
    pub channel: Channel,
    #[serde(default)]
    pub note: Option<String>,
}

/// Records that the client was told of the issue (R10). Once: telling again is a follow-up, not this.
pub fn record_client_told(
    current: &Issue,
    input: ClientToldInput,
    acting: Acting,
    now: DateTime<Utc>,
) -> Result<IssueChange, DomainError> {
    staff_only(acting, "record that the client was told of an issue")?;
    if current.client_notice.is_some() {
        return Err(DomainError::Conflict(
            "the client has already been told of this issue".into(),
        ));
    }
    let told_at = input.told_at.unwrap_or(now);
    let mut p = Problems::new();
    p.optional_text("note", input.note.as_deref(), MAX_TEXT);
    check_past_time(&mut p, "told_at", told_at, current, now);
    p.into_result()?;
    Ok(IssueChange::ClientTold {
        notice: ClientNotice {
            told_at,
            channel: input.channel,
            told_by: acting.user,
            note: input.note,
        },
    })
}

fn check_past_time(p: &mut Problems, field: &str, at: DateTime<Utc>, issue: &Issue, now: DateTime<Utc>) {
    if at > now + CLOCK_SKEW {
        p.add(field, "must not be in the future");
    } else if at < issue.discovered_at {
        p.add(field, "must not be before the issue was discovered");
    }
}

/// The client's decision as recorded by staff.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientDecisionInput {
    /// 1-based number of the chosen option.
    pub chosen_option: usize,
    /// The client's name.
    pub decided_by: String,
    /// When (default: now).
    #[serde(default)]
    pub decided_at: Option<DateTime<Utc>>,
    /// The decision in the client's words, or where it is recorded.
    pub evidence: String,
    /// How the decision came (used as the notice's channel when the client was not yet recorded as told).
    pub channel: Channel,
}

/// Records the client's choice among the proposed options (R6 step 5).
pub fn record_client_decision(
    current: &Issue,
    input: ClientDecisionInput,
    acting: Acting,
    now: DateTime<Utc>,
) -> Result<IssueChange, DomainError> {
    staff_only(acting, "record a client's decision on an issue")?;
    match current.status {
        IssueStatus::OptionsProposed => {}
        IssueStatus::Open => {
            return Err(DomainError::Conflict(
                "no options have been proposed yet: propose 2-3 options with a recommendation first".into(),
            ));
        }
        status => {
            return Err(DomainError::Conflict(format!(
                "the issue is {}: the client's decision is already recorded",
                status.as_str()
            )));
        }
    }
    let decided_at = input.decided_at.unwrap_or(now);
    let mut p = Problems::new();
    p.text("decided_by", &input.decided_by, MAX_NAME);
    p.text("evidence", &input.evidence, MAX_TEXT);
    check_past_time(&mut p, "decided_at", decided_at, current, now);
    let n = current.options.len();
    if input.chosen_option == 0 || input.chosen_option > n {
        p.add(
            "chosen_option",
            format!("must be the number of one of the options (1 to {n})"),
        );
    }
    p.into_result()?;
    let notice = current.client_notice.is_none().then(|| ClientNotice {
        told_at: decided_at,
        channel: input.channel,
        told_by: acting.user,
        note: Some("told when the client decided".into()),
    });
    Ok(IssueChange::ClientDecided {
        decision: ClientDecision {
            chosen_option: input.chosen_option,
            decided_by: input.decided_by,
            decided_at,
            evidence: input.evidence,
            recorded_by: acting.user,
        },
        notice,
    })
}

/// The resolution as entered.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolutionInput {
    pub summary: String,
    /// Days to shift the open milestones and delivery (default: the chosen option's timeline effect, or 0).
    #[serde(default)]
    pub shift_days: Option<i32>,
    #[serde(default)]
    pub new_promised_date: Option<NaiveDate>,
    #[serde(default)]
    pub changes_budget: bool,
    #[serde(default)]
    pub changes_scope: bool,
    /// The items of the change order to open (default: the chosen option with its cost).
    #[serde(default)]
    pub change_items: Vec<ChangeItem>,
}

/// Resolves the issue with its replan (R6 step 5, R36). A major issue needs the client's decision first; a
/// minor one may be resolved at once. When the resolution changes budget or scope, or the chosen option costs
/// money, the change carries a [`NewChangeOrder`] seed to draft (R6 step 6).
pub fn resolve(
    current: &Issue,
    input: ResolutionInput,
    acting: Acting,
    now: DateTime<Utc>,
) -> Result<IssueChange, DomainError> {
    staff_only(acting, "resolve issues")?;
    not_resolved(current, "be resolved again")?;
    if current.severity == Severity::Major && current.client_decision.is_none() {
        return Err(DomainError::Conflict(
            "a major issue is resolved only after the client has chosen among 2-3 options (R6)".into(),
        ));
    }
    let chosen = current.chosen_option();
    let shift_days = input.shift_days.unwrap_or(chosen.map_or(0, |o| o.timeline_days));
    let mut p = Problems::new();
    p.text("summary", &input.summary, MAX_TEXT);
    if shift_days.abs() > MAX_SHIFT_DAYS {
        p.add("shift_days", format!("must be within {MAX_SHIFT_DAYS} days"));
    }
    if let Some(d) = input.new_promised_date
        && d < now.date_naive()
    {
        p.add("new_promised_date", "must not be in the past");
    }
    for (i, item) in input.change_items.iter().enumerate() {
        p.text(&format!("change_items[{i}].description"), &item.description, MAX_TEXT);
    }
    p.into_result()?;
    let costs = chosen.is_some_and(|o| o.cost.minor > 0);
    let changes_budget = input.changes_budget || costs || !input.change_items.is_empty();
    let change_order = (changes_budget || input.changes_scope).then(|| {
        let items = if !input.change_items.is_empty() {
            input.change_items.clone()
        } else {
            chosen
                .map(|o| ChangeItem {
                    description: o.summary.clone(),
                    amount: o.cost.clone(),
                })
                .into_iter()
                .collect()
        };
        NewChangeOrder {
            reason: format!("Issue: {}\nResolution: {}", current.description, input.summary),
            kinds: vec![],
            items,
            origin_issue: Some(current.id),
        }
    });
    Ok(IssueChange::Resolved {
        resolution: Resolution {
            summary: input.summary,
            shift_days,
            new_promised_date: input.new_promised_date,
            changes_budget,
            changes_scope: input.changes_scope,
            resolved_at: now,
            resolved_by: acting.user,
        },
        change_order,
    })
}

/// A clock of an issue that ran out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Breach {
    /// R10: the client was not told within the policy's hours of opening (told late, or not yet and overdue).
    ClientNotTold {
        due_at: DateTime<Utc>,
        /// When the client was told, if late.
        told_at: Option<DateTime<Utc>>,
    },
    /// R36: the issue was opened more than the policy's minutes after its discovery.
    OpenedLate {
        discovered_at: DateTime<Utc>,
        opened_at: DateTime<Utc>,
        allowed_minutes: u32,
    },
    /// R34: still open after its expected resolution time.
    ResolutionOverdue { expected_resolution_at: DateTime<Utc> },
}

impl Breach {
    /// The rule the breach is of, e.g. `R10`.
    pub fn rule(&self) -> &'static str {
        match self {
            Breach::ClientNotTold { .. } => "R10",
            Breach::OpenedLate { .. } => "R36",
            Breach::ResolutionOverdue { .. } => "R34",
        }
    }
}

/// The clocks of `issue` that have run out at `now`. A breach stays a breach: an issue opened late or a client
/// told late is reported even after the fact (the query `breached=true` wants them).
pub fn breaches(issue: &Issue, policy: &IssuePolicy, now: DateTime<Utc>) -> Vec<Breach> {
    let mut out = Vec::new();
    let allowed_open = TimeDelta::minutes(i64::from(policy.open_within_minutes));
    if issue.opened_at - issue.discovered_at > allowed_open {
        out.push(Breach::OpenedLate {
            discovered_at: issue.discovered_at,
            opened_at: issue.opened_at,
            allowed_minutes: policy.open_within_minutes,
        });
    }
    let due_at = issue.opened_at + TimeDelta::hours(i64::from(policy.client_notice_hours));
    match &issue.client_notice {
        Some(n) if n.told_at > due_at => out.push(Breach::ClientNotTold {
            due_at,
            told_at: Some(n.told_at),
        }),
        None if now > due_at => out.push(Breach::ClientNotTold { due_at, told_at: None }),
        _ => {}
    }
    if issue.is_open() && now > issue.expected_resolution_at {
        out.push(Breach::ResolutionOverdue {
            expected_resolution_at: issue.expected_resolution_at,
        });
    }
    out
}
