//! `atomicity devnet --once`: the real binary starts the whole network on loopback, runs every
//! example of the design document, narrates them, and exits 0 only when all succeeded.

use std::process::Command;
use std::time::{Duration, Instant};

use atomicity_cli::devnet::EXAMPLES;

#[test]
fn devnet_once_runs_every_example_and_exits_zero() {
    let root = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_atomicity"))
        .args(["devnet", "--once", "--dir"])
        .arg(root.path())
        .output()
        .expect("run atomicity devnet");
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status
    );
    for (i, example) in EXAMPLES.iter().enumerate() {
        let heading = format!("=== Example {}: {} ===", i + 1, example.title);
        assert!(stdout.contains(&heading), "no {heading:?} in\n{stdout}");
        let ok = format!("Example {} ({}) succeeded", i + 1, example.name);
        assert!(stdout.contains(&ok), "no {ok:?} in\n{stdout}");
    }
    assert!(
        stdout.contains(&format!("All {} examples succeeded", EXAMPLES.len())),
        "{stdout}"
    );
    assert!(!stdout.contains("FAILED"), "{stdout}");
    // The narration speaks in plain words.
    for words in [
        "Mom tags Fran as a friend",
        "now accepts up to $20.00 from Fran",
        "the wallet paid the café's invoice exactly once",
        "the router's route: fran → me → cafe",
    ] {
        assert!(stdout.contains(words), "no {words:?} in\n{stdout}");
    }
    // Every process stopped: the data dirs hold no running node's files.
    for name in ["me", "mom", "fran"] {
        assert!(
            !root.path().join(name).join("api.url").exists(),
            "{name} still running"
        );
    }
    assert!(took < Duration::from_secs(120), "devnet took {took:?}");
    eprintln!("devnet --once took {:.1} s", took.as_secs_f64());
}
