//! Advisory benchmark on the real corpus (CISA's ICS advisories 2017-2024 as CSAF 2.0, from
//! `../shared/advisories/`):
//! - parse time for every document (from bytes already in memory, and from the folder);
//! - `advisories import` of the whole corpus into a new history, and again (unchanged);
//! - index build time;
//! - match throughput for 100,000 synthetic services through the index, next to the naive nested
//!   loop (every service against every product, `Index::matches_exhaustive`) in the same run, on a
//!   sample of the same services whose results must be identical;
//! - peak resident memory.
//!
//! The services are made from the corpus' own products (order numbers, product names, vendors as
//! findings write them, versions inside and outside the ranges) and from vendors and products no
//! advisory names, in fixed proportions, by a seeded generator: every run matches the same set.
//!
//! Run: cargo bench --bench advisories (without the corpus it says so and does nothing).

#[path = "../tests/common/advisory_corpus.rs"]
mod advisory_corpus;

use otscope::advisories::csaf::json_files;
use otscope::advisories::{parse_document, read_documents, Advisory, Index, ServiceIdentity, Status, Vendors};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

const SERVICES: usize = 100_000;
/// Services the naive loop is timed on (it tries every product for each).
const NAIVE_SAMPLE: usize = 1_000;

/// Peak resident set size of this process, in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status");
    kib as f64 / 1024.0
}

/// xorshift64*: a fixed sequence, so every run matches the same services.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn services(advisories: &[Advisory], count: usize) -> Vec<ServiceIdentity> {
    let products: Vec<_> = advisories.iter().flat_map(|a| &a.products).filter(|p| p.vendor.is_some()).collect();
    let strangers = ["Acme Controls", "Northwind Automation", "Contoso Industrial", "Initech"];
    let words = ["PLC", "Gateway", "RTU", "HMI", "Panel", "X200", "Controller", "Edge"];
    let mut rng = Rng(0x5eed_0fad_150e);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let version = match rng.below(4) {
            0 => None,
            1 => Some(format!("V{}.{}.{}", rng.below(5), rng.below(10), rng.below(20))),
            2 => Some(format!("{}.{:03}", 10 + rng.below(30), rng.below(20))),
            _ => Some(format!("{}.{:02}{}", 1 + rng.below(2), rng.below(10), (b'A' + rng.below(6) as u8) as char)),
        };
        let service = match i % 10 {
            // A device no advisory names.
            0..=2 => ServiceIdentity {
                vendor: Some(strangers[rng.below(strangers.len())].into()),
                product: Some(format!("{} {}", words[rng.below(words.len())], words[rng.below(words.len())])),
                version,
                ..Default::default()
            },
            // A device reporting an order number (with the space S7 devices put in it).
            3..=5 => {
                let p = products[rng.below(products.len())];
                let code = p.helper.model_numbers.first().cloned().unwrap_or_else(|| p.name.clone());
                let code = if code.len() > 4 { format!("{} {}", &code[..4], &code[4..]) } else { code };
                ServiceIdentity {
                    vendor: p.vendor.clone(),
                    product: p.product_name.clone(),
                    version,
                    order_numbers: vec![code],
                    ..Default::default()
                }
            }
            // A device known by its vendor and product name only.
            _ => {
                let p = products[rng.below(products.len())];
                let vendor = p.vendor.as_deref().map(|v| v.trim().to_uppercase());
                ServiceIdentity { vendor, product: p.product_name.clone(), version, ..Default::default() }
            }
        };
        out.push(service);
    }
    out
}

