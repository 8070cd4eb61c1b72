//! One cache per IAM role named by reads (`roleArn`, as Cloud Extensions and the Workload Credentials Provider take
//! it), at most a configured number of roles.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::cache::{Cache, Upstream};
use crate::clock::WallClock;
use crate::error::ApiError;

/// The most roles read through at once, as the Workload Credentials Provider's `max_roles`.
pub const DEFAULT_MAX_ROLES: usize = 20;

/// One cache per role named by reads, at most `max` roles: values read as one role are never served to another, and
/// the roles callers may name are bounded (a role past the limit is refused with 400, never evicting another's
/// entries). The role's credentials come from AssumeRole, cached and refreshed by the SDK.
pub struct RoleCaches<U, W> {
    caches: Mutex<HashMap<String, Arc<Cache<U, W>>>>,
    /// The most roles.
    pub max: usize,
}

impl<U, W> std::fmt::Debug for RoleCaches<U, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.caches.lock().map_or(0, |c| c.len());
        f.debug_struct("RoleCaches")
            .field("held", &held)
            .field("max", &self.max)
            .finish()
    }
}

impl<U, W> RoleCaches<U, W> {
    /// No role yet, at most `max`.
    pub fn new(max: usize) -> Self {
        Self {
            caches: Mutex::new(HashMap::new()),
            max,
        }
    }
}

impl<U: Upstream, W: WallClock> RoleCaches<U, W> {
    /// The cache a read goes through: `default`, or the one of the role it names (made on its first read).
    pub fn cache_for(
        &self,
        default: &Arc<Cache<U, W>>,
        role: Option<&str>,
    ) -> Result<Arc<Cache<U, W>>, ApiError> {
        let Some(role) = role else {
            return Ok(Arc::clone(default));
        };
        let mut caches = self.caches.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cache) = caches.get(role) {
            return Ok(Arc::clone(cache));
        }
        if caches.len() >= self.max {
            return Err(ApiError::TooManyRoles(self.max));
        }
        let cache = default.for_role(role).ok_or(ApiError::RolesUnsupported)?;
        tracing::info!(
            role,
            roles = caches.len() + 1,
            "reads as a new role get a cache of their own"
        );
        caches.insert(role.to_owned(), Arc::clone(&cache));
        Ok(cache)
    }
}
