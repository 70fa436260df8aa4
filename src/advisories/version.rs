//! The one version comparator: reads the version ranges advisories write (`vers:` strings and free
//! text) and decides whether a version a device stated lies inside.
//!
//! Advisories write ranges in many styles: `vers:all/<V2.9.7`, `>=1.00A|<1.05F`, `<= 33.013`,
//! `All versions < V17 Update 6`, `Versions 1.14 and prior`, `< SV3.51`. A version is read as a
//! list of segments (numbers, words, and the qualifiers SP, Update, Hotfix, Build, Patch) and two
//! versions compare segment by segment. Whatever cannot be read or compared with certainty (a
//! wildcard inside a version, a second condition on something a scan cannot see, a number against
//! a word) makes the answer `undetermined`, with the reason: the comparator never guesses.

use std::cmp::Ordering;
use std::fmt;

/// What a comparison concluded about one version and one range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Affected,
    NotAffected,
    Undetermined,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Affected => "affected",
            Status::NotAffected => "not_affected",
            Status::Undetermined => "undetermined",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub status: Status,
    pub reason: String,
}

impl Verdict {
    fn new(status: Status, reason: String) -> Verdict {
        Verdict { status, reason }
    }
}

/// Qualifiers that follow a release and raise it: `V7.4 SP1`, `V17 Update 6`, `V22.2 HotfixRev5`.
/// Two different kinds at the same place do not compare (is `V7.4 SP1` after `V7.4 Update 4`?
/// the vendor's release history decides, not the text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Qualifier {
    ServicePack,
    Update,
    Hotfix,
    Build,
    Patch,
}

impl Qualifier {
    fn from_word(word: &str) -> Option<Qualifier> {
        Some(match word {
            "sp" | "servicepack" => Qualifier::ServicePack,
            "update" | "upd" => Qualifier::Update,
            "hf" | "hotfix" | "hotfixrev" => Qualifier::Hotfix,
            "build" => Qualifier::Build,
            "patch" => Qualifier::Patch,
            _ => return None,
        })
    }
}

