//! Loghub-2k grouping accuracy of the masker.
//!
//! Usage: `cargo run -p gardener-processor --example loghub_accuracy -- DIR [DATASET] [--show N]`
//! where DIR holds `<Name>/<Name>_2k.log_structured.csv` (columns
//! `LineId,…,Content,EventId,EventTemplate`). For each dataset, lines are
//! grouped by the predicted template alone (the service is constant) and
//! compared with the ground truth as in Zhu et al., "Tools and Benchmarks for
//! Automated Log Parsing" (ICSE-SEIP 2019):
//! - GA: share of lines whose predicted group is exactly their true group;
//! - FGA: F1 over groups (precision and recall of exactly-right groups);
//! - PA: share of lines whose template equals the ground truth after every
//!   placeholder is mapped to `<*>`.
//!
//! One configuration for every dataset: the signer's default.

use gardener_processor::mask::to_generic;
use gardener_processor::signature::{SignatureConfig, Signer};
use std::collections::{HashMap, HashSet};

#[path = "../benches/support/loghub.rs"]
mod loghub;

struct Scores {
    ga: f64,
    fga: f64,
    pa: f64,
}

fn evaluate(
    truth: &[String],
    truth_tpl: &[String],
    pred: &[String],
    templates: &[String],
    show: usize,
) -> Scores {
    let n = truth.len();
    let mut true_groups: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut pred_groups: HashMap<&str, Vec<usize>> = HashMap::new();
    for i in 0..n {
        true_groups.entry(&truth[i]).or_default().push(i);
        pred_groups.entry(&pred[i]).or_default().push(i);
    }
    let mut correct_lines = 0usize;
    let mut correct_groups = 0usize;
    for members in pred_groups.values() {
        let t = &true_groups[truth[members[0]].as_str()];
        if t == members {
            correct_lines += members.len();
            correct_groups += 1;
        }
    }
    let precision = correct_groups as f64 / pred_groups.len() as f64;
    let recall = correct_groups as f64 / true_groups.len() as f64;
    let fga = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let pa = (0..n)
        .filter(|&i| norm(&to_generic(&templates[i])) == norm(&truth_tpl[i]))
        .count() as f64
        / n as f64;
    if show > 0 {
        let mut bad: Vec<(&str, &Vec<usize>)> = true_groups
            .iter()
            .filter(|(_, m)| {
                pred_groups[pred[m[0]].as_str()] != **m || m.iter().any(|&i| pred[i] != pred[m[0]])
            })
            .map(|(k, v)| (*k, v))
            .collect();
        bad.sort_by_key(|(_, m)| std::cmp::Reverse(m.len()));
        for (_, m) in bad.into_iter().take(show) {
            println!("  TRUE {} {}", m.len(), truth_tpl[m[0]]);
            let preds: HashSet<&str> = m.iter().map(|&i| pred[i].as_str()).collect();
            for p in preds.into_iter().take(4) {
                let g = &pred_groups[p];
                let kinds: HashSet<&str> = g.iter().map(|&i| truth[i].as_str()).collect();
                println!("     P {} {} {}", g.len(), kinds.len(), templates[g[0]]);
            }
        }
    }
    Scores {
        ga: correct_lines as f64 / n as f64,
        fga,
        pa,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first() else {
        eprintln!("usage: loghub_accuracy DIR [DATASET] [--show N]");
        std::process::exit(2);
    };
    let only = args.get(1).filter(|a| !a.starts_with("--")).cloned();
    let show = args
        .iter()
        .position(|a| a == "--show")
        .and_then(|p| args.get(p + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0usize);
    let signer = Signer::new(&SignatureConfig::default()).expect("default config");
    println!("{:<12} {:>6} {:>6} {:>6}", "dataset", "GA", "FGA", "PA");
    let (mut sga, mut sfga, mut spa, mut count) = (0.0, 0.0, 0.0, 0usize);
    for name in loghub::DATASETS {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let body = match loghub::read(std::path::Path::new(&dir), name) {
            Ok(lines) => lines,
            Err(error) => {
                eprintln!("skip {name}: {error}");
                continue;
            }
        };
        let truth: Vec<String> = body.iter().map(|l| l.event_id.clone()).collect();
        let truth_tpl: Vec<String> = body.iter().map(|l| l.template.clone()).collect();
        // The group is the signature: for one service, the template with
        // every typed placeholder read as `<*>`.
        let sigs: Vec<_> = body
            .iter()
            .map(|l| signer.sign_message("loghub", &l.content))
            .collect();
        let pred: Vec<String> = sigs.iter().map(|s| s.hex()).collect();
        let templates: Vec<String> = sigs.into_iter().map(|s| s.template).collect();
        let s = evaluate(&truth, &truth_tpl, &pred, &templates, show);
        println!("{:<12} {:>6.3} {:>6.3} {:>6.3}", name, s.ga, s.fga, s.pa);
        sga += s.ga;
        sfga += s.fga;
        spa += s.pa;
        count += 1;
    }
    if count > 0 {
        let c = count as f64;
        println!(
            "{:<12} {:>6.3} {:>6.3} {:>6.3}",
            "average",
            sga / c,
            sfga / c,
            spa / c
        );
    }
}
