//! Running sops on secret files: `updatekeys` after the recipients changed
//! (a host integrated or removed), `rotate` for a fresh data key after a
//! host that could decrypt a file was removed, `decrypt` to read a secret.
//!
//! Every file gets its own sops call (so sops' exit 128 "could not retrieve
//! the data key" stays distinct), a few at a time, and every result is
//! reported: a failure leaves a clear list of what was and was not done.
//! The admin's age identity travels only in the environment
//! (`SOPS_AGE_KEY_FILE`), never in argv.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::runner::{Cmd, RunError, Tool};

/// How many sops processes run at once.
pub const PARALLEL: usize = 4;

/// What happened to each file: done, or failed with why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RekeyReport {
    pub ok: Vec<PathBuf>,
    pub failed: Vec<(PathBuf, String)>,
}

impl RekeyReport {
    pub fn is_success(&self) -> bool {
        self.failed.is_empty()
    }

    /// A human summary naming every file: `verb` is what was done
    /// ("re-keyed", "rotated").
    pub fn summary(&self, verb: &str, root: &Path) -> String {
        let show = |p: &Path| p.strip_prefix(root).unwrap_or(p).display().to_string();
        let mut s = format!(
            "{} of {} secret files {verb}",
            self.ok.len(),
            self.ok.len() + self.failed.len()
        );
        if self.ok.is_empty() && self.failed.is_empty() {
            return format!("no secret files to be {verb}");
        }
        s.push('\n');
        for p in &self.ok {
            s.push_str(&format!("  ok      {}\n", show(p)));
        }
        for (p, why) in &self.failed {
            let first = why.lines().next().unwrap_or("");
            s.push_str(&format!("  FAILED  {}: {first}\n", show(p)));
        }
        s
    }
}

/// How to call sops.
#[derive(Debug, Clone)]
pub struct Sops {
    /// `.sops.yaml`, passed as `--config` (a global flag: it goes before
    /// the subcommand).
    pub config: PathBuf,
    /// The admin's age identity file, given to sops as
    /// `SOPS_AGE_KEY_FILE` (else sops finds its own: `SOPS_AGE_KEY`,
    /// `~/.config/sops/age/keys.txt`, ...).
    pub age_key_file: Option<PathBuf>,
    /// More environment for sops (e.g. `SOPS_AGE_KEY_CMD`); values are
    /// never logged.
    pub env: Vec<(String, String)>,
    pub parallel: usize,
    pub timeout: Duration,
}

impl Sops {
    pub fn new(config: impl Into<PathBuf>) -> Sops {
        Sops {
            config: config.into(),
            age_key_file: None,
            env: Vec::new(),
            parallel: PARALLEL,
            timeout: Duration::from_secs(120),
        }
    }

    pub fn age_key_file(mut self, path: impl Into<PathBuf>) -> Sops {
        self.age_key_file = Some(path.into());
        self
    }

    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Sops {
        self.env.push((k.into(), v.into()));
        self
    }

    fn cmd(&self) -> Cmd {
        let mut c = Cmd::new(Tool::Sops).timeout(self.timeout);
        // sops finds the age identity in its environment, as usual.
        for k in [
            "SOPS_AGE_KEY",
            "SOPS_AGE_KEY_FILE",
            "SOPS_AGE_KEY_CMD",
            "SOPS_AGE_SSH_PRIVATE_KEY_FILE",
        ] {
            c = c.pass_env(k);
        }
        if let Some(dir) = self.config.parent().filter(|d| !d.as_os_str().is_empty()) {
            c = c.cwd(dir);
        }
        if let Some(k) = &self.age_key_file {
            c = c.env("SOPS_AGE_KEY_FILE", k.to_string_lossy());
        }
        for (k, v) in &self.env {
            c = c.secret_env(k, v);
        }
        c
    }

    /// The command that re-keys one file:
    /// `sops --config CFG updatekeys --yes FILE`.
    pub fn updatekeys_cmd(&self, file: &Path) -> Cmd {
        self.cmd().args([
            "--config".to_string(),
            self.config.to_string_lossy().into_owned(),
            "updatekeys".into(),
            "--yes".into(),
            file.to_string_lossy().into_owned(),
        ])
    }

    /// The command that gives one file a new data key:
    /// `sops --config CFG rotate -i FILE` (sops 3.9+), or with `legacy`
    /// the older spelling `sops --config CFG -r -i FILE`.
    pub fn rotate_cmd(&self, file: &Path, legacy: bool) -> Cmd {
        let cfg = self.config.to_string_lossy().into_owned();
        let f = file.to_string_lossy().into_owned();
        let args: Vec<String> = if legacy {
            vec!["--config".into(), cfg, "-r".into(), "-i".into(), f]
        } else {
            vec!["--config".into(), cfg, "rotate".into(), "-i".into(), f]
        };
        self.cmd().args(args)
    }

    /// `sops updatekeys --yes` on every file, [`PARALLEL`] at a time.
    pub fn updatekeys(&self, files: &[PathBuf]) -> RekeyReport {
        self.updatekeys_with_progress(files, |_, _| {})
    }

