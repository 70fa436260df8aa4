use crate::error::EXIT_BAD_INPUT;
use crate::fingerprints::Library;
use std::path::Path;
use std::process::ExitCode;

fn load(dir: &Path) -> Result<Library, ExitCode> {
    Library::load(dir).map_err(|errors| {
        for e in &errors.0 {
            eprintln!("{e}");
        }
        eprintln!("{}: {} problem(s)", dir.display(), errors.0.len());
        ExitCode::from(EXIT_BAD_INPUT)
    })
}

pub fn check(dir: &Path) -> anyhow::Result<ExitCode> {
    let library = match load(dir) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    println!("{}: valid", dir.display());
    println!("files: {}", library.files);
    println!("rules: {}", library.matcher.rule_count());
    println!("examples: {}", library.examples.len());
    println!("banner probes: {}", library.banner_probes.len());
    println!("default ports: {}", library.default_ports.len());
    Ok(ExitCode::SUCCESS)
}

pub fn test(dir: &Path) -> anyhow::Result<ExitCode> {
    let library = match load(dir) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let failures = library.test_examples();
    for f in &failures {
        println!("{f}");
    }
    let total = library.examples.len();
    println!("{} passed, {} failed", total - failures.len(), failures.len());
    Ok(if failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
