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
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::metadata::{self, Format};
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
            "{} of {} {verb}",
            self.ok.len(),
            crate::plural::plural(self.ok.len() + self.failed.len(), "secret file")
        );
        if self.ok.is_empty() && self.failed.is_empty() {
            return format!("no secret files to be {verb}");
        }
        s.push('\n');
        for p in &self.ok {
            s.push_str(&format!("  ok      {}\n", show(p)));
        }
        for (p, why) in &self.failed {
            let mut lines = why.lines();
            let first = lines.next().unwrap_or("");
            s.push_str(&format!("  FAILED  {}: {first}\n", show(p)));
            // sops' own message, kept whole (it is bounded in `explain`):
            // the line after "failed (exit code 128):" is the one that says why.
            for l in lines {
                s.push_str(&format!("          {l}\n"));
            }
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
    /// `sops --version`, asked once.
    version: OnceLock<Result<Version, String>>,
}

/// A sops version: (major, minor, patch).
pub type Version = (u32, u32, u32);

/// The first sops with the `rotate` subcommand. Before it, `rotate` is not
/// a command: urfave/cli takes it for the file name and sops opens an
/// editor on a new file called `rotate`; `-r -i FILE` is the spelling.
pub const ROTATE_SINCE: Version = (3, 9, 0);

