//! The production twin (`tests/node/production-server.js`) is test equipment: other tests prove
//! that a client feature or a `check` finds a production defect by running against it. Its own
//! Node test suite proves that each defect is there by default and that each `--fix NAME` turns
//! it off; this runs that suite under `cargo test`, so CI keeps the twin honest.

mod common;

use std::process::Command;

#[test]
fn the_twin_reproduces_each_production_defect_and_each_fix_removes_it() {
    let dir = common::ensure_node_modules();
    let output = Command::new("node")
        .args(["--test", "production-server.test.js"])
        .current_dir(&dir)
        .output()
        .expect("node is on PATH (Node.js is needed for the interop tests)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "node --test production-server.test.js failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The runner's summary: a suite that silently ran nothing must not pass.
    let passed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("# pass "))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or(0);
    assert!(
        passed >= 30,
        "expected the twin's whole suite to run, got {passed} passing tests:\n{stdout}"
    );
}
