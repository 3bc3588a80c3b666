//! The payment schedule and dunning (R8, R9, R15, and the extra deposit of R7).
//!
//! - A [`PaymentTemplate`] (part of a workflow, written in TOML) says how an order's amount is split into
//!   installments and what makes each one due: the contract signed, a milestone completed, delivery, a date.
//! - A [`PaymentSchedule`] is that split for one order in exact money, with its invoices and payments. Its
//!   installments always sum to the order amount, the rounding remainder on the last one, also after change
//!   orders ([`PaymentSchedule::apply_change_order`], [`PaymentSchedule::recompute`]).
//! - [`dunning_actions`] says what the [`DunningPolicy`] wants done today (invoice, reminders, pause,
//!   escalation), each step once per installment by its dedupe key; [`production_pause`] says whether
//!   production work is paused for an overdue installment.
//!
//! Pure: callers pass `today` (the date in the organisation's time zone, see [`local_today`]) and loaded state,
//! and get back values or typed refusals. A refused command changes nothing.

use crate::error::{DomainError, MAX_NAME, Problems};
use crate::ids::OrderId;
use crate::money::Money;
use crate::role::Role;
use crate::workflow::Workflow;
use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use utoipa::ToSchema;

// ---------------------------------------------------------------------------------------------------------
// Shares
// ---------------------------------------------------------------------------------------------------------

/// A part of a whole in basis points (`5000` is 50%). Written as a percentage with at most two decimals:
/// `"50%"`, `"12.5%"`, `"33.33%"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ToSchema)]
#[schema(value_type = String, example = "50%")]
pub struct Share(u32);

impl Share {
    /// 100%.
    pub const WHOLE: Share = Share(10_000);

    pub const fn from_basis_points(basis_points: u32) -> Share {
        Share(basis_points)
    }

    /// A whole percentage: `Share::percent(25)` is 25%.
    pub const fn percent(percent: u32) -> Share {
        Share(percent * 100)
    }

    pub const fn basis_points(self) -> u32 {
        self.0
    }

    /// This share of an amount in minor units, rounded toward zero.
    pub fn of(self, minor: i64) -> i64 {
        // |minor| * 10_000-ish fits in i128; the result is at most |minor| * share, which fits back when the
        // share is at most 100%; larger shares saturate instead of wrapping.
        let value = i128::from(minor) * i128::from(self.0) / 10_000;
        i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
    }
}

impl fmt::Display for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / 100, self.0 % 100);
        if frac == 0 {
            write!(f, "{whole}%")
        } else if frac % 10 == 0 {
            write!(f, "{whole}.{}%", frac / 10)
        } else {
            write!(f, "{whole}.{frac:02}%")
        }
    }
}

impl FromStr for Share {
    type Err = String;
    fn from_str(text: &str) -> Result<Share, String> {
        let bad = || format!("'{text}' must be a percentage with at most two decimals, such as \"50%\" or \"12.5%\"");
        let number = text.trim().strip_suffix('%').ok_or_else(bad)?.trim_end();
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty()
            || whole.len() > 6
            || frac.len() > 2
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let whole: u32 = whole.parse().map_err(|_| bad())?;
        let frac: u32 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<2}").parse().map_err(|_| bad())?
        };
        Ok(Share(whole * 100 + frac))
    }
}

impl Serialize for Share {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Share {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------------------
// Templates
// ---------------------------------------------------------------------------------------------------------

/// What makes an installment due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// The contract is signed (the deposit).
    AtSigning,
    /// A milestone of the order's plan is completed, named by its key in the workflow (`first_fitting`).
    MilestoneCompleted { milestone: String },
    /// The goods are delivered.
    AtDelivery,
    /// A calendar date agreed with the client (also: the day work on a change order starts, for its deposit).
    OnDate { date: NaiveDate },
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::AtSigning => f.write_str("at contract signing"),
            Trigger::MilestoneCompleted { milestone } => write!(f, "when milestone {milestone} is completed"),
            Trigger::AtDelivery => f.write_str("at delivery"),
            Trigger::OnDate { date } => write!(f, "on {date}"),
        }
    }
}

/// One installment of a template: its name, its share of the order amount and what makes it due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallmentTemplate {
    /// In the users' words: "Deposit", "Mid-project", "Final".
    pub name: String,
    pub share: Share,
    pub trigger: Trigger,
    /// Payment terms: the installment is due this many days after its trigger (0: on the day).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub days_after: u32,
}

fn is_zero(days: &u32) -> bool {
    *days == 0
}

/// How a workflow splits an order's amount into installments. In TOML:
///
/// ```toml
/// [[installments]]
/// name = "Deposit"
/// share = "50%"
/// trigger = { kind = "at_signing" }
///
/// [[installments]]
/// name = "Mid-project"
/// share = "25%"
/// trigger = { kind = "milestone_completed", milestone = "first_fitting" }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentTemplate {
    pub installments: Vec<InstallmentTemplate>,
}

impl PaymentTemplate {
    /// R8, the costume studio: 50% at contract signing, 25% when the first fitting is completed, 25% at delivery.
    pub fn custom_production() -> PaymentTemplate {
        PaymentTemplate {
            installments: vec![
                installment("Deposit", 50, Trigger::AtSigning),
                installment(
                    "Mid-project",
                    25,
                    Trigger::MilestoneCompleted {
                        milestone: "first_fitting".into(),
                    },
                ),
                installment("Final", 25, Trigger::AtDelivery),
            ],
        }
    }

    /// The marketplace: a 30% deposit when the order is signed (confirmed), the 70% balance when production is
    /// complete (it completes as the part ships).
    pub fn make_to_order() -> PaymentTemplate {
        PaymentTemplate {
            installments: vec![
                installment("Deposit", 30, Trigger::AtSigning),
                installment(
                    "Balance",
                    70,
                    Trigger::MilestoneCompleted {
                        milestone: "production".into(),
                    },
                ),
            ],
        }
    }

    /// Standard supply: the whole amount at delivery (payment terms can be added with `days_after`).
    pub fn standard() -> PaymentTemplate {
        PaymentTemplate {
            installments: vec![installment("Payment", 100, Trigger::AtDelivery)],
        }
    }

