//! Compiled SLI matchers.
//!
//! [`SliEngine::classify`] runs once per record, so it is written for the
//! common case, a record that matches nothing: every matcher checks its cheap
//! conditions (signal, span kind, status, severity, HTTP status, category)
//! before attributes and regexes, regexes are compiled once, and nothing is
//! allocated unless a label value has to be rendered from a non-string
//! attribute. Most records are *quiet* (no message or span-name literal a
//! matcher could use: a request log, an HTTP server span, most errors):
//! what the matchers decided for one is remembered per thread by the few
//! facts it depends on (module `quiet`) and replayed for the next.

use std::borrow::Cow;
use std::io::Write as _;

use std::cell::{Cell, OnceCell};

use gardener_proto::view::ValueRef;
use regex::Regex;

use super::config::{
    AttributeMatcherConfig, MatcherConfig, SliConfig, SliConfigError, SliDefinitionConfig,
    SpanStatusName,
};
use super::prefilter::{JointPrefilter, Possible, Prefilter, PrefilteredRegex};
use super::quiet::{self, Outcome, QuietKey};
use super::{EventKeys, SliEvent, SliSignal};
use crate::key_summary::KeySummary;
use crate::memo;

/// Most labels an SLI may have (label values live in a stack array).
pub const MAX_LABELS: usize = 4;

/// Label name that takes the event's service.
const SERVICE_LABEL: &str = "service";

/// One SLI a record counts toward.
#[derive(Debug, Clone, PartialEq)]
pub struct SliMatch<'a> {
    /// Index into the engine's definitions.
    pub sli: usize,
    /// Label values, in the order of [`SliEngine::label_names`].
    pub labels: &'a [Cow<'a, str>],
    /// The record is a bad event (it is always an event).
    pub bad: bool,
}

/// The compiled SLI definitions; see [`super::config`] for the language.
#[derive(Debug)]
pub struct SliEngine {
    defs: Vec<SliDef>,
    /// Literal prefilters of the message and span-name regexes.
    message_prefilter: Option<Prefilter>,
    span_name_prefilter: Option<Prefilter>,
    /// Both in one, for spans whose message is their name.
    joint_prefilter: Option<JointPrefilter>,
    /// The attribute keys the matchers read ([`HTTP_STATUS_KEYS`] first);
    /// each [`AttrMatcher`] has its slot here.
    attr_keys: Vec<Box<str>>,
    /// The summary of each of `attr_keys` alone.
    attr_key_summaries: Vec<KeySummary>,
    /// Per kind of event ([`kind_index`]), what makes an event of that
    /// kind quiet ([`super::quiet`]); `None` when the kind's events are
    /// always classified in full.
    quiet: [Option<QuietKind>; 4],
    /// This engine's id in the per-thread table of quiet outcomes.
    id: u64,
}

/// What makes an event of one kind quiet, and what its key holds. It must
/// lack, when the kind's matchers have regexes on it, any literal of the
/// message or span-name prefilter. Its key holds the answers to the kind's
/// category conditions (at most 32; none for kinds without a category) and
/// to its attribute conditions (at most 64).
#[derive(Debug)]
struct QuietKind {
    attributes: Box<[AttrMatcher]>,
    /// The summary of each of `attributes`' keys: an event with none of
    /// them has the answers in `absent` without asking.
    attribute_keys: Box<[KeySummary]>,
    absent: u64,
    message: bool,
    /// The kind's matchers that have a message regex, for
    /// [`SliEngine::message_may_decide`].
    message_matchers: Box<[MessageMatcher]>,
    /// Their slots' bits: a literal of another slot (a regex of another
    /// kind's matchers) leaves the event to the full classification, as
    /// any literal did before matchers could be ruled out.
    message_bits: u64,
    span_name: bool,
    categories: Box<[CategoryCondition]>,
}

/// A matcher of a quiet kind with a message regex: where it is
/// (`defs[def]`, its `bad` or `events` list, index `index`), its regex's
/// prefilter slot as a bit, and its `severity_min`.
#[derive(Debug)]
struct MessageMatcher {
    def: u32,
    bad: bool,
    index: u32,
    bit: u64,
    severity_min: Option<i32>,
}

/// A matcher's `category` (`prefix: false`) or `category_prefix`.
#[derive(Debug, PartialEq)]
struct CategoryCondition {
    text: Box<str>,
    prefix: bool,
}

impl CategoryCondition {
    fn holds(&self, category: &str) -> bool {
        if self.prefix {
            category.starts_with(&*self.text)
        } else {
            category == &*self.text
        }
    }
}

/// Most category conditions a quiet key holds the answers to.
const MAX_QUIET_CATEGORIES: usize = 32;

/// Most attribute conditions a quiet key holds the answers to.
const MAX_QUIET_ATTRIBUTES: usize = 64;

/// Longest message whose literal suffixes the quiet test scans for (see
/// [`SliEngine::message_may_decide`]); a longer one is left to the full
/// classification. The scan costs a few instructions a byte, and the full
/// classification it may save is cheap for errors, whose category most
/// matchers answer first: on long messages (errors, most of them) it cost
/// more than it saved, on request logs a fraction.
const MAX_QUIET_SUFFIX_SCAN: usize = 64;

/// The attributes the HTTP status falls back to, in order.
const HTTP_STATUS_KEYS: [&str; 2] = ["http.response.status_code", "http.status_code"];

/// Most attribute keys found in one pass per record; with more distinct
/// keys in the matchers, the others are found by a scan each.
const MAX_ATTR_SLOTS: usize = 16;

/// True when `a` and `b` are the same bytes in memory (not only equal).
fn same_text(a: &str, b: &str) -> bool {
    std::ptr::eq(a.as_ptr(), b.as_ptr()) && a.len() == b.len()
}

#[derive(Debug)]
struct SliDef {
    name: String,
    description: String,
    events: Vec<Matcher>,
    bad: Vec<Matcher>,
    /// Indexes into `events` and `bad` of the matchers that can match each
    /// kind of event (by [`kind_index`]: its signal and whether it has a
    /// category): a record skips the matchers of the other signal (a third
    /// of the built-ins' are span-only or log-only) and, when it was not
    /// signed, those that ask for a category, without calling them.
    events_for: [Box<[u32]>; 4],
    bad_for: [Box<[u32]>; 4],
    threshold: f64,
    window_secs: u64,
    min_events: u64,
    label_names: Vec<String>,
    /// `None` = the service, `Some(key)` = an attribute.
    label_sources: Vec<Option<String>>,
}

impl SliEngine {
    /// Compiles the effective definitions of `config` (built-ins with
    /// overrides, then user SLIs).
    pub fn new(config: &SliConfig) -> Result<Self, SliConfigError> {
        if !(config.clear_factor > 0.0 && config.clear_factor <= 1.0) {
            return Err(SliConfigError::ClearFactor(config.clear_factor));
        }
        let mut defs: Vec<SliDef> = config
            .effective()
            .into_iter()
            .map(|(name, def)| SliDef::compile(name, def))
            .collect::<Result<_, _>>()?;
        let message = build_prefilter(&mut defs, |m| &mut m.message);
        let span_name = build_prefilter(&mut defs, |m| &mut m.span_name);
        let (message_prefilter, message_literals) = message.unzip();
        let (span_name_prefilter, span_name_literals) = span_name.unzip();
        let joint_prefilter = match (&message_prefilter, &span_name_prefilter) {
            (Some(m), Some(n)) => JointPrefilter::new(
                (m, message_literals.unwrap_or_default()),
                (n, span_name_literals.unwrap_or_default()),
            ),
            _ => None,
        };
        let mut attr_keys: Vec<Box<str>> = HTTP_STATUS_KEYS.map(Box::from).to_vec();
        for m in defs
            .iter_mut()
            .flat_map(|d| d.events.iter_mut().chain(d.bad.iter_mut()))
        {
            for a in &mut m.attributes {
                a.slot = match attr_keys.iter().position(|k| *k == a.key) {
                    Some(i) => i,
                    None => {
                        attr_keys.push(a.key.clone());
                        attr_keys.len() - 1
                    }
                };
            }
        }
        let attr_key_summaries: Vec<KeySummary> = attr_keys
            .iter()
            .map(|k| KeySummary::of_key(k.as_bytes()))
            .collect();
        let quiet = std::array::from_fn(|kind| quiet_kind(&defs, kind, &attr_key_summaries));
        Ok(SliEngine {
            defs,
            message_prefilter,
            span_name_prefilter,
            joint_prefilter,
            attr_keys,
            attr_key_summaries,
            quiet,
            id: memo::next_owner_id(),
        })
    }

