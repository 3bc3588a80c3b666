//! What every handler shares: the store, the organisation's settings and workflows, and the clock.

use crate::clock::Clock;
use crate::config::Organisation;
use chrono::{DateTime, NaiveDate, Utc};
use ordertrail_domain::customer::User;
use ordertrail_domain::workflow::Workflow;
use ordertrail_store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Users by token hash, remembered for a minute so that a request does not pay a database lookup for its token.
/// Tokens cannot be revoked yet; when they can, revocation must clear this cache.
#[derive(Clone, Default)]
pub struct TokenCache(Arc<Mutex<HashMap<String, (User, Instant)>>>);

impl TokenCache {
    const TTL: Duration = Duration::from_secs(60);
    const MAX: usize = 10_000;

    pub fn get(&self, token_hash: &str) -> Option<User> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(token_hash)
            .filter(|(_, at)| at.elapsed() < Self::TTL)
            .map(|(user, _)| user.clone())
    }

    pub fn put(&self, token_hash: String, user: User) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= Self::MAX {
            map.retain(|_, (_, at)| at.elapsed() < Self::TTL);
            if map.len() >= Self::MAX {
                map.clear();
            }
        }
        map.insert(token_hash, (user, Instant::now()));
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub org: Arc<Organisation>,
    pub clock: Clock,
    pub tokens: TokenCache,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, org: Organisation, clock: Clock) -> AppState {
        AppState {
            store,
            org: Arc::new(org),
            clock,
            tokens: TokenCache::default(),
        }
    }

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
