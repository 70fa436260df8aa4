//! Hostile input for every protocol parser and framing function, the ledger parser, the port list
//! parser, the fingerprint rule loader, `unescape` and templates, on stable Rust.
//!
//! The targets themselves live in `fuzz/targets.rs`, shared with the cargo-fuzz binaries. Each runs:
//! - a property over arbitrary bytes (0..4096) and one over mutated valid inputs (bit flips, inserted,
//!   overwritten and removed bytes, truncation): no panic, done within a time bound, any success
//!   consistent with its input, and the bytes it allocated bounded by its size (a counting global
//!   allocator). `PROPTEST_CASES` sets the cases per property (default 256).
//! - the stable driver [`stable_fuzz_driver`]: `FUZZ_CASES` inputs per target (default 300) from a
//!   seeded generator mixing mutations, splices and random bytes; `FUZZ_SEED` varies the run and
//!   `FUZZ_ONLY=name` keeps one target. It prints how many inputs each target ran without failure.
//!
//! Long runs: `PROPTEST_CASES=20000 FUZZ_CASES=200000 cargo test --release --test fuzz_parsers -- --nocapture`.

#[path = "../fuzz/targets.rs"]
mod targets;

use proptest::prelude::*;
use proptest::test_runner::Config;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};
use targets::{seeds, TARGETS};

/// How long one input may take in a debug build before it counts as a hang.
const TIME_LIMIT: Duration = Duration::from_secs(5);

fn target(name: &str) -> targets::Target {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f).unwrap_or_else(|| panic!("no target {name}"))
}

/// Counts the bytes each thread asks the allocator for, so a target's allocations can be bounded.
struct Counting;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

fn count(bytes: usize) {
    // try_with: a thread being torn down has no counter left, and needs none.
    let _ = ALLOCATED.try_with(|a| a.set(a.get().saturating_add(bytes)));
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting has no effect on it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size.saturating_sub(layout.size()));
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What one input may cost in allocations: proportional to its size, plus a fixed allowance (the
/// rule loader compiles regexes and builds a matcher, so it gets a larger one).
fn allocation_limit(name: &str, len: usize) -> usize {
    let fixed = if name == "rules_loader" { 256 << 20 } else { 4 << 20 };
    fixed + 256 * len
}

fn run_timed(name: &str, data: &[u8]) {
    let before = ALLOCATED.with(Cell::get);
    let start = Instant::now();
    target(name)(data);
    let took = start.elapsed();
    let allocated = ALLOCATED.with(Cell::get) - before;
    assert!(took < TIME_LIMIT, "{name}: {took:?} for {} bytes: {}", data.len(), hex::encode(data));
    assert!(
        allocated <= allocation_limit(name, data.len()),
        "{name}: {allocated} bytes allocated for {} input bytes: {}",
        data.len(),
        hex::encode(data)
    );
}

/// One edit of a valid input: what, where (modulo the length) and which byte.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn apply(mut data: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = data.len();
        match *e {
            Edit::Flip(at, bit) if len > 0 => data[at % len] ^= 1 << (bit % 8),
            Edit::Set(at, b) if len > 0 => data[at % len] = b,
            Edit::Insert(at, b) => data.insert(at % (len + 1), b),
            Edit::Remove(at) if len > 0 => {
                data.remove(at % len);
            }
            Edit::Truncate(at) => data.truncate(at % (len + 1)),
            _ => {}
        }
    }
    data
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Edit::Flip(a, b)),
        3 => (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Edit::Set(a, b)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Edit::Insert(a, b)),
        2 => any::<usize>().prop_map(Edit::Remove),
        1 => any::<usize>().prop_map(Edit::Truncate),
    ]
}

/// A valid input of the target with 1 to 8 edits.
fn mutated(name: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let corpus = seeds(name);
    assert!(!corpus.is_empty(), "{name} has no seeds");
    (0..corpus.len(), prop::collection::vec(edit(), 1..8)).prop_map(move |(i, edits)| apply(corpus[i].clone(), &edits))
}

fn config() -> Config {
    // Config::default() reads PROPTEST_CASES; failures are reported with their input, and a fixed
    // failing input becomes a unit test next to its parser, so no regression files are written.
    Config { failure_persistence: None, ..Config::default() }
}

macro_rules! properties {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                use super::*;

                proptest! {
                    #![proptest_config(config())]

                    #[test]
                    fn arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..4096)) {
                        run_timed(stringify!($name), &data);
                    }

                    #[test]
                    fn mutated_valid_input(data in mutated(stringify!($name))) {
                        run_timed(stringify!($name), &data);
                    }
                }
            }
        )+
    };
}