/// Words that mark a version before its release: `2.0 beta` comes before `2.0`.
fn prerelease_rank(word: &str) -> Option<u8> {
    Some(match word {
        "dev" => 0,
        "alpha" => 1,
        "beta" => 2,
        "pre" | "preview" => 3,
        "rc" => 4,
        _ => return None,
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    /// Digits without their leading zeros (`011` and `11` are the same number, as Rockwell's
    /// `20.011` and a device's `20.11` are the same revision).
    Number(String),
    /// A lowercase run of letters (`1.05F`, `R6.03`).
    Word(String),
    Qualifier(Qualifier),
    /// `x`, `X` or `*` standing for a whole dot-separated part.
    Wildcard,
}

/// A version as a device or an advisory writes it, read into comparable segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    text: String,
    segments: Vec<Segment>,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Version {
    /// Reads a version: an optional `V`/`SV` marker, then numbers and short letter runs separated
    /// by `.` or `-` (`V2.9.4`, `20.011`, `1.05F`, `SV3.2`, `R6.03.10`), then qualifiers each with
    /// an optional number (`V17 Update 6`, `V4.7 SP6 HF3`, `V22.2 HotfixRev5`, `2.0 beta 2`).
    /// Refuses what is not one version: brackets and commas, words of more than three letters
    /// that are not qualifiers (`with the first 5 digits ...`), a second version after the first
    /// (`v36.011 v35.013`), an `x` glued to digits (`2.3x`), two bare numbers joined by a dash
    /// (`28-33` is a range).
    pub fn parse(text: &str) -> Result<Version, String> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err("empty version".into());
        }
        if let Some(bad) =
            trimmed.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ' | '*')))
        {
            return Err(format!("{trimmed:?} is not a version (it contains {bad:?})"));
        }
        if is_dash_range(trimmed) {
            return Err(format!("{trimmed:?} reads as a range of two versions, not a version"));
        }
        let spaced = trimmed.replace('_', " ");
        let mut chunks = strip_version_marker(&spaced).split_whitespace();
        let core = chunks.next().unwrap_or_default();
        let mut segments = Vec::new();
        for part in core.split(['.', '-']).filter(|p| !p.is_empty()) {
            if part == "*" || part.eq_ignore_ascii_case("x") {
                segments.push(Segment::Wildcard);
                continue;
            }
            if part.contains('*') {
                return Err(format!("{trimmed:?} has a wildcard inside a part"));
            }
            for run in runs(part) {
                if run.bytes().all(|b| b.eq_ignore_ascii_case(&b'x')) && !run.as_bytes()[0].is_ascii_digit() {
                    return Err(format!("{trimmed:?} has a wildcard {run:?} joined to other characters"));
                }
                segments.push(segment(run).ok_or_else(|| format!("{trimmed:?} is not a version (the word {run:?})"))?);
            }
        }
        let numbers: Vec<&str> =
            segments.iter().filter_map(|s| if let Segment::Number(n) = s { Some(n.as_str()) } else { None }).collect();
        match numbers.as_slice() {
            [] => return Err(format!("{trimmed:?} has no version number")),
            [only] if only.len() >= 6 && !is_date(only) => {
                return Err(format!("{trimmed:?} reads as an article or serial number, not a version"))
            }
            _ => {}
        }
        let words = segments.iter().filter(|s| matches!(s, Segment::Word(w) if prerelease_rank(w).is_none())).count();
        if words > 2 {
            return Err(format!("{trimmed:?} reads as a model or part number, not a version"));
        }
        // After the core, only qualifiers and pre-release words, each with an optional number.
        let mut after_qualifier = false;
        for chunk in chunks {
            let parts = runs(chunk);
            let is_number = chunk.bytes().all(|b| b.is_ascii_digit());
            let is_qualifier = match parts.as_slice() {
                [word] | [word, _] => {
                    let word = word.to_ascii_lowercase();
                    (Qualifier::from_word(&word).is_some() || prerelease_rank(&word).is_some())
                        && parts.get(1).is_none_or(|n| n.as_bytes()[0].is_ascii_digit())
                }
                _ => false,
            };
            if !(is_qualifier || (is_number && after_qualifier)) {
                return Err(format!("{trimmed:?} is not one version (at {chunk:?})"));
            }
            after_qualifier = is_qualifier && parts.len() == 1;
            for run in parts {
                segments.push(segment(run).ok_or_else(|| format!("{trimmed:?} is not a version (the word {run:?})"))?);
            }
        }
        Ok(Version { text: trimmed.to_string(), segments })
    }

    fn wildcard_at(&self) -> Option<usize> {
        self.segments.iter().position(|s| *s == Segment::Wildcard)
    }

    /// The prefix before trailing wildcards (`V4.x` -> `V4`), or an error when a wildcard is
    /// followed by anything else (`V3.X.17`: which 3.something comes before 3.X.17 is unknowable).
    fn split_wildcard(&self) -> Result<Option<Version>, String> {
        let Some(at) = self.wildcard_at() else { return Ok(None) };
        if self.segments[at..].iter().any(|s| *s != Segment::Wildcard) {
            return Err(format!("{} has a wildcard X before other parts", self.text));
        }
        Ok(Some(Version { text: self.text.clone(), segments: self.segments[..at].to_vec() }))
    }

    /// The first version after every version starting with this prefix: its last number plus one
    /// (`4` -> `5`, `3.1` -> `3.2`). None when the prefix does not end with a number.
    fn next_prefix(&self) -> Option<Version> {
        let mut segments = self.segments.clone();
        match segments.last_mut() {
            Some(Segment::Number(n)) => *n = increment_decimal(n),
            _ => return None,
        }
        Some(Version { text: self.text.clone(), segments })
    }

    /// Compares two versions; None when they cannot be compared with certainty (a number against
    /// a word, two different qualifiers at the same place, a wildcard).
    pub fn compare(&self, other: &Version) -> Option<Ordering> {
        let len = self.segments.len().max(other.segments.len());
        for i in 0..len {
            let ordering = compare_segments(self.segments.get(i), other.segments.get(i))?;
            if ordering != Ordering::Equal {
                return Some(ordering);
            }
        }
        Some(Ordering::Equal)
    }
}

fn compare_segments(a: Option<&Segment>, b: Option<&Segment>) -> Option<Ordering> {
    use Segment::*;
    match (a, b) {
        (None, None) => Some(Ordering::Equal),
        (Some(_), None) => compare_segments(b, a).map(Ordering::reverse),
        // A missing part: zero against a number (`4.1` is `4.1.0`), before a letter or a
        // qualifier (`1.05` < `1.05F`, `V17` < `V17 Update 1`), after a pre-release word.
        (None, Some(Number(n))) => Some(compare_numbers("0", n)),
        (None, Some(Word(w))) => Some(if prerelease_rank(w).is_some() { Ordering::Greater } else { Ordering::Less }),
        (None, Some(Qualifier(_))) => Some(Ordering::Less),
        (Some(Number(x)), Some(Number(y))) => Some(compare_numbers(x, y)),
        (Some(Word(x)), Some(Word(y))) => match (prerelease_rank(x), prerelease_rank(y)) {
            (Some(rx), Some(ry)) => Some(rx.cmp(&ry)),
            (None, None) => Some(x.cmp(y)),
            _ => None,
        },
        (Some(Qualifier(x)), Some(Qualifier(y))) => (x == y).then_some(Ordering::Equal),
        _ => None,
    }
}

fn compare_numbers(x: &str, y: &str) -> Ordering {
    x.len().cmp(&y.len()).then_with(|| x.cmp(y))
}

fn increment_decimal(digits: &str) -> String {
    let mut bytes = digits.as_bytes().to_vec();
    for b in bytes.iter_mut().rev() {
        if *b == b'9' {
            *b = b'0';
        } else {
            *b += 1;
            return String::from_utf8(bytes).unwrap_or_default();
        }
    }
    format!("1{}", String::from_utf8(bytes).unwrap_or_default())
}

