//! Tests that need a changed process environment run in a process of
//! their own.
//!
//! All integration tests run as threads of one process, so a test that
//! sets an environment variable changes it for every test running beside
//! it (and for every child those tests start). Some library calls read the
//! environment themselves (`PVE_TOOL_SOPS` for the sops they run, the
//! Tailscale credentials), so the test runs them in a new process of this
//! test binary, running that test alone, with the values given to that
//! process through `Command::env`.

use std::ffi::OsStr;
use std::process::Command;

/// Set in the process a test runs in alone: the test's full name.
const MARK: &str = "PVE_TEST_OWN_PROCESS";

/// In the test's own process: true (go on with the test). Otherwise runs
/// the test `name` (`module_path!()::fn`) alone in a new process of this
/// binary with `envs` set (`Some`) or removed (`None`), panics with its
/// output when it failed, and returns false (the test is done here).
pub fn own_process(name: &str, envs: &[(&str, Option<&OsStr>)]) -> bool {
    // module_path!() starts with the crate (the binary); libtest's names do not.
    let name = name.split_once("::").map_or(name, |(_, rest)| rest);
    if std::env::var_os(MARK).is_some_and(|v| v == name) {
        return true;
    }
    let mut c = Command::new(std::env::current_exe().expect("the test binary"));
    c.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(MARK, name);
    for (k, v) in envs {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let out = c.output().expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} in its own process ({}):\n{stdout}\n{stderr}",
        out.status
    );
    false
}

/// `in_own_process!(this_test_fn, &[("VAR", Some(value))]);` as the first
/// line of a test: the rest of the test runs in its own process, with the
/// environment given.
macro_rules! in_own_process {
    ($test:ident, $envs:expr) => {
        if !$crate::support::own_process::own_process(
            concat!(module_path!(), "::", stringify!($test)),
            $envs,
        ) {
            return;
        }
    };
}
pub(crate) use in_own_process;
