//! Real third-party servers started for one test: a launcher of `tests/servers/` runs under the
//! Python environment that `tests/servers/install` prepares, binds the 127.x address it is given,
//! and says `READY` on its standard output. The server ends when its [`RealServer`] is dropped: its
//! standard input closes, it is killed and reaped (and the launcher also exits by itself when its
//! parent dies or its lifetime runs out, so nothing outlives the test).
//!
//! A server whose package is not installed is *missing*: in CI (`CI` set, or
//! `OTSCOPE_REQUIRE_REAL_SERVERS=1`) that fails the test; elsewhere the test is skipped with the
//! reason printed. A server that is installed but fails to start always fails the test.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The exit status of a launcher that could not import its package (see `tests/servers/launch.py`).
const MISSING_STATUS: i32 = 77;
/// The most launcher output kept for a failure message.
const OUTPUT_KEPT: usize = 16 * 1024;

/// Which Python environment runs a launcher.
#[derive(Clone, Copy, Debug)]
pub enum Env {
    /// `tests/servers/requirements.txt`: python-snap7, pymodbus, cpppo, bacpypes3, asyncua, c104, ...
    Main,
    /// `tests/servers/requirements-conpot.txt`: conpot 0.6.0 and its hand-pinned dependencies.
    Conpot,
}

impl Env {
    /// The interpreter: `$OTSCOPE_SERVERS_PYTHON` / `$OTSCOPE_CONPOT_PYTHON`, else the environment
    /// that `tests/servers/install` creates.
    fn python(self) -> PathBuf {
        let (var, folder) = match self {
            Env::Main => ("OTSCOPE_SERVERS_PYTHON", ".venv"),
            Env::Conpot => ("OTSCOPE_CONPOT_PYTHON", ".venv-conpot"),
        };
        std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| servers_dir().join(folder).join("bin/python"))
    }
}

fn servers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers")
}

/// Whether a missing server fails the test rather than skipping it.
pub fn required() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
        || std::env::var("OTSCOPE_REQUIRE_REAL_SERVERS").is_ok_and(|v| v == "1")
}

/// Why a server is not running.
#[derive(Debug)]
pub enum NotStarted {
    /// Its interpreter or package is not installed.
    Missing(String),
    /// It is installed but did not come up.
    Failed(String),
}

/// A running real server.
pub struct RealServer {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    output: Arc<Mutex<String>>,
}

/// Appends what a pipe yields to `output` (keeping the last [`OUTPUT_KEPT`] bytes), passing the
/// lines that start with `READY` to `ready`. Draining both pipes keeps a chatty server from blocking.
fn drain(pipe: impl Read + Send + 'static, output: Arc<Mutex<String>>, ready: Option<mpsc::Sender<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            if line.starts_with("READY") {
                if let Some(tx) = &ready {
                    let _ = tx.send(line.clone());
                }
            }
            let mut out = output.lock().unwrap();
            out.push_str(&line);
            out.push('\n');
            if out.len() > OUTPUT_KEPT {
                let cut = out.len() - OUTPUT_KEPT;
                let cut = (cut..out.len()).find(|&i| out.is_char_boundary(i)).unwrap_or(out.len());
                out.drain(..cut);
            }
        }
    });
}

impl RealServer {
    /// Runs `tests/servers/<launcher>` with `args` and waits up to `within` for its readiness line.
    pub fn start(env: Env, launcher: &str, args: &[&str], within: Duration) -> Result<RealServer, NotStarted> {
        let python = env.python();
        if !python.exists() {
            return Err(NotStarted::Missing(format!(
                "no Python environment at {} (run tests/servers/install)",
                python.display()
            )));
        }
        let name = format!("{launcher} {}", args.join(" "));
        let mut child = Command::new(&python)
            .arg(servers_dir().join(launcher))
            .args(args)
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| NotStarted::Missing(format!("{}: {e}", python.display())))?;
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        drain(child.stdout.take().unwrap(), output.clone(), Some(tx));
        drain(child.stderr.take().unwrap(), output.clone(), None);
        let stdin = child.stdin.take();
        let mut server = RealServer { name, child, stdin, output };
        match rx.recv_timeout(within) {
            Ok(_) => Ok(server),
            Err(_) => {
                // Gone or silent: either way it is ended here and its output tells why.
                let status = server.child.try_wait().ok().flatten();
                server.end();
                std::thread::sleep(Duration::from_millis(100));
                let output = server.output.lock().unwrap().clone();
                match status.and_then(|s| s.code()) {
                    Some(MISSING_STATUS) => Err(NotStarted::Missing(format!("{}: {}", server.name, output.trim()))),
                    Some(code) => Err(NotStarted::Failed(format!("{} exited with {code}:\n{output}", server.name))),
                    None => Err(NotStarted::Failed(format!("{} not ready within {within:?}:\n{output}", server.name))),
                }
            }
        }
    }

    /// What the server printed so far (for assertion messages).
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    fn end(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        self.end();
    }
}

/// Starts a server, or says loudly why it cannot: `None` (skip) only when it is missing and
/// [`required`] is false; a missing server in CI and a failed start always panic.
pub fn start_or_skip(env: Env, launcher: &str, args: &[&str], within: Duration) -> Option<RealServer> {
    match RealServer::start(env, launcher, args, within) {
        Ok(server) => Some(server),
        Err(NotStarted::Missing(why)) if !required() => {
            eprintln!("SKIPPED (real server not installed; run tests/servers/install): {why}");
            None
        }
        Err(NotStarted::Missing(why)) => {
            panic!("real server not installed, and CI or OTSCOPE_REQUIRE_REAL_SERVERS=1 requires it: {why}")
        }
        Err(NotStarted::Failed(why)) => panic!("real server failed to start: {why}"),
    }
}