/// `28-33` and `V175-V189`: two versions joined by a dash.
fn is_dash_range(text: &str) -> bool {
    let Some((a, b)) = text.split_once('-') else { return false };
    let (a, b) = (a.trim(), b.trim());
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit());
    let marked =
        |t: &str| t.len() > 1 && (t.starts_with('V') || t.starts_with('v')) && t.as_bytes()[1].is_ascii_digit();
    (digits(a) && digits(b)) || (marked(a) && marked(b))
}

/// `20190812`: eight digits that read as a date, as some vendors number their builds.
fn is_date(digits: &str) -> bool {
    let field = |range: std::ops::Range<usize>| digits.get(range).and_then(|d| d.parse::<u32>().ok()).unwrap_or(0);
    digits.len() == 8
        && (digits.starts_with("19") || digits.starts_with("20"))
        && (1..=12).contains(&field(4..6))
        && (1..=31).contains(&field(6..8))
}

/// `V2.9.4`, `v5.027`, `V 4.02`, `Ver.2.60` and Schneider's `SV3.2` all mean the version that
/// follows.
fn strip_version_marker(text: &str) -> &str {
    for marker in ["ver.", "ver", "sv", "v"] {
        if text.len() > marker.len() && text.get(..marker.len()).is_some_and(|head| head.eq_ignore_ascii_case(marker)) {
            let rest = text[marker.len()..].trim_start();
            if rest.starts_with(|c: char| c.is_ascii_digit()) {
                return rest;
            }
        }
    }
    text
}

/// Splits `05F` into `05` and `F`: runs of digits and runs of letters.
fn runs(part: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = part;
    while !rest.is_empty() {
        let digit = rest.as_bytes()[0].is_ascii_digit();
        let len = rest.bytes().take_while(|b| b.is_ascii_digit() == digit).count();
        let (run, tail) = rest.split_at(len);
        out.push(run);
        rest = tail;
    }
    out
}

/// One run as a segment; None for a word that is neither a qualifier, a pre-release word nor a
/// short letter suffix or prefix (three letters at most: `F`, `R`, `HW`, `GA`).
fn segment(run: &str) -> Option<Segment> {
    if run.as_bytes()[0].is_ascii_digit() {
        let number = run.trim_start_matches('0');
        return Some(Segment::Number(if number.is_empty() { "0".into() } else { number.into() }));
    }
    let word = run.to_ascii_lowercase();
    if let Some(q) = Qualifier::from_word(&word) {
        return Some(Segment::Qualifier(q));
    }
    (prerelease_rank(&word).is_some() || word.len() <= 3).then_some(Segment::Word(word))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
    Equal,
    NotEqual,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Less => "<",
            Op::LessEqual => "<=",
            Op::Greater => ">",
            Op::GreaterEqual => ">=",
            Op::Equal => "=",
            Op::NotEqual => "!=",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Bound {
    version: Version,
    inclusive: bool,
}

/// One stretch of versions; a missing end is open.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Interval {
    lower: Option<Bound>,
    upper: Option<Bound>,
}

