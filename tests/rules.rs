//! The shipped fingerprint library is valid and every example passes; a broken library stops a scan.

mod common;

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_otscope"))
}

#[test]
fn the_shipped_library_is_valid_and_its_examples_pass() {
    let dir = common::fingerprints_dir();
    let out = bin().args(["rules", "check", "--fingerprints"]).arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let out = bin().args(["rules", "test", "--fingerprints"]).arg(&dir).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.trim_end().ends_with(" 0 failed"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_library_stops_the_scan_before_anything_is_sent() {
    let device = common::banner_device("127.114.0.1:2222", None).await;
    let (dir, ledger) = common::ledger("A-1,a,d,s,general,127.114.0.1,c\n");
    let lib = dir.path().join("fp");
    std::fs::create_dir(&lib).unwrap();
    std::fs::write(lib.join("ports.toml"), "ports = [\"2222\"]\n").unwrap();
    std::fs::write(
        lib.join("bad.toml"),
        "[[rule]]\nid = \"x\"\nprotocol = \"unknown\"\nwhen = [{ field = \"banner\", regex = \"(\" }]\n",
    )
    .unwrap();
    let out = bin().args(["scan", "--targets"]).arg(&ledger).arg("--fingerprints").arg(&lib).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:1: x: condition 1 on banner: bad regex"), "{err}");
    assert!(err.contains("bad.toml:1: x: no example"), "{err}");
    assert_eq!(device.connections(), 0);

    let out = bin().args(["rules", "check", "--fingerprints"]).arg(&lib).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
