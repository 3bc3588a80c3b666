//! What the domain refuses, as types. The HTTP layer maps each to one status code in one place.

use crate::role::Role;
use serde::Serialize;
use utoipa::ToSchema;

/// One input field that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field's path in the request, e.g. `contacts[0].email`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A guard of the workflow that is not satisfied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct GuardFailure {
    /// The guard, as named in the workflow, e.g. `field:tracking_url` or `milestones_done:design`.
    pub guard: String,
    /// What is missing, in words a user understands.
    pub missing: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("invalid input: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("the role {role} may not {action}")]
    RoleNotAllowed { role: Role, action: String },
    #[error("no transition from '{from}' to '{to}' in workflow {workflow}")]
    TransitionNotAllowed { workflow: String, from: String, to: String },
    #[error("unknown status '{status}' in workflow {workflow}")]
    UnknownStatus { workflow: String, status: String },
    #[error("{}", .0.iter().map(|g| format!("guard {} not satisfied: {}", g.guard, g.missing.join(", "))).collect::<Vec<_>>().join("; "))]
    GuardsFailed(Vec<GuardFailure>),
    #[error("the order has version {actual}, not the expected {expected}: reload and try again")]
    StaleVersion { expected: i64, actual: i64 },
    #[error("{0}")]
    Conflict(String),
    /// Production work waits for an overdue payment (R8, R9): "paused: installment N is D days overdue".
    #[error("{0}")]
    Paused(String),
    #[error("{what} not found")]
    NotFound { what: String },
}

impl DomainError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        DomainError::Invalid(vec![FieldError::new(field, message)])
    }
}

/// Collects field errors so that a request reports all its mistakes at once.
#[derive(Debug, Default)]
pub struct Problems(Vec<FieldError>);

impl Problems {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }
    /// Checks a required human text: trimmed non-empty, at most `max` characters, no control characters.
    pub fn text(&mut self, field: &str, value: &str, max: usize) {
        if value.trim().is_empty() {
            self.add(field, "must not be empty");
        } else {
            self.optional_text(field, Some(value), max);
        }
    }
    /// Checks an optional human text (same limits when present).
    pub fn optional_text(&mut self, field: &str, value: Option<&str>, max: usize) {
        let Some(value) = value else { return };
        let len = value.chars().count();
        if len > max {
            self.add(field, format!("must be at most {max} characters (got {len})"));
        } else if value
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
        {
            self.add(field, "must not contain control characters");
        }
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn into_result(self) -> Result<(), DomainError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DomainError::Invalid(self.0))
        }
    }
}

/// Longest accepted name (people, customers, titles).
pub const MAX_NAME: usize = 200;
/// Longest accepted free text (notes, descriptions).
pub const MAX_TEXT: usize = 10_000;