    /// The built-in SLIs with their default settings.
    pub fn builtin() -> Self {
        Self::new(&SliConfig::default()).expect("built-in SLIs compile")
    }

    /// Number of SLIs.
    pub fn len(&self) -> usize {
        self.defs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }

    /// The SLI's name (the `sli` label).
    pub fn name(&self, sli: usize) -> &str {
        &self.defs[sli].name
    }

    /// Names of all SLIs, in index order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.defs.iter().map(|d| d.name.as_str())
    }

    /// Index of the SLI with this name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.defs.iter().position(|d| d.name == name)
    }

    pub fn description(&self, sli: usize) -> &str {
        &self.defs[sli].description
    }

    /// Fires above this ratio (for Prometheus rules and alert policies);
    /// `0` means "any bad event".
    pub fn threshold(&self, sli: usize) -> f64 {
        self.defs[sli].threshold
    }

    pub fn window_secs(&self, sli: usize) -> u64 {
        self.defs[sli].window_secs
    }

    pub fn min_events(&self, sli: usize) -> u64 {
        self.defs[sli].min_events
    }

    /// Label names as configured (`service`, attribute keys).
    pub fn label_names(&self, sli: usize) -> &[String] {
        &self.defs[sli].label_names
    }

    /// Calls `out` once for every SLI the event counts toward, in the
    /// order of the definitions.
    pub fn classify<F>(&self, ev: &SliEvent<'_>, out: &mut F)
    where
        F: FnMut(SliMatch<'_>),
    {
        let possible = Haystacks::new(
            [
                self.message_prefilter.as_ref(),
                self.span_name_prefilter.as_ref(),
            ],
            &self.attr_keys,
            &self.attr_key_summaries,
            ev.attribute_keys,
        );
        // A span whose message is its name: one scan answers both (done
        // now, as either would be the first time a matcher asks; a span's
        // matchers nearly always ask for both).
        if let Some(name) = ev.span_name {
            self.scan_name_once(name, ev.message, &possible);
        }
        let kind = kind_index(ev.signal, ev.category.is_some());
        let quiet = self.quiet_key(ev, &possible, kind);
        let remembered = match quiet {
            Some((key, None)) => quiet::remembered(self.id, key),
            Some((key, Some(name))) => quiet::remembered_named(self.id, key, name),
            None => None,
        };
        if let Some(outcome) = remembered {
            self.replay(outcome, ev.service, out);
            return;
        }
        let outcome = self.classify_in_full(ev, &possible, kind, out);
        match quiet {
            Some((key, None)) => quiet::remember(self.id, key, outcome),
            Some((key, Some(name))) => quiet::remember_named(self.id, key, name, outcome),
            None => {}
        }
    }

    /// Scans a span's name for both its prefilters at once when it is
    /// also the message (see [`JointPrefilter`]), setting what each
    /// haystack's prefilter would find. Out of line: inlined, it changed
    /// how the rest of `classify` compiled, costing log records more than
    /// the test it adds.
    #[inline(never)]
    fn scan_name_once(&self, name: &str, message: &str, possible: &Haystacks<'_, '_>) {
        if let Some(joint) = self
            .joint_prefilter
            .as_ref()
            .filter(|_| same_text(name, message))
        {
            let (message, span_name) = joint.scan(name);
            possible.message.bits.set(Some(message));
            possible.span_name.bits.set(Some(span_name));
        }
    }

    /// The key of a quiet event ([`super::quiet`]), `None` for any other;
    /// with the span name when a regex may match it (or the message that
    /// is the name), which the key then stands for together with it.
    fn quiet_key<'a>(
        &self,
        ev: &SliEvent<'a>,
        possible: &Haystacks<'_, 'a>,
        kind: usize,
    ) -> Option<(QuietKey, Option<&'a str>)> {
        let plan = self.quiet[kind].as_ref()?;
        // A span's name a regex may match joins its key; a message only
        // when it is the name.
        let name = ev
            .span_name
            .filter(|n| kind_is_span(kind) && n.len() <= quiet::MAX_NAME);
        let mut named = false;
        if plan.message && self.message_may_decide(plan, ev, possible.message.bits(ev.message)) {
            if name != Some(ev.message) {
                return None;
            }
            named = true;
        }
        if plan.span_name
            && ev
                .span_name
                .is_some_and(|n| possible.span_name.bits(n) != 0)
        {
            name?;
            named = true;
        }
        // Most events have none of the attributes; those that have one
        // have few, found by a scan each rather than by indexing them all.
        let present = possible.keys_present(ev);
        let mut attributes = plan.absent;
        for (i, (a, &key)) in plan.attributes.iter().zip(&plan.attribute_keys).enumerate() {
            if present.may_contain(key) {
                let holds = a.test(possible.attr_unindexed(ev, a.slot));
                attributes = attributes & !(1 << i) | u64::from(holds) << i;
            }
        }
        let category = ev.category.map(|category| {
            (plan.categories.iter().enumerate())
                .fold(0, |bits, (i, c)| bits | u32::from(c.holds(category)) << i)
        });
        let key = QuietKey::new(
            ev.signal,
            ev.severity_number,
            possible.http_status(ev),
            ev.span_kind,
            ev.span_status_error,
            category,
            attributes,
        )?;
        Some((key, name.filter(|_| named)))
    }

    /// Whether the message of `ev` (whose prefilter slots are `bits`) may
    /// make one of the kind's matchers hold: some matcher whose regex's
    /// literal prefix occurs in it, whose severity condition `ev` meets,
    /// and whose regex's own filter of literal suffixes does not rule the
    /// message out (asked of messages up to [`MAX_QUIET_SUFFIX_SCAN`]
    /// bytes; a longer one may always decide). When none may, every
    /// matcher with a message regex fails for `ev` whatever the rest of
    /// its message: its regex cannot match, or its severity condition
    /// fails, and the severity is part of the quiet key. The outcome is
    /// then a function of the key, as for an event without any literal.
    ///
    /// Why more than the literal prefixes: a request log for
    /// `/api/agents` holds `agent`, the prefix of a regex that also needs
    /// `started` or `completed` and of one only asked of errors. Those
    /// were a tenth of the records and went through the full
    /// classification every time.
    fn message_may_decide(&self, plan: &QuietKind, ev: &SliEvent<'_>, bits: u64) -> bool {
        bits != 0
            && (bits & !plan.message_bits != 0
                || plan.message_matchers.iter().any(|m| {
                    bits & m.bit != 0
                        && m.severity_min.is_none_or(|min| ev.severity_number >= min)
                        && (ev.message.len() > MAX_QUIET_SUFFIX_SCAN
                            || self.message_regex(m).suffix_may_match(ev.message))
                }))
    }

    /// The message regex of a [`MessageMatcher`].
    fn message_regex(&self, m: &MessageMatcher) -> &PrefilteredRegex {
        let def = &self.defs[m.def as usize];
        let list = if m.bad { &def.bad } else { &def.events };
        list[m.index as usize]
            .message
            .as_ref()
            .expect("a MessageMatcher has a message regex")
    }

    /// Calls `out` for the SLIs of a remembered outcome, as
    /// [`classify_in_full`](Self::classify_in_full) did (quiet events are
    /// labelled by their service alone).
    fn replay<F>(&self, outcome: Outcome, service: &str, out: &mut F)
    where
        F: FnMut(SliMatch<'_>),
    {
        let labels: [Cow<'_, str>; MAX_LABELS] = std::array::from_fn(|_| Cow::Borrowed(service));
        let mut events = outcome.events;
        while events != 0 {
            let sli = events.trailing_zeros() as usize;
            events &= events - 1;
            out(SliMatch {
                sli,
                labels: &labels[..self.defs[sli].label_sources.len()],
                bad: outcome.bad & (1 << sli) != 0,
            });
        }
    }

    /// Asks the matchers; returns what they decided (SLIs past the 64th
    /// are counted but not in the outcome: such engines have no quiet kinds).
    fn classify_in_full<'a, F>(
        &self,
        ev: &SliEvent<'a>,
        possible: &Haystacks<'_, 'a>,
        kind: usize,
        out: &mut F,
    ) -> Outcome
    where
        F: FnMut(SliMatch<'_>),
    {
        let mut outcome = Outcome::default();
        for (i, def) in self.defs.iter().enumerate() {
            let any = |matchers: &[Matcher], which: &[u32]| {
                which
                    .iter()
                    .any(|&k| matchers[k as usize].matches(ev, possible))
            };
            if !any(&def.events, &def.events_for[kind]) {
                continue;
            }
            let bad = any(&def.bad, &def.bad_for[kind]);
            let mut labels: [Cow<'_, str>; MAX_LABELS] = std::array::from_fn(|_| Cow::Borrowed(""));
            for (slot, src) in labels.iter_mut().zip(&def.label_sources) {
                *slot = match src {
                    None => Cow::Borrowed(ev.service),
                    Some(key) => label_value(ev, key),
                };
            }
            out(SliMatch {
                sli: i,
                labels: &labels[..def.label_sources.len()],
                bad,
            });
            if i < 64 {
                outcome.count(i, bad);
            }
        }
        outcome
    }

    /// [`classify`](Self::classify) collected into owned
    /// `(sli, label values, bad)` tuples.
    pub fn classify_owned(&self, ev: &SliEvent<'_>) -> Vec<(usize, Vec<String>, bool)> {
        let mut v = Vec::new();
        self.classify(ev, &mut |m| {
            v.push((
                m.sli,
                m.labels.iter().map(|l| l.to_string()).collect(),
                m.bad,
            ))
        });
        v
    }
}

/// What one event's matchers share, each computed at most once and only
/// when a matcher needs it: the prefilter states of the two regex
/// haystacks, and the HTTP status (its attribute fallback scans the
/// attributes, and up to four matchers per record ask for it).
struct Haystacks<'p, 'a> {
    message: Possible<'p>,
    span_name: Possible<'p>,
    http_status: Cell<Option<Option<u16>>>,
    /// The values of the engine's attribute keys, found in one pass over
    /// the record's attributes the first time a matcher asks for one.
    attrs: OnceCell<[Option<ValueRef<'a>>; MAX_ATTR_SLOTS]>,
    attr_keys: &'p [Box<str>],
    attr_key_summaries: &'p [KeySummary],
    /// The summaries of the event's attribute keys ([`key_summary`]),
    /// given with the event or made once asked for; meaningful when
    /// `keys_known`. (Two cells, not one `Option`: copying an
    /// `Option<KeySummary>` read its tag and first word with one 16-byte
    /// load across two narrower stores, which stalls store forwarding on
    /// every record.)
    keys_by_list: Cell<EventKeys>,
    /// Their union, made once.
    keys_present: Cell<KeySummary>,
    keys_known: Cell<bool>,
}

impl<'p, 'a> Haystacks<'p, 'a> {
    /// Nothing computed yet; `[message, span name]` prefilters, the
    /// engine's attribute keys and their summaries, and the event's key
    /// summary if it came with one.
    fn new(
        [message, span_name]: [Option<&'p Prefilter>; 2],
        attr_keys: &'p [Box<str>],
        attr_key_summaries: &'p [KeySummary],
        keys_present: Option<EventKeys>,
    ) -> Self {
        let possible = |prefilter| Possible {
            prefilter,
            bits: Cell::new(None),
        };
        Haystacks {
            message: possible(message),
            span_name: possible(span_name),
            http_status: Cell::new(None),
            attrs: OnceCell::new(),
            attr_keys,
            attr_key_summaries,
            keys_known: Cell::new(keys_present.is_some()),
            keys_by_list: Cell::new(keys_present.unwrap_or_default()),
            keys_present: Cell::new(keys_present.unwrap_or_default().all()),
        }
    }

    fn http_status(&self, ev: &SliEvent<'a>) -> Option<u16> {
        if let Some(status) = self.http_status.get() {
            return status;
        }
        let status = ev.http_status.or_else(|| {
            (0..HTTP_STATUS_KEYS.len()).find_map(|slot| match self.attr(ev, slot)? {
                ValueRef::Int(i) => u16::try_from(i).ok(),
                ValueRef::Str(s) => s.trim().parse().ok(),
                _ => None,
            })
        });
        self.http_status.set(Some(status));
        status
    }

    /// The summary of every key [`find_attr`] looks at for `ev`.
    fn keys_present(&self, ev: &SliEvent<'a>) -> KeySummary {
        if !self.keys_known.get() {
            self.summarize(ev);
        }
        self.keys_present.get()
    }

    /// The summaries of each list [`find_attr`] looks at for `ev`.
    fn keys_by_list(&self, ev: &SliEvent<'a>) -> EventKeys {
        if !self.keys_known.get() {
            self.summarize(ev);
        }
        self.keys_by_list.get()
    }

    #[cold]
    fn summarize(&self, ev: &SliEvent<'a>) {
        let summary = key_summary(ev);
        self.keys_by_list.set(summary);
        self.keys_present.set(summary.all());
        self.keys_known.set(true);
    }

    /// The value of the engine's attribute key `slot`, as [`find_attr`]
    /// finds it.
    fn attr(&self, ev: &SliEvent<'a>, slot: usize) -> Option<ValueRef<'a>> {
        // Most matchers ask for keys the record does not have (WebSocket
        // close codes, GenAI operations on a request log): a summary of
        // its keys rules them out without the index.
        let present = self.keys_present(ev);
        if !present.may_contain(self.attr_key_summaries[slot]) {
            // A summary given with the event must cover every list read.
            debug_assert!(
                find_attr(ev, &self.attr_keys[slot]).is_none(),
                "the key summary missed {}",
                self.attr_keys[slot]
            );
            return None;
        }
        if slot >= MAX_ATTR_SLOTS {
            return find_attr(ev, &self.attr_keys[slot]);
        }
        let values = self
            .attrs
            .get_or_init(|| index_attributes(ev, self.attr_keys));
        values[slot].filter(|v| v.is_set())
    }

    /// What [`attr`](Self::attr) answers, by a scan for this key alone
    /// unless the attributes are indexed already: the quiet test asks for
    /// one or two keys a record has, where indexing all costs more.
    fn attr_unindexed(&self, ev: &SliEvent<'a>, slot: usize) -> Option<ValueRef<'a>> {
        if let Some(values) = self.attrs.get().filter(|_| slot < MAX_ATTR_SLOTS) {
            return values[slot].filter(|v| v.is_set());
        }
        // `find_attr`, skipping each list whose summary rules the key out.
        let (key, wanted) = (&*self.attr_keys[slot], self.attr_key_summaries[slot]);
        let lists = self.keys_by_list(ev);
        let in_record = || {
            ev.attributes.get(key).or_else(|| {
                ev.added_attributes
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|&(_, v)| ValueRef::Str(v))
            })
        };
        let in_resource = || ev.resource_attributes.get(key);
        let record = lists.record.may_contain(wanted).then(in_record).flatten();
        let value = record.or_else(|| {
            lists
                .resource
                .may_contain(wanted)
                .then(in_resource)
                .flatten()
        });
        debug_assert_eq!(value.filter(|v| v.is_set()), find_attr(ev, key), "{key}");
        value.filter(|v| v.is_set())
    }
}

/// What makes an event of kind `kind` ([`kind_index`]) quiet, or `None`
/// when its events are always classified in full: more than 64 SLIs (an
/// [`Outcome`] has a bit each), labels from attributes (they differ
/// between quiet events), a regex the prefilter cannot rule out, a regex
/// the matchers do not scan every event with anyway (see below), or more
/// than [`MAX_QUIET_CATEGORIES`] category or [`MAX_QUIET_ATTRIBUTES`]
/// attribute conditions.
fn quiet_kind(defs: &[SliDef], kind: usize, summaries: &[KeySummary]) -> Option<QuietKind> {
    if defs.len() > 64
        || defs
            .iter()
            .any(|d| d.label_sources.iter().any(Option::is_some))
    {
        return None;
    }
    // Each of the kind's matchers with where it is: (def, bad, index).
    let matchers = defs.iter().enumerate().flat_map(|(i, d)| {
        let events = d.events_for[kind]
            .iter()
            .map(move |&k| ((i, false, k), &d.events[k as usize]));
        events.chain(
            d.bad_for[kind]
                .iter()
                .map(move |&k| ((i, true, k), &d.bad[k as usize])),
        )
    });
    let mut plan = QuietKind {
        attributes: Box::new([]),
        attribute_keys: Box::new([]),
        absent: 0,
        message: false,
        message_matchers: Box::new([]),
        message_bits: 0,
        span_name: false,
        categories: Box::new([]),
    };
    let mut attributes = Vec::new();
    let mut categories = Vec::new();
    let mut message_matchers = Vec::new();
    for ((def, bad, index), m) in matchers {
        for a in &m.attributes {
            if !attributes.iter().any(|b: &AttrMatcher| b.same_condition(a)) {
                attributes.push(a.clone());
            }
        }
        let conditions = [(&m.category, false), (&m.category_prefix, true)];
        for (text, prefix) in conditions {
            if let Some(text) = text {
                let condition = CategoryCondition {
                    text: text.clone(),
                    prefix,
                };
                if !categories.contains(&condition) {
                    categories.push(condition);
                }
            }
        }
        for (regex, uses) in [
            (&m.message, &mut plan.message),
            (&m.span_name, &mut plan.span_name),
        ] {
            if let Some(regex) = regex {
                regex.slot?;
                *uses = true;
            }
        }
        if let Some(slot) = m.message.as_ref().and_then(|r| r.slot) {
            message_matchers.push(MessageMatcher {
                def: u32::try_from(def).ok()?,
                bad,
                index,
                bit: 1 << slot,
                severity_min: m.severity_min,
            });
        }
    }
    // The quiet test scans the message (span name) of every event of the
    // kind. For a log record that costs nothing only when the matchers scan
    // it anyway: an `events` list (asked for every event) has a matcher
    // whose only condition is that regex, as the built-ins do. A regex only
    // behind a cheaper condition (`severity_min: ERROR`) is never reached
    // for most records, whose messages may be long; those are left to the
    // full classification. A span's message is its name or status message,
    // a few dozen bytes: scanning it costs a fraction of asking the matchers.
    let scanned_anyway = |check: fn(&Check) -> bool| {
        kind_is_span(kind)
            || defs.iter().any(|d| {
                d.events_for[kind]
                    .iter()
                    .any(|&k| matches!(&*d.events[k as usize].checks, [only] if check(only)))
            })
    };
    if (plan.message && !scanned_anyway(|c| matches!(c, Check::Message)))
        || (plan.span_name && !scanned_anyway(|c| matches!(c, Check::SpanName)))
    {
        return None;
    }
    if categories.len() > MAX_QUIET_CATEGORIES || attributes.len() > MAX_QUIET_ATTRIBUTES {
        return None;
    }
    plan.absent = (attributes.iter().enumerate()).fold(0, |bits, (i, a)| {
        bits | u64::from(a.holds_when_absent()) << i
    });
    plan.attribute_keys = attributes.iter().map(|a| summaries[a.slot]).collect();
    plan.attributes = attributes.into_boxed_slice();
    plan.categories = categories.into_boxed_slice();
    plan.message_bits = message_matchers.iter().fold(0, |bits, m| bits | m.bit);
    plan.message_matchers = message_matchers.into_boxed_slice();
    Some(plan)
}

/// The summary of every key [`find_attr`] looks at.
fn key_summary(ev: &SliEvent<'_>) -> EventKeys {
    let mut record = KeySummary::of_map(ev.attributes);
    for (key, _) in ev.added_attributes {
        record.add(key.as_bytes());
    }
    EventKeys {
        record,
        resource: KeySummary::of_map(ev.resource_attributes),
    }
}

/// A bit per key length below 63; longer keys share bit 63.
pub(crate) const fn length_bit(len: usize) -> u64 {
    1 << if len < 63 { len } else { 63 }
}

/// For each of `keys` (up to [`MAX_ATTR_SLOTS`]), the value of the first
/// attribute with that key, in [`find_attr`]'s order: record attributes,
/// the collector's additions, resource attributes. One pass over each list,
/// reading only the values of the keys asked for.
fn index_attributes<'a>(
    ev: &SliEvent<'a>,
    keys: &[Box<str>],
) -> [Option<ValueRef<'a>>; MAX_ATTR_SLOTS] {
    let keys = &keys[..keys.len().min(MAX_ATTR_SLOTS)];
    let mut values = [None; MAX_ATTR_SLOTS];
    let mut missing = keys.len();
    // Takes the value when `key` is one of `keys` seen for the first time;
    // true once every key has its value.
    // Most attributes are none of the keys: their length tells at once.
    let lengths = keys.iter().fold(0u64, |m, k| m | length_bit(k.len()));
    let mut offer =
        |values: &mut [Option<ValueRef<'a>>], key: &[u8], value: &dyn Fn() -> ValueRef<'a>| {
            if lengths & length_bit(key.len()) == 0 {
                return false;
            }
            if let Some(i) = keys.iter().position(|k| k.as_bytes() == key) {
                if values[i].is_none() {
                    values[i] = Some(value());
                    missing -= 1;
                }
            }
            missing == 0
        };
    for entry in ev.attributes.entries() {
        if offer(&mut values, entry.key_bytes(), &|| entry.value()) {
            return values;
        }
    }
    for &(key, value) in ev.added_attributes {
        if offer(&mut values, key.as_bytes(), &|| ValueRef::Str(value)) {
            return values;
        }
    }
    for entry in ev.resource_attributes.entries() {
        if offer(&mut values, entry.key_bytes(), &|| entry.value()) {
            return values;
        }
    }
    values
}

/// Builds the prefilter of one kind of regex (`field` picks it from a
/// matcher) over all matchers, and gives each matcher its slot.
#[allow(clippy::type_complexity)]
fn build_prefilter(
    defs: &mut [SliDef],
    field: impl Fn(&mut Matcher) -> &mut Option<PrefilteredRegex>,
) -> Option<(Prefilter, Vec<(Vec<u8>, u64)>)> {
    let mut matchers: Vec<&mut Matcher> = defs
        .iter_mut()
        .flat_map(|d| d.events.iter_mut().chain(d.bad.iter_mut()))
        .collect();
    let prefixes: Vec<Option<Vec<Vec<u8>>>> = matchers
        .iter_mut()
        .filter_map(|m| field(m).as_mut().map(|r| r.prefixes.take()))
        .collect();
    let prefix_refs: Vec<Option<&[Vec<u8>]>> = prefixes.iter().map(Option::as_deref).collect();
    let mut slots = vec![None; prefixes.len()];
    let prefilter = Prefilter::build(&prefix_refs, &mut slots);
    let mut next = slots.into_iter();
    for m in matchers.iter_mut() {
        if let Some(r) = field(m).as_mut() {
            r.slot = next.next().flatten();
        }
    }
    prefilter
}

impl SliDef {
    fn compile(name: String, def: SliDefinitionConfig) -> Result<Self, SliConfigError> {
        let invalid = |message: String| SliConfigError::Invalid {
            sli: name.clone(),
            message,
        };
        if name.is_empty() {
            return Err(invalid("empty SLI name".into()));
        }
        let events = def
            .events
            .ok_or_else(|| invalid("`events` is required".into()))?;
        let bad = def.bad.ok_or_else(|| invalid("`bad` is required".into()))?;
        if events.is_empty() || bad.is_empty() {
            return Err(invalid(
                "`events` and `bad` need at least one matcher".into(),
            ));
        }
        let threshold = def
            .threshold
            .ok_or_else(|| invalid("`threshold` is required".into()))?;
        if !(0.0..=1.0).contains(&threshold) {
            return Err(invalid(format!("threshold {threshold} is not in [0, 1]")));
        }
        let window_secs = def.window_secs.unwrap_or(300);
        if window_secs == 0 {
            return Err(invalid("window_secs must be > 0".into()));
        }
        let label_names = def
            .labels
            .unwrap_or_else(|| vec![SERVICE_LABEL.to_string()]);
        if label_names.len() > MAX_LABELS {
            return Err(invalid(format!("at most {MAX_LABELS} labels")));
        }
        let label_sources = label_names
            .iter()
            .map(|l| (l != SERVICE_LABEL).then(|| l.clone()))
            .collect();
        let compile_all =
            |list: &'static str, ms: Vec<MatcherConfig>| -> Result<Vec<Matcher>, SliConfigError> {
                (ms.into_iter().enumerate())
                    .map(|(i, m)| Matcher::compile(&name, m).map_err(|e| e.in_matcher(list, i)))
                    .collect()
            };
        let events = compile_all("events", events)?;
        let bad = compile_all("bad", bad)?;
        Ok(SliDef {
            description: def.description.unwrap_or_default(),
            events_for: for_each_kind(&events),
            bad_for: for_each_kind(&bad),
            events,
            bad,
            threshold,
            window_secs,
            min_events: def.min_events.unwrap_or(100).max(1),
            label_names,
            label_sources,
            name,
        })
    }
}

/// True for the kinds ([`kind_index`]) of spans.
fn kind_is_span(kind: usize) -> bool {
    kind >= 2
}

/// Index of a kind of event in [`SliDef::events_for`] and [`SliDef::bad_for`].
fn kind_index(signal: SliSignal, has_category: bool) -> usize {
    let signal = match signal {
        SliSignal::Log => 0,
        SliSignal::Span => 1,
    };
    signal * 2 + usize::from(has_category)
}

/// Per kind of event ([`kind_index`]), the indexes of the matchers that do
/// not exclude it: of its signal or of any, and, for an event without a
/// category, not asking for one; cheapest first.
///
/// Why the order: a list is asked whether *any* of its matchers holds, and
/// matchers have no side effects, so the answer does not depend on the
/// order, but the cost does. An error about a WebSocket is a
/// `websocket_failure` event by `category_prefix: websocket`, a comparison;
/// in the order written it first went through two message regexes (and
/// their literal scans) that come before it in the built-ins.
fn for_each_kind(matchers: &[Matcher]) -> [Box<[u32]>; 4] {
    std::array::from_fn(|kind| {
        let signal = if kind / 2 == 0 {
            SliSignal::Log
        } else {
            SliSignal::Span
        };
        let has_category = kind % 2 == 1;
        let mut which: Vec<u32> = (0..matchers.len() as u32)
            .filter(|&k| {
                let m = &matchers[k as usize];
                m.signal.is_none_or(|s| s == signal)
                    && (has_category || (m.category.is_none() && m.category_prefix.is_none()))
            })
            .collect();
        which.sort_by_key(|&k| matchers[k as usize].cost());
        which.into_boxed_slice()
    })
}

#[derive(Debug)]
struct Matcher {
    signal: Option<SliSignal>,
    /// Bit `k` set = span kind `k` accepted; 0 = any.
    span_kinds: u8,
    span_status_error: Option<bool>,
    severity_min: Option<i32>,
    http_status: Option<(u16, u16)>,
    has_http_status: Option<bool>,
    category: Option<Box<str>>,
    category_prefix: Option<Box<str>>,
    attributes: Vec<AttrMatcher>,
    span_name: Option<PrefilteredRegex>,
    message: Option<PrefilteredRegex>,
    /// The conditions this matcher has, in the order they are tested:
    /// cheap ones first, then attributes, then regexes (each behind the
    /// engine's literal prefilter). A matcher has one or two of the ten
    /// kinds of condition; testing only those, instead of asking each
    /// field whether it is set, halves the cost of a matcher.
    checks: Box<[Check]>,
}

/// One condition of a [`Matcher`] (the field it reads).
#[derive(Debug, Clone, Copy)]
enum Check {
    SpanKinds,
    SpanStatus,
    Severity,
    Category,
    CategoryPrefix,
    /// `http_status` and/or `has_http_status`.
    Http,
    /// `attributes[i]`.
    Attribute(u16),
    SpanName,
    Message,
}

#[derive(Debug, Clone)]
struct AttrMatcher {
    key: Box<str>,
    /// Its key's slot in [`SliEngine::attr_keys`].
    slot: usize,
    test: AttrTest,
}

#[derive(Debug, Clone)]
enum AttrTest {
    Exists(bool),
    Equals(Box<str>),
    Regex(Regex),
}

fn regex(sli: &str, pattern: &str) -> Result<Regex, SliConfigError> {
    Regex::new(pattern).map_err(|e| SliConfigError::Regex {
        sli: sli.to_string(),
        pattern: pattern.to_string(),
        source: Box::new(e),
    })
}

impl Matcher {
    fn compile(sli: &str, m: MatcherConfig) -> Result<Self, SliConfigError> {
        let invalid = |message: String| SliConfigError::Invalid {
            sli: sli.to_string(),
            message,
        };
        if m == MatcherConfig::default() {
            return Err(invalid(
                "empty matcher (it would match every record)".into(),
            ));
        }
        let mut span_kinds = 0u8;
        if let Some(kinds) = &m.span_kind {
            for k in kinds.as_slice() {
                span_kinds |= 1 << k.as_i32();
            }
        }
        let severity_min = match &m.severity_min {
            None => None,
            Some(s) => Some(
                s.number()
                    .ok_or_else(|| invalid(format!("severity_min: unknown severity {s}")))?,
            ),
        };
        let http_status = match &m.http_status {
            None => None,
            Some(h) => Some(
                h.range()
                    .ok_or_else(|| invalid(format!("invalid http_status {h:?}")))?,
            ),
        };
        let attributes: Vec<AttrMatcher> = m
            .attributes
            .unwrap_or_default()
            .into_iter()
            .map(|a| AttrMatcher::compile(sli, a))
            .collect::<Result<_, _>>()?;
        let attribute_count = u16::try_from(attributes.len())
            .map_err(|_| invalid("too many attribute conditions".into()))?;
        let checks = [
            (span_kinds != 0).then_some(Check::SpanKinds),
            m.span_status.map(|_| Check::SpanStatus),
            severity_min.map(|_| Check::Severity),
            m.category.as_ref().map(|_| Check::Category),
            m.category_prefix.as_ref().map(|_| Check::CategoryPrefix),
            (http_status.is_some() || m.has_http_status.is_some()).then_some(Check::Http),
        ]
        .into_iter()
        .flatten()
        .chain((0..attribute_count).map(Check::Attribute))
        .chain(m.span_name.as_ref().map(|_| Check::SpanName))
        .chain(m.message.as_ref().map(|_| Check::Message))
        .collect();
        Ok(Matcher {
            signal: m.signal,
            span_kinds,
            span_status_error: m.span_status.map(|s| s == SpanStatusName::Error),
            severity_min,
            http_status,
            has_http_status: m.has_http_status,
            category: m.category.map(Into::into),
            category_prefix: m.category_prefix.map(Into::into),
            attributes,
            span_name: m
                .span_name
                .as_deref()
                .map(|p| regex(sli, p).map(PrefilteredRegex::new))
                .transpose()?,
            message: m
                .message
                .as_deref()
                .map(|p| regex(sli, p).map(PrefilteredRegex::new))
                .transpose()?,
            checks,
        })
    }

    /// How much asking this matcher may cost, as the class of its dearest
    /// check (the last: [`Matcher::checks`] are in this order too): fields
    /// of the event, then the HTTP status (which may look through the
    /// attributes), then an attribute, then a regex.
    fn cost(&self) -> u8 {
        self.checks.last().map_or(0, |check| match check {
            Check::SpanKinds
            | Check::SpanStatus
            | Check::Severity
            | Check::Category
            | Check::CategoryPrefix => 0,
            Check::Http => 1,
            Check::Attribute(_) => 2,
            Check::SpanName | Check::Message => 3,
        })
    }

    /// Whether every one of [`Matcher::checks`] holds. The signal is not
    /// tested: the engine's per-kind lists ([`SliDef::events_for`]) hold
    /// only matchers of the event's signal.
    #[inline]
    fn matches<'a>(&self, ev: &SliEvent<'a>, possible: &Haystacks<'_, 'a>) -> bool {
        self.checks
            .iter()
            .all(|&check| self.holds(check, ev, possible))
    }

    fn holds<'a>(&self, check: Check, ev: &SliEvent<'a>, possible: &Haystacks<'_, 'a>) -> bool {
        match check {
            Check::SpanKinds => ev
                .span_kind
                .is_some_and(|k| (0..8).contains(&k) && self.span_kinds & (1 << k) != 0),
            Check::SpanStatus => self.span_status_error == Some(ev.span_status_error),
            Check::Severity => self
                .severity_min
                .is_none_or(|min| ev.severity_number >= min),
            Check::Category => ev.category == self.category.as_deref(),
            Check::CategoryPrefix => ev
                .category
                .zip(self.category_prefix.as_deref())
                .is_some_and(|(c, p)| c.starts_with(p)),
            Check::Http => {
                let status = possible.http_status(ev);
                self.has_http_status.is_none_or(|h| h == status.is_some())
                    && self
                        .http_status
                        .is_none_or(|(lo, hi)| status.is_some_and(|s| (lo..=hi).contains(&s)))
            }
            Check::Attribute(i) => self.attributes[usize::from(i)].matches(ev, possible),
            Check::SpanName => ev.span_name.is_some_and(|n| {
                self.span_name
                    .as_ref()
                    .is_some_and(|re| re.is_match(n, &possible.span_name))
            }),
            Check::Message => self
                .message
                .as_ref()
                .is_some_and(|re| re.is_match(ev.message, &possible.message)),
        }
    }
}

impl AttrMatcher {
    fn compile(sli: &str, a: AttributeMatcherConfig) -> Result<Self, SliConfigError> {
        let test = match (a.equals, a.regex, a.exists) {
            (Some(v), None, None) => AttrTest::Equals(v.into()),
            (None, Some(r), None) => AttrTest::Regex(regex(sli, &r)?),
            (None, None, Some(e)) => AttrTest::Exists(e),
            _ => {
                return Err(SliConfigError::Invalid {
                    sli: sli.to_string(),
                    message: format!(
                        "attribute `{}` needs exactly one of equals, regex, exists",
                        a.key
                    ),
                })
            }
        };
        Ok(AttrMatcher {
            key: a.key.into(),
            slot: 0,
            test,
        })
    }

    /// True when both test the same key the same way (their answers agree).
    fn same_condition(&self, other: &AttrMatcher) -> bool {
        self.slot == other.slot
            && match (&self.test, &other.test) {
                (AttrTest::Exists(a), AttrTest::Exists(b)) => a == b,
                (AttrTest::Equals(a), AttrTest::Equals(b)) => a == b,
                (AttrTest::Regex(a), AttrTest::Regex(b)) => a.as_str() == b.as_str(),
                _ => false,
            }
    }

    /// The answer for an event without the attribute.
    fn holds_when_absent(&self) -> bool {
        matches!(self.test, AttrTest::Exists(false))
    }

    fn matches<'a>(&self, ev: &SliEvent<'a>, possible: &Haystacks<'_, 'a>) -> bool {
        self.test(possible.attr(ev, self.slot))
    }

    /// The answer for the attribute's value (`None`: the event lacks it).
    fn test(&self, value: Option<ValueRef<'_>>) -> bool {
        match &self.test {
            AttrTest::Exists(e) => value.is_some() == *e,
            AttrTest::Equals(want) => {
                let mut buf = [0u8; 32];
                value.and_then(|v| value_str(v, &mut buf)) == Some(&**want)
            }
            AttrTest::Regex(re) => {
                let mut buf = [0u8; 32];
                value
                    .and_then(|v| value_str(v, &mut buf))
                    .is_some_and(|s| re.is_match(s))
            }
        }
    }
}

/// Record attributes first (those in the record, then those the collector
/// adds), then resource attributes.
fn find_attr<'a>(ev: &SliEvent<'a>, key: &str) -> Option<ValueRef<'a>> {
    ev.attributes
        .get(key)
        .or_else(|| {
            ev.added_attributes
                .iter()
                .find(|(k, _)| *k == key)
                .map(|&(_, v)| ValueRef::Str(v))
        })
        .or_else(|| ev.resource_attributes.get(key))
        .filter(|v| v.is_set())
}

