//! Precision and recall of the `acknowledge` and `apologise` detectors on a labelled set of
//! agent sentences (tools/empathy-eval/agent-sentences.tsv), with the default phrase sets.
//!
//! `cargo run --release --example empathy_eval [-- FILE.tsv]` prints a table and every error.

use calltone::empathy::BehaviourDetector;
use calltone::events::BehaviourKind;

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tools/empathy-eval/agent-sentences.tsv".into());
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(2);
        }
    };
    let det = BehaviourDetector::default();
    let kinds = [BehaviourKind::Acknowledge, BehaviourKind::Apologise];
    let mut counts = [[0u32; 3]; 2]; // tp, fp, fn
    let mut n = 0;
    for (lineno, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.starts_with("ack\t") || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.splitn(3, '\t').collect();
        let [ack, apol, sentence] = cols[..] else {
            eprintln!("{path}:{}: expected ack<TAB>apol<TAB>sentence", lineno + 1);
            std::process::exit(2);
        };
        n += 1;
        let found = det.detect(sentence);
        for (k, (kind, label)) in kinds.iter().zip([ack, apol]).enumerate() {
            let truth = label == "1";
            let got = found.iter().any(|b| b.kind == *kind);
            match (truth, got) {
                (true, true) => counts[k][0] += 1,
                (false, true) => {
                    counts[k][1] += 1;
                    println!("FP {:<11} {sentence}", kind.as_str());
                }
                (true, false) => {
                    counts[k][2] += 1;
                    println!("FN {:<11} {sentence}", kind.as_str());
                }
                _ => {}
            }
        }
    }
    println!("\n{n} sentences ({path})");
    println!(
        "{:<12} {:>4} {:>4} {:>4} {:>9} {:>7}",
        "kind", "tp", "fp", "fn", "precision", "recall"
    );
    for (k, kind) in kinds.iter().enumerate() {
        let [tp, fp, fn_] = counts[k];
        let p = f64::from(tp) / f64::from((tp + fp).max(1));
        let r = f64::from(tp) / f64::from((tp + fn_).max(1));
        println!(
            "{:<12} {tp:>4} {fp:>4} {fn_:>4} {p:>9.3} {r:>7.3}",
            kind.as_str()
        );
    }
}
