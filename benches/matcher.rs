//! Matcher benchmark: classifies a mixed corpus of replies (every example of the shipped library,
//! plus replies no rule knows) and reports replies per second. The yardstick, timed in the same run
//! over the same corpus, is serialising each reply's fields to JSON: a cost every finding pays anyway.
//!
//! Run: cargo bench --bench matcher

mod common;

use otscope::fingerprints::Library;
use serde_json::{Map, Value};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn corpus(library: &Library) -> Vec<(String, Map<String, Value>)> {
    let mut replies: Vec<(String, Map<String, Value>)> =
        library.examples.iter().map(|e| (e.protocol.clone(), e.fields.clone())).collect();
    let strangers = [
        "220 mail.lab.test ESMTP ready\r\n",
        "\u{0}\u{1}\u{2}garbage\u{ff}",
        "HTTP/1.0 400 Bad Request\r\n\r\n",
        "Welcome to the machine\r\n",
        "+OK POP3 ready\r\n",
    ];
    for s in strangers {
        let mut m = Map::new();
        m.insert("banner".into(), Value::String(s.into()));
        replies.push(("unknown".into(), m));
    }
    replies
}

/// Runs `f` over the corpus repeatedly for about `budget`; returns items per second.
fn rate(
    corpus: &[(String, Map<String, Value>)],
    budget: Duration,
    mut f: impl FnMut(&str, &Map<String, Value>),
) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for (p, fields) in corpus {
            f(p, fields);
            n += 1;
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let library = Library::load(common::fingerprints()).expect("the shipped library loads");
    let corpus = corpus(&library);
    let budget = Duration::from_secs(2);
    let mut best_match: f64 = 0.0;
    let mut best_json: f64 = 0.0;
    for _ in 0..3 {
        best_json = best_json.max(rate(&corpus, budget, |_, f| {
            black_box(serde_json::to_string(f).unwrap());
        }));
        best_match = best_match.max(rate(&corpus, budget, |p, f| {
            black_box(library.classify(p, f));
        }));
    }
    println!(
        "matcher: {} rules, corpus of {} replies ({} protocols)",
        library.matcher.rule_count(),
        corpus.len(),
        corpus.iter().map(|c| c.0.as_str()).collect::<std::collections::BTreeSet<_>>().len()
    );
    println!("matcher: {best_match:.0} replies/s classified; yardstick (fields to JSON): {best_json:.0} replies/s; ratio {:.2}", best_match / best_json);
}