impl Sops {
    pub fn new(config: impl Into<PathBuf>) -> Sops {
        Sops {
            config: config.into(),
            age_key_file: None,
            env: Vec::new(),
            parallel: PARALLEL,
            timeout: Duration::from_secs(120),
            version: OnceLock::new(),
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
        let mut args = vec![
            "--config".to_string(),
            self.config.to_string_lossy().into_owned(),
            "updatekeys".into(),
            "--yes".into(),
        ];
        if let Some(f) = content_format(file) {
            args.extend(["--input-type".to_string(), f.sops_name().into()]);
        }
        args.push(file.to_string_lossy().into_owned());
        self.cmd().args(args)
    }

    /// The command that gives one file a new data key:
    /// `sops --config CFG rotate -i FILE` (sops 3.9+), or with `legacy`
    /// the older spelling `sops --config CFG -r -i FILE`.
    pub fn rotate_cmd(&self, file: &Path, legacy: bool) -> Cmd {
        let cfg = self.config.to_string_lossy().into_owned();
        let f = file.to_string_lossy().into_owned();
        let mut args: Vec<String> = if legacy {
            vec!["--config".into(), cfg, "-r".into(), "-i".into()]
        } else {
            vec!["--config".into(), cfg, "rotate".into(), "-i".into()]
        };
        if let Some(t) = content_format(file) {
            let t = t.sops_name().to_string();
            args.extend(["--input-type".into(), t.clone(), "--output-type".into(), t]);
        }
        args.push(f);
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

    /// A new data key for every file: `sops rotate -i`, or `sops -r -i`
    /// for a sops older than 3.9 (asked with `sops --version` first: an old
    /// sops given `rotate` would open an editor on a new file).
    pub fn rotate(&self, files: &[PathBuf]) -> RekeyReport {
        if files.is_empty() {
            return RekeyReport::default();
        }
        let legacy = match self.version() {
            Ok(v) => v < ROTATE_SINCE,
            Err(why) => {
                return RekeyReport {
                    ok: Vec::new(),
                    failed: files.iter().map(|f| (f.clone(), why.clone())).collect(),
                }
            }
        };
        self.each(files, |f| {
            self.rotate_cmd(f, legacy)
                .run()
                .map(|_| ())
                .map_err(explain)
        })
    }

    /// The sops version, from `sops --version` (asked once; the check for
    /// a newer release is turned off, it would go to the network).
    pub fn version(&self) -> Result<Version, String> {
        self.version
            .get_or_init(|| {
                let out = self
                    .cmd()
                    .env("SOPS_DISABLE_VERSION_CHECK", "1")
                    .args(["--version"])
                    .run()
                    .map_err(explain)?;
                parse_version(&out.stdout).ok_or_else(|| {
                    format!(
                        "cannot tell the sops version from `sops --version`, which printed {:?}",
                        out.stdout.lines().next().unwrap_or_default()
                    )
                })
            })
            .clone()
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

/// `sops 3.11.0` (sops 3.8 adds ` (latest)`) → (3, 11, 0).
pub fn parse_version(stdout: &str) -> Option<Version> {
    let line = stdout.lines().find(|l| l.starts_with("sops "))?;
    let v = line.split_whitespace().nth(1)?;
    let mut parts = v.split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
            .ok()
    });
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

/// The format to name with `--input-type` when the file's content is in
/// another format than sops would pick from its name (a binary-format
/// secret called `x.json`, an INI file called `db.conf`).
fn content_format(file: &Path) -> Option<Format> {
    let (found, _) = metadata::read_with_format(file).ok()?;
    let by_name = Format::by_extension(file);
    let same = found == by_name || (found == Format::Json && by_name == Format::Yaml);
    (!same).then_some(found)
}

/// How much of sops' stderr a report keeps: its messages run to about 20
/// lines (one block per recipient), a runaway one is cut.
const MAX_MESSAGE_LINES: usize = 40;
const MAX_MESSAGE_CHARS: usize = 4000;

/// A sops failure in words: sops' own message (bounded, from its first
/// line: "Failed to get the data key..." comes first), with the meaning of
/// its exit codes.
fn explain(e: RunError) -> String {
    let RunError::Failed {
        program,
        status,
        code,
        stderr,
        ..
    } = &e
    else {
        return e.to_string();
    };
    let mut s = format!("`{program}` failed ({status})");
    let message = bounded(stderr.trim());
    if !message.is_empty() {
        s.push_str(":\n");
        s.push_str(&message);
    }
    if *code == Some(128) {
        s.push_str(
            "\n(exit 128: sops could not retrieve the data key; no age identity here can \
             decrypt the file under its current recipients — set SOPS_AGE_KEY_FILE to an admin key)",
        );
    }
    s
}

fn bounded(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    let mut kept = 0;
    for l in &lines {
        if kept == MAX_MESSAGE_LINES || out.len() + l.len() > MAX_MESSAGE_CHARS {
            break;
        }
        if kept > 0 {
            out.push('\n');
        }
        out.push_str(l);
        kept += 1;
    }
    if kept < lines.len() {
        out.push_str(&format!(
            "\n[{} more lines of sops' message left out]",
            lines.len() - kept
        ));
    }
    out
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
    fn versions_as_sops_prints_them() {
        assert_eq!(parse_version("sops 3.11.0\n"), Some((3, 11, 0)));
        assert_eq!(parse_version("sops 3.8.1 (latest)\n"), Some((3, 8, 1)));
        assert!(parse_version("sops 3.8.1 (latest)\n").is_some_and(|v| v < ROTATE_SINCE));
        assert_eq!(parse_version("sops banana\n"), None);
        assert_eq!(parse_version(""), None);
    }

    #[test]
    fn a_failure_keeps_sops_whole_message_bounded() {
        let stderr: String = (1..=50).map(|i| format!("line {i}\n")).collect();
        let e = RunError::Failed {
            program: "sops".into(),
            status: "exit code 128".into(),
            code: Some(128),
            stdout: String::new(),
            stderr,
        };
        let text = explain(e);
        assert!(
            text.starts_with("`sops` failed (exit code 128):\nline 1\nline 2\n"),
            "{text}"
        );
        assert!(
            text.contains("line 40\n[10 more lines of sops' message left out]"),
            "{text}"
        );
        assert!(!text.contains("line 41"), "{text}");
        assert!(text.contains("SOPS_AGE_KEY_FILE"), "{text}");
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
            "1 of 2 secret files re-keyed\n  ok      secrets/a.yaml\n  FAILED  secrets/b.yaml: `sops` failed (exit code 128)\n          more\n"
        );
        assert!(!report.is_success());
    }
}
