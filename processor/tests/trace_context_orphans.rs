//! Orphan detection: correctness and the memory bound.

use gardener_processor::orphans::{OrphanCounts, OrphanDetector, OVERFLOW_SERVICE};

const SEC: u64 = 1_000_000_000;
const T0: u64 = 1_757_826_886 * SEC;

fn id(n: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
    b[8..].copy_from_slice(&(n | 1).to_le_bytes());
    b
}

fn total(r: &[OrphanCounts], service: &str) -> OrphanCounts {
    r.iter()
        .find(|c| c.service == service)
        .cloned()
        .unwrap_or_default()
}

#[test]
fn orphans_detected_and_matched_logs_are_not_orphans() {
    let mut d = OrphanDetector::new(120 * SEC, 10_000);
    // 100 requests with spans and logs, 10 logs whose spans never arrive.
    for i in 0..100 {
        let t = T0 + i * SEC;
        d.observe_span("netra-backend", &id(i), t);
        for _ in 0..3 {
            d.observe_log("netra-backend", &id(i), t + SEC / 2);
        }
    }
    for i in 1000..1010 {
        d.observe_log("netra-backend", &id(i), T0 + 100 * SEC);
    }
    // Nothing is decided before the window expires.
    assert!(d.poll(T0 + 119 * SEC).is_empty());
    let r = d.poll(T0 + 400 * SEC);
    let c = total(&r, "netra-backend");
    assert_eq!(c.matched, 300, "{c:?}");
    assert_eq!(c.orphans, 10, "{c:?}");
    assert_eq!((c.unchecked, c.no_spans), (0, 0));
    // Counts are deltas: a second poll reports nothing new.
    assert!(d.poll(T0 + 500 * SEC).is_empty());
    assert_eq!(d.pending(), 0);
}

#[test]
fn span_arriving_late_within_window_is_a_match() {
    let mut d = OrphanDetector::new(120 * SEC, 100);
    d.observe_span("api", &id(1), T0);
    d.observe_log("api", &id(2), T0 + SEC);
    d.observe_span("api", &id(2), T0 + 110 * SEC);
    let c = total(&d.poll(T0 + 200 * SEC), "api");
    assert_eq!((c.matched, c.orphans), (1, 0));
}

#[test]
fn span_arriving_after_window_is_too_late() {
    let mut d = OrphanDetector::new(120 * SEC, 100);
    d.observe_span("api", &id(1), T0);
    d.observe_log("api", &id(2), T0 + SEC);
    d.observe_span("api", &id(2), T0 + 130 * SEC);
    let c = total(&d.poll(T0 + 200 * SEC), "api");
    assert_eq!((c.matched, c.orphans), (0, 1));
}

#[test]
fn services_without_spans_produce_no_orphans() {
    let mut d = OrphanDetector::new(120 * SEC, 100);
    d.observe_span("traced", &id(1), T0);
    for i in 0..50 {
        d.observe_log("logs-only", &id(100 + i), T0 + i * SEC);
    }
    let r = d.poll(T0 + 1000 * SEC);
    let c = total(&r, "logs-only");
    assert_eq!((c.orphans, c.matched, c.no_spans), (0, 0, 50));
    // A service that stopped sending spans long ago is treated the same.
    d.observe_log("traced", &id(999), T0 + 1000 * SEC);
    let c = total(&d.poll(T0 + 2000 * SEC), "traced");
    assert_eq!((c.orphans, c.no_spans), (0, 1));
}

#[test]
fn invalid_ids_are_ignored() {
    let mut d = OrphanDetector::new(120 * SEC, 100);
    d.observe_span("api", &id(1), T0);
    d.observe_log("api", &[0; 16], T0);
    d.observe_log("api", &[1; 8], T0);
    d.observe_log("api", &[], T0);
    assert_eq!(d.pending(), 0);
    assert!(d.poll(T0 + 1000 * SEC).is_empty());
}

#[test]
fn full_queue_counts_unchecked_never_orphans() {
    let mut d = OrphanDetector::new(120 * SEC, 10);
    d.observe_span("api", &id(0), T0);
    for i in 0..25 {
        d.observe_log("api", &id(1000 + i), T0 + SEC);
    }
    assert_eq!(d.pending(), 10);
    let c = total(&d.poll(T0 + 200 * SEC), "api");
    assert_eq!((c.orphans, c.unchecked), (10, 15));
}