    /// The template of a bundled workflow preset, by the workflow's id.
    pub fn preset(workflow_id: &str) -> Option<PaymentTemplate> {
        match workflow_id {
            "custom-production" => Some(Self::custom_production()),
            "make-to-order" => Some(Self::make_to_order()),
            "standard" => Some(Self::standard()),
            _ => None,
        }
    }

    /// Parses and checks a template written in TOML (a list of `[[installments]]`).
    pub fn from_toml(text: &str) -> Result<PaymentTemplate, DomainError> {
        let template: PaymentTemplate = toml::from_str(text)
            .map_err(|e| DomainError::invalid("payment_template", e.to_string().trim_end().replace('\n', " ")))?;
        template.check()?;
        Ok(template)
    }

    /// At least one installment, every share more than zero, shares summing to exactly 100%, names given.
    pub fn check(&self) -> Result<(), DomainError> {
        let mut problems = Problems::new();
        if self.installments.is_empty() {
            problems.add("installments", "must have at least one installment");
        }
        let mut total: u64 = 0;
        for (i, item) in self.installments.iter().enumerate() {
            problems.text(&format!("installments[{i}].name"), &item.name, MAX_NAME);
            if item.share.0 == 0 {
                problems.add(format!("installments[{i}].share"), "must be more than 0%");
            }
            total += u64::from(item.share.0);
            if let Trigger::MilestoneCompleted { milestone } = &item.trigger
                && milestone.trim().is_empty()
            {
                problems.add(format!("installments[{i}].trigger.milestone"), "must name a milestone");
            }
        }
        if !self.installments.is_empty() && total != u64::from(Share::WHOLE.0) {
            let shown = u32::try_from(total).map_or_else(|_| "far more than 100%".into(), |t| Share(t).to_string());
            problems.add("installments", format!("shares must sum to 100% (they sum to {shown})"));
        }
        problems.into_result()
    }

    /// Every milestone a trigger names exists in the workflow.
    pub fn check_milestones(&self, workflow: &Workflow) -> Result<(), DomainError> {
        let mut problems = Problems::new();
        for (i, item) in self.installments.iter().enumerate() {
            if let Trigger::MilestoneCompleted { milestone } = &item.trigger
                && workflow.milestone_plan(milestone).is_none()
            {
                problems.add(
                    format!("installments[{i}].trigger.milestone"),
                    format!("workflow {} has no milestone '{milestone}'", workflow.id),
                );
            }
        }
        problems.into_result()
    }
}

fn installment(name: &str, percent: u32, trigger: Trigger) -> InstallmentTemplate {
    InstallmentTemplate {
        name: name.into(),
        share: Share::percent(percent),
        trigger,
        days_after: 0,
    }
}

// ---------------------------------------------------------------------------------------------------------
// The schedule of one order
// ---------------------------------------------------------------------------------------------------------

/// Where an installment came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InstallmentKind {
    /// One of the payment template's installments.
    Template,
    /// The extra deposit of an approved change order (R7): a fixed amount, due before work on the change starts.
    ChangeOrderDeposit { change_order: String },
    /// Added when the order amount rose after every other installment was paid.
    Balance,
}

/// An invoice sent for an installment. The amount is the installment's amount when it was issued: if a change
/// order changes the installment, the invoice is out of date and a corrected one is due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Invoice {
    pub number: String,
    pub issued_on: NaiveDate,
    pub amount: Money,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    BankTransfer,
    Card,
    Cash,
    Cheque,
    Other,
}

/// A payment received (or the part of one applied to an installment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Payment {
    pub amount: Money,
    pub paid_on: NaiveDate,
    pub method: PaymentMethod,
    /// The bank reference, card slip or receipt number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// Where an installment stands. "Overdue" is not a state: it is derived from the due date and `today`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InstallmentState {
    Scheduled,
    Invoiced,
    PartiallyPaid,
    Paid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Installment {
    /// 1..n, stable: an installment added later (a change-order deposit, a balance) gets the next number.
    pub number: u32,
    pub name: String,
    pub kind: InstallmentKind,
    /// The template share it was made from: its weight when the order amount changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<Share>,
    pub trigger: Trigger,
    #[serde(default)]
    pub days_after: u32,
    pub amount: Money,
    /// Unknown until the trigger happens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_on: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice: Option<Invoice>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payments: Vec<Payment>,
}

impl Installment {
    pub fn paid_minor(&self) -> i64 {
        self.payments.iter().map(|p| p.amount.minor).sum()
    }

    pub fn outstanding_minor(&self) -> i64 {
        self.amount.minor - self.paid_minor()
    }

    pub fn paid(&self) -> Money {
        self.money(self.paid_minor())
    }

    pub fn outstanding(&self) -> Money {
        self.money(self.outstanding_minor())
    }

    fn money(&self, minor: i64) -> Money {
        Money {
            currency: self.amount.currency.clone(),
            minor,
        }
    }

    /// Nothing is owed on it (an installment of zero is paid).
    pub fn is_paid(&self) -> bool {
        self.outstanding_minor() <= 0
    }

    pub fn state(&self) -> InstallmentState {
        if self.is_paid() {
            InstallmentState::Paid
        } else if self.paid_minor() > 0 {
            InstallmentState::PartiallyPaid
        } else if self.invoice.is_some() {
            InstallmentState::Invoiced
        } else {
            InstallmentState::Scheduled
        }
    }

    /// Days since the due date while something is owed (negative before it); `None` when paid or not yet due.
    pub fn days_past_due(&self, today: NaiveDate) -> Option<i64> {
        let due = self.due_on?;
        (!self.is_paid()).then(|| (today - due).num_days())
    }

    /// Days overdue (1 on the day after the due date) while something is owed.
    pub fn days_overdue(&self, today: NaiveDate) -> Option<i64> {
        self.days_past_due(today).filter(|d| *d > 0)
    }

    /// The invoice matches the installment's current amount.
    pub fn invoice_is_current(&self) -> bool {
        self.invoice.as_ref().is_some_and(|i| i.amount == self.amount)
    }

