//! Scans side by side in one process (the daemon's profiles) share its file descriptors: together
//! they never hold more than the process may open, so neither meets EMFILE. This test is a binary of
//! its own because it lowers the process's descriptor limit.

mod common;

use async_trait::async_trait;
use common::ledger;
use otscope::engine::{Outcome, Prober, Visit};
use otscope::pipeline::{self, RunOptions};
use otscope::scope::{Selection, Target};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Holds a socket of its own for a while per target, as a probe holds its connection, and counts the
/// targets for which the process had no descriptor left.
#[derive(Default)]
struct HoldsASocket {
    out_of_descriptors: AtomicU64,
    probed: AtomicU64,
}

#[async_trait]
impl Prober for HoldsASocket {
    async fn probe(&self, _target: &Target, _visit: &Visit) -> Outcome {
        self.probed.fetch_add(1, Ordering::Relaxed);
        match std::net::UdpSocket::bind("127.0.0.1:0") {
            Ok(socket) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                drop(socket);
                Outcome::Nothing
            }
            Err(e) => {
                self.out_of_descriptors.fetch_add(1, Ordering::Relaxed);
                Outcome::LocalFailure(e.to_string())
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_side_by_side_share_the_descriptors() {
    // 256 descriptors for the whole process: each scan alone may fill what is left of them.
    let limit = libc::rlimit { rlim_cur: 256, rlim_max: 256 };
    // SAFETY: setrlimit reads a plain struct we own.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let (_dir, path) = ledger("E1,a,d,s,general,127.121.0.0/23,c\n");
    let scope = common::scope(&path, "2222", &Selection::default());
    let mut options = common::options();
    options.engine.concurrency = 10_000;
    let plan = pipeline::plan(&scope, &options).await.unwrap();
    let slots = plan.engine.concurrency;
    assert!(slots > 100 && slots < 256, "one scan takes what the limit leaves: {slots}");

    let prober = Arc::new(HoldsASocket::default());
    let run = || pipeline::run_with(&plan, prober.clone(), None, Vec::new(), RunOptions::default());
    let (first, second) = tokio::join!(run(), run());
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(prober.probed.load(Ordering::Relaxed), 2 * 512, "every target of both scans, once");
    assert_eq!(prober.out_of_descriptors.load(Ordering::Relaxed), 0, "no scan ran out of descriptors");
    assert_eq!((first.stats.not_covered, second.stats.not_covered), (0, 0));
}
