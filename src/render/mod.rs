//! `pve render`: every file that follows from hosts.nix.
//!
//! - `tofu`: `vms/tofu/config.tf.json` (OpenTofu JSON through serde types);
//! - `sops`: `secrets/.sops.yaml` (askama template, age recipients derived
//!   from the hosts' ssh-ed25519 keys);
//! - `known_hosts`: `vms/known_hosts`;
//! - `scaffold`: `hosts/<name>/{configuration,home}.nix` for a new host.
//!
//! Rendering is pure (fleet in, bytes out); `write` puts the files in place
//! atomically under the repository lock, and only after every file rendered,
//! so an error writes nothing.

mod error;
pub mod json;
pub mod known_hosts;
pub mod ownership;
pub mod scaffold;
pub mod sops;
pub mod tofu;
pub(crate) mod yaml_events;

pub use error::RenderError;

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, RuleId};
use crate::error::AppError;
use crate::fleet::{FleetError, Loaded};
use crate::fsutil::{stage, Draft, RepoLock};

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    /// Relative to the fleet root (the folder of hosts.nix).
    pub path: PathBuf,
    pub contents: String,
}

/// Which outputs to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Tofu,
    Sops,
    KnownHosts,
}

pub const TOFU_PATH: &str = "vms/tofu/config.tf.json";
pub const KNOWN_HOSTS_PATH: &str = crate::known_hosts::VMS_PATH;

/// Every output of the fleet. `.sops.yaml` is left out when hosts.nix has
/// no `_sops` at all (a fleet without secrets).
pub fn all(loaded: &Loaded) -> Result<Vec<RenderedFile>, AppError> {
    all_with(loaded, Options::default())
}

/// [`all`], rendered with `options`.
pub fn all_with(loaded: &Loaded, options: Options) -> Result<Vec<RenderedFile>, AppError> {
    render_with(loaded, &all_targets(loaded), options)
}

/// Every output the fleet has: `.sops.yaml` only when hosts.nix has
/// `_sops`.
pub fn all_targets(loaded: &Loaded) -> Vec<Target> {
    let mut targets = vec![Target::Tofu, Target::KnownHosts];
    if loaded.fleet.sops.span.is_some() {
        targets.push(Target::Sops);
    }
    targets
}

/// How the files are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// config.tf.json one VM per line, whatever the fleet's size (see
    /// [`json`]).
    pub compact: bool,
    /// Skip `.sops.yaml`'s read-back, the proof that the rendered text
    /// means what the model says (see `sops::parse_back`). Only for
    /// `pve check`, which renders in memory and writes nothing; every
    /// command that writes keeps the proof.
    pub skip_read_back: bool,
    /// Only whether each output renders, and where, is wanted (`pve
    /// check`): `config.tf.json` is built but not serialised,
    /// `.sops.yaml` stops once nothing is left to refuse and
    /// `vms/known_hosts` only passes its gate; all come back empty. Their
    /// text cannot change whether they may be written (see
    /// `ownership::problem`): an old file equal to the text would be ours
    /// anyway (a JSON object; a file starting with the header).
    pub paths_only: bool,
}

/// The chosen outputs, sorted by path.
pub fn render(loaded: &Loaded, targets: &[Target]) -> Result<Vec<RenderedFile>, AppError> {
    render_with(loaded, targets, Options::default())
}

/// [`render`], rendered with `options`. Each output renders on a thread
/// of its own (`.sops.yaml`'s key conversion and `config.tf.json`'s
/// serialisation take about as long as each other); the first error in
/// `targets`' order is returned, as one after the other would.
pub fn render_with(
    loaded: &Loaded,
    targets: &[Target],
    options: Options,
) -> Result<Vec<RenderedFile>, AppError> {
    render_each(loaded, targets, options, None)?
        .into_iter()
        .map(|o| {
            let contents = match o.body {
                Body::Text(text) => text,
                // Only `render_for` drafts.
                Body::Drafted(d) => d.read_back().map_err(|e| RenderError::TofuJson {
                    source: serde_json::Error::io(e),
                })?,
            };
            Ok(RenderedFile {
                path: o.path,
                contents,
            })
        })
        .collect()
}