    /// The day the installment became paid in full (the date of the payment that completed it).
    pub fn paid_in_full_on(&self) -> Option<NaiveDate> {
        if !self.is_paid() {
            return None;
        }
        let mut paid = 0;
        for payment in &self.payments {
            paid += payment.amount.minor;
            if paid >= self.amount.minor {
                return Some(payment.paid_on);
            }
        }
        None
    }
}

/// A change order applied to the schedule (its id or number, and the order amount it set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppliedChange {
    pub change_order: String,
    pub amount_before: Money,
    pub amount_after: Money,
    pub approved_on: NaiveDate,
    /// The number of the extra deposit installment it added, if it added one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deposit_installment: Option<u32>,
}

/// An approved change order, as the schedule needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovedChange {
    /// The change order's id or number (applying the same one twice is refused).
    pub change_order: String,
    /// The order amount after the change.
    pub new_amount: Money,
    pub approved_on: NaiveDate,
    /// When work on the change starts: the extra deposit is due then (default: the approval day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_starts_on: Option<NaiveDate>,
}

/// R7: when the cumulative cost increase over the original amount exceeds `threshold`, a change order that
/// raises the amount adds an extra deposit of `deposit` of its own increase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ExtraDepositPolicy {
    /// Share of the original amount the cumulative increase must exceed (20%).
    pub threshold: Share,
    /// Share of the change's increase that is due as a deposit (50%).
    pub deposit: Share,
}

impl Default for ExtraDepositPolicy {
    fn default() -> Self {
        ExtraDepositPolicy {
            threshold: Share::percent(20),
            deposit: Share::percent(50),
        }
    }
}

impl ExtraDepositPolicy {
    /// The deposit is at most the whole change.
    pub fn check(&self) -> Result<(), DomainError> {
        if self.deposit > Share::WHOLE {
            return Err(DomainError::invalid("deposit", "must be at most 100%"));
        }
        Ok(())
    }

    /// The extra deposit (minor units) for a change from `amount_before` to `amount_after` on an order whose
    /// original amount was `original`; `None` when the change lowers the amount or the cumulative increase
    /// (`amount_after - original`, net of earlier decreases) does not exceed the threshold. Rounded half up.
    pub fn deposit_for(&self, original: i64, amount_before: i64, amount_after: i64) -> Option<i64> {
        let increase = i128::from(amount_after) - i128::from(amount_before);
        let cumulative = i128::from(amount_after) - i128::from(original);
        if increase <= 0 || cumulative * 10_000 <= i128::from(self.threshold.0) * i128::from(original) {
            return None;
        }
        // Rounded half up to the minor unit, as the change order's own computation does.
        let deposit = (increase * i128::from(self.deposit.0) + 5_000).div_euclid(10_000);
        i64::try_from(deposit).ok().filter(|d| *d > 0)
    }
}

/// Part of a payment applied to one installment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Allocation {
    pub installment: u32,
    pub amount: Money,
}

/// The payment schedule of one order. Change it only through its methods: they keep the installments summing
/// to `amount` and refuse (changing nothing) what would break that.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentSchedule {
    pub order_id: OrderId,
    /// The order amount; the installments sum to it exactly.
    pub amount: Money,
    /// The amount when the schedule was made: the base of the extra-deposit threshold.
    pub original_amount: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_signed_on: Option<NaiveDate>,
    /// Set when the order is cancelled: no more payments, invoices or dunning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_on: Option<NaiveDate>,
    pub installments: Vec<Installment>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub change_orders: Vec<AppliedChange>,
    /// The dedupe keys of the dunning steps done (each happens once: [`dunning_actions`]).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub dunning_done: BTreeSet<String>,
}

/// What happened to an order's payment schedule: each becomes an order event, and [`PaymentSchedule::apply`]
/// replays it. Deciding applies it to a copy first, so a change that the schedule refuses is never recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PaymentChange {
    ContractSigned {
        on: NaiveDate,
    },
    MilestoneCompleted {
        milestone: String,
        on: NaiveDate,
    },
    Delivered {
        on: NaiveDate,
    },
    Cancelled {
        on: NaiveDate,
    },
    PaymentRecorded {
        installment: Option<u32>,
        payment: Payment,
    },
    ChangeOrderApplied {
        change: ApprovedChange,
        extra_deposit: Option<Money>,
    },
    /// A dunning step done on `on` (R8, R9); an invoice step also records the invoice.
    Dunning {
        action: DunningAction,
        on: NaiveDate,
        invoice_number: Option<String>,
    },
}

impl PaymentSchedule {
    /// Applies a change (see [`PaymentChange`]); refuses, changing nothing, what the schedule refuses.
    pub fn apply(&mut self, change: &PaymentChange) -> Result<(), DomainError> {
        let mut next = self.clone();
        match change {
            PaymentChange::ContractSigned { on } => {
                next.contract_signed(*on)?;
            }
            PaymentChange::MilestoneCompleted { milestone, on } => {
                next.milestone_completed(milestone, *on);
            }
            PaymentChange::Delivered { on } => {
                next.delivered(*on);
            }
            PaymentChange::Cancelled { on } => next.cancel(*on),
            PaymentChange::PaymentRecorded { installment, payment } => {
                next.record_payment(*installment, payment.clone())?;
            }
            PaymentChange::ChangeOrderApplied { change, extra_deposit } => {
                next.apply_change_order_with_deposit(change, extra_deposit.clone())?;
            }
            PaymentChange::Dunning {
                action,
                on,
                invoice_number,
            } => {
                if let Some(number) = invoice_number {
                    next.record_invoice(action.installment, number, *on)?;
                }
                next.dunning_done.insert(action.dedupe_key.clone());
            }
        }
        *self = next;
        Ok(())
    }

