//! Brute-force protection: failure counters per user and per source with lock-out and
//! exponential back-off. Sans-IO: every call takes `now`.
//!
//! ```text
//!  failures < max                      failures >= max
//!  ┌────────┐  failure   ┌────────┐   failure    ┌──────────────────────────────┐
//!  │ clean  │──────────▶│counting│────────────▶│ locked until now + base·2^(n-max) │
//!  └────────┘◀──────────└────────┘◀────────────└──────────────────────────────┘
//!       success (user) or quiet for `forget_after`        (capped at max_lockout)
//! ```
//! While locked, attempts are refused without checking credentials. A success clears the
//! user's counter, never the source's (one good account must not unlock a password-spraying
//! source). The tables are bounded: when full, forgotten entries are dropped first, then the
//! entry with the oldest failure.
//!
//! Attempts whose credentials are checked outside the caller's lock (PBKDF2 takes a while)
//! go through [`Throttle::begin`] and [`Throttle::end`]: an attempt in flight counts as a
//! possible failure, so however many run at once, no more than `max` failures are ever
//! checked for one user or source before the lock-out.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

/// Limits of [`Throttle`].
#[derive(Clone, Copy, Debug)]
pub struct ThrottleConfig {
    /// Failures for one user before lock-out.
    pub max_user_failures: u32,
    /// Failures from one source address before lock-out.
    pub max_source_failures: u32,
    /// First lock-out duration; doubled for every further failure.
    pub lockout: Duration,
    /// Longest lock-out.
    pub max_lockout: Duration,
    /// Failures are forgotten after this long without another one.
    pub forget_after: Duration,
    /// Most entries per table.
    pub max_entries: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            max_user_failures: 5,
            max_source_failures: 20,
            lockout: Duration::from_secs(30),
            max_lockout: Duration::from_secs(15 * 60),
            forget_after: Duration::from_secs(15 * 60),
            max_entries: 10_000,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Counter {
    failures: u32,
    last_failure: SystemTime,
    locked_until: Option<SystemTime>,
}

impl Counter {
    fn forgotten(&self, now: SystemTime, forget_after: Duration) -> bool {
        self.locked_until.is_none_or(|t| t <= now) && self.last_failure + forget_after <= now
    }
}

#[derive(Debug)]
struct Table<K> {
    max: u32,
    map: HashMap<K, Counter>,
}

impl<K: Eq + Hash + Clone> Table<K> {
    fn locked<Q: Eq + Hash + ?Sized>(&self, key: &Q, now: SystemTime) -> Option<SystemTime>
    where
        K: std::borrow::Borrow<Q>,
    {
        self.map
            .get(key)
            .and_then(|c| c.locked_until)
            .filter(|&t| t > now)
    }

    fn failures<Q: Eq + Hash + ?Sized>(
        &self,
        key: &Q,
        now: SystemTime,
        forget_after: Duration,
    ) -> u32
    where
        K: std::borrow::Borrow<Q>,
    {
        self.map
            .get(key)
            .filter(|c| !c.forgotten(now, forget_after))
            .map_or(0, |c| c.failures)
    }

    fn fail(&mut self, key: &K, now: SystemTime, config: &ThrottleConfig) {
        if !self.map.contains_key(key) && self.map.len() >= config.max_entries {
            self.map
                .retain(|_, c| !c.forgotten(now, config.forget_after));
            if self.map.len() >= config.max_entries {
                let oldest = self
                    .map
                    .iter()
                    .min_by_key(|(_, c)| c.last_failure)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    self.map.remove(&k);
                }
            }
        }
        let c = self.map.entry(key.clone()).or_insert(Counter {
            failures: 0,
            last_failure: now,
            locked_until: None,
        });
        if c.forgotten(now, config.forget_after) {
            *c = Counter {
                failures: 0,
                last_failure: now,
                locked_until: None,
            };
        }
        c.failures = c.failures.saturating_add(1);
        c.last_failure = now;
        if c.failures >= self.max {
            let doublings = (c.failures - self.max).min(20);
            let lock = config
                .lockout
                .saturating_mul(1 << doublings)
                .min(config.max_lockout);
            c.locked_until = Some(now + lock);
        }
    }
}

/// Why [`Throttle::begin`] refused an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The user or the source is locked out until this time.
    Locked(SystemTime),
    /// So many attempts are in flight that, were they all to fail, the lock-out would be
    /// reached: try again when they have finished.
    InFlight,
}

