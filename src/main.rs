use otscope::config::{parse_command_line, CommandLineError};
use otscope::error::{BadInput, EXIT_BAD_INPUT, EXIT_INTERRUPTED};
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    // Like every Unix filter: `otscope history | head` ends quietly instead of panicking on a closed pipe.
    // SAFETY: restoring the default disposition of SIGPIPE touches no Rust-visible state.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = match parse_command_line(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(CommandLineError::Clap(e)) => e.exit(),
        Err(CommandLineError::Config(e)) => {
            eprintln!("{e}");
            eprintln!("nothing was probed");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let default = match cli.verbose {
        0 => "otscope=info",
        1 => "otscope=debug",
        _ => "otscope=trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // Commands that probe stop cleanly on the first signal and quit at once on the second; the others
    // quit at once on the first.
    let probes = otscope::commands::probes(&cli.command);
    let signals = otscope::signals::listen();
    let quit = if probes { signals.second } else { signals.first.clone() };
    let outcome = tokio::select! {
        outcome = otscope::commands::run(cli, signals.first) => outcome,
        _ = quit.cancelled() => {
            eprintln!("quitting at once");
            std::process::exit(EXIT_INTERRUPTED.into());
        }
    };
    match outcome {
        Ok(code) => code,
        Err(e) if e.is::<BadInput>() => {
            eprintln!("{e}");
            if probes {
                eprintln!("nothing was probed");
            }
            ExitCode::from(EXIT_BAD_INPUT)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
