//! The rule pack: categories and priorities are *data*, not code.
//!
//! A rule names a category and a base priority and says when it applies:
//! any of its `keywords` (case-insensitive literals) occurs in the template
//! or the exception type, its `pattern` regex matches the template, its
//! `exception_type` regex matches the exception type, and the HTTP status is
//! in `http_status`. Every condition given must hold; the first matching rule
//! wins, user rules before the built-in pack (`rules/default.yaml`).
//!
//! Why keywords: matching must not run N regexes per record. All keywords of
//! all rules go into one Aho-Corasick automaton; one scan of the template
//! yields the few candidate rules, and only their regexes run. Rules without
//! keywords are always candidates, so a pack should give keywords wherever it
//! can. The result is a pure function of (template, exception type, status).

use crate::memo::{self, Memo};
use aho_corasick::automaton::Automaton;
use aho_corasick::automaton::StateID;
use aho_corasick::nfa::contiguous::NFA;
use aho_corasick::{Anchored, MatchKind};
use regex::Regex;
use serde::Deserialize;
use std::cell::RefCell;
use std::sync::Arc;

/// The built-in rule pack, compiled in.
pub const DEFAULT_RULES_YAML: &str = include_str!("../rules/default.yaml");

/// The category of records no rule matches. They are never dropped.
pub const UNCATEGORIZED: &str = "uncategorized";

/// Urgency of an issue, P0 (act now) to P3 (look when convenient).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
pub enum Priority {
    P0,
    P1,
    P2,
    P3,
}

impl Priority {
    /// `"P0"`..`"P3"`, the value of the `gardener.priority` attribute.
    pub fn as_str(&self) -> &'static str {
        match self {
            Priority::P0 => "P0",
            Priority::P1 => "P1",
            Priority::P2 => "P2",
            Priority::P3 => "P3",
        }
    }

    /// One step less urgent (P3 stays P3): warnings rank below errors of
    /// the same category.
    pub fn demoted(self) -> Priority {
        match self {
            Priority::P0 => Priority::P1,
            Priority::P1 => Priority::P2,
            _ => Priority::P3,
        }
    }
}

/// One rule as written in YAML.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// snake_case category name, e.g. `database_connection`.
    pub category: String,
    /// Priority for errors; warnings are one step lower.
    pub priority: Priority,
    /// What the category means (documentation only).
    #[serde(default)]
    pub description: Option<String>,
    /// Case-insensitive literals; the rule applies only if one occurs in the
    /// template or exception type.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Regex on the template (case-sensitive unless it starts with `(?i)`).
    #[serde(default)]
    pub pattern: Option<String>,
    /// Regex on the exception type.
    #[serde(default)]
    pub exception_type: Option<String>,
    /// Inclusive HTTP status range `[lo, hi]`.
    #[serde(default)]
    pub http_status: Option<[u16; 2]>,
}

/// A rule file: `rules: [...]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

/// Errors building a rule pack; they name the rule.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("rule pack is not valid YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    #[error("rule {index} ({category}): invalid {field} regex: {source}")]
    Regex {
        index: usize,
        category: String,
        field: &'static str,
        #[source]
        source: regex::Error,
    },
    #[error("rule {index}: category {category:?} must be snake_case")]
    Category { index: usize, category: String },
    #[error("rule {index} ({category}): a rule needs at least one condition")]
    Empty { index: usize, category: String },
    #[error("keyword automaton: {0}")]
    Automaton(#[from] aho_corasick::BuildError),
}

struct Rule {
    category: Arc<str>,
    priority: Priority,
    has_keywords: bool,
    pattern: Option<Regex>,
    exception_type: Option<Regex>,
    http_status: Option<[u16; 2]>,
}

/// What a record is matched on.
#[derive(Clone, Copy, Debug, Default)]
pub struct MatchInput<'a> {
    pub template: &'a str,
    pub exception_type: Option<&'a str>,
    pub http_status: Option<u16>,
    /// Top frames (`module:function`); keywords also match here, so a rule
    /// can recognise a crash by where it happened (`run_until_complete`).
    pub frames: &'a [String],
}