    /// The schedule of a new order: the template's shares of `amount`, rounded down, the remainder on the last
    /// installment. Installments due on a date get their due date now; the others when their trigger happens.
    pub fn from_template(
        order_id: OrderId,
        amount: Money,
        template: &PaymentTemplate,
    ) -> Result<PaymentSchedule, DomainError> {
        template.check()?;
        if amount.minor < 0 {
            return Err(DomainError::invalid("amount", "must not be negative"));
        }
        let weights: Vec<(u32, i64)> = template.installments.iter().map(|i| (i.share.0, 0)).collect();
        let amounts =
            spread(amount.minor, &weights).ok_or_else(|| DomainError::invalid("amount", "cannot be split"))?;
        let installments = template
            .installments
            .iter()
            .zip(amounts)
            .enumerate()
            .map(|(i, (item, minor))| Installment {
                number: i as u32 + 1,
                name: item.name.clone(),
                kind: InstallmentKind::Template,
                share: Some(item.share),
                trigger: item.trigger.clone(),
                days_after: item.days_after,
                amount: Money {
                    currency: amount.currency.clone(),
                    minor,
                },
                due_on: match &item.trigger {
                    Trigger::OnDate { date } => date.checked_add_days(Days::new(item.days_after.into())),
                    _ => None,
                },
                invoice: None,
                payments: Vec::new(),
            })
            .collect();
        Ok(PaymentSchedule {
            order_id,
            original_amount: amount.clone(),
            amount,
            contract_signed_on: None,
            cancelled_on: None,
            installments,
            change_orders: Vec::new(),
            dunning_done: BTreeSet::new(),
        })
    }

    pub fn currency(&self) -> &str {
        &self.amount.currency
    }

    fn money(&self, minor: i64) -> Money {
        Money {
            currency: self.amount.currency.clone(),
            minor,
        }
    }

    pub fn installment(&self, number: u32) -> Option<&Installment> {
        self.installments.iter().find(|i| i.number == number)
    }

    /// The sum of the installments (equal to `amount`; exposed so that callers and tests can check it).
    pub fn installments_total(&self) -> Money {
        self.money(self.installments.iter().map(|i| i.amount.minor).sum())
    }

    pub fn paid(&self) -> Money {
        self.money(self.installments.iter().map(Installment::paid_minor).sum())
    }

    pub fn outstanding(&self) -> Money {
        self.money(self.installments.iter().map(Installment::outstanding_minor).sum())
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled_on.is_some()
    }

    fn refuse_if_cancelled(&self, what: &str) -> Result<(), DomainError> {
        match self.cancelled_on {
            Some(on) => Err(DomainError::Conflict(format!(
                "the order was cancelled on {on}: {what} cannot be recorded"
            ))),
            None => Ok(()),
        }
    }

    fn find(&self, number: u32) -> Result<usize, DomainError> {
        self.installments
            .iter()
            .position(|i| i.number == number)
            .ok_or_else(|| {
                DomainError::invalid(
                    "installment",
                    format!(
                        "there is no installment {number} (the schedule has 1 to {})",
                        self.installments.len()
                    ),
                )
            })
    }

    /// Gives a due date (the trigger's day plus the installment's `days_after`) to every installment whose
    /// trigger matches and that has none yet. Returns their numbers.
    fn fire(&mut self, matches: impl Fn(&Trigger) -> bool, on: NaiveDate) -> Vec<u32> {
        let mut fired = Vec::new();
        for item in &mut self.installments {
            if item.due_on.is_none() && matches(&item.trigger) {
                item.due_on = Some(on.checked_add_days(Days::new(item.days_after.into())).unwrap_or(on));
                fired.push(item.number);
            }
        }
        fired
    }

    /// The contract is signed: the deposit (and whatever is due at signing) becomes due. Returns the numbers of
    /// the installments that became due.
    pub fn contract_signed(&mut self, on: NaiveDate) -> Result<Vec<u32>, DomainError> {
        self.refuse_if_cancelled("a contract signature")?;
        if let Some(signed) = self.contract_signed_on {
            return Err(DomainError::Conflict(format!(
                "the contract was already signed on {signed}"
            )));
        }
        self.contract_signed_on = Some(on);
        Ok(self.fire(|t| *t == Trigger::AtSigning, on))
    }

    /// A milestone was completed: installments waiting on it become due. Replaying it changes nothing.
    pub fn milestone_completed(&mut self, milestone: &str, on: NaiveDate) -> Vec<u32> {
        self.fire(
            |t| matches!(t, Trigger::MilestoneCompleted { milestone: m } if m == milestone),
            on,
        )
    }

    /// The goods were delivered: installments due at delivery become due. Replaying it changes nothing.
    pub fn delivered(&mut self, on: NaiveDate) -> Vec<u32> {
        self.fire(|t| *t == Trigger::AtDelivery, on)
    }

    /// The order is cancelled: no more payments, invoices, change orders or dunning. Idempotent.
    pub fn cancel(&mut self, on: NaiveDate) {
        self.cancelled_on.get_or_insert(on);
    }

    /// Records the invoice sent for an installment. Refused when the installment is paid, or already has an
    /// invoice for its current amount (a corrected invoice is accepted after its amount changed).
    pub fn record_invoice(&mut self, installment: u32, number: &str, issued_on: NaiveDate) -> Result<(), DomainError> {
        self.refuse_if_cancelled("an invoice")?;
        let index = self.find(installment)?;
        let mut problems = Problems::new();
        problems.text("number", number, MAX_NAME);
        problems.into_result()?;
        let item = &self.installments[index];
        if item.is_paid() {
            return Err(DomainError::Conflict(format!(
                "installment {installment} ({}) is paid: there is nothing to invoice",
                item.name
            )));
        }
        if let Some(invoice) = item.invoice.as_ref().filter(|_| item.invoice_is_current()) {
            return Err(DomainError::Conflict(format!(
                "installment {installment} ({}) was already invoiced as {} on {}",
                item.name, invoice.number, invoice.issued_on
            )));
        }
        let amount = item.amount.clone();
        self.installments[index].invoice = Some(Invoice {
            number: number.trim().to_string(),
            issued_on,
            amount,
        });
        Ok(())
    }

