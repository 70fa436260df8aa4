//! `otscope exchange push`.

use crate::cli::PushArgs;
use crate::error::BadInput;
use crate::exchange::http::ClientOptions;
use crate::exchange::taxii::{self, PushError, PushOptions};
use std::process::ExitCode;

pub async fn push(args: PushArgs) -> anyhow::Result<ExitCode> {
    let auth = taxii::credentials(args.credentials.as_deref()).map_err(BadInput)?;
    crate::exchange::http::check_url(&args.taxii).map_err(|e| BadInput(e.to_string()))?;
    let objects = taxii::read_bundles(&args.bundles).map_err(BadInput)?;
    let options = PushOptions {
        api_root: args.taxii.clone(),
        collection: args.collection.clone(),
        auth,
        client: ClientOptions {
            ca: args.ca.clone(),
            timeout: args.timeout,
            attempts: args.attempts,
            ..ClientOptions::default()
        },
    };
    let report = tokio::task::spawn_blocking(move || taxii::push(&options, &objects)).await?;
    let report = match report {
        Ok(r) => r,
        Err(PushError::Http(crate::exchange::http::HttpError::Setup(why))) => return Err(BadInput(why).into()),
        Err(e) => anyhow::bail!("push to {}: {e}", args.taxii),
    };
    for r in &report.rejected {
        println!("rejected {} {}: {}", r.id, r.version.as_deref().unwrap_or("-"), r.message);
    }
    eprintln!(
        "{} object(s): {} added, {} already in the collection, {} rejected, {} pending",
        report.objects,
        report.added,
        report.present,
        report.rejected.len(),
        report.pending
    );
    Ok(if report.rejected.is_empty() && report.pending == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