/// Per-user and per-source failure counters.
#[derive(Debug)]
pub struct Throttle {
    config: ThrottleConfig,
    users: Table<String>,
    sources: Table<IpAddr>,
    pending_users: HashMap<String, u32>,
    pending_sources: HashMap<IpAddr, u32>,
}

fn pending<K: Eq + Hash + std::borrow::Borrow<Q>, Q: Eq + Hash + ?Sized>(
    map: &HashMap<K, u32>,
    key: &Q,
) -> u32 {
    map.get(key).copied().unwrap_or(0)
}

fn release<K: Eq + Hash + std::borrow::Borrow<Q>, Q: Eq + Hash + ?Sized>(
    map: &mut HashMap<K, u32>,
    key: &Q,
) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

impl Throttle {
    /// Creates empty counters.
    #[must_use]
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            config,
            users: Table {
                max: config.max_user_failures.max(1),
                map: HashMap::new(),
            },
            sources: Table {
                max: config.max_source_failures.max(1),
                map: HashMap::new(),
            },
            pending_users: HashMap::new(),
            pending_sources: HashMap::new(),
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    /// Whether an attempt for `user` from `source` may proceed; `Err(until)` when either is locked.
    ///
    /// # Errors
    /// The time the lock ends (the later of the two).
    pub fn check(&self, user: &str, source: IpAddr, now: SystemTime) -> Result<(), SystemTime> {
        match (
            self.users.locked(user, now),
            self.sources.locked(&source, now),
        ) {
            (None, None) => Ok(()),
            (a, b) => Err(a.max(b).unwrap_or(now)),
        }
    }

    /// Admits an attempt whose credentials will be checked later: refused when the user or
    /// source is locked, or when other attempts are in flight and its failures plus those
    /// attempts reach the lock-out threshold (so concurrent attempts never get more failures
    /// checked than sequential ones would). Every admitted attempt must be closed with [`Throttle::end`].
    ///
    /// # Errors
    /// [`Refusal`] naming why.
    pub fn begin(&mut self, user: &str, source: IpAddr, now: SystemTime) -> Result<(), Refusal> {
        self.check(user, source, now).map_err(Refusal::Locked)?;
        let forget = self.config.forget_after;
        // With others in flight, this attempt is admitted only if all of them failing could
        // not reach the lock-out (alone, it is admitted as a sequential attempt would be).
        let full = |failures: u32, in_flight: u32, max: u32| {
            in_flight > 0 && failures.saturating_add(in_flight) >= max
        };
        if full(
            self.users.failures(user, now, forget),
            pending(&self.pending_users, user),
            self.users.max,
        ) || full(
            self.sources.failures(&source, now, forget),
            pending(&self.pending_sources, &source),
            self.sources.max,
        ) {
            return Err(Refusal::InFlight);
        }
        match self.pending_users.get_mut(user) {
            Some(n) => *n += 1,
            None => {
                self.pending_users.insert(user.to_owned(), 1);
            }
        }
        *self.pending_sources.entry(source).or_insert(0) += 1;
        Ok(())
    }

    /// Closes an attempt admitted by [`Throttle::begin`] (before its outcome is recorded with
    /// [`Throttle::record_failure`] or [`Throttle::record_success`]).
    pub fn end(&mut self, user: &str, source: IpAddr) {
        release(&mut self.pending_users, user);
        release(&mut self.pending_sources, &source);
    }

    /// Attempts in flight (admitted, not ended) for users and sources, for tests and metrics.
    #[must_use]
    pub fn in_flight(&self) -> (u32, u32) {
        (
            self.pending_users.values().sum(),
            self.pending_sources.values().sum(),
        )
    }

    /// Counts a failed attempt.
    pub fn record_failure(&mut self, user: &str, source: IpAddr, now: SystemTime) {
        let config = self.config;
        self.users.fail(&user.to_owned(), now, &config);
        self.sources.fail(&source, now, &config);
    }

    /// Clears the user's counter after a successful login.
    pub fn record_success(&mut self, user: &str) {
        self.users.map.remove(user);
    }