fn main() {
    let Some((dir, tarball)) = advisory_corpus::extract_or_skip("advisories bench") else { return };
    let files = json_files(dir.path()).expect("the extracted corpus");
    let documents: Vec<(String, Vec<u8>)> =
        files.iter().map(|f| (f.display().to_string(), std::fs::read(f).expect("read a corpus file"))).collect();
    let bytes: usize = documents.iter().map(|(_, b)| b.len()).sum();
    println!(
        "corpus: {} ({} documents, {:.1} MiB)",
        tarball.display(),
        documents.len(),
        bytes as f64 / (1 << 20) as f64
    );

    // Parse: best of three runs over bytes in memory, then once from the folder.
    let mut best = Duration::MAX;
    let mut advisories = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let parsed: Vec<Advisory> = documents.iter().filter_map(|(name, b)| parse_document(b, name).ok()).collect();
        best = best.min(started.elapsed());
        advisories = parsed;
    }
    assert_eq!(advisories.len(), documents.len(), "every corpus document is read");
    println!(
        "parse (in memory): {:.3} s for {} documents: {:.0} documents/s, {:.1} MiB/s",
        best.as_secs_f64(),
        advisories.len(),
        advisories.len() as f64 / best.as_secs_f64(),
        bytes as f64 / (1 << 20) as f64 / best.as_secs_f64()
    );
    let started = Instant::now();
    let from_folder = read_documents(&[dir.path().to_path_buf()]);
    println!(
        "import from the folder (read + parse): {:.3} s, {} read, {} refused",
        started.elapsed().as_secs_f64(),
        from_folder.read.len(),
        from_folder.refused.len()
    );
    drop(from_folder);
    println!("peak RSS after parsing (documents in memory, parsed twice): {:.1} MiB", peak_rss_mib());

    // `advisories import` of the whole folder into a new history (read, check, record, match), then
    // again (every document unchanged).
    let vendors = Vendors::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("fingerprints")).expect("the vendor table");
    let history = tempfile::tempdir().expect("a temporary folder");
    let mut store = otscope::store::SqliteStore::open(&history.path().join("otscope.db")).expect("a new history");
    let now = otscope::pipeline::now_rfc3339();
    for round in ["into a new history", "again (unchanged)"] {
        let started = Instant::now();
        let imported = otscope::notices::import(&mut store, &[dir.path().to_path_buf()], &vendors, &now)
            .expect("the corpus is imported");
        println!(
            "advisories import {round}: {:.3} s, {} new, {} unchanged, {} refused",
            started.elapsed().as_secs_f64(),
            imported.new.len(),
            imported.unchanged.len(),
            imported.refused.len()
        );
    }
    drop(store);

    let started = Instant::now();
    let index = Index::build(&advisories, &vendors);
    let stats = index.stats();
    println!("index build: {:.3} s, {} products with a status", started.elapsed().as_secs_f64(), stats.products);
    println!("peak RSS after the index: {:.1} MiB", peak_rss_mib());

    let services = services(&advisories, SERVICES);
    let started = Instant::now();
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    let mut matched = 0usize;
    for s in &services {
        let results = index.matches(s);
        matched += usize::from(!results.is_empty());
        for r in &results {
            *by_status.entry(r.status.as_str()).or_default() += 1;
        }
        black_box(results);
    }
    let indexed = started.elapsed();
    let indexed_rate = services.len() as f64 / indexed.as_secs_f64();
    println!(
        "match through the index: {} services in {:.3} s: {:.0} services/s; {} services matched, results {:?}",
        services.len(),
        indexed.as_secs_f64(),
        indexed_rate,
        matched,
        by_status
    );

    // The naive nested loop on a sample spread over all the services (a stride prime to the
    // generator's cycle of kinds, so the sample has every kind); the same results.
    let sample: Vec<&ServiceIdentity> = services.iter().step_by(97).take(NAIVE_SAMPLE).collect();
    let started = Instant::now();
    let naive_results: Vec<_> = sample.iter().map(|s| index.matches_exhaustive(s)).collect();
    let naive = started.elapsed();
    let naive_rate = sample.len() as f64 / naive.as_secs_f64();
    for (s, expected) in sample.iter().zip(&naive_results) {
        assert_eq!(&index.matches(s), expected, "the index and the naive loop disagree on {s:?}");
    }
    let affected = naive_results.iter().flatten().filter(|r| r.status == Status::Affected).count();
    let matched = naive_results.iter().filter(|r| !r.is_empty()).count();
    println!(
        "naive nested loop: {} services x {} products in {:.3} s: {:.0} services/s ({matched} services matched, {affected} affected results, identical to the index's)",
        sample.len(),
        stats.products,
        naive.as_secs_f64(),
        naive_rate,
    );
    println!("index / naive: {:.0}x", indexed_rate / naive_rate);
    println!("peak RSS at the end: {:.1} MiB", peak_rss_mib());
}
