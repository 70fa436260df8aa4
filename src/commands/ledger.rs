use crate::error::EXIT_BAD_INPUT;
use crate::ledger::{Ledger, LedgerOptions};
use std::path::Path;
use std::process::ExitCode;

pub fn check(options: &LedgerOptions, exclude: Option<&Path>) -> anyhow::Result<ExitCode> {
    let file = &options.path;
    let mut errors = Vec::new();
    let mut ledger = match Ledger::load(options) {
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
            match l.sheet() {
                Some(sheet) => println!("{} (sheet {sheet:?}): valid", file.display()),
                None => println!("{}: valid", file.display()),
            }
            println!("{}", l.summary());
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            eprintln!("{}: {} problem(s); fix them and run `otscope ledger check` again", file.display(), errors.len());
            Ok(ExitCode::from(EXIT_BAD_INPUT))
        }
    }
}

/// `otscope ledger template`: an empty ledger workbook; an existing file is left alone.
pub fn template(lang: crate::export::Lang, out: &Path) -> anyhow::Result<ExitCode> {
    if let Err(e) = crate::export::xlsx::ledger_template(lang, out) {
        eprintln!("{}: {e}", out.display());
        let bad_input = e.kind() == std::io::ErrorKind::AlreadyExists;
        return Ok(if bad_input { ExitCode::from(EXIT_BAD_INPUT) } else { ExitCode::FAILURE });
    }
    println!("{}", out.display());
    Ok(ExitCode::SUCCESS)
}
