//! hosts.nix: finding it, reading it, parsing it with rnix, evaluating the
//! data subset of Nix, and the typed fleet model built from the result.

pub mod budget;
pub mod defaults;
pub mod domain;
pub mod edit;
pub mod eval;
pub mod fast_parse;
pub mod ir;
pub mod lower;
pub mod memory;
pub mod model;
pub mod prescan;
pub mod scope;
pub mod source;
pub mod split;
pub mod syntax;
pub mod value;

use std::path::{Path, PathBuf};

pub use domain::{DiskSize, DomainError, HostName, MiB, Vmid};
pub use model::{Fleet, Host, ProxmoxConfig, ProxmoxSpec, SopsConfig, Spanned};
pub use source::SourceFile;
pub use value::{Kind, Value};

use crate::diag::{Code, Diagnostic};

pub const HOSTS_FILE: &str = "hosts.nix";

/// Why hosts.nix could not be read or evaluated (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("no {HOSTS_FILE} in {} or any folder above it", start.display())]
    NotFound { start: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} cannot be read: it is {what}", path.display())]
    NotAFile { path: PathBuf, what: NotAFile },
    #[error("{} is larger than {} bytes; larger files are refused", path.display(), source::MAX_FILE_BYTES)]
    TooLarge { path: PathBuf },
    #[error("{}:{line}:{column}: the file is not valid UTF-8", path.display())]
    NotUtf8 {
        path: PathBuf,
        line: usize,
        column: usize,
    },
    #[error("{}: {}", file.location(diagnostic.span.start().into()), diagnostic.message)]
    Invalid {
        file: Box<SourceFile>,
        diagnostic: Box<Diagnostic>,
    },
}

/// Why a hosts.nix that is there is not a file pve can read.
#[derive(Debug)]
pub enum NotAFile {
    Folder,
    Dangling { target: PathBuf },
    Loop,
}

impl std::fmt::Display for NotAFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotAFile::Folder => f.write_str("a folder"),
            NotAFile::Dangling { target } => write!(
                f,
                "a symbolic link to {}, which does not exist",
                target.display()
            ),
            NotAFile::Loop => f.write_str("a symbolic link that loops"),
        }
    }
}

impl FleetError {
    pub fn help(&self) -> Option<String> {
        match self {
            FleetError::NotFound { .. } => Some(format!(
                "run inside your fleet repository, pass `--hosts PATH/TO/{HOSTS_FILE}`, or start a fleet here with `pve init`"
            )),
            FleetError::NotUtf8 { .. } => Some("save the file as UTF-8".into()),
            FleetError::NotAFile { path, what } => Some(match what {
                NotAFile::Folder => format!(
                    "rename or move the folder {}: pve does not look past it for a parent fleet (`--hosts FILE` names another file)",
                    path.display()
                ),
                NotAFile::Dangling { .. } | NotAFile::Loop => format!(
                    "point the symlink at the fleet's {HOSTS_FILE} (`ln -sfn TARGET {}`), or remove it",
                    path.display()
                ),
            }),
            FleetError::Invalid { diagnostic, .. } => diagnostic.help.clone(),
            _ => None,
        }
    }
}

/// hosts.nix, read, evaluated and typed.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub file: SourceFile,
    /// Absolute folder of hosts.nix: every relative path starts here.
    pub root_dir: PathBuf,
    pub value: Value,
    pub fleet: Fleet,
    /// Problems found while typing the fleet (unknown keys, wrong types).
    pub diagnostics: Vec<Diagnostic>,
}