/// An output of [`render_for`]: a text, or a file already written beside
/// its destination.
pub struct Output {
    /// Relative to the fleet root (the folder of hosts.nix).
    pub path: PathBuf,
    body: Body,
}

enum Body {
    Text(String),
    Drafted(Draft),
}

/// [`render_with`] for [`write_outputs`] under `dir`: `config.tf.json`
/// goes straight to a temp file beside its destination (a 10,000-host file
/// is 11-20 MB, and holding it whole was `pve render`'s peak), while the
/// other outputs render (a folder that does not exist yet is made only
/// when the files are written: see `Draft::beside`). Where no temp file
/// can be made (a read-only folder, ...) it is text, as from
/// `render_with`, and writing it reports what is wrong.
pub fn render_for(
    loaded: &Loaded,
    targets: &[Target],
    options: Options,
    dir: &Path,
) -> Result<Vec<Output>, AppError> {
    render_each(loaded, targets, options, Some(dir))
}

fn render_each(
    loaded: &Loaded,
    targets: &[Target],
    options: Options,
    dir: Option<&Path>,
) -> Result<Vec<Output>, AppError> {
    let gates_off = GATE_OFF.with(std::cell::Cell::get);
    let rendered: Vec<Result<Output, AppError>> = std::thread::scope(|s| {
        let threads: Vec<_> = targets
            .iter()
            .skip(1)
            .map(|t| {
                s.spawn(move || with_gates(gates_off, || render_one(loaded, *t, options, dir)))
            })
            .collect();
        let first = targets
            .first()
            .map(|t| render_one(loaded, *t, options, dir));
        first
            .into_iter()
            .chain(threads.into_iter().map(|t| match t.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            }))
            .collect()
    });
    let mut out = rendered.into_iter().collect::<Result<Vec<_>, _>>()?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out.dedup_by(|a, b| a.path == b.path);
    Ok(out)
}

/// One output; `config.tf.json` drafted beside its destination under
/// `dir` when there is one (see [`render_for`]).
fn render_one(
    loaded: &Loaded,
    target: Target,
    options: Options,
    dir: Option<&Path>,
) -> Result<Output, AppError> {
    let text = |path, contents| Output {
        path,
        body: Body::Text(contents),
    };
    Ok(match target {
        Target::Tofu => {
            let path = PathBuf::from(TOFU_PATH);
            if options.paths_only {
                tofu::check_renders(loaded)?;
                return Ok(text(path, String::new()));
            }
            let dest = dir.map(|d| d.join(&path));
            if let Some((mut draft, dest)) = dest.and_then(|d| Some((Draft::beside(&d)?, d))) {
                // A failed write (a full disk) is left to staging the text
                // to report, where it always has been.
                if tofu::write_json_as(loaded, options.compact, draft.file())?.is_ok() {
                    // `.sops.yaml` is still rendering on another thread.
                    draft.sync_early(&dest);
                    return Ok(Output {
                        path,
                        body: Body::Drafted(draft),
                    });
                }
            }
            text(path, tofu::render_json_as(loaded, options.compact)?)
        }
        Target::Sops => {
            let path = sops::config_path(loaded)?;
            let Some(dir) = dir.filter(|_| !options.paths_only) else {
                return Ok(text(path, sops::render_sops_yaml_with(loaded, options)?));
            };
            let mut draft = None;
            let contents = sops::render_sops_yaml_beside(
                loaded,
                options,
                Some(&mut |t: &str| draft = draft_text(dir, &path, t)),
            )?;
            match draft {
                Some(d) => Output {
                    path,
                    body: Body::Drafted(d),
                },
                None => text(path, contents),
            }
        }
        Target::KnownHosts => {
            let path = PathBuf::from(KNOWN_HOSTS_PATH);
            if options.paths_only {
                known_hosts::check_renders(loaded)?;
                return Ok(text(path, String::new()));
            }
            let contents = known_hosts::render(loaded)?;
            match dir.and_then(|d| draft_text(d, &path, &contents)) {
                Some(d) => Output {
                    path,
                    body: Body::Drafted(d),
                },
                None => text(path, contents),
            }
        }
    })
}

