//! How many orders one user may open: a counter per user and fixed time window.
//!
//! Every create counts itself in the window of its time (`[start, start + window)`, windows
//! aligned to multiples of their length), inside the same transaction that writes the
//! order, and a create that would exceed `limit` in its window is refused until the window
//! ends. The window is the unpaid order lifetime (`ORDER_TTL_SECONDS`), so the orders that
//! can be PENDING at one instant were created within one lifetime, which overlaps at most
//! two windows: a user holds at most `2 × limit` open orders, whatever they do.
//!
//! Why a window and not an exact count of PENDING orders: an exact count needs a decrement
//! in every path that ends a pending order (settle, cancel, expire, late payment of an
//! expired order) and a repair when one is missed, on the hottest transactions. The window
//! counter is touched only by creates, its items expire on their own, and it bounds both
//! the open orders and the rate at which a user can make the store grow.

/// The window counter a create goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderQuota {
    /// Length of a window, in seconds (at least 1).
    pub window_seconds: i64,
    /// Orders a user may create per window; `None`: the create is counted but never
    /// refused (an order for a purchase the store already took money for).
    pub limit: Option<u32>,
}

/// One user's counting window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaWindow {
    pub start: i64,
    /// First instant of the next window: when a refused user may create again.
    pub end: i64,
}

impl OrderQuota {
    pub fn limited(limit: u32, window_seconds: i64) -> Self {
        OrderQuota {
            window_seconds: window_seconds.max(1),
            limit: Some(limit),
        }
    }

    pub fn counted_only(window_seconds: i64) -> Self {
        OrderQuota {
            window_seconds: window_seconds.max(1),
            limit: None,
        }
    }

    /// The window `now` falls in.
    pub fn window(&self, now: i64) -> QuotaWindow {
        let len = self.window_seconds.max(1);
        let start = now.div_euclid(len) * len;
        QuotaWindow {
            start,
            end: start + len,
        }
    }

    /// Whether a window that already counts `created` orders takes one more.
    pub fn admits(&self, created: u32) -> bool {
        self.limit.is_none_or(|l| created < l)
    }
}

/// Whole seconds from `now` until `until`, at least 1: a `Retry-After` value.
pub fn retry_after(now: i64, until: i64) -> i64 {
    (until - now).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_aligned_and_contain_now() {
        let q = OrderQuota::limited(3, 900);
        assert_eq!(
            q.window(1_800_000_000),
            QuotaWindow {
                start: 1_800_000_000,
                end: 1_800_000_900
            }
        );
        assert_eq!(q.window(1_800_000_899).start, 1_800_000_000);
        assert_eq!(q.window(1_800_000_900).start, 1_800_000_900);
        assert_eq!(
            q.window(-1),
            QuotaWindow {
                start: -900,
                end: 0
            }
        );
        assert_eq!(
            OrderQuota::limited(1, 0).window(5),
            QuotaWindow { start: 5, end: 6 }
        );
    }

    #[test]
    fn the_limit_admits_exactly_limit_orders() {
        let q = OrderQuota::limited(3, 60);
        assert!((0..3).all(|n| q.admits(n)));
        assert!(!q.admits(3) && !q.admits(4));
        assert!(OrderQuota::counted_only(60).admits(u32::MAX));
    }

    #[test]
    fn retry_after_is_at_least_a_second() {
        assert_eq!(retry_after(100, 160), 60);
        assert_eq!(retry_after(100, 100), 1);
        assert_eq!(retry_after(100, 50), 1);
    }
}