    /// Records a payment on one installment, or, with `installment: None`, on the order: then it pays the
    /// installments in the order they fall due (earliest due date first, those not yet due last). Refuses a
    /// payment to a cancelled order, a wrong currency, zero, and more than what is outstanding on the installment
    /// (or the order). Returns how the payment was applied.
    pub fn record_payment(
        &mut self,
        installment: Option<u32>,
        payment: Payment,
    ) -> Result<Vec<Allocation>, DomainError> {
        self.refuse_if_cancelled("a payment")?;
        let target = installment.map(|n| self.find(n)).transpose()?;
        let mut problems = Problems::new();
        if payment.amount.currency != self.amount.currency {
            problems.add(
                "amount.currency",
                format!(
                    "must be {}, the order's currency (got {})",
                    self.amount.currency, payment.amount.currency
                ),
            );
        } else if payment.amount.minor <= 0 {
            problems.add("amount", "must be more than zero");
        } else {
            let shown = format!("{} {}", payment.amount.amount_string(), payment.amount.currency);
            match target {
                Some(index) => {
                    let item = &self.installments[index];
                    let outstanding = item.outstanding();
                    if payment.amount.minor > outstanding.minor {
                        problems.add(
                            "amount",
                            format!(
                                "{shown} is more than the {} {} outstanding on installment {} ({})",
                                outstanding.amount_string(),
                                outstanding.currency,
                                item.number,
                                item.name
                            ),
                        );
                    }
                }
                None => {
                    let outstanding = self.outstanding();
                    if payment.amount.minor > outstanding.minor {
                        problems.add(
                            "amount",
                            format!(
                                "{shown} is more than the {} {} outstanding on the order",
                                outstanding.amount_string(),
                                outstanding.currency
                            ),
                        );
                    }
                }
            }
        }
        problems.optional_text("reference", payment.reference.as_deref(), MAX_NAME);
        problems.into_result()?;

        let order: Vec<usize> = match target {
            Some(index) => vec![index],
            None => {
                let mut order: Vec<usize> = (0..self.installments.len()).collect();
                order.sort_by_key(|&i| {
                    let item = &self.installments[i];
                    (item.due_on.is_none(), item.due_on, item.number)
                });
                order
            }
        };
        let mut left = payment.amount.minor;
        let mut allocations = Vec::new();
        for index in order {
            let item = &mut self.installments[index];
            let part = left.min(item.outstanding_minor().max(0));
            if part <= 0 {
                continue;
            }
            let amount = Money {
                currency: payment.amount.currency.clone(),
                minor: part,
            };
            item.payments.push(Payment {
                amount: amount.clone(),
                ..payment.clone()
            });
            allocations.push(Allocation {
                installment: item.number,
                amount,
            });
            left -= part;
            if left == 0 {
                break;
            }
        }
        Ok(allocations)
    }

    /// Spreads a new order amount over the installments, keeping what is settled:
    ///
    /// - installments paid in full and change-order deposits keep their amounts;
    /// - the rest (the template's unpaid or partly paid installments) share what remains by their template
    ///   shares, rounded down, the remainder on the last of them, none below what was already paid on it;
    /// - when every installment is settled and the amount rises, a "Balance" installment is added (same trigger
    ///   as the last template installment; due no earlier than `on` if that trigger already happened).
    ///
    /// Refused when the new amount is below what is paid or committed to deposits. An invoiced installment whose
    /// amount changes needs a corrected invoice ([`Installment::invoice_is_current`]).
    pub fn recompute(&mut self, new_amount: Money, on: NaiveDate) -> Result<(), DomainError> {
        self.refuse_if_cancelled("a change of amount")?;
        if new_amount.currency != self.amount.currency {
            return Err(DomainError::invalid(
                "amount.currency",
                format!(
                    "must be {}, the order's currency (got {})",
                    self.amount.currency, new_amount.currency
                ),
            ));
        }
        if new_amount.minor < 0 {
            return Err(DomainError::invalid("amount", "must not be negative"));
        }
        let fixed = |item: &Installment| {
            matches!(item.kind, InstallmentKind::ChangeOrderDeposit { .. })
                || (item.paid_minor() > 0 && item.paid_minor() >= item.amount.minor)
        };
        let fixed_total: i128 = self
            .installments
            .iter()
            .filter(|i| fixed(i))
            .map(|i| i128::from(i.amount.minor))
            .sum();
        let free: Vec<usize> = (0..self.installments.len())
            .filter(|&i| !fixed(&self.installments[i]))
            .collect();
        let floors: i128 = free
            .iter()
            .map(|&i| i128::from(self.installments[i].paid_minor()))
            .sum();
        let rest = i128::from(new_amount.minor) - fixed_total;
        if rest < floors {
            let committed = self.money(i64::try_from(fixed_total + floors).unwrap_or(i64::MAX));
            return Err(DomainError::invalid(
                "amount",
                format!(
                    "{} {} is less than the {} {} already paid or due as change-order deposits",
                    new_amount.amount_string(),
                    new_amount.currency,
                    committed.amount_string(),
                    committed.currency
                ),
            ));
        }
        let rest = i64::try_from(rest).map_err(|_| DomainError::invalid("amount", "is too large"))?;
        let mut next = self.clone();
        if free.is_empty() {
            if rest > 0 {
                next.push_balance(rest, on);
            }
        } else {
            let items: Vec<(u32, i64)> = free
                .iter()
                .map(|&i| {
                    let item = &self.installments[i];
                    (item.share.map_or(0, |s| s.0), item.paid_minor())
                })
                .collect();
            let amounts = spread(rest, &items).ok_or_else(|| DomainError::invalid("amount", "cannot be spread"))?;
            for (&index, minor) in free.iter().zip(amounts) {
                next.installments[index].amount.minor = minor;
            }
        }
        next.amount = new_amount;
        *self = next;
        Ok(())
    }

    fn next_number(&self) -> u32 {
        self.installments.iter().map(|i| i.number).max().unwrap_or(0) + 1
    }

    fn push_balance(&mut self, minor: i64, on: NaiveDate) {
        let last = self
            .installments
            .iter()
            .rev()
            .find(|i| i.kind == InstallmentKind::Template);
        let trigger = last.map_or(Trigger::AtDelivery, |i| i.trigger.clone());
        let days_after = last.map_or(0, |i| i.days_after);
        let due_on = last.and_then(|i| i.due_on).map(|d| d.max(on));
        let number = self.next_number();
        let amount = self.money(minor);
        self.installments.push(Installment {
            number,
            name: "Balance".into(),
            kind: InstallmentKind::Balance,
            share: None,
            trigger,
            days_after,
            amount,
            due_on,
            invoice: None,
            payments: Vec::new(),
        });
    }

