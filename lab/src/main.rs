//! otscope-lab: a test tool, not part of a scan. It starts simulated ICS devices (Modbus/TCP, S7comm,
//! EtherNet/IP, BACnet/IP, Niagara Fox, Omron FINS) on consecutive loopback addresses, writes a ledger
//! of them that `otscope scan --targets` accepts, and answers until it is killed or `--duration` ends.
//!
//! It binds only the addresses it is told, and refuses any address outside 127.0.0.0/8.
//!
//! ```sh
//! cargo run -p otscope-lab -- --first 127.130.0.1 --count 30 --ledger lab.csv --duration 10m
//! ```

use anyhow::{bail, Context, Result};
use clap::Parser;
use otscope_lab::{Kind, Lab};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "otscope-lab", about = "Simulated ICS devices on loopback, for tests and benchmarks only")]
struct Args {
    /// First device address; devices take consecutive addresses from it (all must be in 127.0.0.0/8).
    #[arg(long, default_value = "127.130.0.1")]
    first: Ipv4Addr,
    /// Number of devices.
    #[arg(long, default_value_t = 30)]
    count: u32,
    /// Device kinds, taken in turn: modbus, s7comm, enip, bacnet, fox, fins.
    #[arg(long, value_delimiter = ',', default_value = "modbus,s7comm,enip,bacnet,fox,fins")]
    mix: Vec<String>,
    /// Where to write the ledger (CSV) of the devices.
    #[arg(long)]
    ledger: Option<PathBuf>,
    /// Stop after this long (e.g. 30s, 10m); without it, run until killed.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.count == 0 || args.count > 65_536 {
        bail!("--count must be between 1 and 65536");
    }
    let mix: Vec<Kind> = args
        .mix
        .iter()
        .map(|m| Kind::parse(m.trim()).with_context(|| format!("unknown device kind {m:?}")))
        .collect::<Result<_>>()?;
    let devices = otscope_lab::plan(args.first, args.count, &mix)?;
    let lab = Lab::start(devices).await?;
    if let Some(path) = &args.ledger {
        otscope_lab::write_ledger(path, &lab.devices)?;
    }
    let last = lab.devices.last().map(|d| d.ip).unwrap_or(args.first);
    println!(
        "otscope-lab: {} devices on {}-{} (ports {}), ready",
        lab.devices.len(),
        args.first,
        last,
        otscope_lab::port_list(&mix)
    );
    let stop = async {
        match args.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = stop => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    println!("otscope-lab: stopping after {} requests", lab.requests());
    lab.stop().await;
    Ok(())
}
