//! Every document of the real corpus (CISA's ICS advisories 2017-2024, `../shared/advisories/`)
//! is read without a crash; prints the files read, the failures by reason, and how many version
//! ranges the comparator reads and how many it leaves undetermined. Without the corpus the test
//! says so and passes, except in CI (`CI` set), where the corpus must be there.

#[path = "common/advisory_corpus.rs"]
mod advisory_corpus;

use otscope::advisories::csaf::{json_files, ProductVersion};
use otscope::advisories::{parse_document, Advisory, Index, ServiceIdentity, Status, Tlp, Vendors};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// A message with its particulars (quoted values, numbers) blanked, to count failures by reason.
fn reason_of(text: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    let mut last_digit = false;
    for c in text.chars() {
        match c {
            '"' => {
                if !quoted {
                    out.push_str("\"…\"");
                }
                quoted = !quoted;
            }
            _ if quoted => {}
            c if c.is_ascii_digit() => {
                if !last_digit {
                    out.push('N');
                }
            }
            c => out.push(c),
        }
        last_digit = c.is_ascii_digit();
    }
    out
}

fn top(counts: &BTreeMap<String, usize>, n: usize) -> Vec<(usize, &str)> {
    let mut sorted: Vec<(usize, &str)> = counts.iter().map(|(k, v)| (*v, k.as_str())).collect();
    sorted.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    sorted.truncate(n);
    sorted
}

#[test]
fn every_corpus_document_is_read_without_a_crash() {
    let Some((dir, tarball)) = advisory_corpus::extract_or_skip("advisory corpus") else { return };
    let files = json_files(dir.path()).unwrap();
    let started = Instant::now();
    let mut advisories: Vec<Advisory> = Vec::new();
    let mut crashed = Vec::new();
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    let mut refused = 0;
    for file in &files {
        let name = file.strip_prefix(dir.path()).unwrap().display().to_string();
        let bytes = std::fs::read(file).unwrap();
        match std::panic::catch_unwind(|| parse_document(&bytes, &name)) {
            Ok(Ok(advisory)) => advisories.push(advisory),
            Ok(Err(problems)) => {
                refused += 1;
                eprintln!("refused: {}", problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n  "));
                for p in &problems {
                    *failures.entry(reason_of(&format!("{}: {}", p.pointer, p.message))).or_default() += 1;
                }
            }
            Err(_) => crashed.push(name),
        }
    }
    let parse_time = started.elapsed();

    // Version ranges: read, or undetermined whatever the device says (by reason).
    let mut read: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut undetermined: BTreeMap<String, usize> = BTreeMap::new();
    for product in advisories.iter().flat_map(|a| &a.products) {
        let Some(version) = &product.version else { continue };
        let kind = match version {
            ProductVersion::Range(_) => "product_version_range",
            ProductVersion::Version(_) => "product_version",
        };
        let range = otscope::advisories::Range::parse(version.text());
        let slot = read.entry(kind).or_default();
        match range.unreadable_reason() {
            None => slot.0 += 1,
            Some(why) => {
                slot.1 += 1;
                *undetermined.entry(reason_of(why)).or_default() += 1;
            }
        }
    }

    let vendors = Vendors::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("fingerprints")).unwrap();
    let index = Index::build(&advisories, &vendors);
    let stats = index.stats();

    println!("corpus: {}", tarball.display());
    println!("files: {}, read: {}, refused: {refused}, crashed: {}", files.len(), advisories.len(), crashed.len());
    println!(
        "parse time: {:.2?} ({:.0} documents/s, debug build)",
        parse_time,
        files.len() as f64 / parse_time.as_secs_f64()
    );
    println!("failures by reason:{}", if failures.is_empty() { " none" } else { "" });
    for (n, reason) in top(&failures, 20) {
        println!("  {n:6}  {reason}");
    }
    for (kind, (ok, bad)) in &read {
        println!(
            "{kind}: {} read, {ok} understood, {bad} undetermined ({:.1}%)",
            ok + bad,
            100.0 * *bad as f64 / (ok + bad) as f64
        );
    }
    println!("undetermined ranges by reason (top 15):");
    for (n, reason) in top(&undetermined, 15) {
        println!("  {n:6}  {reason}");
    }
    println!(
        "index: {} products with a status, {} with versions, {} of them undetermined, {} that nothing can find",
        stats.products, stats.with_versions, stats.unreadable_versions, stats.unfindable
    );

    assert!(crashed.is_empty(), "crashed on {crashed:?}");
    assert!(files.len() > 2000, "only {} files in the corpus", files.len());
    assert_eq!(refused, 0, "the corpus is valid CSAF 2.0: {failures:#?}");
    assert!(advisories.iter().all(|a| a.tlp == Some(Tlp::White)), "CISA's public corpus is TLP:WHITE");
    let (ranges_ok, ranges_bad) = read["product_version_range"];
    assert!(ranges_ok > 4 * ranges_bad, "most ranges are read: {ranges_ok} read, {ranges_bad} undetermined");

    // A known document: ICSA-24-046-11, SCALANCE XCM-/XRM-300, affected below V2.4.
    let scalance = advisories.iter().find(|a| a.id == "ICSA-24-046-11").expect("ICSA-24-046-11 is in the corpus");
    assert_eq!(scalance.title, "Siemens SCALANCE XCM-/XRM-300");
    let device = |version: &str| ServiceIdentity {
        vendor: Some("Siemens".into()),
        product: Some("SCALANCE XCM324".into()),
        version: Some(version.into()),
        order_numbers: vec!["6GK5 324-8TS01-2AC2".into()],
        ..Default::default()
    };
    let results = index.matches(&device("V2.3"));
    let hit = results
        .iter()
        .find(|r| r.advisory == "ICSA-24-046-11")
        .expect("the SCALANCE XCM324 is found by its order number");
    assert_eq!((hit.product, hit.status), ("SCALANCE XCM324 (6GK5324-8TS01-2AC2)", Status::Affected));
    assert!(hit.cvss.is_some_and(|s| s >= 9.0), "{hit:?}");
    assert!(hit.vendor_fix().iter().any(|f| f.contains("V2.4")), "{:?}", hit.vendor_fix());
    let results = index.matches(&device("V2.4"));
    assert_eq!(results.iter().find(|r| r.advisory == "ICSA-24-046-11").map(|r| r.status), Some(Status::NotAffected));

    // The index finds exactly what trying every product finds, for services made from the
    // corpus' own products (every 97th product: its vendor, name, and the range's first version).
    let mut compared = 0;
    for product in advisories.iter().flat_map(|a| &a.products).step_by(97) {
        let version = product
            .version
            .as_ref()
            .map(|v| v.text().trim_start_matches(|c: char| "<>=vers:al/* ".contains(c)).to_string());
        let service = ServiceIdentity {
            vendor: product.vendor.clone(),
            product: product.product_name.clone(),
            version,
            order_numbers: product.helper.model_numbers.clone(),
            ..Default::default()
        };
        assert_eq!(index.matches(&service), index.matches_exhaustive(&service), "{service:?}");
        compared += 1;
    }
    println!("index and exhaustive search agree on {compared} services made from corpus products");
}