    /// An approved change order (R7): the order amount becomes `change.new_amount`. When the amount rises and
    /// the cumulative increase over the original amount exceeds the policy's threshold, an extra deposit
    /// installment (the policy's share of this change's increase) is added, due when work on the change starts;
    /// the rest of the change is spread as [`PaymentSchedule::recompute`] does. Returns the deposit
    /// installment's number, if one was added. The same change order applied twice is refused.
    pub fn apply_change_order(
        &mut self,
        change: &ApprovedChange,
        policy: &ExtraDepositPolicy,
    ) -> Result<Option<u32>, DomainError> {
        let deposit = (change.new_amount.currency == self.amount.currency)
            .then(|| policy.deposit_for(self.original_amount.minor, self.amount.minor, change.new_amount.minor))
            .flatten()
            .map(|minor| self.money(minor));
        self.apply_change_order_with_deposit(change, deposit)
    }

    /// As [`PaymentSchedule::apply_change_order`], with the extra deposit already decided elsewhere (the change
    /// order's approval effects, `change_order::ApprovalEffects::extra_deposit`), so that one module owns the
    /// threshold. The deposit must be in the order's currency, more than zero and at most the change's increase.
    pub fn apply_change_order_with_deposit(
        &mut self,
        change: &ApprovedChange,
        extra_deposit: Option<Money>,
    ) -> Result<Option<u32>, DomainError> {
        self.refuse_if_cancelled("a change order")?;
        let mut problems = Problems::new();
        problems.text("change_order", &change.change_order, MAX_NAME);
        problems.into_result()?;
        if let Some(applied) = self
            .change_orders
            .iter()
            .find(|c| c.change_order == change.change_order)
        {
            return Err(DomainError::Conflict(format!(
                "change order {} was already applied on {}",
                applied.change_order, applied.approved_on
            )));
        }
        if let Some(deposit) = &extra_deposit {
            let increase = i128::from(change.new_amount.minor) - i128::from(self.amount.minor);
            if deposit.currency != self.amount.currency {
                return Err(DomainError::invalid(
                    "extra_deposit.currency",
                    format!(
                        "must be {}, the order's currency (got {})",
                        self.amount.currency, deposit.currency
                    ),
                ));
            }
            if deposit.minor <= 0 || i128::from(deposit.minor) > increase {
                return Err(DomainError::invalid(
                    "extra_deposit",
                    "must be more than zero and at most the change's increase of the order amount",
                ));
            }
        }
        let mut next = self.clone();
        let deposit_installment = extra_deposit.map(|deposit| {
            let minor = deposit.minor;
            let number = next.next_number();
            let due = change.work_starts_on.unwrap_or(change.approved_on);
            let amount = next.money(minor);
            next.installments.push(Installment {
                number,
                name: format!("Deposit for change order {}", change.change_order.trim()),
                kind: InstallmentKind::ChangeOrderDeposit {
                    change_order: change.change_order.clone(),
                },
                share: None,
                trigger: Trigger::OnDate { date: due },
                days_after: 0,
                amount,
                due_on: Some(due),
                invoice: None,
                payments: Vec::new(),
            });
            number
        });
        next.recompute(change.new_amount.clone(), change.approved_on)?;
        next.change_orders.push(AppliedChange {
            change_order: change.change_order.clone(),
            amount_before: self.amount.clone(),
            amount_after: change.new_amount.clone(),
            approved_on: change.approved_on,
            deposit_installment,
        });
        *self = next;
        Ok(deposit_installment)
    }

    /// The extra deposit of a change order while it is not paid in full: work on the change waits for it.
    pub fn unpaid_change_deposit(&self, change_order: &str) -> Option<&Installment> {
        self.installments.iter().find(|i| {
            matches!(&i.kind, InstallmentKind::ChangeOrderDeposit { change_order: c } if c == change_order)
                && !i.is_paid()
        })
    }

    /// A change order's extra deposit that has fallen due by `today` and is not paid in full: work (on the
    /// change, and so on the order) waits for it (R7).
    pub fn due_change_deposit(&self, today: NaiveDate) -> Option<&Installment> {
        if self.is_cancelled() {
            return None;
        }
        self.installments.iter().find(|i| {
            matches!(i.kind, InstallmentKind::ChangeOrderDeposit { .. })
                && !i.is_paid()
                && i.due_on.is_some_and(|due| due <= today)
        })
    }

    /// The earliest due date of an installment not paid in full (none when cancelled or nothing unpaid is due):
    /// the scheduler finds the orders dunning may concern by it.
    pub fn earliest_unpaid_due_on(&self) -> Option<NaiveDate> {
        if self.is_cancelled() {
            return None;
        }
        self.installments
            .iter()
            .filter(|i| !i.is_paid())
            .filter_map(|i| i.due_on)
            .min()
    }

    /// The day the deposit (installment 1) was paid in full.
    pub fn deposit_paid_on(&self) -> Option<NaiveDate> {
        self.installments.first().and_then(Installment::paid_in_full_on)
    }

    /// R15: tracking starts when the contract is signed and the deposit (installment 1) is paid.
    pub fn tracking_started(&self) -> bool {
        self.contract_signed_on.is_some() && self.deposit_paid_on().is_some()
    }

    /// What tracking still waits for, in words ("the contract signed", "the deposit paid: 500.00 USD
    /// outstanding"); empty once it has started.
    pub fn tracking_waits_for(&self) -> Vec<String> {
        let mut missing = Vec::new();
        if self.contract_signed_on.is_none() {
            missing.push("the contract signed".to_string());
        }
        if let Some(deposit) = self.installments.first().filter(|i| !i.is_paid()) {
            let outstanding = deposit.outstanding();
            missing.push(format!(
                "the deposit paid: {} {} outstanding",
                outstanding.amount_string(),
                outstanding.currency
            ));
        }
        missing
    }