impl Interval {
    /// Some(true) inside, Some(false) outside, Err when a bound does not compare.
    fn contains(&self, version: &Version) -> Result<bool, String> {
        for (bound, below) in [(&self.lower, true), (&self.upper, false)] {
            let Some(bound) = bound else { continue };
            let ordering = version
                .compare(&bound.version)
                .ok_or_else(|| format!("{version} does not compare with {}", bound.version))?;
            let inside = match (below, ordering) {
                (_, Ordering::Equal) => bound.inclusive,
                (true, o) => o == Ordering::Greater,
                (false, o) => o == Ordering::Less,
            };
            if !inside {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Reading {
    /// Every version (`vers:all/*`, `All versions`, `*`).
    All,
    /// Versions inside any interval and not excluded.
    Intervals { intervals: Vec<Interval>, excluded: Vec<Version> },
    /// The text cannot be read with certainty; why.
    Unreadable(String),
}

/// A version range as an advisory wrote it, read once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    text: String,
    reading: Reading,
}

/// vers schemes whose versions this comparator orders as their specification does: `all` and
/// `generic` (whatever the vendor writes), and the dotted-number schemes.
const VERS_SCHEMES: &[&str] = &["all", "generic", "semver", "npm", "intdot", "nginx", "cargo", "golang"];

impl Range {
    /// Reads a range: a `vers:` string or free text.
    pub fn parse(text: &str) -> Range {
        let reading = read_range(text.trim());
        Range { text: text.to_string(), reading }
    }

    /// The range as the advisory wrote it.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// False when the range cannot be read with certainty, so that every comparison with it is
    /// undetermined.
    pub fn is_readable(&self) -> bool {
        !matches!(self.reading, Reading::Unreadable(_))
    }

    /// Why the range cannot be read, if it cannot.
    pub fn unreadable_reason(&self) -> Option<&str> {
        match &self.reading {
            Reading::Unreadable(reason) => Some(reason),
            _ => None,
        }
    }

    /// Whether `version` (as the device stated it; None when it stated none) is in the range.
    pub fn evaluate(&self, version: Option<&str>) -> Verdict {
        let range = self.text.trim();
        let intervals = match &self.reading {
            Reading::Unreadable(why) => {
                return Verdict::new(Status::Undetermined, format!("cannot read the range {range:?}: {why}"))
            }
            Reading::All => {
                let stated = version.map(|v| format!("{:?}", v.trim())).unwrap_or_else(|| "an unknown version".into());
                return Verdict::new(
                    Status::Affected,
                    format!("every version is in the range {range:?}, so {stated} is"),
                );
            }
            Reading::Intervals { intervals, excluded } => (intervals, excluded),
        };
        let Some(stated) = version.map(str::trim).filter(|v| !v.is_empty()) else {
            return Verdict::new(
                Status::Undetermined,
                format!("the device stated no version to compare with the range {range:?}"),
            );
        };
        let device = match Version::parse(stated) {
            Ok(v) if v.wildcard_at().is_none() => v,
            Ok(_) => {
                return Verdict::new(Status::Undetermined, format!("the device's version {stated:?} has a wildcard"))
            }
            Err(why) => return Verdict::new(Status::Undetermined, format!("cannot read the device's version: {why}")),
        };
        let (intervals, excluded) = intervals;
        for version in excluded {
            match device.compare(version) {
                Some(Ordering::Equal) => {
                    return Verdict::new(Status::NotAffected, format!("{stated:?} is excluded by the range {range:?}"))
                }
                Some(_) => {}
                None => {
                    return Verdict::new(
                        Status::Undetermined,
                        format!("{stated:?} does not compare with {version} in the range {range:?}"),
                    )
                }
            }
        }
        let mut undetermined = None;
        for interval in intervals {
            match interval.contains(&device) {
                Ok(true) => return Verdict::new(Status::Affected, format!("{stated:?} is in the range {range:?}")),
                Ok(false) => {}
                Err(why) => undetermined = undetermined.or(Some(why)),
            }
        }
        match undetermined {
            Some(why) => Verdict::new(Status::Undetermined, format!("{why} in the range {range:?}")),
            None => Verdict::new(Status::NotAffected, format!("{stated:?} is outside the range {range:?}")),
        }
    }
}

fn read_range(text: &str) -> Reading {
    if text.is_empty() {
        return Reading::Unreadable("the range is empty".into());
    }
    if let Some(rest) = text.strip_prefix("vers:") {
        let Some((scheme, constraints)) = rest.split_once('/') else {
            return Reading::Unreadable("a vers range needs a scheme and constraints: vers:SCHEME/CONSTRAINTS".into());
        };
        if !VERS_SCHEMES.contains(&scheme) {
            return Reading::Unreadable(format!("the vers scheme {scheme:?} is not one this comparator orders"));
        }
        return read_constraints(constraints.trim());
    }
    read_constraints(&strip_noise_words(text))
}

/// Drops the words advisories put around a range that say nothing about it: `All versions < V14`,
/// `Versions 1.14 and prior`, `<=firmware_65`; underscores are spaces (`<V18_Update_2`).
fn strip_noise_words(text: &str) -> String {
    let noise = |w: &str| ["all", "versions", "version", "firmware", "fw"].iter().any(|n| w.eq_ignore_ascii_case(n));
    let spaced = text.replace('_', " ");
    let mut kept: Vec<&str> = Vec::new();
    for token in spaced.split_whitespace() {
        let word = token.trim_start_matches(['<', '>', '=', '!']);
        let operator = &token[..token.len() - word.len()];
        let leads =
            kept.is_empty() || !operator.is_empty() || kept.last().is_some_and(|t| t.ends_with(['<', '>', '=']));
        if leads && noise(word) {
            if !operator.is_empty() {
                kept.push(operator);
            }
            continue;
        }
        kept.push(token);
    }
    match kept.is_empty() {
        // "All versions" alone says every version; "Firmware" alone says nothing.
        true if spaced.split_whitespace().next().is_some_and(|w| w.eq_ignore_ascii_case("all")) => "*".into(),
        true => spaced.trim().to_string(),
        false => kept.join(" "),
    }
}

fn read_constraints(text: &str) -> Reading {
    if text == "*" {
        return Reading::All;
    }
    let mut items: Vec<Vec<(Op, Version)>> = Vec::new();
    for item in text.split('|') {
        let item = item.trim();
        if item.is_empty() {
            return Reading::Unreadable("an empty alternative between two |".into());
        }
        match read_item(item) {
            Ok(constraints) => items.push(constraints),
            Err(why) => return Reading::Unreadable(why),
        }
    }
    let mut excluded = Vec::new();
    let mut intervals = Vec::new();
    if items.iter().all(|c| c.len() == 1) {
        // vers semantics: `>=1.00A|<1.05F` is one stretch.
        let mut comparisons = Vec::new();
        for (op, version) in items.into_iter().flatten() {
            match op {
                Op::Equal => intervals.push(point(version)),
                Op::NotEqual => excluded.push(version),
                _ => comparisons.push((op, version)),
            }
        }
        match vers_intervals(comparisons) {
            Ok(found) => intervals.extend(found),
            Err(why) => return Reading::Unreadable(why),
        }
    } else {
        // `>= V2.0 < V2.2.28 | >= V3.0 < V3.1`: each alternative is a stretch on its own.
        for constraints in items {
            match interval_of(constraints) {
                Ok(found) => intervals.push(found),
                Err(why) => return Reading::Unreadable(why),
            }
        }
    }
    Reading::Intervals { intervals, excluded }
}

fn point(version: Version) -> Interval {
    Interval {
        lower: Some(Bound { version: version.clone(), inclusive: true }),
        upper: Some(Bound { version, inclusive: true }),
    }
}

/// The vers algorithm: sorted comparators alternate between lower and upper bounds; a leading
/// `<`/`<=` opens downwards, a trailing `>`/`>=` opens upwards.
fn vers_intervals(mut comparisons: Vec<(Op, Version)>) -> Result<Vec<Interval>, String> {
    let mut unordered = None;
    comparisons.sort_by(|a, b| {
        a.1.compare(&b.1).unwrap_or_else(|| {
            unordered.get_or_insert_with(|| format!("{} and {} do not compare", a.1, b.1));
            Ordering::Equal
        })
    });
    if let Some(why) = unordered {
        return Err(why);
    }
    let mut intervals = Vec::new();
    let mut i = 0;
    while i < comparisons.len() {
        let (op, version) = &comparisons[i];
        let bound = Bound { version: version.clone(), inclusive: matches!(op, Op::LessEqual | Op::GreaterEqual) };
        match op {
            Op::Less | Op::LessEqual if i == 0 => {
                intervals.push(Interval { lower: None, upper: Some(bound) });
                i += 1;
            }
            Op::Greater | Op::GreaterEqual => match comparisons.get(i + 1) {
                None => {
                    intervals.push(Interval { lower: Some(bound), upper: None });
                    i += 1;
                }
                Some((next, upper)) if matches!(next, Op::Less | Op::LessEqual) => {
                    let upper = Bound { version: upper.clone(), inclusive: *next == Op::LessEqual };
                    intervals.push(Interval { lower: Some(bound), upper: Some(upper) });
                    i += 2;
                }
                Some((next, v)) => {
                    return Err(format!(
                        "{}{version} is followed by {}{v}: bounds must alternate",
                        op.symbol(),
                        next.symbol()
                    ))
                }
            },
            _ => {
                let previous = &comparisons[i - 1];
                return Err(format!(
                    "{}{} is followed by {}{version}: bounds must alternate",
                    previous.0.symbol(),
                    previous.1,
                    op.symbol()
                ));
            }
        }
    }
    Ok(intervals)
}

/// An alternative made of several constraints that must all hold (`>= V2.0 < V2.2.28`).
fn interval_of(constraints: Vec<(Op, Version)>) -> Result<Interval, String> {
    let mut interval = Interval { lower: None, upper: None };
    for (op, version) in constraints {
        let inclusive = matches!(op, Op::LessEqual | Op::GreaterEqual | Op::Equal);
        let slot = match op {
            Op::Greater | Op::GreaterEqual => &mut interval.lower,
            Op::Less | Op::LessEqual => &mut interval.upper,
            Op::Equal | Op::NotEqual => {
                return Err(format!("{}{version} cannot be combined with other bounds", op.symbol()))
            }
        };
        if slot.is_some() {
            return Err(format!(
                "two {} bounds in one alternative",
                if matches!(op, Op::Greater | Op::GreaterEqual) { "lower" } else { "upper" }
            ));
        }
        *slot = Some(Bound { version, inclusive });
    }
    Ok(interval)
}

/// One alternative: one or more comparator-and-version constraints (joined by spaces or `and`),
/// a bare version, or an English form (`prior to X`, `X and earlier`, `X or later`, `A through B`).
fn read_item(item: &str) -> Result<Vec<(Op, Version)>, String> {
    let lower = item.to_ascii_lowercase();
    for (words, op) in [
        ("prior to ", Op::Less),
        ("before ", Op::Less),
        ("earlier than ", Op::Less),
        ("up to and including ", Op::LessEqual),
    ] {
        if let Some(rest) = lower.strip_prefix(words) {
            return bounded(op, &item[item.len() - rest.len()..]);
        }
    }
    for (words, op) in [
        (" and earlier", Op::LessEqual),
        (" and prior", Op::LessEqual),
        (" or earlier", Op::LessEqual),
        (" and older", Op::LessEqual),
        (" and later", Op::GreaterEqual),
        (" or later", Op::GreaterEqual),
        (" and newer", Op::GreaterEqual),
        (" or newer", Op::GreaterEqual),
        (" and above", Op::GreaterEqual),
        (" and below", Op::LessEqual),
        (" or below", Op::LessEqual),
        (" and higher", Op::GreaterEqual),
        (" or higher", Op::GreaterEqual),
    ] {
        if let Some(rest) = lower.strip_suffix(words) {
            return bounded(op, &item[..rest.len()]);
        }
    }
    if let Some((from, to)) = lower.split_once(" through ") {
        let (from, to) = (&item[..from.len()], &item[item.len() - to.len()..]);
        let mut constraints = bounded(Op::GreaterEqual, from)?;
        constraints.extend(bounded(Op::LessEqual, to)?);
        return Ok(constraints);
    }
    let mut constraints = Vec::new();
    for (n, part) in split_and(item).into_iter().enumerate() {
        let part = part.trim();
        if !starts_with_op(part) {
            if let Some(at) = part.find(['<', '>', '=']) {
                let subject = part[..at].trim();
                return Err(if n > 0 {
                    format!("it adds a condition on {subject:?}, which a scan cannot check")
                } else {
                    format!("the condition is on {subject:?}, not on the version")
                });
            }
            if n > 0 || split_and(item).len() > 1 {
                return Err(format!("{part:?} is not a comparison"));
            }
            return bounded(Op::Equal, part);
        }
        constraints.extend(read_comparisons(part)?);
    }
    Ok(constraints)
}

fn bounded(op: Op, text: &str) -> Result<Vec<(Op, Version)>, String> {
    let version = Version::parse(text)?;
    resolve_wildcard(op, version)
}

fn split_and(item: &str) -> Vec<&str> {
    let lower = item.to_ascii_lowercase();
    let mut parts = Vec::new();
    let mut start = 0;
    while let Some(found) = lower[start..].find(" and ") {
        parts.push(&item[start..start + found]);
        start += found + " and ".len();
    }
    parts.push(&item[start..]);
    parts
}

fn starts_with_op(text: &str) -> bool {
    text.starts_with(['<', '>', '=', '!'])
}

/// `>= V7.80 < V9.30`, `<V4.3.8`, `=< 4.6`: comparators each followed by a version, up to the next
/// comparator.
fn read_comparisons(text: &str) -> Result<Vec<(Op, Version)>, String> {
    let mut constraints = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (op, width) = if rest.starts_with("<=") || rest.starts_with("=<") {
            (Op::LessEqual, 2)
        } else if rest.starts_with(">=") || rest.starts_with("=>") {
            (Op::GreaterEqual, 2)
        } else if rest.starts_with("!=") {
            (Op::NotEqual, 2)
        } else if rest.starts_with("==") {
            (Op::Equal, 2)
        } else if rest.starts_with('<') {
            (Op::Less, 1)
        } else if rest.starts_with('>') {
            (Op::Greater, 1)
        } else if rest.starts_with('=') {
            (Op::Equal, 1)
        } else {
            return Err(format!("expected a comparator at {rest:?}"));
        };
        rest = rest[width..].trim_start();
        let end = rest.find(['<', '>', '=', '!']).unwrap_or(rest.len());
        let version_text = rest[..end].trim();
        if version_text.is_empty() {
            return Err(format!("{} is not followed by a version", op.symbol()));
        }
        let version = Version::parse(version_text)?;
        constraints.extend(resolve_wildcard(op, version)?);
        rest = rest[end..].trim_start();
    }
    Ok(constraints)
}

/// Rewrites a bound with trailing wildcards into bounds without: `<= V7.x` is `< V8`, `= 4.x` is
/// `>= 4 < 5`, `< 3.x` is `< 3`. A wildcard followed by more parts (`V3.X.17`) cannot be rewritten.
fn resolve_wildcard(op: Op, version: Version) -> Result<Vec<(Op, Version)>, String> {
    let Some(prefix) = version.split_wildcard()? else { return Ok(vec![(op, version)]) };
    if prefix.segments.is_empty() {
        return Err(format!("{} is a wildcard without a version", version.text));
    }
    let next = || prefix.next_prefix().ok_or_else(|| format!("{} does not end its prefix with a number", version.text));
    Ok(match op {
        Op::Less | Op::GreaterEqual => vec![(op, prefix.clone())],
        Op::LessEqual => vec![(Op::Less, next()?)],
        Op::Greater => vec![(Op::GreaterEqual, next()?)],
        Op::Equal => vec![(Op::GreaterEqual, prefix.clone()), (Op::Less, next()?)],
        Op::NotEqual => return Err(format!("!={} excludes a series, not one version", version.text)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_versions_into_segments() {
        let v = |t: &str| Version::parse(t).unwrap().segments;
        use Segment::*;
        let n = |s: &str| Number(s.into());
        assert_eq!(v("V2.9.4"), vec![n("2"), n("9"), n("4")]);
        assert_eq!(v("20.011"), vec![n("20"), n("11")]);
        assert_eq!(v("1.05F"), vec![n("1"), n("5"), Word("f".into())]);
        assert_eq!(v("SV3.2"), vec![n("3"), n("2")]);
        assert_eq!(v("V17 Update 6"), vec![n("17"), Qualifier(super::Qualifier::Update), n("6")]);
        assert_eq!(v("V22.2 HotfixRev5"), vec![n("22"), n("2"), Qualifier(super::Qualifier::Hotfix), n("5")]);
        assert_eq!(v("V4.x"), vec![n("4"), Wildcard]);
        assert!(Version::parse("02.07.07(10)").is_err());
        assert!(Version::parse("28-33").is_err(), "a dash between two numbers is a range");
        assert!(Version::parse("V175-V189").is_err());
        assert!(Version::parse("2730844").is_err(), "an article number");
        assert!(Version::parse("HEN321124").is_err(), "a model number");
        assert!(Version::parse("1783-SAD2T2SBK9").is_err(), "a catalog number");
        assert_eq!(v("20190812"), vec![n("20190812")], "a date is a version");
        assert_eq!(v("Ver.2.60"), vec![n("2"), n("60")]);
        assert_eq!(v("MX-V4.0.1.15"), vec![Word("mx".into()), Word("v".into()), n("4"), n("0"), n("1"), n("15")]);
        assert_eq!(v("1.000.HW00.21.20190812")[2], Word("hw".into()));
        assert!(Version::parse(">= 2.3x").is_err());
        assert!(Version::parse("2.3x").is_err());
        assert!(Version::parse("").is_err());
    }

    #[test]
    fn compares_versions() {
        let cmp = |a: &str, b: &str| Version::parse(a).unwrap().compare(&Version::parse(b).unwrap());
        use Ordering::*;
        for (a, b, expected) in [
            ("V2.9.4", "2.9.7", Some(Less)),
            ("20.11", "20.011", Some(Equal)),
            ("20.013", "20.011", Some(Greater)),
            ("1.05F", "1.05G", Some(Less)),
            ("1.06A", "1.05F", Some(Greater)),
            ("1.05", "1.05F", Some(Less)),
            ("V4.1", "V4.1.0", Some(Equal)),
            ("V4.1", "V4.1.3", Some(Less)),
            ("V17", "V17 Update 6", Some(Less)),
            ("V17 Update 7", "V17 Update 6", Some(Greater)),
            ("V16 Update 9", "V17 Update 6", Some(Less)),
            ("V7.4 SP1 Upd 4", "V7.4 SP1", Some(Greater)),
            ("V7.4 SP1", "V7.4 Update 4", None),
            ("V4.7 SP6 HF3", "V4.7 HF29", None),
            ("2.0 beta", "2.0", Some(Less)),
            ("2.0 rc1", "2.0 beta2", Some(Greater)),
            ("SV3.20", "3.51", Some(Less)),
            ("R20", "R21", Some(Less)),
            ("R20", "21", None),
            ("1.05F", "1.05.1", None),
            ("1.99999999999999999999999", "1.100000000000000000000000", Some(Less)),
        ] {
            assert_eq!(cmp(a, b), expected, "{a} against {b}");
        }
    }

    #[test]
    fn every_range_style() {
        use Status::*;
        let table: &[(&str, &str, Status)] = &[
            // vers, scheme all (the corpus), generic and semver.
            ("vers:all/*", "V1.0", Affected),
            ("vers:all/<V2.9.7", "V2.9.4", Affected),
            ("vers:all/<V2.9.7", "V2.9.7", NotAffected),
            ("vers:all/<V2.9.7", "V3.0", NotAffected),
            ("vers:all/<V17 Update 6", "V17 Update 5", Affected),
            ("vers:all/<V17 Update 6", "V17", Affected),
            ("vers:all/<V17 Update 6", "V17 Update 6", NotAffected),
            ("vers:all/>=V7.80<V9.40", "V8.1", Affected),
            ("vers:all/>=V7.80<V9.40", "V9.40", NotAffected),
            ("vers:all/>=V7.80<V9.40", "V7.7", NotAffected),
            ("vers:all/>=V5.4<V5.5 SP1", "V5.5", Affected),
            ("vers:all/<V22.2 HotfixRev5", "V22.2 HotfixRev4", Affected),
            ("vers:generic/>=1.0|<2.0", "1.5", Affected),
            ("vers:generic/>=1.0|<2.0", "2.0", NotAffected),
            ("vers:semver/>=1.2.0|<1.4.0|>=2.0.0|<2.1.0", "2.0.5", Affected),
            ("vers:semver/>=1.2.0|<1.4.0|>=2.0.0|<2.1.0", "1.5.0", NotAffected),
            ("vers:generic/1.2.3|1.2.5", "1.2.5", Affected),
            ("vers:generic/1.2.3|1.2.5", "1.2.4", NotAffected),
            ("vers:generic/<2.0|!=1.5", "1.5", NotAffected),
            ("vers:deb/<1:2.0", "1:1.0", Undetermined),
            // Siemens.
            ("< V2.9.7", "V2.9.4", Affected),
            ("<V4.3.10", "V4.3.9", Affected),
            ("All versions < V14", "V13 SP2", Affected),
            ("All versions < V14 SP1 Upd 9", "V14 SP1 Update 8", Affected),
            ("All versions", "V2.0", Affected),
            ("all", "V2.0", Affected),
            ("Firmware", "V2.0", Undetermined),
            ("versions", "V2.0", Undetermined),
            ("All versions < V2.5.0 and Function State (FS) <= 9", "V2.4", Undetermined),
            ("All versions <= V2.5.0 and Function State (FS) <= 8", "V2.6", Undetermined),
            ("< V3.X.17", "V3.1.2", Undetermined),
            ("All versions <= V7.x", "V7.9.1", Affected),
            ("All versions <= V7.x", "V8.0", NotAffected),
            (">= V2.3 and < V6.30.016", "V6.30.15", Affected),
            (">= V2.3 and < V6.30.016", "V2.2", NotAffected),
            (">= V7.80 < V9.30", "V9.29", Affected),
            ("<V18_Update_2", "V18 Update 1", Affected),
            ("All versions with U-Boot < V2016.05RS09", "V1.0", Undetermined),
            ("All BIOS versions < V1.0.212N", "V1.0.211", Undetermined),
            // Rockwell.
            ("<= 33.013", "33.011", Affected),
            ("<= 33.013", "33.13", Affected),
            ("<= 33.013", "34.011", NotAffected),
            ("<= 20.011", "20.11", Affected),
            ("<= 20.011", "20.12", NotAffected),
            ("<v36.011_v35.013_v34.014", "35.011", Undetermined),
            ("Versions 33.013 and earlier", "32.0", Affected),
            ("11.1.0 through 11.1.4", "11.1.2", Affected),
            ("11.1.0 through 11.1.4", "11.1.5", NotAffected),
            // Mitsubishi.
            (">=1.00A|<1.05F", "1.05E", Affected),
            (">=1.00A|<1.05F", "1.05F", NotAffected),
            (">=1.220|<=1.281", "1.281", Affected),
            ("<= 1.004E", "1.004E", Affected),
            ("Version 1.14 and prior", "1.15", NotAffected),
            ("<=firmware_65", "65", Affected),
            ("<=with_the_first_5_digits_of_serial_number_24051", "24050", Undetermined),
            // Schneider.
            ("< SV3.51", "SV3.20", Affected),
            ("< SV3.51", "3.60", NotAffected),
            ("< SV4.10", "V4.02", Affected),
            ("prior to V15.1 HF001", "V15.0", Affected),
            (" < 15.1 HF001  (including former Unity Pro)", "V15.0", Undetermined),
            // Free text in other styles.
            (">= 1.0 | <= 1.32", "1.32", Affected),
            ("before 3.2", "3.1.9", Affected),
            ("3.2 or later", "3.1.9", NotAffected),
            ("2.3.6 and  below", "2.3.6", Affected),
            ("V175-V189", "V180", Undetermined),
            ("2730844", "1.2", Undetermined),
            ("<=Ver.2.60", "2.50", Affected),
            ("11.3.1 | 11.3.2", "11.3.2", Affected),
            ("11.3.1 | 11.3.2", "11.3.3", NotAffected),
            ("4.X | 5.X", "5.9", Affected),
            ("4.X | 5.X", "6.0", NotAffected),
            ("13.1.*", "13.1.7", Affected),
            ("= 13.1.*", "13.2", NotAffected),
            ("!= 13.1.*", "13.2", Undetermined),
            ("<v36.011 v35.013", "35.011", Undetermined),
            ("vers:all/<V2020 SP1 Update 1", "V2020 SP1", Affected),
            ("vers:all/<V22R2", "V22R1", Affected),
            ("28-33", "30", Undetermined),
            ("<= 15.2(5)EA.fc4", "15.0", Undetermined),
            ("No version", "1.0", Undetermined),
            (">= 20.8 (only affected by CVE-2019-10943)", "21", Undetermined),
            ("", "1.0", Undetermined),
            // Versions the device states that cannot be compared.
            ("< 4.0", "unknown", Undetermined),
            ("< 4.0", "FW 4.1 (build 12)", Undetermined),
            ("< 1.05F", "1.05.1", Undetermined),
            ("< V3.2", "V3.X", Undetermined),
        ];
        for (range, version, expected) in table {
            let verdict = Range::parse(range).evaluate(Some(version));
            assert_eq!(verdict.status, *expected, "{version:?} against {range:?}: {}", verdict.reason);
            assert!(!verdict.reason.is_empty());
        }
    }

    #[test]
    fn every_verdict_says_why() {
        let r = Range::parse("< V3.X.17").evaluate(Some("V3.1"));
        assert!(r.reason.contains("wildcard"), "{}", r.reason);
        let r = Range::parse("All versions < V2.5.0 and Function State (FS) <= 9").evaluate(Some("V2.4"));
        assert!(r.reason.contains("Function State (FS)") && r.reason.contains("cannot check"), "{}", r.reason);
        let r = Range::parse("vers:all/<V2.9.7").evaluate(None);
        assert_eq!(r.status, Status::Undetermined);
        assert!(r.reason.contains("no version"), "{}", r.reason);
        let r = Range::parse("vers:all/*").evaluate(None);
        assert_eq!(r.status, Status::Affected, "every version is affected, whichever it is");
        let r = Range::parse("< 1.05F").evaluate(Some("1.05.1"));
        assert!(r.reason.contains("does not compare"), "{}", r.reason);
        let r = Range::parse("< 4.0").evaluate(Some("FW 4.1 (build 12)"));
        assert!(r.reason.contains("cannot read the device's version"), "{}", r.reason);
    }

    #[test]
    fn readability_is_known_before_any_device() {
        assert!(Range::parse("vers:all/<V4.3.8").is_readable());
        assert!(Range::parse("<= 5.008").is_readable());
        assert!(!Range::parse("< V3.X.17").is_readable());
        assert!(Range::parse("< V3.X.17").unreadable_reason().unwrap().contains("wildcard"));
        assert!(!Range::parse("distributed  < april 1, 2018").is_readable());
    }
}