    /// The same, calling `progress(file, result)` as each file finishes
    /// (from the worker threads; for a spinner or `--json` events).
    pub fn updatekeys_with_progress<P>(&self, files: &[PathBuf], progress: P) -> RekeyReport
    where
        P: Fn(&Path, &Result<(), String>) + Sync,
    {
        self.each(files, |f| {
            let r = self.updatekeys_cmd(f).run().map(|_| ()).map_err(explain);
            progress(f, &r);
            r
        })
    }

    /// A new data key for every file (`sops rotate -i`), falling back to
    /// `sops -r -i` for a sops older than 3.9 that has no `rotate`.
    pub fn rotate(&self, files: &[PathBuf]) -> RekeyReport {
        self.each(files, |f| match self.rotate_cmd(f, false).run() {
            Ok(_) => Ok(()),
            Err(RunError::Failed { ref stderr, .. }) if no_rotate_subcommand(stderr) => {
                self.rotate_cmd(f, true).run().map(|_| ()).map_err(explain)
            }
            Err(e) => Err(explain(e)),
        })
    }

    /// Decrypts one file to its plaintext (`sops --config CFG decrypt
    /// FILE`); the plaintext is never logged.
    pub fn decrypt(&self, file: &Path, output_type: Option<&str>) -> Result<String, RunError> {
        let mut args = vec![
            "--config".to_string(),
            self.config.to_string_lossy().into_owned(),
            "-d".into(),
        ];
        if let Some(t) = output_type {
            args.extend(["--output-type".to_string(), t.to_string()]);
        }
        args.push(file.to_string_lossy().into_owned());
        self.cmd().args(args).run().map(|o| o.stdout)
    }

    fn each<F>(&self, files: &[PathBuf], op: F) -> RekeyReport
    where
        F: Fn(&Path) -> Result<(), String> + Sync,
    {
        let results: Mutex<Vec<Option<Result<(), String>>>> = Mutex::new(vec![None; files.len()]);
        let next = AtomicUsize::new(0);
        let workers = self.parallel.clamp(1, files.len().max(1));
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(f) = files.get(i) else { break };
                    let r = op(f);
                    if let Ok(mut all) = results.lock() {
                        all[i] = Some(r);
                    }
                });
            }
        });
        let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
        let mut report = RekeyReport::default();
        for (f, r) in files.iter().zip(results) {
            match r {
                Some(Ok(())) => report.ok.push(f.clone()),
                Some(Err(e)) => report.failed.push((f.clone(), e)),
                None => report
                    .failed
                    .push((f.clone(), "not attempted (a worker stopped)".into())),
            }
        }
        report
    }
}

/// Old sops (before the `rotate` subcommand) takes `rotate` for the file
/// name and says it does not exist.
fn no_rotate_subcommand(stderr: &str) -> bool {
    stderr.contains("cannot operate on non-existent file")
        || stderr.contains("No help topic for 'rotate'")
}

/// A sops failure in words, with the meaning of sops' exit codes.
fn explain(e: RunError) -> String {
    match &e {
        RunError::Failed {
            code: Some(128), ..
        } => format!(
            "{e}\n(exit 128: sops could not retrieve the data key; no age identity here can \
             decrypt the file under its current recipients — set SOPS_AGE_KEY_FILE to an admin key)"
        ),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_flags_go_before_the_subcommand_and_no_key_in_argv() {
        let s = Sops::new("/f/secrets/.sops.yaml").age_key_file("/home/a/keys.txt");
        let c = s.updatekeys_cmd(Path::new("/f/secrets/a.yaml"));
        assert_eq!(
            c.argv(),
            [
                "--config",
                "/f/secrets/.sops.yaml",
                "updatekeys",
                "--yes",
                "/f/secrets/a.yaml"
            ]
        );
        assert!(!c.argv().iter().any(|a| a.contains("keys.txt")));
        let r = s.rotate_cmd(Path::new("/f/secrets/a.yaml"), false);
        assert_eq!(&r.argv()[2..], ["rotate", "-i", "/f/secrets/a.yaml"]);
        let r = s.rotate_cmd(Path::new("/f/secrets/a.yaml"), true);
        assert_eq!(&r.argv()[2..], ["-r", "-i", "/f/secrets/a.yaml"]);
    }

    #[test]
    fn the_summary_names_every_file() {
        let report = RekeyReport {
            ok: vec![PathBuf::from("/f/secrets/a.yaml")],
            failed: vec![(
                PathBuf::from("/f/secrets/b.yaml"),
                "`sops` failed (exit code 128)\nmore".into(),
            )],
        };
        let s = report.summary("re-keyed", Path::new("/f"));
        assert_eq!(
            s,
            "1 of 2 secret files re-keyed\n  ok      secrets/a.yaml\n  FAILED  secrets/b.yaml: `sops` failed (exit code 128)\n"
        );
        assert!(!report.is_success());
    }
}
