//! Local SLI evaluation: ratios, the min-events guard, hysteresis, expiry
//! and bounds.

use gardener_processor::sli::{SliConfig, SliEngine, SliEvent, SliSignal, SliStatus, SliWindows};

const SEC: u64 = 1_000_000_000;
/// A multiple of the 30 s bucket of a 300 s window.
const T0: u64 = 1_757_826_900 * SEC;

fn feed(e: &SliEngine, w: &mut SliWindows, service: &str, total: u32, bad: u32, now: u64) {
    for i in 0..total {
        let status = if i < bad { 500 } else { 200 };
        let ev = SliEvent {
            http_status: Some(status),
            ..SliEvent::new(SliSignal::Log, service, "GET /api/threads")
        };
        e.classify(&ev, &mut |m| w.record(m.sli, m.labels, m.bad, now));
    }
}

fn http<'a>(st: &'a [SliStatus], service: &str) -> Option<&'a SliStatus> {
    st.iter()
        .find(|s| s.name == "http_5xx" && s.service() == Some(service))
}

fn setup() -> (SliEngine, SliWindows) {
    let c = SliConfig::default();
    let e = SliEngine::new(&c).unwrap();
    let w = SliWindows::new(&e, &c);
    (e, w)
}

#[test]
fn two_percent_of_5000_fires() {
    let (e, mut w) = setup();
    feed(&e, &mut w, "api", 5000, 100, T0);
    let st = w.evaluate(T0 + SEC);
    let s = http(&st, "api").unwrap();
    assert_eq!((s.events, s.bad_events), (5000, 100));
    assert!((s.ratio - 0.02).abs() < 1e-12);
    assert_eq!(s.threshold, 0.01);
    assert!(s.firing);
    assert_eq!(s.changed, Some(true));
    assert_eq!(s.labels, [("service".to_string(), "api".to_string())]);
    // Reported once.
    let st = w.evaluate(T0 + 2 * SEC);
    assert_eq!(http(&st, "api").unwrap().changed, None);
}

#[test]
fn half_a_percent_does_not_fire() {
    let (e, mut w) = setup();
    feed(&e, &mut w, "api", 5000, 25, T0);
    let st = w.evaluate(T0 + SEC);
    let s = http(&st, "api").unwrap();
    assert!((s.ratio - 0.005).abs() < 1e-12);
    assert!(!s.firing);
    assert_eq!(s.changed, None);
}

#[test]
fn min_events_guard() {
    let (e, mut w) = setup();
    // 99 requests, all failing: below min_events (100), cannot fire.
    feed(&e, &mut w, "api", 99, 99, T0);
    let s = w.evaluate(T0 + SEC);
    assert!(!http(&s, "api").unwrap().firing);
    // The hundredth does it.
    feed(&e, &mut w, "api", 1, 1, T0 + SEC);
    let s = w.evaluate(T0 + 2 * SEC);
    assert!(http(&s, "api").unwrap().firing);
}

#[test]
fn thin_sample_keeps_state() {
    let (e, mut w) = setup();
    feed(&e, &mut w, "api", 1000, 50, T0);
    assert!(http(&w.evaluate(T0), "api").unwrap().firing);
    // The window slides past the failures; 10 healthy requests are too few
    // to clear.
    feed(&e, &mut w, "api", 10, 0, T0 + 301 * SEC);
    let s = w.evaluate(T0 + 301 * SEC);
    let s = http(&s, "api").unwrap();
    assert_eq!(s.events, 10);
    assert!(s.firing);
}

#[test]
fn hysteresis() {
    let (e, mut w) = setup();
    feed(&e, &mut w, "api", 1000, 20, T0);
    assert_eq!(http(&w.evaluate(T0), "api").unwrap().changed, Some(true));
    // 0.9 %: below the threshold but above threshold * 0.8, keeps firing.
    feed(&e, &mut w, "api", 1000, 9, T0 + 300 * SEC);
    let st = w.evaluate(T0 + 300 * SEC);
    let s = http(&st, "api").unwrap();
    assert_eq!((s.events, s.bad_events), (1000, 9));
    assert!(s.firing);
    assert_eq!(s.changed, None);
    // 0.7 %: clears.
    feed(&e, &mut w, "api", 1000, 7, T0 + 600 * SEC);
    let st = w.evaluate(T0 + 600 * SEC);
    let s = http(&st, "api").unwrap();
    assert!(!s.firing);
    assert_eq!(s.changed, Some(false));
    // 0.9 % again: a quiet SLI needs more than 1 % to fire.
    feed(&e, &mut w, "api", 1000, 9, T0 + 900 * SEC);
    let st = w.evaluate(T0 + 900 * SEC);
    assert!(!http(&st, "api").unwrap().firing);
}