    /// The schedule as a customer or finance reads it on `today`.
    pub fn statement(&self, today: NaiveDate) -> Statement {
        Statement {
            amount: self.amount.clone(),
            paid: self.paid(),
            outstanding: self.outstanding(),
            contract_signed_on: self.contract_signed_on,
            tracking_started: self.tracking_started(),
            tracking_waits_for: self.tracking_waits_for(),
            cancelled: self.is_cancelled(),
            installments: self
                .installments
                .iter()
                .map(|i| InstallmentLine {
                    number: i.number,
                    name: i.name.clone(),
                    amount: i.amount.clone(),
                    paid: i.paid(),
                    outstanding: i.outstanding(),
                    trigger: i.trigger.clone(),
                    due_on: i.due_on,
                    state: i.state(),
                    days_overdue: if self.is_cancelled() {
                        None
                    } else {
                        i.days_overdue(today)
                    },
                    invoice: i.invoice.clone(),
                    invoice_is_current: i.invoice.is_none() || i.invoice_is_current(),
                })
                .collect(),
        }
    }
}

/// The schedule on a given day (for the API and printouts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Statement {
    pub amount: Money,
    pub paid: Money,
    pub outstanding: Money,
    /// The day the client signed the contract (R15); the deposit falls due then.
    pub contract_signed_on: Option<NaiveDate>,
    /// R15: tracking starts once the contract is signed and the deposit paid.
    pub tracking_started: bool,
    /// What tracking still waits for, in words; empty once it started.
    pub tracking_waits_for: Vec<String>,
    pub cancelled: bool,
    pub installments: Vec<InstallmentLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InstallmentLine {
    pub number: u32,
    pub name: String,
    pub amount: Money,
    pub paid: Money,
    pub outstanding: Money,
    pub trigger: Trigger,
    pub due_on: Option<NaiveDate>,
    pub state: InstallmentState,
    /// Days overdue when overdue (1 on the day after the due date).
    pub days_overdue: Option<i64>,
    pub invoice: Option<Invoice>,
    /// False when the amount changed after the invoice was sent.
    pub invoice_is_current: bool,
}

/// Splits `total` over items given as (weight, floor): proportionally to the weights, rounded down, the
/// remainder on the last item, and none below its floor (an item that would be is pinned at its floor and the
/// rest is spread again). With all weights zero the last item takes it all. `None` when the floors exceed the
/// total or there are no items.
fn spread(total: i64, items: &[(u32, i64)]) -> Option<Vec<i64>> {
    let floors: i128 = items.iter().map(|(_, floor)| i128::from(*floor)).sum();
    if items.is_empty() || i128::from(total) < floors {
        return None;
    }
    let mut pinned = vec![false; items.len()];
    loop {
        let mut out = vec![0i64; items.len()];
        let mut rest = i128::from(total);
        for (i, (_, floor)) in items.iter().enumerate() {
            if pinned[i] {
                out[i] = *floor;
                rest -= i128::from(*floor);
            }
        }
        let free: Vec<usize> = (0..items.len()).filter(|&i| !pinned[i]).collect();
        let (&last, others) = free.split_last()?;
        let weight: i128 = free.iter().map(|&i| i128::from(items[i].0)).sum();
        let mut given: i128 = 0;
        for &i in others {
            let part = if weight == 0 {
                0
            } else {
                rest * i128::from(items[i].0) / weight
            };
            out[i] = i64::try_from(part).ok()?;
            given += part;
        }
        out[last] = i64::try_from(rest - given).ok()?;
        let below: Vec<usize> = free.into_iter().filter(|&i| out[i] < items[i].1).collect();
        if below.is_empty() {
            return Some(out);
        }
        for i in below {
            pinned[i] = true;
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Dunning
// ---------------------------------------------------------------------------------------------------------

/// When invoices, reminders, the pause and the escalation happen, in days relative to an installment's due date,
/// and who is told. The defaults are the costume studio's (R8, R9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DunningPolicy {
    /// The invoice goes out this many days before the due date (3).
    pub invoice_days_before_due: u32,
    /// Day (counted from the due date) of the reminder that payment has not arrived (0: on the due date).
    pub due_reminder_day: u32,
    /// Day of the friendly reminder (5).
    pub friendly_reminder_day: u32,
    /// Day of the firm reminder (7).
    pub firm_reminder_day: u32,
    /// Production work is paused when an installment is more than this many days overdue (7: from day 8).
    pub pause_after_days: u32,
    /// Finance takes over collection when an installment is more than this many days overdue (14).
    pub escalate_after_days: u32,
    /// Who receives invoices and reminders (the customer).
    pub remind: Vec<Role>,
    /// Who is told when work is paused (the sales director).
    pub pause_notify: Vec<Role>,
    /// Who collects after the escalation (finance).
    pub escalate_to: Vec<Role>,
}

impl Default for DunningPolicy {
    fn default() -> Self {
        DunningPolicy {
            invoice_days_before_due: 3,
            due_reminder_day: 0,
            friendly_reminder_day: 5,
            firm_reminder_day: 7,
            pause_after_days: 7,
            escalate_after_days: 14,
            remind: vec![Role::Customer],
            pause_notify: vec![Role::SalesDirector],
            escalate_to: vec![Role::Finance],
        }
    }
}

impl DunningPolicy {
    /// The studio's process overview (seed 001): reminders at day 5, pause at day 7, escalation at day 14.
    pub fn process_overview() -> DunningPolicy {
        DunningPolicy {
            pause_after_days: 6,
            escalate_after_days: 13,
            ..DunningPolicy::default()
        }
    }

    /// Reminders in order (due, then friendly, then firm) and someone to tell at each step.
    pub fn check(&self) -> Result<(), DomainError> {
        let mut problems = Problems::new();
        if self.friendly_reminder_day < self.due_reminder_day {
            problems.add("friendly_reminder_day", "must not come before due_reminder_day");
        }
        if self.firm_reminder_day < self.friendly_reminder_day {
            problems.add("firm_reminder_day", "must not come before friendly_reminder_day");
        }
        for (field, roles) in [
            ("remind", &self.remind),
            ("pause_notify", &self.pause_notify),
            ("escalate_to", &self.escalate_to),
        ] {
            if roles.is_empty() {
                problems.add(field, "must name at least one role");
            }
        }
        problems.into_result()
    }
}

/// A step of dunning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DunningKind {
    /// Send the invoice (or a corrected one after the amount changed).
    Invoice,
    /// Payment has not arrived by the due date.
    DueReminder,
    FriendlyReminder,
    FirmReminder,
    /// Production work stops until the installment is paid; the sales director is told.
    PauseWork,
    /// Finance takes over collection.
    EscalateToFinance,
}

impl DunningKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DunningKind::Invoice => "invoice",
            DunningKind::DueReminder => "due_reminder",
            DunningKind::FriendlyReminder => "friendly_reminder",
            DunningKind::FirmReminder => "firm_reminder",
            DunningKind::PauseWork => "pause_work",
            DunningKind::EscalateToFinance => "escalate_to_finance",
        }
    }
}

