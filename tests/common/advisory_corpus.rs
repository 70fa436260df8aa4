//! The real advisory corpus (`shared/advisories/`, beside the repository or above it): CISA's ICS
//! advisories 2017-2024 as CSAF 2.0, extracted from its tarball into a temporary folder. Shared by
//! `tests/advisories_corpus.rs` and `benches/advisories.rs`; the repository never holds a copy.

use std::path::{Path, PathBuf};

pub const TARBALL: &str = "shared/advisories/cisa-csaf-ot-2017-2024.tar.gz";

/// The tarball, looked for in `shared/` of each folder above the repository (a clone has it
/// beside itself; a worktree may be deeper).
pub fn locate() -> Option<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().skip(1).map(|dir| dir.join(TARBALL)).find(|p| p.is_file())
}

/// The corpus extracted into a temporary folder, with the tarball's path; None (after saying
/// why) when there is no tarball. In CI (`CI` set) a missing tarball is a failure: CI has it.
pub fn extract_or_skip(what: &str) -> Option<(tempfile::TempDir, PathBuf)> {
    let Some(tarball) = locate() else {
        let message = format!("{what}: no ../{TARBALL} above {}", env!("CARGO_MANIFEST_DIR"));
        if std::env::var_os("CI").is_some() {
            panic!("{message}, and CI must have it");
        }
        eprintln!("{message}: skipped");
        return None;
    };
    let dir = tempfile::tempdir().expect("a temporary folder");
    let file = std::fs::File::open(&tarball).unwrap_or_else(|e| panic!("{}: {e}", tarball.display()));
    tar::Archive::new(flate2::read::GzDecoder::new(file))
        .unpack(dir.path())
        .unwrap_or_else(|e| panic!("{}: cannot extract: {e}", tarball.display()));
    Some((dir, tarball))
}