/// `text` written to a temp file beside `dir/path` and synced there and
/// then, on the thread that rendered it, not at the end of `pve render`
/// (see [`Draft::sync_early`]); `None` where that cannot be done, and
/// staging the text reports why. Also `None` when the file there has the
/// text's length: most likely the same text, which is then compared and
/// not written at all.
fn draft_text(dir: &Path, path: &Path, text: &str) -> Option<Draft> {
    use std::io::Write as _;
    let dest = dir.join(path);
    if std::fs::metadata(&dest).is_ok_and(|m| m.len() == text.len() as u64) {
        return None;
    }
    let mut draft = Draft::beside(&dest)?;
    draft.file().write_all(text.as_bytes()).ok()?;
    draft.sync_early(&dest);
    Some(draft)
}

/// Whether writing under `dir` writes into the fleet itself (and so needs
/// the repository lock).
pub fn writes_into_fleet(loaded: &Loaded, dir: &Path) -> bool {
    match (dir.canonicalize(), loaded.root_dir.canonicalize()) {
        (Ok(d), Ok(r)) => d == r,
        _ => dir == loaded.root_dir,
    }
}

/// Writes the files under `dir` (the fleet root, or `--out-dir`), all or
/// nothing: every destination is checked (see [`ownership`]) and every
/// file staged (written in full and synced beside its destination) before
/// the first one is renamed into place. Writing into the fleet needs its
/// repository lock (`held`, see [`writes_into_fleet`]); writing elsewhere
/// does not touch the fleet at all (so hosts.nix may sit on a read-only
/// file system, as in `nix build .#tofu-config`). Returns the paths whose
/// contents changed.
pub fn write(
    loaded: &Loaded,
    dir: &Path,
    files: &[RenderedFile],
    held: Option<&RepoLock>,
) -> Result<Vec<PathBuf>, AppError> {
    let files = files
        .iter()
        .map(|f| (f.path.clone(), Source::Text(Cow::Borrowed(&f.contents))))
        .collect();
    write_sources(loaded, dir, files, held)
}

/// [`write`] for the outputs of [`render_for`] (with the same `dir`).
pub fn write_outputs(
    loaded: &Loaded,
    dir: &Path,
    outputs: Vec<Output>,
    held: Option<&RepoLock>,
) -> Result<Vec<PathBuf>, AppError> {
    let files = outputs
        .into_iter()
        .map(|o| {
            let source = match o.body {
                Body::Text(t) => Source::Text(Cow::Owned(t)),
                Body::Drafted(d) => Source::Drafted(d),
            };
            (o.path, source)
        })
        .collect();
    write_sources(loaded, dir, files, held)
}

/// What a file is written from.
enum Source<'a> {
    Text(Cow<'a, str>),
    Drafted(Draft),
}

fn write_sources(
    loaded: &Loaded,
    dir: &Path,
    files: Vec<(PathBuf, Source)>,
    held: Option<&RepoLock>,
) -> Result<Vec<PathBuf>, AppError> {
    if held.is_none() && writes_into_fleet(loaded, dir) {
        return Err(RenderError::Unlocked {
            dir: dir.to_path_buf(),
        }
        .into());
    }
    // Every destination checked, in order, before anything is staged. Each
    // output is compared with the file it replaces (a read of it) once,
    // here: the check asks when the file exists; one it did not ask about
    // is new, or not ours (refused).
    let paths = ownership::PathValues::of(loaded);
    let mut unchanged = Vec::with_capacity(files.len());
    for (path, source) in &files {
        let found = std::cell::Cell::new(false);
        let same = |real: &Path| {
            found.set(match source {
                Source::Text(t) => ownership::same_text(real, t),
                Source::Drafted(d) => d.same_as(real).unwrap_or(false),
            });
            found.get()
        };
        if let Some(d) = ownership::problem_of(loaded, &paths, dir, path, &same) {
            return Err(invalid(loaded, d));
        }
        unchanged.push(found.get());
    }
    let mut staged = Vec::new();
    for ((path, source), unchanged) in files.into_iter().zip(unchanged) {
        if unchanged {
            continue;
        }
        let target = dir.join(&path);
        // New files hold no secret and belong in the repository like any
        // other (0644); a replaced file keeps its owner and mode.
        let s = match source {
            Source::Text(t) => stage(&target, t.as_bytes(), Some(0o644))?,
            Source::Drafted(d) => d.stage(&target, Some(0o644))?,
        };
        staged.push((path, s));
    }
    let mut changed = Vec::new();
    for (path, s) in staged {
        s.commit()?;
        changed.push(path);
    }
    Ok(changed)
}