#[test]
fn services_are_bounded() {
    let mut d = OrphanDetector::with_max_services(120 * SEC, 1000, 3);
    for i in 0..100u64 {
        let svc = format!("svc-{i}");
        d.observe_span(&svc, &id(i), T0);
        d.observe_log(&svc, &id(10_000 + i), T0);
    }
    let r = d.poll(T0 + 300 * SEC);
    assert!(r.len() <= 4, "{}", r.len());
    let o = total(&r, OVERFLOW_SERVICE);
    assert_eq!(o.orphans, 97);
    assert_eq!(r.iter().map(|c| c.orphans).sum::<u64>(), 100);
}

#[test]
fn time_going_backwards_is_clamped() {
    let mut d = OrphanDetector::new(120 * SEC, 100);
    d.observe_span("api", &id(1), T0 + 100 * SEC);
    d.observe_log("api", &id(1), T0); // late caller clock
    let c = total(&d.poll(T0 + 300 * SEC), "api");
    assert_eq!((c.matched, c.orphans), (1, 0));
}

/// 10 million distinct span trace ids and 10 million distinct log trace ids
/// over simulated hours: memory never exceeds what was allocated up front,
/// and the false-positive-driven miss rate stays small.
#[test]
fn memory_bounded_under_ten_million_ids() {
    const N: u64 = 10_000_000;
    let capacity = 20_000;
    let mut d = OrphanDetector::new(120 * SEC, capacity);
    let limit = d.memory_limit_bytes();
    // ~55 bytes per unit of capacity (Bloom ring + queue + map) plus a full
    // service table of 1,000 services.
    assert!(limit < capacity * 64 + 1000 * 700, "{limit}");
    // One span id and one log id every 7 ms (simulated time, ~19 hours):
    // ~8.6k span ids per 60 s bucket and ~17k pending logs per window, both
    // under capacity, so the ring never saturates and the queue never fills.
    let step = 7 * SEC / 1000;
    let mut orphans = 0;
    let mut matched = 0;
    let mut unchecked = 0;
    for i in 0..N {
        let now = T0 + i * step;
        d.observe_span("api", &id(i), now);
        // Every 100th log has no span; all logs are distinct ids.
        let log_id = if i % 100 == 0 { id(N + i) } else { id(i) };
        d.observe_log("api", &log_id, now);
        if i % 1_000_000 == 0 {
            assert!(d.memory_bytes() <= limit, "grew to {}", d.memory_bytes());
            assert_eq!(d.memory_limit_bytes(), limit);
            for c in d.poll(now) {
                orphans += c.orphans;
                matched += c.matched;
                unchecked += c.unchecked;
            }
        }
    }
    assert_eq!(d.saturated_buckets(), 0);
    for c in d.poll(T0 + N * step + 1000 * SEC) {
        orphans += c.orphans;
        matched += c.matched;
        unchecked += c.unchecked;
    }
    assert!(d.memory_bytes() <= limit);
    assert_eq!(orphans + matched + unchecked, N);
    assert_eq!(unchecked, 0);
    // Real orphans are 1 % of logs. A false orphan is impossible, so at most
    // N / 100 are found; Bloom false positives may hide < 1 % of them.
    assert!(orphans <= N / 100, "{orphans}");
    assert!(orphans >= N / 100 * 99 / 100, "{orphans}");
}

/// The documented false-positive rate at nominal load: at most ~0.6 % of
/// real orphans are missed when each bucket holds `capacity` span ids.
#[test]
fn false_positive_rate_at_capacity() {
    let capacity = 10_000u64;
    let mut d = OrphanDetector::new(120 * SEC, capacity as usize);
    // capacity span ids per 60 s bucket.
    let per_sec = capacity / 60;
    let mut n = 0u64;
    for s in 0..240u64 {
        for _ in 0..per_sec {
            d.observe_span("api", &id(n), T0 + s * SEC);
            n += 1;
        }
    }
    assert_eq!(d.saturated_buckets(), 0);
    // capacity orphan logs checked against the full ring, never queued
    // beyond capacity.
    let t = T0 + 240 * SEC;
    for i in 0..capacity {
        d.observe_log("api", &id(1 << 40 | i), t);
    }
    d.observe_span("api", &id(0), t + 60 * SEC); // keep the service alive
    let c = total(&d.poll(t + 121 * SEC), "api");
    assert_eq!(c.orphans + c.matched, capacity);
    let missed = c.matched as f64 / capacity as f64;
    assert!(missed < 0.01, "missed {missed}");
}
