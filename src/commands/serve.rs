//! `serve`, `token` and `audit`: the server over the history, its tokens, and its audit log.

use super::history::open_existing;
use crate::cli::ServeArgs;
use crate::error::BadInput;
use crate::serve::auth::{self, NewToken};
use crate::serve::view::Issuer;
use crate::serve::{self as server, ServeOptions};
use crate::store::SqliteStore;
use std::path::Path;
use std::process::ExitCode;
use time::format_description::well_known::Rfc3339;
use tokio_util::sync::CancellationToken;

pub async fn serve(args: ServeArgs, stop: CancellationToken) -> anyhow::Result<ExitCode> {
    let mut options = ServeOptions::new(args.db.db.clone(), args.listen);
    options.tls = args.tls_cert.zip(args.tls_key);
    if let Some(fingerprints) = &args.fingerprints {
        options.issuer = Some(Issuer {
            vendors: crate::notices::load_vendors(fingerprints)?,
            settings: super::notices::settings(args.config.as_deref())?,
            out: args.notices_out,
        });
    }
    server::run(options, stop, |address, https| {
        let scheme = if https { "https" } else { "http" };
        tracing::info!("listening on {scheme}://{address} (API {scheme}://{address}/api/v1, console {scheme}://{address}/console/)");
    })
    .await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// A time given as a date (its start, UTC) or RFC 3339, as RFC 3339 UTC.
fn time_arg(flag: &str, text: &str) -> Result<String, BadInput> {
    let utc = |t: time::OffsetDateTime| t.to_offset(time::UtcOffset::UTC).format(&Rfc3339).expect("UTC formats");
    if let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(utc(t));
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, &date_format).map(|d| utc(d.midnight().assume_utc())).map_err(|_| {
        BadInput(format!(
            "{flag} {text:?}: expected a date (2027-01-01) or an RFC 3339 time (2027-01-01T08:00:00+08:00)"
        ))
    })
}

fn open_or_create(db: &Path) -> Result<SqliteStore, BadInput> {
    SqliteStore::open(db).map_err(|e| BadInput(e.to_string()))
}

pub fn create_token(
    db: &Path,
    role: String,
    district: Option<String>,
    enterprise_id: Option<String>,
    name: String,
    expires: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let now = crate::pipeline::now_rfc3339();
    let expires_at = expires.map(|e| time_arg("--expires", e)).transpose()?;
    if let Some(e) = &expires_at {
        if e.as_str() <= now.as_str() {
            return Err(
                BadInput(format!("--expires {}: that is not in the future", expires.unwrap_or_default())).into()
            );
        }
    }
    let mut store = open_or_create(db)?;
    let new = NewToken { name, role, district, enterprise_id, expires_at };
    let token = auth::create_token(&mut store, &new, &now).map_err(|e| BadInput(e.to_string()))?;
    println!("{token}");
    eprintln!("token {:?} created; it is shown only now: keep it (only its hash is stored)", new.name);
    Ok(ExitCode::SUCCESS)
}

pub fn list_tokens(db: &Path) -> anyhow::Result<ExitCode> {
    let store = open_existing(db)?;
    let tokens = store.tokens()?;
    if tokens.is_empty() {
        println!("no tokens (make one with `otscope token create`)");
    }
    for t in tokens {
        let reach = match t.role.as_str() {
            "district" => format!("district {}", t.district.as_deref().unwrap_or("?")),
            "enterprise" => format!("enterprise {}", t.enterprise_id.as_deref().unwrap_or("?")),
            _ => "everything".to_string(),
        };
        let state = match (&t.revoked_at, &t.expires_at) {
            (Some(at), _) => format!("revoked {at}"),
            (None, Some(at)) => format!("expires {at}"),
            (None, None) => "no expiry".to_string(),
        };
        println!("{:<20} {:<10} {:<30} created {}  {state}", t.name, t.role, reach, t.created_at);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn revoke_token(db: &Path, name: &str) -> anyhow::Result<ExitCode> {
    let mut store = open_existing(db)?;
    store.revoke_token(name, &crate::pipeline::now_rfc3339()).map_err(|e| BadInput(e.to_string()))?;
    println!("token {name:?} revoked");
    Ok(ExitCode::SUCCESS)
}

pub fn audit(db: &Path, since: Option<&str>, token: Option<&str>) -> anyhow::Result<ExitCode> {
    let since = since.map(|s| time_arg("--since", s)).transpose()?;
    let store = open_existing(db)?;
    for e in store.audit(since.as_deref(), token)? {
        println!(
            "{}  {:<20} {:<15} {} {:<6} {}",
            e.at,
            e.token_name.as_deref().unwrap_or("-"),
            e.source,
            e.status,
            e.method,
            e.target
        );
    }
    Ok(ExitCode::SUCCESS)
}