/// The outcome: a category and its base priority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Category {
    pub name: Arc<str>,
    pub priority: Priority,
}

/// A compiled rule pack.
pub struct RulePack {
    rules: Vec<Rule>,
    /// Keyword automaton (a contiguous NFA, searched byte by byte below);
    /// pattern id → rule index.
    keywords: Option<(NFA, StateID)>,
    keyword_rule: Vec<u32>,
    /// Rules without keywords: candidates for every record.
    always: Vec<u32>,
    uncategorized: Category,
    /// Distinguishes packs in the per-thread memo (never reused).
    id: u64,
}

thread_local! {
    /// Per-thread memo of [`RulePack::categorize`] (see [`crate::memo`]).
    static MEMO: RefCell<Memo<Category>> = RefCell::new(Memo::default());
}

impl RulePack {
    /// Parses a YAML rule file.
    pub fn parse_yaml(yaml: &str) -> Result<Vec<RuleSpec>, RuleError> {
        let f: RuleFile = serde_yaml_ng::from_str(yaml)?;
        Ok(f.rules)
    }

    /// The built-in pack alone.
    pub fn builtin() -> Result<RulePack, RuleError> {
        RulePack::new(&RulePack::parse_yaml(DEFAULT_RULES_YAML)?)
    }

    /// Compiles rules in order (earlier rules win).
    pub fn new(specs: &[RuleSpec]) -> Result<RulePack, RuleError> {
        let mut rules = Vec::with_capacity(specs.len());
        let mut patterns: Vec<&str> = Vec::new();
        let mut keyword_rule = Vec::new();
        let mut always = Vec::new();
        for (index, r) in specs.iter().enumerate() {
            let category = r.category.clone();
            if category.is_empty()
                || !category
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(RuleError::Category { index, category });
            }
            if r.keywords.is_empty()
                && r.pattern.is_none()
                && r.exception_type.is_none()
                && r.http_status.is_none()
            {
                return Err(RuleError::Empty { index, category });
            }
            let re =
                |field: &'static str, p: &Option<String>| -> Result<Option<Regex>, RuleError> {
                    p.as_deref()
                        .map(Regex::new)
                        .transpose()
                        .map_err(|source| RuleError::Regex {
                            index,
                            category: category.clone(),
                            field,
                            source,
                        })
                };
            let pattern = re("pattern", &r.pattern)?;
            let exception_type = re("exception_type", &r.exception_type)?;
            let kws: Vec<&str> = r
                .keywords
                .iter()
                .map(String::as_str)
                .filter(|k| !k.is_empty())
                .collect();
            if kws.is_empty() {
                always.push(index as u32);
            }
            for k in &kws {
                patterns.push(k);
                keyword_rule.push(index as u32);
            }
            rules.push(Rule {
                category: Arc::from(category.as_str()),
                priority: r.priority,
                has_keywords: !kws.is_empty(),
                pattern,
                exception_type,
                http_status: r.http_status,
            });
        }
        let keywords = if patterns.is_empty() {
            None
        } else {
            // A contiguous NFA, not a full DFA: determinizing the built-in
            // pack's ~2,500 keyword states cost ~19M instructions (about a
            // third of start-up), while the NFA builds in ~2M. The NFA is
            // slower per byte (a failure transition now and then), but the
            // scan only runs on a memo miss (`categorize` and the signer are
            // memoized per template), so start-up wins.
            let nfa = NFA::builder()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .build(&patterns)?;
            let start = nfa
                .start_state(Anchored::No)
                .expect("unanchored searches are enabled by default");
            Some((nfa, start))
        };
        Ok(RulePack {
            rules,
            keywords,
            keyword_rule,
            always,
            uncategorized: Category {
                name: Arc::from(UNCATEGORIZED),
                priority: Priority::P3,
            },
            id: memo::next_owner_id(),
        })
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when the pack has no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The category for a record: the first rule (in pack order) whose
    /// conditions all hold, else `uncategorized` (P3).
    ///
    /// Results are memoized per thread (exact inputs, bounded), which does
    /// not change them: the category is a pure function of the input.
    pub fn categorize(&self, input: &MatchInput<'_>) -> Category {
        memo::with_thread_memo(
            &MEMO,
            self.id,
            |key| {
                key.part(input.template)
                    .optional(input.exception_type)
                    .status(input.http_status);
                for frame in input.frames {
                    key.part(frame);
                }
            },
            || self.categorize_uncached(input),
        )
    }

    /// [`RulePack::categorize`] without the memo.
    pub fn categorize_uncached(&self, input: &MatchInput<'_>) -> Category {
        // Candidate rule indexes, in pack order; usually a handful.
        let mut best: Option<u32> = None;
        let consider = |idx: u32, best: &mut Option<u32>| {
            if best.is_some_and(|b| b <= idx) {
                return;
            }
            if self.matches(&self.rules[idx as usize], input) {
                *best = Some(idx);
            }
        };
        if let Some((nfa, start)) = &self.keywords {
            // Every keyword occurrence, overlapping ones included: a match
            // state lists all patterns that end at this byte.
            let mut scan = |text: &str| {
                let mut sid = *start;
                for &b in text.as_bytes() {
                    sid = nfa.next_state(Anchored::No, sid, b);
                    if nfa.is_special(sid) && nfa.is_match(sid) {
                        for k in 0..nfa.match_len(sid) {
                            let pid = nfa.match_pattern(sid, k);
                            consider(self.keyword_rule[pid.as_usize()], &mut best);
                        }
                    }
                }
            };
            scan(input.template);
            if let Some(t) = input.exception_type {
                scan(t);
            }
            for f in input.frames {
                scan(f);
            }
        }
        for &idx in &self.always {
            consider(idx, &mut best);
        }
        match best {
            Some(i) => {
                let r = &self.rules[i as usize];
                Category {
                    name: r.category.clone(),
                    priority: r.priority,
                }
            }
            None => self.uncategorized.clone(),
        }
    }

    fn matches(&self, r: &Rule, input: &MatchInput<'_>) -> bool {
        debug_assert!(
            r.has_keywords
                || r.pattern.is_some()
                || r.exception_type.is_some()
                || r.http_status.is_some()
        );
        if let Some([lo, hi]) = r.http_status {
            match input.http_status {
                Some(s) if (lo..=hi).contains(&s) => {}
                _ => return false,
            }
        }
        if let Some(re) = &r.exception_type {
            match input.exception_type {
                Some(t) if re.is_match(t) => {}
                _ => return false,
            }
        }
        if let Some(re) = &r.pattern {
            if !re.is_match(input.template) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat(pack: &RulePack, t: &str) -> String {
        pack.categorize(&MatchInput {
            template: t,
            ..Default::default()
        })
        .name
        .to_string()
    }

    #[test]
    fn builtin_pack_compiles_and_is_documented() {
        let specs = RulePack::parse_yaml(DEFAULT_RULES_YAML).unwrap();
        assert!(specs.len() > 15);
        for s in &specs {
            assert!(s.description.is_some(), "{} has no description", s.category);
        }
        RulePack::new(&specs).unwrap();
    }

    #[test]
    fn first_rule_wins_and_keywords_are_case_insensitive() {
        let specs = RulePack::parse_yaml(
            "rules:\n- {category: a, priority: P1, keywords: [boom]}\n- {category: b, priority: P2, keywords: [BOOM, bang]}\n",
        )
        .unwrap();
        let p = RulePack::new(&specs).unwrap();
        assert_eq!(cat(&p, "big Boom"), "a");
        assert_eq!(cat(&p, "bang"), "b");
        assert_eq!(cat(&p, "quiet"), UNCATEGORIZED);
    }

    #[test]
    fn conditions_combine() {
        let specs = RulePack::parse_yaml(
            "rules:\n- {category: s5, priority: P1, http_status: [500, 599]}\n- {category: e, priority: P2, exception_type: '^KeyError$', pattern: 'x'}\n",
        )
        .unwrap();
        let p = RulePack::new(&specs).unwrap();
        let m = |t, e, s| {
            p.categorize(&MatchInput {
                template: t,
                exception_type: e,
                http_status: s,
                frames: &[],
            })
            .name
            .to_string()
        };
        assert_eq!(m("a", None, Some(503)), "s5");
        assert_eq!(m("a", None, Some(404)), UNCATEGORIZED);
        assert_eq!(m("x", Some("KeyError"), None), "e");
        assert_eq!(m("y", Some("KeyError"), None), UNCATEGORIZED);
    }

    #[test]
    fn memo_is_exact_and_per_pack() {
        let a = RulePack::new(
            &RulePack::parse_yaml("rules:\n- {category: a, priority: P1, keywords: [boom]}\n")
                .unwrap(),
        )
        .unwrap();
        let b = RulePack::new(
            &RulePack::parse_yaml("rules:\n- {category: b, priority: P2, keywords: [boom]}\n")
                .unwrap(),
        )
        .unwrap();
        for _ in 0..2 {
            assert_eq!(cat(&a, "big boom"), "a");
            assert_eq!(cat(&b, "big boom"), "b");
            assert_eq!(cat(&a, "big bam"), UNCATEGORIZED);
        }
        let frames = vec!["m:boom".to_string()];
        let with = |exc, frames: &[String]| {
            a.categorize(&MatchInput {
                template: "x",
                exception_type: exc,
                http_status: None,
                frames,
            })
            .name
            .to_string()
        };
        assert_eq!(with(None, &[]), UNCATEGORIZED);
        assert_eq!(with(Some("Boom"), &[]), "a");
        assert_eq!(with(None, &frames), "a");
        assert_eq!(with(None, &[]), UNCATEGORIZED);
        let long = format!("{} boom", "x".repeat(2 * memo::MAX_KEY));
        assert_eq!(cat(&a, &long), "a");
    }

    /// The keyword scan must see every occurrence, overlapping and nested
    /// ones included (`bc` inside `abcd`, `CD` ending where `abcd` ends):
    /// a leftmost, non-overlapping search would find only `abcd` and pick
    /// the later rule.
    #[test]
    fn overlapping_keywords_are_all_candidates() {
        let p = RulePack::new(
            &RulePack::parse_yaml(
                "rules:\n\
                 - {category: inner, priority: P1, keywords: [bc]}\n\
                 - {category: outer, priority: P2, keywords: [abcd]}\n\
                 - {category: suffix, priority: P2, keywords: [cd]}\n",
            )
            .unwrap(),
        )
        .unwrap();
        let cat = |t: &str| {
            p.categorize_uncached(&MatchInput {
                template: t,
                ..Default::default()
            })
            .name
            .to_string()
        };
        assert_eq!(cat("xxABCDxx"), "inner");
        assert_eq!(cat("abcd"), "inner");
        assert_eq!(cat("zzabcxcd"), "inner");
        assert_eq!(cat("xcd"), "suffix");
        assert_eq!(cat("abxd"), "uncategorized");
    }

    #[test]
    fn bad_rules_are_named() {
        let specs =
            RulePack::parse_yaml("rules:\n- {category: Bad-Name, priority: P1, keywords: [x]}\n")
                .unwrap();
        assert!(matches!(
            RulePack::new(&specs),
            Err(RuleError::Category { index: 0, .. })
        ));
        let specs =
            RulePack::parse_yaml("rules:\n- {category: ok, priority: P1, pattern: '('}\n").unwrap();
        let e = RulePack::new(&specs).err().unwrap().to_string();
        assert!(e.contains("ok") && e.contains("pattern"), "{e}");
        assert!(RulePack::parse_yaml("rules:\n- {category: ok, priority: P9}\n").is_err());
    }
}
