//! The actors' clock: the real clock plus an offset that tests (and the `expiry` scenario) can
//! advance, so expiries happen without sleeping. Advancing wakes every actor waiting on a timer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

/// A shared clock. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    offset_ms: AtomicU64,
    advanced: Notify,
}

impl Clock {
    /// The real clock (offset zero).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The offset added so far.
    #[must_use]
    pub fn offset(&self) -> Duration {
        Duration::from_millis(self.inner.offset_ms.load(Ordering::Acquire))
    }

    /// Monotonic now (real + offset).
    #[must_use]
    pub fn now(&self) -> Instant {
        Instant::now() + self.offset()
    }

    /// Wall clock in seconds since the Unix epoch (real + offset).
    #[must_use]
    pub fn unix(&self) -> u64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        (real + self.offset()).as_secs()
    }

    /// Moves the clock forward by `by` and wakes every actor waiting on a deadline.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.inner.offset_ms.fetch_add(ms, Ordering::AcqRel);
        self.inner.advanced.notify_waiters();
    }

    /// Waits until `deadline` (on this clock) or until the clock is advanced, whichever is
    /// first; callers re-check their timers afterwards. `None` waits for an advance only.
    pub async fn sleep_until(&self, deadline: Option<Instant>) {
        let advanced = self.inner.advanced.notified();
        match deadline {
            Some(at) => {
                let wait = at.saturating_duration_since(self.now());
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = advanced => {}
                }
            }
            None => advanced.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_both_clocks() {
        let c = Clock::new();
        let (m, u) = (c.now(), c.unix());
        c.advance(Duration::from_secs(100));
        assert!(c.now() >= m + Duration::from_secs(100));
        assert!(c.unix() >= u + 100);
        assert_eq!(c.offset(), Duration::from_secs(100));
    }
}