/// A scalar attribute value as text; numbers and bools are rendered into
/// `buf` so that matching them does not allocate.
fn value_str<'v>(v: ValueRef<'v>, buf: &'v mut [u8; 32]) -> Option<&'v str> {
    let mut cur = std::io::Cursor::new(&mut buf[..]);
    match v {
        ValueRef::Str(s) => return Some(s),
        ValueRef::Bool(b) => return Some(if b { "true" } else { "false" }),
        ValueRef::Int(i) => write!(cur, "{i}").ok()?,
        ValueRef::Double(d) => write!(cur, "{d}").ok()?,
        _ => return None,
    }
    let n = cur.position() as usize;
    std::str::from_utf8(&buf[..n]).ok()
}

/// A label value from an attribute, cut to [`MAX_SERVICE_NAME`] bytes like
/// service names, so that no attribute value becomes a huge metric label.
///
/// [`MAX_SERVICE_NAME`]: crate::event::MAX_SERVICE_NAME
fn label_value<'a>(ev: &SliEvent<'a>, key: &str) -> Cow<'a, str> {
    match find_attr(ev, key) {
        None => Cow::Borrowed(""),
        Some(v) => match v {
            ValueRef::Str(s) => {
                Cow::Borrowed(crate::event::truncate(s, crate::event::MAX_SERVICE_NAME))
            }
            _ => {
                let mut buf = [0u8; 32];
                Cow::Owned(value_str(v, &mut buf).unwrap_or("").to_string())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sli::prefilter::literal_prefixes;
    use crate::sli::prefilter::tests::random_haystacks;
    use gardener_proto::otlp::common::v1::{any_value::Value, AnyValue, KeyValue};
    use gardener_proto::view::MapRef;

    /// The suffix filter of the built-in regexes that start with a common
    /// word: it exists, it turns away messages that have the word without
    /// the rest of a match, and with the prefix prefilter it never turns
    /// away a match (random haystacks made of the literals' pieces, in
    /// both cases and with the Unicode case variants).
    #[test]
    fn suffix_filters_never_hide_a_match() {
        let e = SliEngine::builtin();
        let regexes = prefiltered(&e, |m| &m.message);
        let with_suffixes: Vec<&str> = regexes
            .iter()
            .filter(|r| r.suffixes.is_some())
            .map(|r| r.regex.as_str())
            .collect();
        assert!(
            with_suffixes.iter().any(|r| r.contains("started"))
                && with_suffixes
                    .iter()
                    .any(|r| r.contains("websocket connection")),
            "{with_suffixes:?}"
        );
        for r in &regexes {
            if let Some(s) = &r.suffixes {
                for h in [
                    "GET /api/agents 200 12ms",
                    "Error in WebSocket connection ws_1: WebSocket is not connected",
                ] {
                    assert_eq!(s.scan(h), 0, "{} on {h:?}", r.regex);
                }
            }
        }
        let pieces = [
            "agent",
            "AGENT",
            "agents",
            " ",
            "x",
            "/api/",
            "started",
            "\u{17F}tarted",
            "Starting",
            "completed",
            "FINISHED",
            "fini\u{17F}hed",
            "succeeded",
            "WebSocket",
            "websocket connection ",
            "accepted",
            "ACCEPTED",
            "established",
            "e\u{17F}tabli\u{17F}hed",
            "opened",
            "failed",
            "rejected",
            "refused",
            "closed abnormally",
            "CLOSED ABNORMALLY",
            "close",
            "code",
            "1006",
            "1011",
            "\"WebSocket /ws\" ",
            "[accepted]",
            "403",
            "\"",
            ":",
            "0",
        ];
        let mut matched = 0;
        for h in random_haystacks(&pieces, 20_000, 12, 0x9e3779b97f4a7c15) {
            let possible = Possible {
                prefilter: e.message_prefilter.as_ref(),
                bits: Cell::new(None),
            };
            for r in &regexes {
                let want = r.regex.is_match(&h);
                matched += usize::from(want);
                assert_eq!(r.is_match(&h, &possible), want, "{} on {h:?}", r.regex);
            }
        }
        assert!(
            matched > 1000,
            "the haystacks exercise the regexes ({matched})"
        );
    }

    #[test]
    fn builtins_compile() {
        let e = SliEngine::builtin();
        let names: Vec<_> = e.names().collect();
        assert_eq!(names, super::super::BUILTIN_NAMES);
        assert_eq!(e.threshold(0), 0.01);
        assert_eq!(e.threshold(3), 0.0);
        assert_eq!(e.min_events(3), 1);
    }

    /// Each kind's matchers are asked cheapest first; the built-ins list a
    /// `category_prefix` after regexes, so a category-bearing log record
    /// reaches it first only because of the order (it holds for every
    /// WebSocket error: no regex or literal scan is needed for it).
    #[test]
    fn matchers_are_asked_cheapest_first() {
        let e = SliEngine::builtin();
        for d in &e.defs {
            for (matchers, lists) in [(&d.events, &d.events_for), (&d.bad, &d.bad_for)] {
                for list in lists {
                    let costs: Vec<u8> =
                        list.iter().map(|&k| matchers[k as usize].cost()).collect();
                    assert!(costs.is_sorted(), "{}: {costs:?}", d.name);
                    let mut seen = list.to_vec();
                    seen.sort_unstable();
                    seen.dedup();
                    assert_eq!(seen.len(), list.len(), "{}: {list:?}", d.name);
                }
            }
        }
        let ws = e
            .defs
            .iter()
            .find(|d| d.name == "websocket_failure")
            .unwrap();
        let log_with_category = kind_index(SliSignal::Log, true);
        let first = &ws.events[ws.events_for[log_with_category][0] as usize];
        assert!(first.category_prefix.is_some(), "{first:?}");
        assert!(ws.events.last().unwrap().category_prefix.is_some());
    }

    fn prefiltered(
        e: &SliEngine,
        field: fn(&Matcher) -> &Option<PrefilteredRegex>,
    ) -> Vec<&PrefilteredRegex> {
        e.defs
            .iter()
            .flat_map(|d| d.events.iter().chain(&d.bad))
            .filter_map(|m| field(m).as_ref())
            .collect()
    }

    #[test]
    fn builtin_regexes_get_a_prefilter() {
        let e = SliEngine::builtin();
        for r in prefiltered(&e, |m| &m.message)
            .into_iter()
            .chain(prefiltered(&e, |m| &m.span_name))
        {
            assert!(r.slot.is_some(), "no literal prefilter for {}", r.regex);
        }
    }

    #[test]
    fn the_prefilter_never_hides_a_match() {
        let e = SliEngine::builtin();
        let haystacks = [
            "\"WebSocket /ws\" [accepted]",
            "INFO: 10.0.0.1 - \"WebSocket /ws/threads\" 403",
            "websocket CONNECTION Closed Abnormally",
            "WEBSOCKET CONNECTION FAILED",
            "connection closed with code 1006",
            "socket Closing: CODE=1011 (internal)",
            "Agent supervisor started",
            "AGENT run FINISHED in 3s",
            "agents unavailable",
            "The agent \u{212A}ept going",
            "agent triage \u{17F}tarted",
            "\u{17F}ubagent done",
            "GET /api/threads/1 200 12ms",
            "",
            "invoke_agent triage",
            "agent.run",
            "SupervisorAgent.execute",
            "WebSocket connect",
            "ws.connect",
            "/ws/threads",
        ];
        let message = Possible {
            prefilter: e.message_prefilter.as_ref(),
            bits: Cell::new(None),
        };
        let span_name = Possible {
            prefilter: e.span_name_prefilter.as_ref(),
            bits: Cell::new(None),
        };
        let mut matched = 0;
        for h in haystacks {
            message.bits.set(None);
            span_name.bits.set(None);
            for r in prefiltered(&e, |m| &m.message) {
                if r.regex.is_match(h) {
                    matched += 1;
                    assert!(message.may_match(r.slot, h), "{} on {h:?}", r.regex);
                }
                assert_eq!(r.is_match(h, &message), r.regex.is_match(h));
            }
            for r in prefiltered(&e, |m| &m.span_name) {
                if r.regex.is_match(h) {
                    matched += 1;
                    assert!(span_name.may_match(r.slot, h), "{} on {h:?}", r.regex);
                }
            }
        }
        assert!(
            matched > 10,
            "the haystacks exercise the regexes ({matched})"
        );
        // And it does filter: a plain request log passes no message regex's prefilter.
        message.bits.set(None);
        for r in prefiltered(&e, |m| &m.message) {
            assert!(!message.may_match(r.slot, "GET /api/threads/1 200 12ms"));
        }
    }

    /// A span's name that is also its message is scanned once, by the
    /// joint prefilter, and each side gets what its own prefilter finds.
    #[test]
    fn joint_scan_answers_as_both_prefilters() {
        let e = SliEngine::builtin();
        let (message, span_name) = (
            e.message_prefilter.as_ref().expect("a message prefilter"),
            e.span_name_prefilter
                .as_ref()
                .expect("a span-name prefilter"),
        );
        let joint = e.joint_prefilter.as_ref().expect("the built-ins have one");
        let pieces = [
            "websocket",
            "WebSocket connection ",
            "accepted",
            "closed",
            "code",
            "1006",
            "agent",
            "Agent.execute",
            "invoke_agent",
            "agent.run",
            "/ws",
            "ws.connect",
            "handshake",
            "GET ",
            "/api/threads/",
            " 200",
            "\"WebSocket /ws\" ",
            "x",
            " ",
        ];
        for h in random_haystacks(&pieces, 20_000, 8, 0x2545f4914f6cdd1d) {
            assert_eq!(
                joint.scan(&h),
                (message.scan(&h), span_name.scan(&h)),
                "{h:?}"
            );
        }
        // The classification uses it only for the very same text.
        let (a, b) = ("ws.connect".to_string(), "ws.connect".to_string());
        assert!(same_text(&a, &a) && !same_text(&a, &b));
    }

    /// The built-in regexes' literals are words, not letters: a one-letter
    /// literal would send the prefilter into its automaton at every such
    /// letter of every message.
    #[test]
    fn builtin_literals_are_selective() {
        let e = SliEngine::builtin();
        for r in prefiltered(&e, |m| &m.message) {
            let literals = literal_prefixes(r.regex.as_str()).unwrap();
            assert!(
                literals.iter().all(|l| l.len() >= 4),
                "{}",
                r.regex.as_str()
            );
        }
    }

    /// Classification with the per-signal matcher lists and the per-event
    /// caches equals trying every matcher in order with nothing cached.
    #[test]
    fn classify_equals_trying_every_matcher() {
        let cfg = SliConfig::from_yaml(
            "definitions:\n  \
               span_or_log:\n    \
                 threshold: 0.5\n    \
                 events: [ { signal: span, span_kind: client }, { message: '(?i)checkout' } ]\n    \
                 bad: [ { signal: log, severity_min: WARN }, { span_status: error } ]\n",
        )
        .unwrap();
        let e = SliEngine::new(&cfg).unwrap();
        // Every field of a matcher, tested one after the other (what
        // `Matcher::checks` must amount to), with nothing cached.
        let matches = |m: &Matcher, ev: &SliEvent<'_>| {
            let fresh = Haystacks::new([None, None], &e.attr_keys, &e.attr_key_summaries, None);
            let status = fresh.http_status(ev);
            m.signal.is_none_or(|s| s == ev.signal)
                && (m.span_kinds == 0
                    || ev
                        .span_kind
                        .is_some_and(|k| (0..8).contains(&k) && m.span_kinds & (1 << k) != 0))
                && m.span_status_error
                    .is_none_or(|want| want == ev.span_status_error)
                && m.severity_min.is_none_or(|min| ev.severity_number >= min)
                && m.category.as_deref().is_none_or(|c| ev.category == Some(c))
                && m.category_prefix
                    .as_deref()
                    .is_none_or(|p| ev.category.is_some_and(|c| c.starts_with(p)))
                && m.has_http_status.is_none_or(|h| h == status.is_some())
                && m.http_status
                    .is_none_or(|(lo, hi)| status.is_some_and(|s| (lo..=hi).contains(&s)))
                && m.attributes.iter().all(|a| a.matches(ev, &fresh))
                && m.span_name
                    .as_ref()
                    .is_none_or(|re| ev.span_name.is_some_and(|n| re.regex.is_match(n)))
                && m.message
                    .as_ref()
                    .is_none_or(|re| re.regex.is_match(ev.message))
        };
        let reference = |ev: &SliEvent<'_>| {
            let mut out = Vec::new();
            for (i, def) in e.defs.iter().enumerate() {
                if def.events.iter().any(|m| matches(m, ev)) {
                    out.push((i, def.bad.iter().any(|m| matches(m, ev))));
                }
            }
            out
        };
        let attr = |k: &str, v: Value| KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        };
        let method = [attr(
            "http.request.method",
            Value::StringValue("GET".into()),
        )];
        let status_attr = [attr("http.response.status_code", Value::IntValue(503))];
        let close = [attr("websocket.close.code", Value::IntValue(1006))];
        let gen_ai = [attr(
            "gen_ai.operation.name",
            Value::StringValue("invoke_agent".into()),
        )];
        // Attributes whose conditions fail: another close code, operation,
        // scheme and protocol, and a method under a key no matcher reads.
        let other_values = [
            attr("websocket.close.code", Value::IntValue(1000)),
            attr("gen_ai.operation.name", Value::StringValue("chat".into())),
            attr("url.scheme", Value::StringValue("https".into())),
            attr("network.protocol.name", Value::StringValue("http".into())),
            attr("http.request.verb", Value::StringValue("GET".into())),
        ];
        let websocket = [
            attr("url.scheme", Value::StringValue("wss".into())),
            attr(
                "network.protocol.name",
                Value::StringValue("websocket".into()),
            ),
        ];
        let attrs: [&[KeyValue]; 7] = [
            &[],
            &method,
            &status_attr,
            &close,
            &gen_ai,
            &other_values,
            &websocket,
        ];
        let messages = [
            "GET /api/threads 200",
            "\"WebSocket /ws\" 403",
            "websocket connection closed abnormally",
            "connection closed with code 1006",
            "Agent triage started",
            "agents failed",
            "checkout failed",
            "",
        ];
        let mut events = Vec::new();
        for signal in [SliSignal::Log, SliSignal::Span] {
            for (kind, name) in [
                (None, None),
                (Some(2), Some("GET /ws/threads")),
                (Some(3), Some("invoke_agent triage")),
                (Some(1), Some("db.query")),
                // Same kind, names that one regex or another may match:
                // remembered by name, never confused.
                (Some(1), Some("invoke_agent triage")),
                (Some(1), Some("invoke_agentic")),
                (Some(1), Some("websocket.connect")),
                (Some(1), Some("agent.run")),
            ] {
                for message in messages {
                    for attributes in attrs {
                        for (severity, status, error, category) in [
                            (9, None, false, None),
                            (17, Some(500), true, Some("websocket_state")),
                            (13, Some(101), false, Some("agent_failure")),
                            (17, None, true, Some("database_connection")),
                            (17, Some(503), false, None),
                            (13, Some(101), true, None),
                            // Events that differ only in their category (the
                            // database row above too): a category no
                            // condition names, a prefix condition's text
                            // exactly, another prefix, none.
                            (17, None, true, Some("payment_timeout")),
                            (17, None, true, Some("websocket")),
                            (17, None, true, Some("agent_failure")),
                            (17, None, true, None),
                        ] {
                            let ev = SliEvent {
                                span_kind: kind,
                                span_name: name,
                                span_status_error: error,
                                severity_number: severity,
                                http_status: status,
                                category,
                                attributes: MapRef::owned(attributes),
                                ..SliEvent::new(signal, "svc", message)
                            };
                            events.push(ev);
                        }
                    }
                }
            }
        }
        // Twice, the second time backwards: quiet events are classified in
        // full the first time their key is seen and replayed after that,
        // with other events in between.
        let mut matched = 0;
        for ev in events.iter().chain(events.iter().rev()) {
            let got: Vec<_> = e
                .classify_owned(ev)
                .into_iter()
                .map(|(i, _, bad)| (i, bad))
                .collect();
            assert_eq!(got, reference(ev), "{ev:?}");
            matched += got.len();
        }
        assert!(
            matched > 2 * events.len(),
            "the events exercise the SLIs ({matched})"
        );
        // Quiet events, and among them those with attributes that some
        // condition of their kind reads (their key holds the answers).
        let (mut quiet, mut with_attributes) = (0, 0);
        for ev in &events {
            let possible = Haystacks::new(
                [e.message_prefilter.as_ref(), e.span_name_prefilter.as_ref()],
                &e.attr_keys,
                &e.attr_key_summaries,
                None,
            );
            let kind = kind_index(ev.signal, ev.category.is_some());
            if e.quiet_key(ev, &possible, kind).is_some() {
                quiet += 1;
                let plan = e.quiet[kind].as_ref().unwrap();
                let present = possible.keys_present(ev);
                with_attributes +=
                    usize::from(plan.attribute_keys.iter().any(|&k| present.may_contain(k)));
            }
        }
        assert!(
            quiet > 500 && quiet < events.len() / 2 && with_attributes > quiet / 2,
            "{quiet} of {} events are quiet, {with_attributes} with attributes",
            events.len()
        );
    }

    /// Events are not quiet when labels come from attributes, and each
    /// engine keeps its own remembered outcomes.
    #[test]
    fn quiet_outcomes_belong_to_their_engine() {
        let labelled = SliConfig::from_yaml(
            "definitions:\n  \
               by_route:\n    \
                 threshold: 0.5\n    \
                 labels: [service, http.route]\n    \
                 events: [ { http_status: { min: 100, max: 599 } } ]\n    \
                 bad: [ { http_status: { min: 500, max: 599 } } ]\n",
        )
        .unwrap();
        let labelled = SliEngine::new(&labelled).unwrap();
        assert!(labelled.quiet.iter().all(Option::is_none));
        let none_bad = SliConfig::from_yaml(
            "definitions:\n  \
               http_5xx:\n    \
                 bad: [ { http_status: { min: 600, max: 600 } } ]\n",
        )
        .unwrap();
        let none_bad = SliEngine::new(&none_bad).unwrap();
        let builtin = SliEngine::builtin();
        // Errors (a category) too: their category's answers are in the key.
        // Spans too, though no `events` matcher scans a span's message.
        assert!(builtin.quiet.iter().all(Option::is_some));
        // Not with more category conditions than a key holds the answers to.
        let mut many = String::from("builtins: false\ndefinitions:\n");
        for i in 0..=MAX_QUIET_CATEGORIES {
            many += &format!(
                "  s{i}:\n    threshold: 0.5\n    events: [ {{ signal: log }} ]\n    \
                 bad: [ {{ category: c{i} }} ]\n"
            );
        }
        let many = SliEngine::new(&SliConfig::from_yaml(&many).unwrap()).unwrap();
        assert!(many.quiet[0].is_some() && many.quiet[1].is_none());
        // A message regex reached only past a severity: the quiet test's
        // scan of every message would cost more than it saves.
        let behind_severity = SliConfig::from_yaml(
            "builtins: false\ndefinitions:\n  \
               errors:\n    \
                 threshold: 0.5\n    \
                 events: [ { signal: log, severity_min: ERROR, message: 'boom' } ]\n    \
                 bad: [ { signal: log, severity_min: ERROR } ]\n",
        )
        .unwrap();
        assert!(SliEngine::new(&behind_severity).unwrap().quiet[0].is_none());
        let scanned = SliConfig::from_yaml(
            "builtins: false\ndefinitions:\n  \
               errors:\n    \
                 threshold: 0.5\n    \
                 events: [ { signal: log, message: 'boom' } ]\n    \
                 bad: [ { signal: log, severity_min: ERROR, message: 'boom' } ]\n",
        )
        .unwrap();
        assert!(SliEngine::new(&scanned).unwrap().quiet[0].is_some());
        let ev = SliEvent {
            severity_number: 17,
            http_status: Some(503),
            ..SliEvent::new(SliSignal::Log, "svc", "GET /x 503")
        };
        let http = builtin.index_of("http_5xx").unwrap();
        for _ in 0..3 {
            for (engine, bad) in [(&builtin, true), (&none_bad, false)] {
                let got = engine.classify_owned(&ev);
                assert!(
                    got.contains(&(http, vec!["svc".to_string()], bad)),
                    "{got:?}"
                );
            }
        }
    }

    #[test]
    fn the_attribute_index_finds_what_a_scan_finds() {
        let kv = |k: &str, v: Option<Value>| KeyValue {
            key: k.into(),
            value: v.map(|v| AnyValue { value: Some(v) }),
            ..Default::default()
        };
        let record = [
            kv("a", Some(Value::StringValue("first".into()))),
            kv("a", Some(Value::StringValue("second".into()))),
            kv("empty", None),
            kv("empty", Some(Value::IntValue(1))),
            kv("n", Some(Value::IntValue(7))),
        ];
        let resource = [
            kv("a", Some(Value::StringValue("resource".into()))),
            kv("r", Some(Value::BoolValue(true))),
            kv("added", Some(Value::StringValue("resource".into()))),
        ];
        let keys: Vec<Box<str>> = ["a", "empty", "n", "r", "added", "absent"]
            .into_iter()
            .map(Box::from)
            .collect();
        let ev = SliEvent {
            attributes: MapRef::owned(&record),
            added_attributes: &[("added", "collector"), ("n", "not this")],
            resource_attributes: MapRef::owned(&resource),
            ..SliEvent::new(SliSignal::Log, "svc", "")
        };
        let index = index_attributes(&ev, &keys);
        for (slot, key) in keys.iter().enumerate() {
            assert_eq!(
                index[slot].filter(|v| v.is_set()),
                find_attr(&ev, key),
                "{key}"
            );
        }
        assert_eq!(find_attr(&ev, "added"), Some(ValueRef::Str("collector")));
        assert_eq!(find_attr(&ev, "empty"), None);

        // Through the key summary: present keys are always found, absent
        // ones (including look-alikes of the same length) never.
        let mut keys = keys;
        keys.extend(["b", "aa", "ab", "r.", "addeD", "", "nn"].map(Box::from));
        let bits: Vec<KeySummary> = keys
            .iter()
            .map(|k| KeySummary::of_key(k.as_bytes()))
            .collect();
        let haystacks = Haystacks::new([None, None], &keys, &bits, None);
        for (slot, key) in keys.iter().enumerate() {
            assert_eq!(haystacks.attr(&ev, slot), find_attr(&ev, key), "{key}");
        }
        assert!(key_summary(&ev).all().may_contain(KeySummary::of_key(b"a")));
        // A summary given with the event is used as it is, and must cover
        // every list: the one made from the lists is such a summary.
        let given = SliEvent {
            attribute_keys: Some(key_summary(&ev)),
            ..ev
        };
        let haystacks = Haystacks::new([None, None], &keys, &bits, given.attribute_keys);
        for (slot, key) in keys.iter().enumerate() {
            assert_eq!(
                haystacks.attr(&given, slot),
                find_attr(&given, key),
                "{key}"
            );
        }
    }

    #[test]
    fn value_rendering() {
        let mut buf = [0u8; 32];
        assert_eq!(value_str(ValueRef::Int(1006), &mut buf), Some("1006"));
    }
}
