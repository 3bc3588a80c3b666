//! Guards: conditions a transition needs. Each names what it checks so that a refusal can say exactly what is
//! missing ("guard field:tracking_url: tracking_url must use http or https").

use super::WorkflowDef;
use crate::error::GuardFailure;
use crate::order::Order;
use crate::tracking::{Carrier, check_tracking_number, check_tracking_url};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Guard {
    /// A field given with the transition (or already on the order) is present and valid.
    Field { field: String, format: FieldFormat },
    /// Every milestone of a phase, or every named milestone, is completed.
    MilestonesDone {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phase: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        milestones: Vec<String>,
    },
    /// Every checklist item of a milestone is done (R20: fabrication, post-processing, inspection items).
    ChecklistDone { milestone: String },
    /// The person explicitly confirmed the change (R22: double-check before a status change).
    Confirmed,
    /// R15: the contract is signed and the deposit (installment 1 of the payment schedule) is paid in full.
    DepositPaid,
}

/// How a required field's value is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldFormat {
    /// Any non-empty text.
    Text,
    /// An absolute http(s) URL with a host.
    TrackingUrl,
    /// A tracking number; when the `carrier` field names a known carrier, it must match that carrier's shape.
    TrackingNumber,
    /// A calendar date, YYYY-MM-DD.
    Date,
}

/// What a guard looks at: the order as it is, and what the person sent with the transition.
pub struct GuardInput<'a> {
    pub order: &'a Order,
    pub fields: &'a BTreeMap<String, String>,
    pub confirmed: bool,
}

impl GuardInput<'_> {
    fn value(&self, field: &str) -> Option<&str> {
        self.fields
            .get(field)
            .or_else(|| self.order.fields.get(field))
            .map(String::as_str)
    }
}

impl Guard {
    /// The guard's name in refusals and in the OpenAPI-described problem.
    pub fn name(&self) -> String {
        match self {
            Guard::Field { field, .. } => format!("field:{field}"),
            Guard::MilestonesDone { phase: Some(phase), .. } => format!("milestones_done:{phase}"),
            Guard::MilestonesDone { milestones, .. } => {
                format!("milestones_done:{}", milestones.join(","))
            }
            Guard::ChecklistDone { milestone } => format!("checklist_done:{milestone}"),
            Guard::Confirmed => "confirmed".into(),
            Guard::DepositPaid => "deposit_paid".into(),
        }
    }

    /// Checks that the guard names things the workflow has (used when a workflow is loaded).
    pub(super) fn check_names(&self, def: &WorkflowDef) -> Result<(), String> {
        let milestone = |key: &str| def.milestones.iter().find(|m| m.key == key);
        match self {
            Guard::Field { field, .. } if field.trim().is_empty() => Err("a field guard names no field".into()),
            Guard::Field { .. } | Guard::Confirmed => Ok(()),
            Guard::DepositPaid if def.payment.is_none() => {
                Err("guard deposit_paid needs a payment schedule ([[payment.installments]])".into())
            }
            Guard::DepositPaid => Ok(()),
            Guard::MilestonesDone {
                phase: None,
                milestones,
            } if milestones.is_empty() => Err("guard milestones_done names neither a phase nor milestones".into()),
            Guard::MilestonesDone { phase, milestones } => {
                if let Some(phase) = phase
                    && !def.milestones.iter().any(|m| m.phase.as_deref() == Some(phase))
                {
                    return Err(format!(
                        "guard milestones_done names phase '{phase}', which no milestone has"
                    ));
                }
                match milestones.iter().find(|key| milestone(key).is_none()) {
                    Some(key) => Err(format!("guard milestones_done names unknown milestone '{key}'")),
                    None => Ok(()),
                }
            }
            Guard::ChecklistDone { milestone: key } => match milestone(key) {
                None => Err(format!("guard checklist_done names unknown milestone '{key}'")),
                Some(m) if m.checklist.is_empty() => Err(format!(
                    "guard checklist_done names milestone '{key}', which has no checklist"
                )),
                Some(_) => Ok(()),
            },
        }
    }

    /// Evaluates the guard; on failure says what is missing.
    pub fn evaluate(&self, input: &GuardInput<'_>) -> Result<(), GuardFailure> {
        let missing: Vec<String> = match self {
            Guard::Field { field, format } => match input.value(field) {
                None => vec![format!("{field} is required")],
                Some(value) if value.trim().is_empty() => vec![format!("{field} is required")],
                Some(value) => match check_field(*format, value, input) {
                    Ok(()) => vec![],
                    Err(why) => vec![format!("{field} {why}")],
                },
            },
            Guard::MilestonesDone { phase, milestones } => input
                .order
                .milestones
                .iter()
                .filter(|m| phase.as_ref().is_some_and(|p| m.phase.as_ref() == Some(p)) || milestones.contains(&m.key))
                .filter(|m| m.completed_at.is_none())
                .map(|m| format!("milestone '{}' is not completed", m.name))
                .collect(),
            Guard::ChecklistDone { milestone } => input
                .order
                .milestones
                .iter()
                .filter(|m| &m.key == milestone)
                .flat_map(|m| {
                    m.checklist
                        .iter()
                        .filter(|item| !item.done)
                        .map(move |item| format!("checklist item '{}' of '{}' is not done", item.item, m.name))
                })
                .collect(),
            Guard::DepositPaid => match &input.order.payments {
                Some(schedule) => schedule
                    .tracking_waits_for()
                    .into_iter()
                    .map(|what| format!("waiting for {what}"))
                    .collect(),
                None => vec!["the order has no payment schedule".into()],
            },
            Guard::Confirmed => {
                if input.confirmed {
                    vec![]
                } else {
                    vec!["confirm must be true: double-check the order before changing its status".into()]
                }
            }
        };
        if missing.is_empty() {
            Ok(())
        } else {
            Err(GuardFailure {
                guard: self.name(),
                missing,
            })
        }
    }
}

fn check_field(format: FieldFormat, value: &str, input: &GuardInput<'_>) -> Result<(), String> {
    match format {
        FieldFormat::Text => Ok(()),
        FieldFormat::TrackingUrl => check_tracking_url(value),
        FieldFormat::Date => chrono::NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d")
            .map(|_| ())
            .map_err(|_| "must be a date like 2026-12-01".to_string()),
        FieldFormat::TrackingNumber => match input.value("carrier") {
            None => check_tracking_number(Carrier::Other, value),
            Some(name) => match Carrier::parse(name) {
                Some(carrier) => check_tracking_number(carrier, value),
                None => check_tracking_number(Carrier::Other, value),
            },
        },
    }
}