properties!(
    atg,
    bacnet,
    codesys,
    dnp3,
    enip,
    fins,
    fox,
    hartip,
    http,
    banner,
    iec104,
    iso_transport,
    melsec,
    mms,
    modbus,
    moxa,
    mqtt,
    opcua,
    pcworx,
    proconos,
    s7comm,
    s7commplus,
    snmp,
    srtp,
    ledger,
    ports,
    rules_loader,
    unescape,
    template,
    permutation,
);

mod crimson {
    use super::*;

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..4096)) {
            run_timed("crimson", &data);
        }

        #[test]
        fn length_prefixed_bytes(body in prop::collection::vec(any::<u8>(), 0..600), register in any::<u16>()) {
            let mut data = ((body.len() + 2) as u16).to_be_bytes().to_vec();
            data.extend_from_slice(&register.to_be_bytes());
            data.extend_from_slice(&body);
            run_timed("crimson", &data);
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// Port lists shaped like real ones, ranges included, stay cheap and sorted.
    #[test]
    fn port_lists(text in "(([0-9]{1,5})(-[0-9]{1,5})?(/(tcp|udp))?,){0,60}[0-9]{1,5}(-[0-9]{1,5})?") {
        run_timed("ports", text.as_bytes());
    }

    /// Long lists of whole ranges: the result is bounded by the port space, not by the text.
    #[test]
    fn port_lists_of_whole_ranges(items in prop::collection::vec("[1-9][0-9]{0,4}-6553[0-5](/udp|/tcp)?", 1..400)) {
        run_timed("ports", items.join(",").as_bytes());
    }

    /// Templates made of placeholders, lookups and braces.
    #[test]
    fn template_shapes(text in "[a-z_.@ {}]{0,80}") {
        run_timed("template", text.as_bytes());
    }

    /// Escapes, complete and cut short.
    #[test]
    fn escape_shapes(text in r"(\\(x[0-9a-fA-F]{0,2}|[rnt0\\q])|[a-zé ]){0,60}\\?") {
        run_timed("unescape", text.as_bytes());
    }

    /// Ledger rows with the right header and arbitrary fields.
    #[test]
    fn ledger_rows(rows in prop::collection::vec("[A-Za-z0-9 ./;:\"-]{0,40}(,[A-Za-z0-9 ./;:\"-]{0,40}){0,8}", 0..20)) {
        let text = format!("enterprise_id,enterprise,district,sector,level,targets,contact\n{}", rows.join("\n"));
        run_timed("ledger", text.as_bytes());
    }
}

/// A small deterministic generator (splitmix64), so a failing driver input can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One driver input: a mutated seed, a splice of two seeds, or random bytes.
fn generate(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let random = |rng: &mut Rng| (0..rng.below(4096)).map(|_| rng.next() as u8).collect::<Vec<u8>>();
    let base = match rng.below(10) {
        0 | 1 => return random(rng),
        2 if !corpus.is_empty() => {
            let a = &corpus[rng.below(corpus.len())];
            let b = &corpus[rng.below(corpus.len())];
            let (i, j) = (rng.below(a.len() + 1), rng.below(b.len() + 1));
            [&a[..i], &b[j..]].concat()
        }
        _ if !corpus.is_empty() => corpus[rng.below(corpus.len())].clone(),
        _ => random(rng),
    };
    let edits: Vec<Edit> = (0..1 + rng.below(8))
        .map(|_| {
            let (at, b) = (rng.next() as usize, rng.next() as u8);
            match rng.below(12) {
                0..=3 => Edit::Flip(at, b),
                4..=6 => Edit::Set(at, b),
                7 | 8 => Edit::Insert(at, b),
                9 | 10 => Edit::Remove(at),
                _ => Edit::Truncate(at),
            }
        })
        .collect();
    apply(base, &edits)
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The cargo-fuzz targets run on stable for a bounded number of inputs each.
#[test]
fn stable_fuzz_driver() {
    let cases = env_number("FUZZ_CASES", 300);
    let seed = env_number("FUZZ_SEED", 0x0075_c09e);
    let only = std::env::var("FUZZ_ONLY").ok();
    for (name, _) in TARGETS.iter().filter(|(n, _)| only.as_deref().is_none_or(|o| o == *n)) {
        let corpus = seeds(name);
        let mut rng = Rng(seed ^ name.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))));
        let start = Instant::now();
        for i in 0..cases {
            let data = generate(&mut rng, &corpus);
            if let Err(panic) = std::panic::catch_unwind(|| run_timed(name, &data)) {
                panic!("{name}: input {i} (FUZZ_SEED={seed}) failed: {}\n{panic:?}", hex::encode(&data));
            }
        }
        println!("{name}: {cases} inputs run without failure in {:.1?}", start.elapsed());
    }
}

/// Every target has seeds to mutate, and takes each of them.
#[test]
fn every_target_has_seeds_and_takes_them() {
    for (name, f) in TARGETS {
        let corpus = seeds(name);
        assert!(!corpus.is_empty(), "{name} has no seeds");
        for s in &corpus {
            f(s);
        }
    }
}