    /// Number of tracked users and sources (for tests and metrics).
    #[must_use]
    pub fn len(&self) -> (usize, usize) {
        (self.users.map.len(), self.sources.map.len())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::UNIX_EPOCH;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s)
    }
    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn user_lockout_and_backoff() {
        let mut t = Throttle::new(ThrottleConfig::default());
        for i in 0..4 {
            t.record_failure("alice", A, at(i));
            assert!(t.check("alice", A, at(i)).is_ok(), "failure {i}");
        }
        t.record_failure("alice", A, at(4));
        assert_eq!(
            t.check("alice", A, at(4)),
            Err(at(34)),
            "5th failure locks for 30 s"
        );
        // Locked for the user from any source; other users unaffected.
        assert_eq!(t.check("alice", B, at(10)), Err(at(34)));
        assert!(t.check("bob", B, at(10)).is_ok());
        assert!(t.check("alice", B, at(34)).is_ok(), "lock ends");
        // Next failure doubles the lock.
        t.record_failure("alice", B, at(35));
        assert_eq!(t.check("alice", B, at(35)), Err(at(95)));
        t.record_failure("alice", B, at(95));
        assert_eq!(t.check("alice", B, at(95)), Err(at(215)));
        // Capped at max_lockout.
        for i in 0..20 {
            t.record_failure("alice", B, at(300 + i));
        }
        assert_eq!(t.check("alice", B, at(319)), Err(at(319 + 900)));
        // Success clears the user.
        t.record_success("alice");
        assert!(t.check("alice", A, at(320)).is_ok());
        // Source B made 22 failures: it stays locked for every user.
        assert!(t.check("bob", B, at(320)).is_err());
    }

    #[test]
    fn source_lockout_survives_success() {
        let config = ThrottleConfig {
            max_source_failures: 3,
            ..Default::default()
        };
        let mut t = Throttle::new(config);
        t.record_failure("u1", A, at(0));
        t.record_failure("u2", A, at(1));
        t.record_success("u3");
        t.record_failure("u4", A, at(2));
        assert_eq!(
            t.check("u5", A, at(3)),
            Err(at(32)),
            "spraying many users from one source"
        );
        assert!(t.check("u5", B, at(3)).is_ok());
    }

    #[test]
    fn attempts_in_flight_count_as_possible_failures() {
        let config = ThrottleConfig {
            max_user_failures: 3,
            max_source_failures: 4,
            ..Default::default()
        };
        let mut t = Throttle::new(config);
        // One failure, then two attempts in flight: a third would allow a 4th failure.
        t.record_failure("alice", A, at(0));
        assert_eq!(t.begin("alice", A, at(1)), Ok(()));
        assert_eq!(t.begin("alice", B, at(1)), Ok(()));
        assert_eq!(t.begin("alice", B, at(1)), Err(Refusal::InFlight));
        assert_eq!(t.in_flight(), (2, 2));
        // Both fail: the 3rd failure locks the user.
        for src in [A, B] {
            t.end("alice", src);
            t.record_failure("alice", src, at(2));
        }
        assert_eq!(t.in_flight(), (0, 0));
        assert_eq!(t.begin("alice", A, at(3)), Err(Refusal::Locked(at(32))));
        // Source A: 2 failures and 2 in flight reach its limit of 4 for any user.
        assert_eq!(t.begin("bob", A, at(3)), Ok(()));
        assert_eq!(t.begin("carol", A, at(3)), Ok(()));
        assert_eq!(t.begin("dave", A, at(3)), Err(Refusal::InFlight));
        // A success frees the slot without touching the source's failures.
        t.end("bob", A);
        t.record_success("bob");
        assert_eq!(t.begin("dave", A, at(3)), Ok(()));
        assert_eq!(t.in_flight(), (2, 2));
        // Once a lock has ended, one attempt at a time (as before it), not two.
        assert_eq!(t.begin("alice", B, at(32)), Ok(()));
        assert_eq!(t.begin("alice", A, at(32)), Err(Refusal::InFlight));
    }

    #[test]
    fn failures_are_forgotten() {
        let mut t = Throttle::new(ThrottleConfig::default());
        for i in 0..4 {
            t.record_failure("alice", A, at(i));
        }
        // 15 minutes of quiet: the count restarts.
        t.record_failure("alice", A, at(3 + 900));
        assert!(t.check("alice", A, at(3 + 900)).is_ok());
    }

    #[test]
    fn tables_are_bounded() {
        let config = ThrottleConfig {
            max_entries: 3,
            ..Default::default()
        };
        let mut t = Throttle::new(config);
        for i in 0..10u8 {
            t.record_failure(
                &format!("u{i}"),
                IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, i)),
                at(u64::from(i)),
            );
        }
        assert_eq!(t.len(), (3, 3));
    }
}
