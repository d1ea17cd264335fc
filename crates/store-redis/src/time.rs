//! Mapping between this process's monotonic [`Instant`]s and the wall clock shared by all
//! instances.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One pairing of a monotonic [`Instant`] with the wall-clock time at that instant, used to
/// translate binding times to and from Unix milliseconds at the store boundary.
///
/// Every instance sharing a store keeps its own `TimeBase`; expiries stored in Redis are
/// absolute Unix milliseconds, so instances agree on them as far as their wall clocks
/// agree (keep the hosts NTP-synchronised: a skew of *d* makes one instance see bindings
/// expire *d* early or late). Expiry instants are rounded **up** to the millisecond when
/// stored, so a binding read back never expires earlier than it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBase {
    instant: Instant,
    unix: Duration,
}

impl TimeBase {
    /// A time base pairing `instant` with `since_epoch`, the wall-clock time at `instant`
    /// as a duration since the Unix epoch.
    #[must_use]
    pub fn new(instant: Instant, since_epoch: Duration) -> Self {
        Self {
            instant,
            unix: since_epoch,
        }
    }

    /// A time base read from this host's clocks now.
    #[must_use]
    pub fn system() -> Self {
        let instant = Instant::now();
        // A clock set before 1970 is a host misconfiguration; treat it as the epoch.
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Self { instant, unix }
    }

    fn unix_nanos(&self, t: Instant) -> i128 {
        let base = i128::try_from(self.unix.as_nanos()).unwrap_or(i128::MAX);
        match t.checked_duration_since(self.instant) {
            Some(after) => base + i128::try_from(after.as_nanos()).unwrap_or(i128::MAX / 2),
            None => {
                let before = self.instant.saturating_duration_since(t);
                base - i128::try_from(before.as_nanos()).unwrap_or(i128::MAX / 2)
            }
        }
    }

    /// `t` as Unix milliseconds, rounded up (used for expiries: never early).
    #[must_use]
    pub fn to_unix_ms_ceil(&self, t: Instant) -> i64 {
        let ns = self.unix_nanos(t);
        let ms = ns.div_euclid(1_000_000) + i128::from(ns.rem_euclid(1_000_000) != 0);
        i64::try_from(ms).unwrap_or(i64::MAX)
    }

    /// `t` as Unix milliseconds, rounded down (used for `now` when selecting due entries).
    #[must_use]
    pub fn to_unix_ms_floor(&self, t: Instant) -> i64 {
        i64::try_from(self.unix_nanos(t).div_euclid(1_000_000)).unwrap_or(i64::MAX)
    }

    /// The [`Instant`] of this process at Unix millisecond `ms`. Times before this
    /// process's monotonic clock can represent saturate to the earliest representable
    /// instant on the path (they are in the past either way).
    #[must_use]
    pub fn from_unix_ms(&self, ms: i64) -> Instant {
        let target = i128::from(ms) * 1_000_000;
        let base = i128::try_from(self.unix.as_nanos()).unwrap_or(i128::MAX);
        let delta = target - base;
        let mag = Duration::from_nanos(u64::try_from(delta.unsigned_abs()).unwrap_or(u64::MAX));
        if delta >= 0 {
            self.instant.checked_add(mag).unwrap_or(self.instant)
        } else {
            self.instant.checked_sub(mag).unwrap_or(self.instant)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_and_round_trip() {
        let t0 = Instant::now();
        let tb = TimeBase::new(
            t0,
            Duration::from_millis(1_700_000_000_000) + Duration::from_micros(300),
        );
        let t = t0 + Duration::from_micros(1_500);
        // 1_700_000_000_000.3 ms + 1.5 ms = …001.8 ms
        assert_eq!(tb.to_unix_ms_ceil(t), 1_700_000_000_002);
        assert_eq!(tb.to_unix_ms_floor(t), 1_700_000_000_001);
        let back = tb.from_unix_ms(tb.to_unix_ms_ceil(t));
        assert!(back >= t && back - t < Duration::from_millis(1));
        // Before the anchor.
        let early = tb.from_unix_ms(1_699_999_999_000);
        assert_eq!(tb.to_unix_ms_floor(early), 1_699_999_999_000);
    }
}
