//! The bytes of requests in flight: bodies being received or decompressed,
//! not yet in the queue, over every receiver and connection.
//!
//! Why: the queue bounds what waits in it by bytes (`queue.max_bytes`), and
//! the memory limiter samples RSS every 100 ms, but a request's body is in
//! memory before either sees it. Bounding the requests in flight by count
//! alone (`max_concurrent_requests`) leaves them at count × largest body:
//! 64 HTTP bodies of 20 MiB, twice that while decompressing, is 2.5 GiB, and
//! a burst of large bodies could take a container past its memory limit
//! between two samples. Each receiver reserves a request's bytes here as
//! they arrive (and as they are decompressed) and refuses the request with a
//! retryable status when the reservation does not fit; the reservation ends
//! once the request is in the queue or answered.
//!
//! A request is never refused for the bytes of others when it is alone:
//! while a reservation holds every reserved byte, it may grow past the
//! limit (up to what the receiver's own size limits allow). So a limit
//! below the largest request slows large requests down under load; it
//! never makes one impossible.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::config::DEFAULT_IN_FLIGHT_MAX_BYTES;

/// `service.in_flight_max_bytes` as configured (`0`: no limit), or, unset,
/// a quarter of the memory limiter's limit: with the queue's `max_bytes`
/// and the processing of what was dequeued it must fit under that limit.
/// Without a memory limit, [`DEFAULT_IN_FLIGHT_MAX_BYTES`].
pub fn limit_for(configured: Option<u64>, memory_limit_bytes: u64) -> usize {
    let bytes = match configured {
        Some(bytes) => bytes,
        None if memory_limit_bytes > 0 => memory_limit_bytes / 4,
        None => DEFAULT_IN_FLIGHT_MAX_BYTES,
    };
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

/// The bound and what is reserved against it.
#[derive(Debug)]
pub struct InFlightBytes {
    limit: usize,
    reserved: AtomicUsize,
    /// `gardener_receiver_in_flight_bytes`: `reserved` after each change.
    gauge: metrics::Gauge,
}

impl InFlightBytes {
    /// At most `limit` bytes reserved at once (`0`: no limit).
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            reserved: AtomicUsize::new(0),
            gauge: metrics::gauge!(crate::telemetry::IN_FLIGHT_BYTES),
        })
    }

    /// Bytes reserved now, over every request.
    pub fn reserved(&self) -> usize {
        self.reserved.load(Ordering::Relaxed)
    }

    /// An empty reservation for one request.
    pub fn reservation(self: &Arc<Self>) -> Reservation {
        Reservation {
            budget: self.clone(),
            held: AtomicUsize::new(0),
        }
    }
}

/// One request's bytes; released when dropped. Growing takes `&self`, so a
/// request's body and the call that answers it can share one (`Arc`): the
/// bytes stay reserved until both are done.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<InFlightBytes>,
    held: AtomicUsize,
}

impl Reservation {
    /// Reserves `bytes` more; false (nothing reserved) when that would take
    /// the total past the limit while other requests hold bytes.
    pub fn grow(&self, bytes: usize) -> bool {
        if bytes == 0 {
            return true;
        }
        let budget = &self.budget;
        // Only this reservation grows `held`, but it may do so from two
        // places at once (body and call): read it inside the loop.
        let fits = budget
            .reserved
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |reserved| {
                let held = self.held.load(Ordering::Acquire);
                let alone = reserved == held;
                let total = reserved.checked_add(bytes)?;
                (budget.limit == 0 || total <= budget.limit || alone).then_some(total)
            });
        match fits {
            Ok(before) => {
                self.held.fetch_add(bytes, Ordering::AcqRel);
                budget.gauge.set((before + bytes) as f64);
                true
            }
            Err(_) => false,
        }
    }

    /// Bytes this reservation holds.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let held = *self.held.get_mut();
        if held > 0 {
            let before = self.budget.reserved.fetch_sub(held, Ordering::AcqRel);
            self.budget.gauge.set((before - held) as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_the_limit_and_release_on_drop() {
        let budget = InFlightBytes::new(100);
        let a = budget.reservation();
        let b = budget.reservation();
        assert!(a.grow(60));
        assert!(!b.grow(50), "60 + 50 is past the limit while a holds bytes");
        assert_eq!(b.held(), 0);
        assert!(b.grow(40));
        assert_eq!(budget.reserved(), 100);
        assert!(!a.grow(1) && !b.grow(1));
        drop(a);
        assert_eq!(budget.reserved(), 40);
        assert!(b.grow(60));
        drop(b);
        assert_eq!(budget.reserved(), 0);
    }

    #[test]
    fn a_request_alone_may_grow_past_the_limit() {
        let budget = InFlightBytes::new(100);
        let a = budget.reservation();
        assert!(a.grow(80));
        assert!(a.grow(500), "nothing else is in flight");
        assert_eq!(a.held(), 580);
        let b = budget.reservation();
        assert!(!b.grow(1), "a alone is past the limit already");
        drop(a);
        assert!(b.grow(1));
        // An empty reservation of another request does not count.
        let c = budget.reservation();
        assert!(b.grow(1000));
        drop(c);
    }

    #[test]
    fn the_default_follows_the_memory_limit() {
        assert_eq!(limit_for(Some(1000), 1 << 30), 1000);
        assert_eq!(limit_for(Some(0), 1 << 30), 0);
        assert_eq!(limit_for(None, 200 << 20), 50 << 20);
        assert_eq!(limit_for(None, 0), DEFAULT_IN_FLIGHT_MAX_BYTES as usize);
    }

    #[test]
    fn zero_is_no_limit() {
        let budget = InFlightBytes::new(0);
        let a = budget.reservation();
        let b = budget.reservation();
        assert!(a.grow(usize::MAX / 2) && b.grow(1000));
        assert!(!b.grow(usize::MAX), "an overflowing total is refused");
    }

    #[test]
    fn concurrent_reservations_never_pass_the_limit_together() {
        let budget = InFlightBytes::new(1000);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let budget = budget.clone();
                std::thread::spawn(move || {
                    let mut admitted = 0;
                    for _ in 0..2000 {
                        let r = budget.reservation();
                        if r.grow(100) && r.grow(100) {
                            admitted += 1;
                        }
                        // A reservation alone holds at most 200 bytes.
                        let now = budget.reserved();
                        assert!(now <= 1000, "{now}");
                    }
                    admitted
                })
            })
            .collect();
        let admitted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert!(admitted > 0);
        assert_eq!(budget.reserved(), 0);
    }
}
