//! Workflows as data. A workflow says which statuses an order moves through, which role may make each
//! transition, which guards must hold, and which milestones an order gets when it is created. Definitions are
//! TOML (three presets are bundled, more may be loaded from a folder), parsed into [`WorkflowDef`] and checked
//! into a [`Workflow`] by [`Workflow::from_toml`], which reports every mistake it finds with the file's name.

mod guard;
pub use guard::{Guard, GuardInput};

use crate::payment::PaymentTemplate;
use crate::role::Role;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use utoipa::ToSchema;

/// The bundled presets, one per seed flavour: (file name, TOML text).
pub const PRESETS: [(&str, &str); 3] = [
    ("custom-production.toml", include_str!("presets/custom-production.toml")),
    ("make-to-order.toml", include_str!("presets/make-to-order.toml")),
    ("standard.toml", include_str!("presets/standard.toml")),
];

/// A workflow definition as written in TOML, before it is checked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowDef {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub initial: String,
    #[serde(default)]
    pub create_roles: Vec<String>,
    #[serde(default)]
    pub replan_roles: Vec<String>,
    #[serde(default)]
    pub phases: Vec<PhaseDef>,
    pub statuses: Vec<StatusDef>,
    pub transitions: Vec<TransitionDef>,
    #[serde(default)]
    pub milestones: Vec<MilestoneDef>,
    /// How an order's amount is split into installments and what makes each due (R8).
    #[serde(default)]
    pub payment: Option<PaymentTemplate>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseDef {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusDef {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub phase: Option<String>,
    /// An order in a terminal status is closed: no milestone is due, health is not judged.
    #[serde(default)]
    pub terminal: bool,
    /// The goods have reached the customer: the promised date no longer makes the order late.
    #[serde(default)]
    pub delivered: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionDef {
    pub from: Vec<String>,
    pub to: String,
    #[serde(default)]
    pub name: Option<String>,
    pub roles: Vec<String>,
    #[serde(default)]
    pub guards: Vec<Guard>,
    /// Marks production work, which a paused order may not do (used by the payment policy).
    #[serde(default)]
    pub production_work: bool,
    /// Milestones this transition completes (e.g. shipping completes "shipment").
    #[serde(default)]
    pub completes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MilestoneDef {
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub phase: Option<String>,
    pub due: DueDef,
    pub owner_role: String,
    /// Roles that may complete the milestone besides the owner role.
    #[serde(default)]
    pub complete_roles: Vec<String>,
    #[serde(default)]
    pub deliverable: Option<String>,
    /// The milestone waits on the customer (an approval, an availability, a receipt).
    #[serde(default)]
    pub client_action: bool,
    /// Planned after delivery (after-sales follow-up): does not count against the promised date.
    #[serde(default)]
    pub after_delivery: bool,
    #[serde(default)]
    pub checklist: Vec<String>,
}

/// When a milestone is due: a number of days from the order date or from the promised delivery date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DueDef {
    pub from: DueAnchor,
    pub days: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DueAnchor {
    OrderDate,
    PromisedDate,
}

/// A checked workflow, ready to use.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Workflow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub initial: String,
    pub create_roles: Vec<Role>,
    pub replan_roles: Vec<Role>,
    pub phases: Vec<Phase>,
    pub statuses: Vec<Status>,
    pub transitions: Vec<Transition>,
    pub milestones: Vec<MilestonePlan>,
    /// The payment template of its orders (R8); none: its orders have no payment schedule.
    pub payment: Option<PaymentTemplate>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Phase {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Status {
    pub id: String,
    pub name: String,
    pub phase: Option<String>,
    pub terminal: bool,
    pub delivered: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Transition {
    pub from: Vec<String>,
    pub to: String,
    pub name: String,
    pub roles: Vec<Role>,
    pub guards: Vec<Guard>,
    pub production_work: bool,
    /// Milestones this transition completes.
    pub completes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MilestonePlan {
    pub key: String,
    pub name: String,
    pub phase: Option<String>,
    pub due: DueDef,
    pub owner_role: Role,
    pub complete_roles: Vec<Role>,
    pub deliverable: Option<String>,
    pub client_action: bool,
    pub after_delivery: bool,
    pub checklist: Vec<String>,
}

/// Everything wrong with one workflow file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("workflow file {source_name} is invalid:\n  - {}", .problems.join("\n  - "))]
pub struct WorkflowError {
    pub source_name: String,
    pub problems: Vec<String>,
}

impl Workflow {
    /// Parses and checks one TOML definition; `source_name` (a file name) is used in error messages.
    pub fn from_toml(source_name: &str, text: &str) -> Result<Workflow, WorkflowError> {
        let def: WorkflowDef = toml::from_str(text).map_err(|e| WorkflowError {
            source_name: source_name.to_string(),
            problems: vec![e.to_string().trim_end().replace('\n', "\n    ")],
        })?;
        Workflow::check(def).map_err(|problems| WorkflowError {
            source_name: source_name.to_string(),
            problems,
        })
    }

    /// Checks a parsed definition: names resolve, every status is reachable, guards name real things.
    pub fn check(def: WorkflowDef) -> Result<Workflow, Vec<String>> {
        let mut problems = Vec::new();
        let roles = |list: &[String], what: &str, problems: &mut Vec<String>| -> Vec<Role> {
            list.iter()
                .filter_map(|name| match name.parse::<Role>() {
                    Ok(role) => Some(role),
                    Err(_) => {
                        problems.push(format!("{what} names unknown role '{name}'"));
                        None
                    }
                })
                .collect()
        };
        if def.id.trim().is_empty() {
            problems.push("id must not be empty".into());
        }
        let phase_ids: BTreeSet<&str> = def.phases.iter().map(|p| p.id.as_str()).collect();
        duplicates(def.phases.iter().map(|p| p.id.as_str()), "phase", &mut problems);
        duplicates(def.statuses.iter().map(|s| s.id.as_str()), "status", &mut problems);
        duplicates(
            def.milestones.iter().map(|m| m.key.as_str()),
            "milestone",
            &mut problems,
        );
        let status_ids: BTreeSet<&str> = def.statuses.iter().map(|s| s.id.as_str()).collect();
        if !status_ids.contains(def.initial.as_str()) {
            problems.push(format!("initial status '{}' is not one of the statuses", def.initial));
        }
        for status in &def.statuses {
            if let Some(phase) = &status.phase
                && !phase_ids.contains(phase.as_str())
            {
                problems.push(format!("status '{}' names unknown phase '{phase}'", status.id));
            }
        }
        let create_roles = roles(&def.create_roles, "create_roles", &mut problems);
        let replan_roles = roles(&def.replan_roles, "replan_roles", &mut problems);
        if create_roles.is_empty() {
            problems.push("create_roles must name at least one role".into());
        }

        let mut milestones = Vec::new();
        for m in &def.milestones {
            let what = format!("milestone '{}'", m.key);
            if let Some(phase) = &m.phase
                && !phase_ids.contains(phase.as_str())
            {
                problems.push(format!("{what} names unknown phase '{phase}'"));
            }
            let owner = roles(std::slice::from_ref(&m.owner_role), &what, &mut problems);
            let mut complete_roles = owner.clone();
            for role in roles(&m.complete_roles, &what, &mut problems) {
                if !complete_roles.contains(&role) {
                    complete_roles.push(role);
                }
            }
            duplicates(
                m.checklist.iter().map(String::as_str),
                &format!("{what} checklist item"),
                &mut problems,
            );
            if let Some(owner_role) = owner.first() {
                milestones.push(MilestonePlan {
                    key: m.key.clone(),
                    name: m.name.clone(),
                    phase: m.phase.clone(),
                    due: m.due,
                    owner_role: *owner_role,
                    complete_roles,
                    deliverable: m.deliverable.clone(),
                    client_action: m.client_action,
                    after_delivery: m.after_delivery,
                    checklist: m.checklist.clone(),
                });
            }
        }

        let mut transitions = Vec::new();
        let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for t in &def.transitions {
            let what = format!("transition {} -> {}", t.from.join("|"), t.to);
            for from in t.from.iter().map(String::as_str).chain([t.to.as_str()]) {
                if !status_ids.contains(from) {
                    problems.push(format!("{what} names unknown status '{from}'"));
                }
            }
            for from in &t.from {
                edges.entry(from.as_str()).or_default().push(t.to.as_str());
            }
            let allowed = roles(&t.roles, &what, &mut problems);
            if t.roles.is_empty() {
                problems.push(format!("{what} names no role that may make it"));
            }
            if t.from.is_empty() {
                problems.push(format!("{what} names no status it starts from"));
            }
            for key in &t.completes {
                if !def.milestones.iter().any(|m| &m.key == key) {
                    problems.push(format!("{what} completes unknown milestone '{key}'"));
                }
            }
            for guard in &t.guards {
                if let Err(problem) = guard.check_names(&def) {
                    problems.push(format!("{what}: {problem}"));
                }
            }
            let to_name = def
                .statuses
                .iter()
                .find(|s| s.id == t.to)
                .map_or(t.to.clone(), |s| s.name.clone());
            transitions.push(Transition {
                from: t.from.clone(),
                to: t.to.clone(),
                name: t.name.clone().unwrap_or(to_name),
                roles: allowed,
                guards: t.guards.clone(),
                production_work: t.production_work,
                completes: t.completes.clone(),
            });
        }

        // Every status must be reachable from the initial one.
        let mut seen = BTreeSet::from([def.initial.as_str()]);
        let mut queue = VecDeque::from([def.initial.as_str()]);
        while let Some(status) = queue.pop_front() {
            for next in edges.get(status).into_iter().flatten() {
                if seen.insert(next) {
                    queue.push_back(next);
                }
            }
        }
        for status in &def.statuses {
            if !seen.contains(status.id.as_str()) {
                problems.push(format!(
                    "status '{}' is unreachable from the initial status '{}'",
                    status.id, def.initial
                ));
            }
            if !status.terminal && !edges.contains_key(status.id.as_str()) {
                problems.push(format!(
                    "status '{}' is not terminal but has no transition out of it",
                    status.id
                ));
            }
        }

        if !problems.is_empty() {
            return Err(problems);
        }
        let payment = def.payment;
        let workflow = Workflow {
            id: def.id,
            name: def.name,
            description: def.description,
            initial: def.initial,
            create_roles,
            replan_roles,
            phases: def
                .phases
                .into_iter()
                .map(|p| Phase { id: p.id, name: p.name })
                .collect(),
            statuses: def
                .statuses
                .into_iter()
                .map(|s| Status {
                    id: s.id,
                    name: s.name,
                    phase: s.phase,
                    terminal: s.terminal,
                    delivered: s.delivered,
                })
                .collect(),
            transitions,
            milestones,
            payment: None,
        };
        if let Some(template) = &payment {
            let checked = template.check().and_then(|()| template.check_milestones(&workflow));
            if let Err(crate::DomainError::Invalid(fields)) = checked {
                return Err(fields
                    .into_iter()
                    .map(|f| format!("payment.{}: {}", f.field, f.message))
                    .collect());
            }
        }
        Ok(Workflow { payment, ..workflow })
    }

    pub fn status(&self, id: &str) -> Option<&Status> {
        self.statuses.iter().find(|s| s.id == id)
    }

    pub fn is_terminal(&self, status: &str) -> bool {
        self.status(status).is_some_and(|s| s.terminal)
    }

    /// Whether an order in `status` still awaits delivery (neither terminal nor delivered): only such orders
    /// are judged against their promised date.
    pub fn awaits_delivery(&self, status: &str) -> bool {
        self.status(status).is_some_and(|s| !s.terminal && !s.delivered)
    }

    /// The transition from `from` to `to`, if the workflow has one.
    pub fn transition(&self, from: &str, to: &str) -> Option<&Transition> {
        self.transitions
            .iter()
            .find(|t| t.to == to && t.from.iter().any(|f| f == from))
    }

    /// Transitions out of `from` that `role` may make.
    pub fn transitions_for<'a>(&'a self, from: &'a str, role: Role) -> impl Iterator<Item = &'a Transition> + 'a {
        self.transitions
            .iter()
            .filter(move |t| t.from.iter().any(|f| f == from) && t.roles.contains(&role))
    }

    pub fn milestone_plan(&self, key: &str) -> Option<&MilestonePlan> {
        self.milestones.iter().find(|m| m.key == key)
    }

    pub fn phase_name(&self, id: &str) -> Option<&str> {
        self.phases.iter().find(|p| p.id == id).map(|p| p.name.as_str())
    }
}

fn duplicates<'a>(ids: impl Iterator<Item = &'a str>, what: &str, problems: &mut Vec<String>) {
    let mut seen = BTreeSet::new();
    for id in ids {
        if id.trim().is_empty() {
            problems.push(format!("a {what} has an empty id"));
        } else if !seen.insert(id) {
            problems.push(format!("{what} '{id}' is defined twice"));
        }
    }
}

/// The workflows an organisation runs, by id.
#[derive(Debug, Clone, Default)]
pub struct Workflows {
    by_id: BTreeMap<String, std::sync::Arc<Workflow>>,
}

impl Workflows {
    /// The bundled presets plus any extra definitions (file name, text); a later one replaces an earlier one
    /// with the same id. All errors of all files are reported together.
    pub fn load(extra: &[(String, String)]) -> Result<Workflows, Vec<WorkflowError>> {
        let mut workflows = Workflows::default();
        let mut errors = Vec::new();
        let sources = PRESETS
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .chain(extra.iter().cloned());
        for (name, text) in sources {
            match Workflow::from_toml(&name, &text) {
                Ok(wf) => {
                    workflows.by_id.insert(wf.id.clone(), std::sync::Arc::new(wf));
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() { Ok(workflows) } else { Err(errors) }
    }

    pub fn get(&self, id: &str) -> Option<&std::sync::Arc<Workflow>> {
        self.by_id.get(id)
    }

    pub fn all(&self) -> impl Iterator<Item = &Workflow> {
        self.by_id.values().map(|w| w.as_ref())
    }

    pub fn ids(&self) -> Vec<&str> {
        self.by_id.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests;
