//! Configuration: one struct, read once at start-up from (lowest to highest precedence) built-in defaults, a
//! TOML file (`--config` or `ORDERTRAIL_CONFIG`), `ORDERTRAIL_*` environment variables, and command-line flags.

use chrono_tz::Tz;
use ordertrail_domain::access::AccessPolicy;
use ordertrail_domain::change_order::ChangeOrderPolicy;
use ordertrail_domain::follow_through::FollowThroughPolicy;
use ordertrail_domain::issue::IssuePolicy;
use ordertrail_domain::number::{DEFAULT_PATTERN, NumberPattern};
use ordertrail_domain::payment::DunningPolicy;
use ordertrail_domain::progress::HealthPolicy;
use ordertrail_domain::workflow::{WorkflowError, Workflows};
use ordertrail_store::sqlite::Durability;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `sqlite://PATH` (PostgreSQL in a later release).
    pub database_url: String,
    pub listen: String,
    /// SQLite commit durability: `normal` (default) or `full`. See README.md.
    pub durability: Durability,
    /// A folder of extra workflow definitions (`*.toml`), loaded after the bundled presets.
    pub workflows_dir: Option<PathBuf>,
    pub organisation: OrganisationConfig,
    /// Where messages go: SMTP, Slack, signed webhooks, template overrides, retries (see `delivery`).
    pub delivery: crate::delivery::DeliveryConfig,
    /// How often `serve` runs the scheduler (dunning, follow-through, delivery), in seconds.
    pub scheduler_interval_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrganisationConfig {
    pub name: String,
    /// IANA time zone, e.g. `Europe/London`; every date rule uses it.
    pub time_zone: String,
    /// Order number pattern; tokens `{yyyy}` `{yy}` `{mm}` `{dd}` `{seq}` `{seq:N}`.
    pub order_number_pattern: String,
    pub access: AccessPolicy,
    pub health: HealthPolicy,
    /// How issues are judged and timed: `preset = "seed_000"` (default) or `"seed_004"`, then any field of
    /// `IssuePolicy` to override (e.g. `escalate_to = "operations"`).
    pub issues: Option<toml::Table>,
    /// The money rules of change orders (R7): `extra_deposit_threshold_percent` (20), `extra_deposit_percent` (50).
    pub change_orders: ChangeOrderPolicy,
    /// Dunning (R8, R9): invoice 3 days before due, reminders on the due date and days 5 and 7, production
    /// paused after 7 days overdue, finance escalation after 14.
    pub dunning: DunningPolicy,
    /// The scheduler's follow-through (R3, R25, R33, R35): `client_update_day` ("Fri"), `client_update_at`
    /// ("10:00:00"), `reminders_at` ("09:00:00"), `digest_at` ("17:00:00"), `review_client_updates` (false),
    /// `chase_days_before` (3), `chase_quiet_days` (3), `late_by_days` (2).
    pub follow_through: FollowThroughPolicy,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: "sqlite://./ordertrail.db".into(),
            listen: "127.0.0.1:8080".into(),
            durability: Durability::Normal,
            workflows_dir: None,
            organisation: OrganisationConfig::default(),
            delivery: crate::delivery::DeliveryConfig::default(),
            scheduler_interval_seconds: 60,
        }
    }
}

impl Default for OrganisationConfig {
    fn default() -> Self {
        OrganisationConfig {
            name: "Ordertrail".into(),
            time_zone: "UTC".into(),
            order_number_pattern: DEFAULT_PATTERN.into(),
            access: AccessPolicy::default(),
            health: HealthPolicy::default(),
            issues: None,
            change_orders: ChangeOrderPolicy::default(),
            dunning: DunningPolicy::default(),
            follow_through: FollowThroughPolicy::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is invalid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Workflows(Vec<WorkflowError>),
}

impl Config {
    /// Reads the file (if any) and applies the environment. Flags are applied by the caller afterwards.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.into(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.into(),
                    message: e.to_string(),
                })?
            }
            None => Config::default(),
        };
        if let Ok(url) = std::env::var("ORDERTRAIL_DATABASE_URL") {
            config.database_url = url;
        }
        if let Ok(listen) = std::env::var("ORDERTRAIL_LISTEN") {
            config.listen = listen;
        }
        if let Ok(tz) = std::env::var("ORDERTRAIL_TIME_ZONE") {
            config.organisation.time_zone = tz;
        }
        if let Ok(dir) = std::env::var("ORDERTRAIL_WORKFLOWS_DIR") {
            config.workflows_dir = Some(dir.into());
        }
        if let Ok(dir) = std::env::var("ORDERTRAIL_TEMPLATES_DIR") {
            config.delivery.templates_dir = Some(dir.into());
        }
        if let Ok(durability) = std::env::var("ORDERTRAIL_DURABILITY") {
            config.durability = match durability.as_str() {
                "normal" => Durability::Normal,
                "full" => Durability::Full,
                other => {
                    return Err(ConfigError::Invalid(format!(
                        "ORDERTRAIL_DURABILITY must be normal or full, not '{other}'"
                    )));
                }
            };
        }
        Ok(config)
    }

    /// Checks the organisation settings and loads every workflow, reporting all problems at once.
    pub fn organisation(&self) -> Result<Organisation, ConfigError> {
        let org = &self.organisation;
        let time_zone: Tz = org.time_zone.parse().map_err(|_| {
            ConfigError::Invalid(format!(
                "unknown time zone '{}' (use an IANA name such as Europe/London)",
                org.time_zone
            ))
        })?;
        let number_pattern = NumberPattern::parse(&org.order_number_pattern).map_err(ConfigError::Invalid)?;
        let mut extra = Vec::new();
        if let Some(dir) = &self.workflows_dir {
            let entries = std::fs::read_dir(dir).map_err(|source| ConfigError::Read {
                path: dir.clone(),
                source,
            })?;
            let mut paths: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            paths.sort();
            for path in paths {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                extra.push((path.display().to_string(), text));
            }
        }
        let workflows = Workflows::load(&extra).map_err(ConfigError::Workflows)?;
        let issue_policy = match &org.issues {
            None => IssuePolicy::default(),
            Some(table) => {
                let text = toml::to_string(table).map_err(|e| ConfigError::Invalid(e.to_string()))?;
                IssuePolicy::from_toml(&text)
                    .map_err(|e| ConfigError::Invalid(format!("[organisation.issues]: {e}")))?
            }
        };
        Ok(Organisation {
            issue_policy,
            change_order_policy: org.change_orders.clone(),
            follow_through: org.follow_through.clone(),
            dunning_policy: {
                org.dunning
                    .check()
                    .map_err(|e| ConfigError::Invalid(format!("[organisation.dunning]: {e}")))?;
                org.dunning.clone()
            },
            name: org.name.clone(),
            time_zone,
            number_pattern,
            access: org.access.clone(),
            health: org.health,
            workflows,
        })
    }
}

/// The organisation's settings, checked: what every request needs.
#[derive(Debug, Clone)]
pub struct Organisation {
    pub name: String,
    pub time_zone: Tz,
    pub number_pattern: NumberPattern,
    pub access: AccessPolicy,
    pub health: HealthPolicy,
    pub issue_policy: IssuePolicy,
    pub change_order_policy: ChangeOrderPolicy,
    pub dunning_policy: DunningPolicy,
    pub follow_through: FollowThroughPolicy,
    pub workflows: Workflows,
}