/// Whether the file at `path` holds exactly `contents`, read a block at a
/// time: the old file is never held whole beside the new text (a
/// 10,000-host config.tf.json is 11-16 MB, and holding both was render's
/// peak). Reads at most one byte more than `contents`, so a hostile
/// destination (/dev/zero) stays finite.
pub(crate) fn same_contents(path: &Path, contents: &[u8]) -> std::io::Result<bool> {
    crate::fsutil::same_bytes(contents, &mut std::fs::File::open(path)?)
}

/// A stale file found by `--check`: its path and a unified diff from the
/// file on disk to what hosts.nix renders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    pub path: PathBuf,
    pub diff: String,
}

/// Compares the rendered files with those under `dir`. A file that is
/// missing is stale; a folder or file that cannot be read is an error
/// (exit 2), not "stale".
pub fn check(dir: &Path, files: &[RenderedFile]) -> Result<Vec<Stale>, AppError> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(RenderError::NotAFolder {
                dir: dir.to_path_buf(),
            }
            .into())
        }
        Err(e) => {
            return Err(RenderError::ReadFolder {
                dir: dir.to_path_buf(),
                source: e,
            }
            .into())
        }
    }
    let mut out = Vec::new();
    for f in files {
        let path = dir.join(&f.path);
        // Anything longer than the rendered file differs from it; a
        // bounded read keeps a hostile destination (/dev/zero) finite.
        match same_contents(&path, f.contents.as_bytes()) {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(RenderError::ReadFile { path, source: e }.into()),
        }
        let limit = f.contents.len() as u64 + 1024 * 1024;
        let on_disk = match crate::fsutil::read_limited(&path, limit) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => Some(Vec::new()),
            Err(e) => return Err(RenderError::ReadFile { path, source: e }.into()),
        };
        if on_disk.as_deref() == Some(f.contents.as_bytes()) {
            continue;
        }
        let old = String::from_utf8_lossy(on_disk.as_deref().unwrap_or_default()).into_owned();
        let shown = f.path.display().to_string();
        let diff = similar::TextDiff::from_lines(&old, &f.contents)
            .unified_diff()
            .context_radius(3)
            .header(&format!("a/{shown}"), &format!("b/{shown}"))
            .to_string();
        out.push(Stale {
            path: f.path.clone(),
            diff,
        });
    }
    Ok(out)
}

/// A problem in hosts.nix that stops rendering, reported with its position.
pub(crate) fn invalid(loaded: &Loaded, d: Diagnostic) -> AppError {
    AppError::Fleet(FleetError::Invalid {
        file: Box::new(loaded.file.clone()),
        diagnostic: Box::new(d),
    })
}

