use crate::error::EXIT_BAD_INPUT;
use crate::ledger::Ledger;
use std::path::Path;
use std::process::ExitCode;

pub fn check(file: &Path, exclude: Option<&Path>) -> anyhow::Result<ExitCode> {
    let mut errors = Vec::new();
    let mut ledger = match Ledger::load(file) {
        Ok(l) => Some(l),
        Err(e) => {
            errors.extend(e.0);
            None
        }
    };
    if let (Some(l), Some(x)) = (ledger.as_mut(), exclude) {
        if let Err(e) = l.add_exclusion_file(x) {
            errors.extend(e.0);
        }
    }
    for e in &errors {
        eprintln!("{e}");
    }
    match ledger {
        Some(l) if errors.is_empty() => {
            println!("{}: valid", file.display());
            println!("{}", l.summary());
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            eprintln!("{}: {} problem(s); fix them and run `otscope ledger check` again", file.display(), errors.len());
            Ok(ExitCode::from(EXIT_BAD_INPUT))
        }
    }
}
