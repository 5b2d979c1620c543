//! `load-test` as a user meets it: the ready-made scenarios validate, bad ones are refused with
//! a located error and exit 2.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use scmarket_ws::loadtest::scenario::{self, Overrides};

fn bin() -> Command {
    common::binary::command()
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

fn ready_made() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(scenarios_dir())
        .expect("scenarios/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_ready_made_scenarios_are_all_there() {
    let names: Vec<String> = ready_made()
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    for want in [
        "smoke.yaml",
        "chat-fanout.yaml",
        "connect-storm.yaml",
        "soak.yaml",
        "reconnect.yaml",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "scenarios/{want} is missing: {names:?}"
        );
    }
}

#[test]
fn every_ready_made_scenario_validates_and_prints_its_plan() {
    for file in ready_made() {
        let parsed = scenario::load(&file, &Overrides::default());
        assert!(
            parsed.is_ok(),
            "{}: {}",
            file.display(),
            parsed.err().map(|e| e.to_string()).unwrap_or_default()
        );
        let path = file.to_string_lossy();
        let out = run(&["load-test", "--check", &path]);
        assert_eq!(out.status.code(), Some(0), "{path}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(stdout.contains(": valid"), "{stdout}");
        assert!(
            stdout.contains("phases") && stdout.contains("scenarios"),
            "{stdout}"
        );
    }
}

#[test]
fn the_fanout_plan_shows_phases_weights_and_sessions() {
    let path = scenarios_dir().join("chat-fanout.yaml");
    let out = run(&["load-test", "--check", &path.to_string_lossy()]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("50/s ramping to 200/s: about 1250 new sessions"),
        "{stdout}"
    );
    assert!(stdout.contains("500 virtual users kept busy"), "{stdout}");
    assert!(
        stdout.contains("listener         weight   9 ( 90.0%)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("sender           weight   1 ( 10.0%)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("delivery.completeness >= 99.9%"),
        "{stdout}"
    );
}

#[test]
fn a_bad_scenario_exits_2_with_file_line_and_column() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "name: bad\nphases:\n  - { duration: 10, vus: 5 }\nscenarios:\n  - name: a\n    steps:\n      - conect\n",
    )
    .expect("written");
    let path = file.to_string_lossy().into_owned();
    let out = run(&["load-test", "--check", &path]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("{path}:3:17: `duration` needs a unit")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{path}:7:9: unknown step `conect` (did you mean `connect`?)"
        )),
        "{stderr}"
    );
    assert!(stderr.contains(" 7 |       - conect\n"), "{stderr}");
    assert!(stderr.contains("2 problems found"), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout for a refused scenario"
    );
    // Without --check too: validation comes before anything else.
    assert_eq!(run(&["load-test", &path]).status.code(), Some(2));
}