thread_local! {
    /// Set while `pve check` renders in memory: it runs the gated rules
    /// itself, so running them again per output would only cost time.
    static GATE_OFF: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with the gates off (see [`GATE_OFF`]).
pub(crate) fn without_gates<T>(f: impl FnOnce() -> T) -> T {
    with_gates(true, f)
}

/// Runs `f` with the gates off or on, as a thread rendering for another
/// one must (the switch is per thread).
fn with_gates<T>(off: bool, f: impl FnOnce() -> T) -> T {
    let before = GATE_OFF.with(|g| g.replace(off));
    let out = f();
    GATE_OFF.with(|g| g.set(before));
    out
}

/// Refuses to render from a fleet with errors that would make the output
/// wrong: the model's own findings (unknown keys, wrong types) and the
/// given `pve check` rules. The first error by position is returned.
pub(crate) fn gate(loaded: &Loaded, rules: &[RuleId]) -> Result<(), AppError> {
    if GATE_OFF.with(std::cell::Cell::get) {
        return Ok(());
    }
    let mut errors: Vec<Diagnostic> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .cloned()
        .collect();
    for (id, rule) in crate::check::RULES {
        if rules.contains(id) {
            errors.extend(rule(loaded).into_iter().filter(Diagnostic::is_error));
        }
    }
    errors.sort_by_key(|d| (d.span.start(), d.code));
    match errors.into_iter().next() {
        Some(d) => Err(invalid(loaded, d)),
        None => Ok(()),
    }
}

/// A string as it must appear in `.tf.json`, where every string is a
/// template: a literal `${` or `%{` is written `$${` / `%%{`.
pub fn tf_escape(s: &str) -> String {
    // Nearly no string has a `{`: one byte scan instead of two searches
    // (a 10,000-host config.tf.json escapes ~150,000 strings).
    if !s.as_bytes().contains(&b'{') {
        return s.to_owned();
    }
    // One pass, doubling the `$` or `%` before each `{` (two `replace`s
    // set up a substring search each, and a 10,000-host fleet whose
    // descriptions hold `${` spent more on that than on the rest of its
    // strings).
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len() + 8);
    let mut run = 0;
    for i in 1..bytes.len() {
        if bytes[i] == b'{' && matches!(bytes[i - 1], b'$' | b'%') {
            // `i` is at an ASCII byte: a char boundary.
            out.push_str(&s[run..i]);
            out.push(char::from(bytes[i - 1]));
            run = i;
        }
    }
    out.push_str(&s[run..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_gated_rule_is_registered() {
        // A rule dropped from the registry would otherwise silently stop
        // guarding rendering.
        for id in tofu::GATE.iter().chain(sops::GATE).chain(known_hosts::GATE) {
            assert!(
                crate::check::RULES.iter().any(|(r, _)| r == id),
                "no check rule {id}"
            );
        }
    }

    #[test]
    fn same_contents_reads_the_whole_file_and_no_more() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("f");
        let text: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &text).expect("write");
        assert!(same_contents(&path, &text).expect("read"));
        assert!(!same_contents(&path, &text[..text.len() - 1]).expect("read"));
        let mut longer = text.clone();
        longer.push(0);
        assert!(!same_contents(&path, &longer).expect("read"));
        let mut changed = text.clone();
        changed[150_000] ^= 1;
        assert!(!same_contents(&path, &changed).expect("read"));
        std::fs::write(&path, b"").expect("write");
        assert!(same_contents(&path, b"").expect("read"));
        assert!(!same_contents(&path, b"x").expect("read"));
        let missing = same_contents(&dir.path().join("none"), b"x").expect_err("missing");
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
        // Never more than one byte past the contents, however long the file.
        assert!(!same_contents(Path::new("/dev/zero"), &[0; 10]).expect("read"));
    }

    #[test]
    fn template_sequences_are_escaped() {
        assert_eq!(tf_escape("a ${b} c"), "a $${b} c");
        assert_eq!(tf_escape("%{ if x }"), "%%{ if x }");
        assert_eq!(tf_escape("$${x}"), "$$${x}");
        assert_eq!(tf_escape("cost $5 {x}"), "cost $5 {x}");
    }

    /// Reads a string the way OpenTofu reads a template: `$${` and `%%{`
    /// are literal `${` / `%{`; a bare `${` or `%{` starts an expression
    /// (None: the string would not come out literally).
    fn hcl_literal(t: &str) -> Option<String> {
        let mut out = String::new();
        let mut rest = t;
        while let Some(c) = rest.chars().next() {
            if let Some(r) = rest.strip_prefix("$${") {
                out.push_str("${");
                rest = r;
            } else if let Some(r) = rest.strip_prefix("%%{") {
                out.push_str("%{");
                rest = r;
            } else if rest.starts_with("${") || rest.starts_with("%{") {
                return None;
            } else {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        Some(out)
    }

    proptest::proptest! {
        #[test]
        fn escaped_strings_read_back_literally(s in "[$%{}a ]{0,12}|.{0,24}") {
            proptest::prop_assert_eq!(hcl_literal(&tf_escape(&s)), Some(s.clone()));
            // The one pass writes what the two replacements it stands for
            // do.
            proptest::prop_assert_eq!(tf_escape(&s), s.replace("${", "$${").replace("%{", "%%{"));
        }
    }
}
