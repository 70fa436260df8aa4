use otscope::commands::{self, BadInput, EXIT_BAD_INPUT};
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
    let cli = otscope::config::parse_command_line();
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
    match commands::run(cli).await {
        Ok(code) => code,
        Err(e) if e.is::<BadInput>() => {
            eprintln!("{e}");
            eprintln!("nothing was probed");
            ExitCode::from(EXIT_BAD_INPUT)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
