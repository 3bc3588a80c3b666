//! What every handler shares: the store, the organisation's settings and workflows, and the clock.

use crate::clock::Clock;
use crate::config::Organisation;
use chrono::{DateTime, NaiveDate, Utc};
use ordertrail_domain::workflow::Workflow;
use ordertrail_store::Store;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub org: Arc<Organisation>,
    pub clock: Clock,
}

impl AppState {
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The calendar date at `at` in the organisation's time zone.
    pub fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.org.time_zone).date_naive()
    }

    pub fn workflow(&self, id: &str) -> Option<&Workflow> {
        self.org.workflows.get(id).map(|w| w.as_ref())
    }
}