/// The explicit file, or `hosts.nix` in `start` or the nearest folder above.
/// A `hosts.nix` that is there but cannot be read as a file (a folder, a
/// dangling symlink, a symlink loop) is an error where it stands: climbing
/// past it would quietly work on a parent fleet.
pub fn find_hosts_file(explicit: Option<&Path>, start: &Path) -> Result<PathBuf, FleetError> {
    if let Some(p) = explicit {
        if std::fs::symlink_metadata(p).is_ok() {
            readable_file(p)?;
        }
        return Ok(p.to_path_buf());
    }
    for dir in start.ancestors() {
        let candidate = dir.join(HOSTS_FILE);
        // `symlink_metadata`: a symlink counts as there, even when it
        // points nowhere.
        if std::fs::symlink_metadata(&candidate).is_ok() {
            readable_file(&candidate)?;
            return Ok(candidate);
        }
    }
    Err(FleetError::NotFound {
        start: start.to_path_buf(),
    })
}

/// Refuses a hosts.nix that is a folder, a dangling symlink or a loop,
/// saying which.
fn readable_file(path: &Path) -> Result<(), FleetError> {
    let not = |what: NotAFile| FleetError::NotAFile {
        path: path.to_path_buf(),
        what,
    };
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(not(NotAFile::Folder)),
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(not(NotAFile::Loop)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(not(NotAFile::Dangling {
            target: std::fs::read_link(path).unwrap_or_default(),
        })),
        Err(source) => Err(FleetError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The folder of hosts.nix, absolute: the fleet root (`hosts.nix` alone
/// names the current folder).
pub fn fleet_root(hosts: &Path) -> std::io::Result<PathBuf> {
    match hosts.parent() {
        Some(p) if !p.as_os_str().is_empty() => std::path::absolute(p),
        _ => std::path::absolute("."),
    }
}

pub fn load(path: &Path) -> Result<Loaded, FleetError> {
    let file = SourceFile::read(path)?;
    load_source(file)
}

/// Parses and evaluates text already in memory (also used by the editor to
/// prove an edit before writing it).
pub fn load_source(file: SourceFile) -> Result<Loaded, FleetError> {
    let root_dir = std::path::absolute(file.dir()).map_err(|source| FleetError::Io {
        path: file.path.clone(),
        source,
    })?;
    // Evaluation and the model both run on the large-stack thread, which
    // borrows the text rather than copying it.
    let result = on_eval_thread(|| {
        // A large file of the usual shape is read and typed on two
        // threads; anything that path is unsure of is read again here.
        if let Some(loaded) = split::load(&file.text, &root_dir) {
            return Ok(loaded);
        }
        let value = evaluate_serially(&file.text, &root_dir)?;
        let Some(attrs) = value.as_attrs() else {
            let d = Diagnostic::error(
                Code::NotASet,
                value.span,
                format!(
                    "hosts.nix must evaluate to an attribute set, not {}",
                    value.kind.type_name()
                ),
            )
            .help("write `{ myhost = { ... }; }`, optionally inside `let ... in`");
            return Err(d);
        };
        let (fleet, diagnostics) = Fleet::from_value(attrs);
        Ok((value, fleet, diagnostics))
    });
    let (value, fleet, diagnostics) = match result {
        Ok(loaded) => loaded,
        Err(d) => {
            return Err(FleetError::Invalid {
                file: Box::new(file),
                diagnostic: Box::new(d),
            })
        }
    };
    Ok(Loaded {
        file,
        root_dir,
        value,
        fleet,
        diagnostics,
    })
}

/// Parse, scope-check and evaluate strictly.
pub fn evaluate_text(text: &str, base_dir: &Path) -> Result<Value, Diagnostic> {
    on_eval_thread(|| evaluate_on_this_thread(text, base_dir))
}

/// The stack of a thread that parses or evaluates hosts.nix.
const EVAL_STACK: usize = 256 * 1024 * 1024;

/// [`evaluate_text`] with the file cut at `cut` and read on two threads
/// ([`split`]); `None` where the cut does not apply. For tests: the result
/// must be the serial read's whenever it is `Some`.
pub fn evaluate_text_split_at(text: &str, base_dir: &Path, cut: usize) -> Option<Value> {
    on_eval_thread(|| Ok(split::evaluate_at(text, base_dir, &[cut]))).unwrap_or(None)
}

/// The value and typed fleet of hosts.nix read serially, as
/// [`load_source`] reads a small file; `Err` where it refuses the file.
/// For tests, with [`load_text_split_at`].
pub fn load_text_serially(
    text: &str,
    base_dir: &Path,
) -> Result<(Value, Fleet, Vec<Diagnostic>), Diagnostic> {
    on_eval_thread(|| {
        let value = evaluate_serially(text, base_dir)?;
        let (fleet, diagnostics) = value.as_attrs().map(Fleet::from_value).unwrap_or_default();
        Ok((value, fleet, diagnostics))
    })
}

/// [`load_text_serially`] with the file cut at `cut` and read (and typed)
/// on two threads; `None` where the cut does not apply.
pub fn load_text_split_at(
    text: &str,
    base_dir: &Path,
    cut: usize,
) -> Option<(Value, Fleet, Vec<Diagnostic>)> {
    load_text_split_at_cuts(text, base_dir, &[cut])
}

/// [`load_text_split_at`] with the file cut at each of `cuts`, in order:
/// its parts read (and typed) by two threads.
pub fn load_text_split_at_cuts(
    text: &str,
    base_dir: &Path,
    cuts: &[usize],
) -> Option<(Value, Fleet, Vec<Diagnostic>)> {
    on_eval_thread(|| Ok(split::load_at(text, base_dir, cuts))).unwrap_or(None)
}

/// Runs `work` on a thread with a large stack, so that deep but legal
/// input cannot overflow it; depth is bounded by [`syntax::MAX_NESTING`]
/// and [`eval::MAX_DEPTH`] as well.
fn on_eval_thread<T: Send>(
    work: impl FnOnce() -> Result<T, Diagnostic> + Send,
) -> Result<T, Diagnostic> {
    std::thread::scope(|s| {
        let worker = std::thread::Builder::new()
            .name("nix-eval".into())
            .stack_size(EVAL_STACK)
            .spawn_scoped(s, || {
                let result = work();
                memory::release_freed();
                result
            });
        match worker.map(|h| h.join()) {
            Ok(Ok(result)) => result,
            _ => Err(Diagnostic::error(
                Code::Internal,
                rowan::TextRange::default(),
                "the evaluator stopped unexpectedly",
            )),
        }
    })
}

fn evaluate_on_this_thread(text: &str, base_dir: &Path) -> Result<Value, Diagnostic> {
    // A large file of the usual shape is read on two threads; anything
    // that path is unsure of is read again serially.
    if let Some(value) = split::evaluate(text, base_dir) {
        return Ok(value);
    }
    evaluate_serially(text, base_dir)
}

fn evaluate_serially(text: &str, base_dir: &Path) -> Result<Value, Diagnostic> {
    let to_diag = |e: eval::EvalError| {
        let d = Diagnostic::error(Code::Eval, e.span, e.message);
        match e.help {
            Some(h) => d.help(h),
            None => d,
        }
    };
    // Both parsers look ahead over runs of path characters the way rnix's
    // tokenizer does, in time quadratic in a run's length: such input is
    // refused first, by a linear scan.
    prescan::check(text)?;
    // The fast parser reads the common, well-formed file; for anything else
    // the rnix path runs and owns the diagnostic.
    let fast = fast_parse::parse(text);
    let expr = match fast {
        Some(expr) => expr,
        None => {
            let root = syntax::parse(text)?;
            let expr = root.expr().ok_or_else(|| {
                Diagnostic::error(
                    Code::Syntax,
                    rowan::TextRange::default(),
                    "the file is empty",
                )
            })?;
            lower::lower(&expr).map_err(to_diag)?
        }
    };
    scope::check(&expr).map_err(to_diag)?;
    let value = eval::Evaluator::new(base_dir)
        .eval_strict(&expr)
        .map_err(to_diag);
    value
}
