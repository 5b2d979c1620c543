//! One Python venv for every test that runs Python packages (the OpenAPI validator,
//! python-socketio), under target/ with the versions pinned in `tests/requirements.txt`,
//! created on first use so `cargo test` stays the whole command. Test binaries run in
//! parallel: a file lock makes one of them install while the others wait.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The venv directory, ready: `bin/python`, `bin/openapi-spec-validator`, ...
pub fn venv() -> &'static Path {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY.get_or_init(|| install("test-venv", "tests/requirements.txt"))
}

/// A venv of its own for schemathesis (`tests/requirements-schemathesis.txt`), whose pins
/// would otherwise have to agree with the validator's and python-socketio's.
pub fn schemathesis_venv() -> &'static Path {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY.get_or_init(|| install("schemathesis-venv", "tests/requirements-schemathesis.txt"))
}

/// Create `target/tmp/<name>` with the pinned `requirements` unless it already holds exactly
/// them.
fn install(name: &str, requirements: &str) -> PathBuf {
    {
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(tmp).expect("create CARGO_TARGET_TMPDIR");
        let venv = tmp.join(name);
        let requirements = Path::new(env!("CARGO_MANIFEST_DIR")).join(requirements);
        let wanted = std::fs::read_to_string(&requirements).expect("read tests/requirements.txt");
        let marker = venv.join("installed-requirements.txt");

        let lock =
            std::fs::File::create(tmp.join(format!("{name}.lock"))).expect("create lock file");
        lock.lock().expect("take the venv lock");
        let installed = std::fs::read_to_string(&marker).ok();
        if installed.as_deref() != Some(wanted.as_str()) || !venv.join("bin/python").exists() {
            let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
            let status = Command::new(&python)
                .args(["-m", "venv", "--clear"])
                .arg(&venv)
                .status()
                .unwrap_or_else(|e| {
                    panic!("cannot run {python} to create a venv (Python 3 is needed): {e}")
                });
            assert!(
                status.success(),
                "`{python} -m venv {}` failed",
                venv.display()
            );
            let status = Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
                .arg(&requirements)
                .status()
                .expect("run pip in the venv");
            assert!(
                status.success(),
                "pip install -r {} failed (is PyPI reachable?)",
                requirements.display()
            );
            std::fs::write(&marker, &wanted).expect("write the install marker");
        }
        let _ = lock.unlock();
        venv
    }
}
