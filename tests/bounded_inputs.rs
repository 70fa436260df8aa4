//! Input files that are not regular files (`/dev/zero`, a symlink to it, a FIFO, a folder) are refused
//! by name before anything is read: the command ends at once, with a small peak RSS, and exit status 2.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Beyond this the child is killed: a refusal needs a few MiB, reading /dev/zero grows without end.
const RSS_LIMIT_KB: u64 = 256 * 1024;
const TIME_LIMIT: Duration = Duration::from_secs(10);

struct Ended {
    code: Option<i32>,
    stderr: String,
    peak_rss_kb: u64,
    elapsed: Duration,
}

/// Runs otscope with `args`, killing it (and failing) when it outgrows [`RSS_LIMIT_KB`] or
/// [`TIME_LIMIT`]; its peak RSS comes from the kernel's accounting of the reaped child.
// The child is reaped by `wait4`, which `Child::wait` cannot be asked for (it returns no rusage).
#[allow(clippy::zombie_processes)]
fn run_bounded(args: &[&str], cwd: &Path) -> Ended {
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_otscope"))
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stderr = child.stderr.unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).unwrap();
        s
    });
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waits for our own child, without blocking.
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if reaped == pid {
            break;
        }
        let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_string))
            .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse::<u64>().ok()))
            .unwrap_or(0);
        if rss > RSS_LIMIT_KB || started.elapsed() > TIME_LIMIT {
            // SAFETY: kills and reaps our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::wait4(pid, &mut status, 0, &mut usage);
            }
            panic!("otscope {args:?} still reading after {:?} at {rss} KB RSS: killed", started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Ended { code, stderr: reader.join().unwrap(), peak_rss_kb: usage.ru_maxrss as u64, elapsed: started.elapsed() }
}

fn lab() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ledger.csv"),
        "enterprise_id,enterprise,district,sector,level,targets,contact\nE1,工厂,浦东新区,water,important,127.127.90.1,c\n",
    )
    .unwrap();
    let lib = dir.path().join("fp");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(lib.join("ports.toml"), "ports = [\"2222\"]\n").unwrap();
    dir
}

/// Asserts a refusal: exit 2, the file named with why, quickly and in little memory.
fn assert_refused(args: &[&str], cwd: &Path, message: &str) {
    let e = run_bounded(args, cwd);
    assert_eq!(e.code, Some(2), "{args:?}: {}", e.stderr);
    assert!(e.stderr.contains(message), "{args:?}: {message:?} in {}", e.stderr);
    assert!(e.peak_rss_kb < 64 * 1024, "{args:?}: peak RSS {} KB", e.peak_rss_kb);
    eprintln!("otscope {}: refused in {:.2}s, peak RSS {} KB", args.join(" "), e.elapsed.as_secs_f64(), e.peak_rss_kb);
}

const SCAN: [&str; 8] = ["scan", "--targets", "ledger.csv", "--fingerprints", "fp", "--ports", "2222", "--dry-run"];

#[test]
fn an_exclusion_file_that_is_a_device_is_refused() {
    let dir = lab();
    let args: Vec<&str> = SCAN.iter().copied().chain(["--exclude", "/dev/zero"]).collect();
    assert_refused(&args, dir.path(), "/dev/zero: file: not a regular file: a character device");
    assert_refused(
        &["ledger", "check", "ledger.csv", "--exclude", "/dev/zero"],
        dir.path(),
        "/dev/zero: file: not a regular file: a character device",
    );
    assert_refused(
        &SCAN.iter().copied().chain(["--exclude", "fp"]).collect::<Vec<_>>(),
        dir.path(),
        "fp: file: not a regular file: a folder",
    );
}

#[test]
fn a_configuration_that_is_a_device_or_a_fifo_is_refused() {
    let dir = lab();
    assert_refused(&["scan", "--config", "/dev/zero"], dir.path(), "/dev/zero: not a regular file: a character device");
    assert_refused(
        &["daemon", "--config", "/dev/zero"],
        dir.path(),
        "/dev/zero: not a regular file: a character device",
    );
    assert_refused(
        &["status", "--config", "/dev/zero"],
        dir.path(),
        "/dev/zero: not a regular file: a character device",
    );
    // A FIFO with no writer: refused, not waited on.
    let fifo = dir.path().join("otscope.toml");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert_refused(&["scan", "--config", "otscope.toml"], dir.path(), "otscope.toml: not a regular file: a FIFO");
}

#[test]
fn a_configuration_over_the_size_limit_is_refused() {
    let dir = lab();
    let big = dir.path().join("big.toml");
    // Sparse: 5 MiB without writing them.
    std::fs::File::create(&big).unwrap().set_len(5 << 20).unwrap();
    assert_refused(
        &["scan", "--config", "big.toml"],
        dir.path(),
        "big.toml: larger than 4 MiB, the limit for this kind of file",
    );
}

#[test]
fn a_rule_file_symlinked_to_a_device_is_refused() {
    let dir = lab();
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("fp/zero.toml")).unwrap();
    assert_refused(&SCAN, dir.path(), "fp/zero.toml:0: file: not a regular file: a character device");
    assert_refused(
        &["rules", "check", "--fingerprints", "fp"],
        dir.path(),
        "fp/zero.toml:0: file: not a regular file: a character device",
    );
}