/// The whole corpus goes into a history through `advisories import`'s library function: every
/// document recorded, none refused; importing it again changes nothing.
#[test]
fn the_whole_corpus_is_imported_into_a_history_and_again_changes_nothing() {
    let Some((dir, _)) = advisory_corpus::extract_or_skip("advisory corpus") else { return };
    let vendors = Vendors::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("fingerprints")).unwrap();
    let db = tempfile::tempdir().unwrap();
    let mut store = otscope::store::SqliteStore::open(&db.path().join("otscope.db")).unwrap();
    let paths = [dir.path().to_path_buf()];
    let now = otscope::pipeline::now_rfc3339();
    let started = Instant::now();
    let first = otscope::notices::import(&mut store, &paths, &vendors, &now).unwrap();
    let first_time = started.elapsed();
    let started = Instant::now();
    let again = otscope::notices::import(&mut store, &paths, &vendors, &now).unwrap();
    let again_time = started.elapsed();
    let files = json_files(dir.path()).unwrap().len();
    println!(
        "import: {files} files, {} new ({} ids recorded twice in the corpus replaced), {} refused in {first_time:.2?}; \
         again: {} unchanged in {again_time:.2?} (debug build)",
        first.new.len(),
        first.revised.len(),
        first.refused.len(),
        again.unchanged.len()
    );
    assert!(first.refused.is_empty(), "{:?}", first.refused.first());
    assert_eq!(first.new.len() + first.revised.len() + first.unchanged.len(), files);
    assert_eq!((again.new.len(), again.revised.len()), (0, 0), "importing again is idempotent");
    use otscope::store::AdvisoryStore;
    assert_eq!(store.advisories().unwrap().len(), first.new.len());
}