#[test]
fn overrides_apply_before_validation() {
    let path = scenarios_dir().join("chat-fanout.yaml");
    let path = path.to_string_lossy();
    let out = run(&[
        "load-test",
        "--check",
        &path,
        "--set",
        "phases.1.vus=50",
        "--set",
        "name=nightly",
        "--target",
        "http://127.0.0.1:7000",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("scenario nightly: valid"), "{stdout}");
    assert!(
        stdout.contains("target    http://127.0.0.1:7000/"),
        "{stdout}"
    );
    assert!(stdout.contains("50 virtual users kept busy"), "{stdout}");

    let out = run(&["load-test", "--check", &path, "--set", "phases.1.vus=0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .contains("--set phases.1.vus=0: `vus` must be a whole number from 1 up, found 0")
    );
    let out = run(&["load-test", "--check", &path, "--target", "ftp://x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .contains("--target ftp://x: `target` must be `embedded` or an http(s)/ws(s) URL")
    );
}

#[test]
fn a_missing_file_exits_2() {
    let out = run(&["load-test", "--check", "no-such-scenario.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no-such-scenario.yaml: cannot read the scenario"));
}

#[test]
fn a_sessions_file_is_found_next_to_the_scenario() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("real.yaml");
    std::fs::write(
        &file,
        "name: real\ntarget: http://127.0.0.1:7000\nsetup:\n  sessions_file: cookies.txt\nphases: [{ duration: 1s, vus: 1 }]\nscenarios: [{ name: a, steps: [connect] }]\n",
    )
    .expect("written");
    let s = scenario::load(&file, &Overrides::default()).expect("valid");
    match s.setup.users {
        scenario::Users::SessionsFile(p) => assert_eq!(p, dir.path().join("cookies.txt")),
        other => panic!("expected a sessions file, got {other:?}"),
    }
}

/// A scenario with `phase` as its only phase and `steps` as its only user's steps.
fn sized(phase: &str, steps: &str) -> String {
    format!(
        "name: big\nphases:\n  - {phase}\nscenarios:\n  - name: a\n    weight: 1\n    steps: [{steps}]\n"
    )
}

/// Numbers one generator cannot honour used to pass `--check` and then abort on allocation
/// (`vus: 1000000000`, `arrival_rate: 1e12`) or panic (durations near 1e19 s, exit 101 in main
/// or a worker panicking while the run exited 0). They are refused where they are written.
#[test]
fn absurd_sizes_and_durations_are_refused_where_they_are_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = [
        (
            sized("{ duration: 1s, vus: 1000000000 }", "connect"),
            "3:26: `vus` is 1000000000, more than ",
        ),
        (
            sized("{ duration: 1s, arrival_rate: 1e12 }", "connect"),
            "3:35: `arrival_rate` is 1000000000000 sessions per second, more than ",
        ),
        (
            sized("{ duration: 10000000000000000000s, vus: 1 }", "connect"),
            "3:17: `duration` is ",
        ),
        (
            sized(
                "{ duration: 1s, vus: 1 }",
                "connect, { think: 10000000000000000000s }",
            ),
            "7:31: `think` is ",
        ),
        (
            sized("{ duration: 1s, vus: 1 }", "connect").replace("weight: 1", "weight: 4000000000"),
            "6:13: `weight` is 4000000000, more than 1000000",
        ),
        (
            sized("{ duration: 1s, vus: 1 }", "connect")
                .replace("phases:", "setup:\n  rooms: 2000000000\nphases:"),
            "3:10: `setup.rooms` is 2000000000, more than ",
        ),
    ];
    for (n, (yaml, want)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("big-{n}.yaml"));
        std::fs::write(&file, yaml).expect("written");
        let path = file.to_string_lossy().into_owned();
        for check in [true, false] {
            let mut args = vec!["-q", "load-test", path.as_str()];
            if check {
                args.push("--check");
            }
            let out = run(&args);
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{yaml}\n{stderr}");
            assert!(
                stderr.contains(&format!("{path}:{want}")),
                "want {want}:\n{stderr}"
            );
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
    // The session ceiling says where it comes from.
    let file = dir.path().join("big-0.yaml");
    let stderr = text(&run(&["load-test", "--check", &file.to_string_lossy()]).stderr);
    assert!(
        stderr.contains("files") && stderr.contains("report merge"),
        "{stderr}"
    );
}

#[test]
fn the_interval_must_fit_the_report() {
    let path = scenarios_dir().join("soak.yaml");
    let path = path.to_string_lossy();
    for (interval, message) in [
        ("50ms", "the interval must be from 100ms to 1h"),
        ("2h", "the interval must be from 100ms to 1h"),
        ("1500us", "must be from 100ms to 1h"),
        ("100500us", "a whole number of milliseconds"),
    ] {
        let out = run(&["load-test", "--check", &path, "--interval", interval]);
        assert_eq!(out.status.code(), Some(2), "{interval}");
        assert!(
            text(&out.stderr).contains(message),
            "{interval}: {}",
            text(&out.stderr)
        );
    }
    // Ten days at 1 s intervals are 864,000 intervals: the error names one that fits.
    let out = run(&[
        "load-test",
        "--check",
        &path,
        "--set",
        "phases.0.duration=10days",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr
            .contains("864031 intervals; a report holds at most 10000: use --interval 2m or more"),
        "{stderr}"
    );
    let out = run(&[
        "load-test",
        "--check",
        &path,
        "--set",
        "phases.0.duration=10days",
        "--interval",
        "2m",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}
