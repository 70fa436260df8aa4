//! The fingerprint library (`fingerprints/`): data, not code, loaded at start-up.

use crate::targets::{parse_ports, PortSpec};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The file that declares the default scan ports.
pub const PORTS_FILE: &str = "ports.toml";

#[derive(Debug, Clone)]
pub struct Library {
    pub dir: PathBuf,
    /// The ports a scan covers when `--ports` is not given.
    pub default_ports: Vec<PortSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PortsFile {
    ports: Vec<toml::Spanned<String>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {field}: {message}")]
pub struct LibraryError {
    pub file: PathBuf,
    pub line: usize,
    pub field: String,
    pub message: String,
}

fn line_of(text: &str, offset: usize) -> usize {
    1 + text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count()
}

impl Library {
    pub fn load(dir: &Path) -> Result<Library, Vec<LibraryError>> {
        let file = dir.join(PORTS_FILE);
        let err = |line, field: &str, message: String| LibraryError {
            file: file.clone(),
            line,
            field: field.into(),
            message,
        };
        let text = std::fs::read_to_string(&file)
            .map_err(|e| vec![err(0, "file", format!("cannot read the fingerprint library's port list: {e}"))])?;
        let parsed: PortsFile = toml::from_str(&text).map_err(|e| {
            let line = e.span().map(|s| line_of(&text, s.start)).unwrap_or(0);
            vec![err(line, "toml", e.message().to_string())]
        })?;
        let mut errors = Vec::new();
        let mut default_ports = Vec::new();
        for entry in &parsed.ports {
            match parse_ports(entry.get_ref()) {
                Ok(p) => default_ports.extend(p),
                Err(e) => errors.push(err(line_of(&text, entry.span().start), "ports", e)),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        default_ports.sort();
        default_ports.dedup();
        Ok(Library { dir: dir.to_path_buf(), default_ports })
    }
}