impl fmt::Display for DunningKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something the dunning policy wants done now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DunningAction {
    pub kind: DunningKind,
    pub installment: u32,
    pub installment_name: String,
    pub due_on: NaiveDate,
    /// Days since the due date: negative before it (the invoice goes out at -3), 0 on it.
    pub days_overdue: i64,
    pub outstanding: Money,
    /// Who is told.
    pub told: Vec<Role>,
    /// `dunning:{order_id}:{installment}:{kind}`; a corrected invoice's key ends with `:{amount in minor
    /// units}`. Record it when the action is done and pass it back in `already_done`.
    pub dedupe_key: String,
}

/// What dunning should do on `today` for the order, leaving out what `already_done` (dedupe keys) says is done.
/// Running it every minute does each step once.
///
/// Per unpaid installment with a due date, on an order not cancelled (a paid installment produces nothing):
/// - the invoice, from `invoice_days_before_due` days before the due date, while the installment has none;
///   a corrected invoice when its amount changed after invoicing (new key each time the amount changes);
/// - of the reminders (due, friendly, firm) only the latest one reached: after downtime a friendly reminder is
///   not sent once the firm one is due, and a skipped reminder is never sent later;
/// - the pause once more than `pause_after_days` overdue, and the escalation to finance once more than
///   `escalate_after_days` overdue: these are not superseded (both change who acts), so after a long downtime
///   the firm reminder, the pause and the escalation come together.
///
/// Actions come sorted by installment number, then in the order of [`DunningKind`].
pub fn dunning_actions(
    schedule: &PaymentSchedule,
    policy: &DunningPolicy,
    today: NaiveDate,
    already_done: &BTreeSet<String>,
) -> Vec<DunningAction> {
    let mut actions = Vec::new();
    if schedule.is_cancelled() {
        return actions;
    }
    for item in &schedule.installments {
        let (Some(due_on), Some(days)) = (item.due_on, item.days_past_due(today)) else {
            continue;
        };
        let key = |kind: DunningKind| format!("dunning:{}:{}:{}", schedule.order_id, item.number, kind);
        let mut push = |kind: DunningKind, dedupe_key: String, told: &[Role]| {
            if !already_done.contains(&dedupe_key) {
                actions.push(DunningAction {
                    kind,
                    installment: item.number,
                    installment_name: item.name.clone(),
                    due_on,
                    days_overdue: days,
                    outstanding: item.outstanding(),
                    told: told.to_vec(),
                    dedupe_key,
                });
            }
        };
        if days >= -i64::from(policy.invoice_days_before_due) {
            match &item.invoice {
                None => push(DunningKind::Invoice, key(DunningKind::Invoice), &policy.remind),
                Some(_) if !item.invoice_is_current() => push(
                    DunningKind::Invoice,
                    format!("{}:{}", key(DunningKind::Invoice), item.amount.minor),
                    &policy.remind,
                ),
                Some(_) => {}
            }
        }
        let reminder = [
            (DunningKind::FirmReminder, policy.firm_reminder_day),
            (DunningKind::FriendlyReminder, policy.friendly_reminder_day),
            (DunningKind::DueReminder, policy.due_reminder_day),
        ]
        .into_iter()
        .find(|(_, day)| days >= i64::from(*day));
        if let Some((kind, _)) = reminder {
            push(kind, key(kind), &policy.remind);
        }
        if days > i64::from(policy.pause_after_days) {
            push(
                DunningKind::PauseWork,
                key(DunningKind::PauseWork),
                &policy.pause_notify,
            );
        }
        if days > i64::from(policy.escalate_after_days) {
            push(
                DunningKind::EscalateToFinance,
                key(DunningKind::EscalateToFinance),
                &policy.escalate_to,
            );
        }
    }
    actions
}

/// Production work is paused: an installment is more than the policy's days overdue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Pause {
    pub installment: u32,
    pub days_overdue: i64,
}

impl fmt::Display for Pause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = if self.days_overdue == 1 { "day" } else { "days" };
        write!(
            f,
            "paused: installment {} is {} {unit} overdue",
            self.installment, self.days_overdue
        )
    }
}

/// Whether production work is paused on `today` (R8, R9): the most overdue installment that is more than
/// `pause_after_days` overdue (the lowest number on a tie). Paying it in full lifts the pause (another
/// installment may still hold it); a cancelled order is never paused.
pub fn production_pause(schedule: &PaymentSchedule, policy: &DunningPolicy, today: NaiveDate) -> Option<Pause> {
    if schedule.is_cancelled() {
        return None;
    }
    schedule
        .installments
        .iter()
        .filter_map(|item| {
            let days = item.days_overdue(today)?;
            (days > i64::from(policy.pause_after_days)).then_some(Pause {
                installment: item.number,
                days_overdue: days,
            })
        })
        .max_by_key(|p| (p.days_overdue, std::cmp::Reverse(p.installment)))
}

/// The calendar day of `now` in the organisation's time zone: dunning counts days there.
pub fn local_today(now: DateTime<Utc>, time_zone: chrono_tz::Tz) -> NaiveDate {
    now.with_timezone(&time_zone).date_naive()
}