#[test]
fn window_expiry() {
    let (e, mut w) = setup();
    feed(&e, &mut w, "api", 1000, 100, T0);
    assert!(http(&w.evaluate(T0), "api").unwrap().firing);
    // Still inside the window at 299 s.
    let st = w.evaluate(T0 + 299 * SEC);
    assert_eq!(http(&st, "api").unwrap().events, 1000);
    // Gone at 300 s: no events, clears (reported once), series dropped.
    let st = w.evaluate(T0 + 300 * SEC);
    let s = http(&st, "api").unwrap();
    assert_eq!((s.events, s.firing, s.changed), (0, false, Some(false)));
    assert_eq!(w.series_count(), 0);
    assert!(w.evaluate(T0 + 301 * SEC).is_empty());
}

#[test]
fn sliding_buckets() {
    let (e, mut w) = setup();
    // 100 events every 30 s for 10 minutes: the window always holds 10
    // buckets of 100.
    for k in 0..20u64 {
        feed(&e, &mut w, "api", 100, 1, T0 + k * 30 * SEC);
        let st = w.evaluate(T0 + k * 30 * SEC);
        assert_eq!(
            http(&st, "api").unwrap().events,
            100 * (k + 1).min(10),
            "k={k}"
        );
    }
}

#[test]
fn services_are_separate_series() {
    let (e, mut w) = setup();
    feed(&e, &mut w, "api", 1000, 50, T0);
    feed(&e, &mut w, "auth", 1000, 0, T0);
    let st = w.evaluate(T0);
    assert!(http(&st, "api").unwrap().firing);
    assert!(!http(&st, "auth").unwrap().firing);
    assert_eq!(st.len(), 2);
    assert!(st[0].service() < st[1].service());
}

#[test]
fn db_connection_error_fires_on_any() {
    let (e, mut w) = setup();
    let db = e.index_of("db_connection_error").unwrap();
    let ev = SliEvent {
        category: Some("database_connection"),
        severity_number: 17,
        ..SliEvent::new(
            SliSignal::Log,
            "api",
            "'_AsyncGeneratorContextManager' object has no attribute 'execute'",
        )
    };
    e.classify(&ev, &mut |m| w.record(m.sli, m.labels, m.bad, T0));
    let st = w.evaluate(T0);
    let s = st.iter().find(|s| s.sli == db).unwrap();
    assert_eq!(
        (s.events, s.bad_events, s.firing, s.changed),
        (1, 1, true, Some(true))
    );
    let st = w.evaluate(T0 + 300 * SEC);
    let s = st.iter().find(|s| s.sli == db).unwrap();
    assert_eq!((s.firing, s.changed), (false, Some(false)));
}

#[test]
fn series_are_bounded() {
    let c = SliConfig {
        max_series: 10,
        ..SliConfig::default()
    };
    let e = SliEngine::new(&c).unwrap();
    let mut w = SliWindows::new(&e, &c);
    for i in 0..100 {
        feed(&e, &mut w, &format!("svc-{i}"), 3, 1, T0);
    }
    assert_eq!(w.series_count(), 10);
    assert_eq!(w.overflow(0), 90 * 3);
    // Expired series make room again.
    w.evaluate(T0 + 1000 * SEC);
    assert_eq!(w.series_count(), 0);
    feed(&e, &mut w, "late", 1, 0, T0 + 1000 * SEC);
    assert_eq!(w.series_count(), 1);
}

#[test]
fn custom_clear_factor() {
    let c = SliConfig::from_yaml("clear_factor: 1.0").unwrap();
    let e = SliEngine::new(&c).unwrap();
    let mut w = SliWindows::new(&e, &c);
    feed(&e, &mut w, "api", 1000, 20, T0);
    assert!(http(&w.evaluate(T0), "api").unwrap().firing);
    feed(&e, &mut w, "api", 1000, 9, T0 + 300 * SEC);
    assert!(!http(&w.evaluate(T0 + 300 * SEC), "api").unwrap().firing);
}
