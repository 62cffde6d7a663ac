//! OpenTofu behind one small module: a working folder holding the rendered
//! `config.tf.json`, `tofu init` only when the `terraform` block changed,
//! plans saved next to the SHA-256 of the config they were made from, and
//! an apply that refuses a plan made from another config.
//!
//! OpenTofu itself does not notice config edits after `plan -out`: the plan
//! file embeds a snapshot of the config and `apply FILE` uses that snapshot
//! (reference/tools.md §4.2). So the hash check lives here.
//!
//! The API token reaches `tofu` only through its environment.

mod error;
pub mod guard;
mod interrupt;
pub mod lock;
pub mod node_moves;
pub mod token;
pub mod vmid_clash;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::error::AppError;
use crate::fsutil::write_atomic;
use crate::report::{Prompt, Reporter, Silent};
use crate::runner::{Cmd, RunError, Tool};

pub use error::TofuError;
pub use guard::{Holder, Inventory, ManagedVm};
pub use token::ApiToken;

/// The rendered config inside the working folder.
pub const CONFIG_FILE: &str = "config.tf.json";
/// The saved plan (`tofu plan -out`).
pub const PLAN_FILE: &str = "pve.tfplan";
/// What the saved plan was made from.
pub const PLAN_META: &str = "pve.tfplan.json";
/// What the last `tofu init` was run for.
pub const INIT_MARKER: &str = ".pve-init.json";
/// Overrides the working folder.
pub const WORKDIR_ENV: &str = "TOFU_WORKDIR";

const INIT_TIMEOUT: Duration = Duration::from_secs(15 * 60);
const PLAN_TIMEOUT: Duration = Duration::from_secs(60 * 60);
const APPLY_TIMEOUT: Duration = Duration::from_secs(4 * 60 * 60);
const QUICK_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// The working folder: `TOFU_WORKDIR` (relative to the current folder), else
/// `vms/tofu/.state` under the fleet root.
pub fn workdir(fleet_root: &Path) -> Result<PathBuf, AppError> {
    match std::env::var_os(WORKDIR_ENV).filter(|v| !v.is_empty()) {
        Some(p) => {
            let p = PathBuf::from(p);
            if p.is_absolute() {
                Ok(p)
            } else {
                let cwd =
                    std::env::current_dir().map_err(|e| TofuError::CurrentDir { source: e })?;
                Ok(cwd.join(p))
            }
        }
        None => Ok(fleet_root.join("vms").join("tofu").join(".state")),
    }
}

pub fn sha256_hex(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A rendered config: its text, parsed form and hashes.
#[derive(Debug, Clone)]
pub struct Config {
    text: String,
    json: Json,
    sha256: String,
}

impl Config {
    /// Takes the rendered JSON; refuses text that is not a JSON object.
    pub fn new(text: &str) -> Result<Config, AppError> {
        let json: Json =
            serde_json::from_str(text).map_err(|e| TofuError::ConfigNotJson { source: e })?;
        if !json.is_object() {
            return Err(TofuError::ConfigNotObject.into());
        }
        let mut text = text.to_string();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        Ok(Config {
            sha256: sha256_hex(text.as_bytes()),
            text,
            json,
        })
    }

    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub fn json(&self) -> &Json {
        &self.json
    }

    /// The VMs this config manages.
    pub fn managed_vms(&self) -> Vec<ManagedVm> {
        guard::managed_vms(&self.json)
    }

    /// Hashes of the parts of the `terraform` block `tofu init` depends on:
    /// (everything but the backend, the backend).
    fn init_hashes(&self) -> InitMarker {
        let mut tf = self.json.get("terraform").cloned().unwrap_or(Json::Null);
        // A block may be written as a list of one object.
        if let Json::Array(a) = &tf {
            tf = a.first().cloned().unwrap_or(Json::Null);
        }
        let backend = match &mut tf {
            Json::Object(o) => o.remove("backend").unwrap_or(Json::Null),
            _ => Json::Null,
        };
        // serde_json's maps are sorted, so this text is canonical.
        let canon = |v: &Json| sha256_hex(v.to_string().as_bytes());
        InitMarker {
            terraform_sha256: canon(&tf),
            backend_sha256: canon(&backend),
            backend: Some(backend_type(&self.json)),
        }
    }

    /// The state backend's type (`local`, `pg`, `s3`); `local` when the
    /// config names none.
    pub fn backend(&self) -> String {
        backend_type(&self.json)
    }
}

/// The type of the backend a rendered config names (`local` for none).
fn backend_type(config: &Json) -> String {
    let tf = match config.get("terraform") {
        Some(Json::Array(a)) => a.first(),
        other => other,
    };
    tf.and_then(|t| t.get("backend"))
        .and_then(Json::as_object)
        .and_then(|b| b.keys().next().cloned())
        .unwrap_or_else(|| "local".to_string())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct InitMarker {
    terraform_sha256: String,
    backend_sha256: String,
    /// The backend's type, to name it when it changes (older markers
    /// lack it).
    #[serde(default)]
    backend: Option<String>,
}

/// The local backend's state file in the working folder.
pub const LOCAL_STATE: &str = "terraform.tfstate";

/// Which state a plan was made against (from `tofu state pull`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StateId {
    pub lineage: Option<String>,
    pub serial: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct State {
    pub id: StateId,
    /// Managed resources recorded in the state.
    pub resources: usize,
    /// Their addresses (`type.name`), sorted.
    pub addresses: Vec<String>,
}

impl State {
    pub fn is_empty(&self) -> bool {
        self.resources == 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanKind {
    Apply,
    Destroy,
}

/// The sidecar of a saved plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanMeta {
    pub kind: PlanKind,
    pub config_sha256: String,
    pub state: StateId,
    /// `tofu plan -detailed-exitcode` said there are changes.
    pub changes: bool,
    /// The `-target` addresses the plan was limited to (`pve new`, `pve
    /// remove`); empty for a whole plan.
    #[serde(default)]
    pub targets: Vec<String>,
    /// SHA-256 of the plan file as tofu wrote it: a plan file swapped
    /// afterwards is never applied.
    #[serde(default)]
    pub plan_sha256: String,
}

/// Whether a saved plan may be applied now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SavedPlan {
    Usable(PlanMeta),
    Missing,
    /// Made from another config (hosts.nix changed since).
    ConfigChanged,
    /// The state changed since (another apply ran).
    StateChanged,
    /// A destroy plan; `apply` never applies one.
    Destroy,
    /// The plan file is not the one `tofu plan` wrote for this sidecar.
    PlanChanged,
}

impl SavedPlan {
    pub fn reason(&self) -> &'static str {
        match self {
            SavedPlan::Usable(_) => "the saved plan matches the current config",
            SavedPlan::Missing => "there is no saved plan",
            SavedPlan::ConfigChanged => {
                "the saved plan was made from a different config (hosts.nix changed since `pve plan`)"
            }
            SavedPlan::StateChanged => {
                "the saved plan is stale: the OpenTofu state changed since it was made"
            }
            SavedPlan::Destroy => "the saved plan is a destroy plan",
            SavedPlan::PlanChanged => {
                "the saved plan file changed after it was made (it is not the plan pve saved)"
            }
        }
    }
}

/// What an apply or destroy ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    NoChanges,
    Declined,
}

/// OpenTofu in one working folder.
pub struct Tofu {
    dir: PathBuf,
    token: Option<ApiToken>,
    /// `-parallelism` for `apply`: how many VMs are cloned at once.
    parallelism: Option<u32>,
}

impl Tofu {
    pub fn new(dir: impl Into<PathBuf>, token: Option<ApiToken>) -> Tofu {
        Tofu {
            dir: dir.into(),
            token,
            parallelism: None,
        }
    }

    /// Applies run with `-parallelism=n` (`_proxmox.parallelClones`):
    /// clones of one template contend for the storage lock, so many at
    /// once fail (the provider retries each clone `clone.retries` times).
    pub fn parallelism(mut self, n: u32) -> Tofu {
        self.parallelism = Some(n);
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `tofu init` has run here.
    pub fn is_initialised(&self) -> bool {
        self.dir.join(".terraform").is_dir() && self.dir.join(INIT_MARKER).is_file()
    }

    fn cmd(&self) -> Cmd {
        Cmd::new(Tool::Tofu)
            .cwd(&self.dir)
            .env("TF_IN_AUTOMATION", "1")
    }

    /// For the commands that talk to Proxmox (plan, apply): only they get
    /// the token.
    fn cmd_with_token(&self) -> Result<Cmd, AppError> {
        self.guard_dir()?;
        let t = self.token.as_ref().ok_or_else(token::missing)?;
        Ok(self.cmd().secret_env(token::ENV, t.expose()))
    }

    /// Refuses early when the token is missing (before anything runs).
    pub fn require_token(&self) -> Result<(), AppError> {
        if self.token.is_none() {
            return Err(token::missing());
        }
        Ok(())
    }

    /// Creates the folder (private: state and plans hold secrets), keeps it
    /// out of git, writes the config when it changed, and runs `tofu init`
    /// when needed. Returns whether init ran.
    pub fn prepare(
        &self,
        config: &Config,
        prompt: &mut dyn Prompt,
        report: &dyn Reporter,
    ) -> Result<bool, AppError> {
        self.create_dir()?;
        let path = self.dir.join(CONFIG_FILE);
        let current = std::fs::read(&path).ok();
        if current.as_deref() != Some(config.text.as_bytes()) {
            write_atomic(&path, config.text.as_bytes())?;
        }
        self.init_if_needed(config, prompt, report)
    }

    fn create_dir(&self) -> Result<(), AppError> {
        use std::os::unix::fs::DirBuilderExt;
        if !self.dir.is_dir() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)
                .map_err(|e| TofuError::CreateDir {
                    dir: self.dir.clone(),
                    source: e,
                })?;
        }
        self.guard_dir()?;
        let ignore = self.dir.join(".gitignore");
        if !ignore.exists() {
            write_atomic(
                &ignore,
                b"# OpenTofu state, plans and providers: never commit (they hold secrets).\n*\n",
            )?;
        }
        Ok(())
    }

    /// The working folder holds only what pve wrote: OpenTofu loads every
    /// `*.tf`, `*.tf.json`, `*.tofu(.json)` and `*.auto.tfvars` there, so a
    /// stray file (a `local-exec`, an external data source) would run on
    /// `pve plan` and escape "apply only what you reviewed". Such files are
    /// refused (exit 2), the folder must be a real folder, and its mode is
    /// set to 0700 (it holds state and plans, which carry secrets).
    fn guard_dir(&self) -> Result<(), AppError> {
        use std::os::unix::fs::PermissionsExt as _;
        let Ok(meta) = self.dir.symlink_metadata() else {
            return Ok(());
        };
        if !meta.is_dir() {
            return Err(TofuError::NotPlainDir {
                dir: self.dir.clone(),
            }
            .into());
        }
        if meta.permissions().mode() & 0o777 != 0o700 {
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700)).map_err(
                |e| TofuError::MakePrivate {
                    dir: self.dir.clone(),
                    source: e,
                },
            )?;
        }
        let entries = std::fs::read_dir(&self.dir).map_err(|e| TofuError::ReadDir {
            dir: self.dir.clone(),
            source: e,
        })?;
        let mut foreign: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != CONFIG_FILE && tofu_loads(n))
            .collect();
        foreign.sort();
        if !foreign.is_empty() {
            return Err(TofuError::ForeignFiles {
                dir: self.dir.clone(),
                files: foreign,
            }
            .into());
        }
        Ok(())
    }

    fn init_if_needed(
        &self,
        config: &Config,
        prompt: &mut dyn Prompt,
        report: &dyn Reporter,
    ) -> Result<bool, AppError> {
        let want = config.init_hashes();
        let marker_path = self.dir.join(INIT_MARKER);
        let have: Option<InitMarker> = std::fs::read(&marker_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let initialised = self.dir.join(".terraform").is_dir();
        let mut args = vec!["init", "-input=false", "-no-color"];
        let new_backend = config.backend();
        let why = match &have {
            Some(h) if initialised && h.backend_sha256 == want.backend_sha256 => {
                if h.terraform_sha256 == want.terraform_sha256 {
                    return Ok(false);
                }
                args.push("-upgrade");
                "the provider settings changed"
            }
            Some(h) if initialised => {
                if h.terraform_sha256 != want.terraform_sha256 {
                    args.push("-upgrade");
                }
                let old = h.backend.as_deref().unwrap_or("the previous backend");
                self.confirm_migration(old, &new_backend, None, prompt)?;
                args.extend(["-migrate-state", "-force-copy"]);
                "the state moves to the new backend"
            }
            _ => match self.local_resources() {
                // A local state from before a backend was set: tofu init
                // would copy it only when told to.
                Some(n) if n > 0 && new_backend != "local" => {
                    self.confirm_migration("local", &new_backend, Some(n), prompt)?;
                    args.extend(["-migrate-state", "-force-copy"]);
                    "the local state moves to the new backend"
                }
                _ => "first run in this folder",
            },
        };
        let task = report.task(&format!("Initialising OpenTofu ({why})"));
        self.cmd()
            .args(args)
            .timeout(INIT_TIMEOUT)
            .run()
            .map_err(|e| self.init_failed(e, &new_backend))?;
        task.done();
        let text = serde_json::to_string_pretty(&want).unwrap_or_default() + "\n";
        write_atomic(&marker_path, text.as_bytes())?;
        Ok(true)
    }

    /// Asks before `tofu init -migrate-state` copies the state from `old`
    /// to `new` (a declined or unanswerable question changes nothing).
    fn confirm_migration(
        &self,
        old: &str,
        new: &str,
        resources: Option<usize>,
        prompt: &mut dyn Prompt,
    ) -> Result<(), AppError> {
        let held = match resources {
            Some(n) => format!(" ({})", crate::plural::plural(n, "resource")),
            None => String::new(),
        };
        let question = format!(
            "The state backend in hosts.nix changed from {old} to {new}. \
             Copy the existing OpenTofu state{held} to {new} now (`tofu init -migrate-state -force-copy`)?"
        );
        if !prompt.confirm(
            "move the OpenTofu state to the new backend",
            &question,
            None,
        )? {
            return Err(TofuError::MigrationDeclined.into());
        }
        Ok(())
    }

    /// How many resources the local backend's state file holds (None: no
    /// such file, or not a state).
    fn local_resources(&self) -> Option<usize> {
        let text = std::fs::read_to_string(self.dir.join(LOCAL_STATE)).ok()?;
        parse_state(&text).ok().map(|s| s.resources)
    }

    /// The backend type of the config in the working folder (what the
    /// last prepare wrote).
    fn backend_in_dir(&self) -> String {
        std::fs::read(self.dir.join(CONFIG_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice::<Json>(&b).ok())
            .map_or_else(|| "local".to_string(), |j| backend_type(&j))
    }

    /// A failed `tofu init`: another run's lock (a migration locks the
    /// state), else tofu's own message.
    fn init_failed(&self, e: RunError, backend: &str) -> AppError {
        if let RunError::Failed { stdout, stderr, .. } = &e {
            if let Some(l) = lock::held_lock(&format!("{stdout}{stderr}")) {
                return self.locked("init", l, backend);
            }
        }
        match e {
            RunError::Missing { .. } => AppError::from(e),
            e => external(e, "`tofu init` failed").with_help(
                "check the provider version and backend in hosts.nix and your network; \
                 `PVE_LOG=1` shows the command",
            ),
        }
    }

    /// The error for a run that met another run's state lock.
    fn locked(&self, command: &'static str, lock: lock::HeldLock, backend: &str) -> AppError {
        TofuError::StateLocked {
            command,
            lock: Box::new(lock),
            backend: backend.to_string(),
            dir: self.dir.clone(),
        }
        .into()
    }

    /// Reads the state through the backend (`tofu state pull`).
    pub fn state(&self) -> Result<State, AppError> {
        let out = self
            .cmd()
            .args(["state", "pull"])
            .timeout(QUICK_TIMEOUT)
            .run()
            .map_err(|e| external(e, "cannot read the OpenTofu state"))?;
        parse_state(&out.stdout)
    }

    fn plan_paths(&self) -> (PathBuf, PathBuf) {
        (self.dir.join(PLAN_FILE), self.dir.join(PLAN_META))
    }

    /// Confirms with `prompt`, discarding the saved plan when the answer
    /// is no, when there is no way to ask, and when the user presses
    /// Ctrl-C at the question (a plan nobody accepted must not be left for
    /// the next `pve apply`).
    pub fn confirm_or_discard(
        &self,
        prompt: &mut dyn Prompt,
        action: &str,
        question: &str,
        must_type: Option<&str>,
    ) -> Result<bool, AppError> {
        let (plan, meta) = self.plan_paths();
        let guard = interrupt::DiscardOnInterrupt::arm(&[plan, meta]);
        let answer = prompt.confirm(action, question, must_type);
        drop(guard);
        if !matches!(answer, Ok(true)) {
            self.discard_plan();
        }
        Ok(answer?)
    }

    /// Removes the saved plan and its sidecar.
    pub fn discard_plan(&self) {
        let (plan, meta) = self.plan_paths();
        let _ = std::fs::remove_file(meta);
        let _ = std::fs::remove_file(plan);
    }

    /// What the saved plan is worth for applying `config` on `state`.
    pub fn saved_plan(&self, config: &Config, state: &State) -> SavedPlan {
        let (plan, meta) = self.plan_paths();
        let meta: Option<PlanMeta> = std::fs::read(&meta)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        match meta {
            None => SavedPlan::Missing,
            Some(_) if !plan.is_file() => SavedPlan::Missing,
            Some(m) if m.kind == PlanKind::Destroy => SavedPlan::Destroy,
            Some(m) if m.config_sha256 != config.sha256 => SavedPlan::ConfigChanged,
            Some(m) if m.state != state.id => SavedPlan::StateChanged,
            Some(m) if file_sha256(&plan).as_deref() != Some(m.plan_sha256.as_str()) => {
                SavedPlan::PlanChanged
            }
            Some(m) => SavedPlan::Usable(m),
        }
    }

    /// `tofu plan -out`, its output shown as it comes; then the sidecar.
    pub fn plan(
        &self,
        config: &Config,
        state: &State,
        kind: PlanKind,
        report: &dyn Reporter,
    ) -> Result<PlanMeta, AppError> {
        self.plan_targeted(config, state, kind, &[], report)
    }

    /// [`Tofu::plan`] limited to some resource addresses (`-target=ADDR`),
    /// for workflows that change one VM only (`pve new`, `pve remove`). A
    /// target the config no longer has plans that resource's destroy.
    pub fn plan_targeted(
        &self,
        config: &Config,
        state: &State,
        kind: PlanKind,
        targets: &[String],
        report: &dyn Reporter,
    ) -> Result<PlanMeta, AppError> {
        self.require_token()?;
        self.discard_plan();
        let mut args = vec![
            "plan".to_string(),
            "-input=false".into(),
            "-detailed-exitcode".into(),
            format!("-out={PLAN_FILE}"),
        ];
        if kind == PlanKind::Destroy {
            args.push("-destroy".into());
        }
        for t in targets {
            args.push(format!("-target={t}"));
        }
        report.note(&format!(
            "Planning with OpenTofu in {}{}",
            self.dir.display(),
            if kind == PlanKind::Destroy {
                " (destroy)"
            } else {
                ""
            }
        ));
        let out = self
            .cmd_with_token()?
            .args(args)
            .timeout(PLAN_TIMEOUT)
            .tee()
            .run_unchecked()
            .map_err(|e| external(e, "`tofu plan` did not run"))?;
        let changes = match out.code {
            Some(0) => false,
            Some(2) => true,
            other => {
                self.discard_plan();
                let text = format!("{}{}", out.stdout, out.stderr);
                if let Some(l) = lock::held_lock(&text) {
                    return Err(self.locked("plan", l, &config.backend()));
                }
                return Err(TofuError::PlanFailed { code: other }.into());
            }
        };
        let plan_sha256 = file_sha256(&self.plan_paths().0).unwrap_or_default();
        let meta = PlanMeta {
            kind,
            config_sha256: config.sha256.clone(),
            state: state.id.clone(),
            changes,
            targets: targets.to_vec(),
            plan_sha256,
        };
        let text = serde_json::to_string_pretty(&meta).unwrap_or_default() + "\n";
        write_atomic(&self.plan_paths().1, text.as_bytes())?;
        Ok(meta)
    }

    /// `tofu apply <saved plan>`, output shown as it comes. The plan is
    /// spent afterwards, whatever happened.
    pub fn apply_saved(&self) -> Result<(), AppError> {
        self.apply_saved_with(&|_| None)
    }

    /// [`Tofu::apply_saved`]; when it fails, what tofu printed is read: a
    /// held state lock, then `recognise` (a caller's own diagnosis, such
    /// as a VMID taken meanwhile), else [`TofuError::ApplyFailed`].
    pub fn apply_saved_with(
        &self,
        recognise: &dyn Fn(&str) -> Option<AppError>,
    ) -> Result<(), AppError> {
        let mut args = vec!["apply".to_string(), "-input=false".into()];
        args.extend(self.parallelism.map(|n| format!("-parallelism={n}")));
        args.push(PLAN_FILE.into());
        let result = self
            .cmd_with_token()?
            .args(args)
            .timeout(APPLY_TIMEOUT)
            .tee()
            .run_unchecked();
        self.discard_plan();
        let out = result.map_err(|e| external(e, "`tofu apply` did not run"))?;
        if out.code == Some(0) {
            return Ok(());
        }
        let text = format!("{}{}", out.stdout, out.stderr);
        if let Some(l) = lock::held_lock(&text) {
            return Err(self.locked("apply", l, &self.backend_in_dir()));
        }
        Err(recognise(&text).unwrap_or_else(|| TofuError::ApplyFailed { code: out.code }.into()))
    }

    /// `tofu output [-json] [NAME]`: stdout as tofu printed it; what it
    /// printed on stderr is not shown (see [`Tofu::output_reported`]).
    pub fn output(&self, json: bool, name: Option<&str>) -> Result<String, AppError> {
        self.output_reported(json, name, &Silent)
    }

    /// [`Tofu::output`], with tofu's messages (stderr) shown as a block.
    pub fn output_reported(
        &self,
        json: bool,
        name: Option<&str>,
        report: &dyn Reporter,
    ) -> Result<String, AppError> {
        let mut args = vec!["output".to_string(), "-no-color".into()];
        if json {
            args.push("-json".into());
        }
        if let Some(n) = name {
            args.push(n.to_string());
        }
        let out = self
            .cmd()
            .args(args)
            .timeout(QUICK_TIMEOUT)
            .run()
            .map_err(|e| external(e, "`tofu output` failed"))?;
        if !out.stderr.trim().is_empty() {
            report.block(&out.stderr);
        }
        Ok(out.stdout)
    }
}

/// A failed run, keeping the runner's message (and tofu's stderr).
/// Whether OpenTofu reads a file of this name from its working folder
/// (configuration, overrides and automatically loaded variables).
fn tofu_loads(name: &str) -> bool {
    [
        ".tf",
        ".tf.json",
        ".tofu",
        ".tofu.json",
        ".tfvars",
        ".tfvars.json",
    ]
    .iter()
    .any(|ext| name.ends_with(ext))
}

fn file_sha256(path: &Path) -> Option<String> {
    std::fs::read(path).ok().map(|b| sha256_hex(&b))
}

fn external(e: RunError, context: &'static str) -> AppError {
    match e {
        RunError::Missing { .. } => AppError::from(e),
        other => TofuError::Run {
            context,
            source: other,
        }
        .into(),
    }
}

/// The state as `tofu state pull` prints it (empty: no state yet).
pub fn parse_state(text: &str) -> Result<State, AppError> {
    if text.trim().is_empty() {
        return Ok(State::default());
    }
    let json: Json =
        serde_json::from_str(text).map_err(|e| TofuError::StateNotJson { source: e })?;
    let managed: Vec<&Json> = json
        .get("resources")
        .and_then(Json::as_array)
        .map(|rs| {
            rs.iter()
                .filter(|r| r.get("mode").and_then(Json::as_str) == Some("managed"))
                .collect()
        })
        .unwrap_or_default();
    let resources = managed.len();
    let mut addresses: Vec<String> = managed
        .iter()
        .filter_map(|r| {
            let t = r.get("type").and_then(Json::as_str)?;
            let n = r.get("name").and_then(Json::as_str)?;
            Some(format!("{t}.{n}"))
        })
        .collect();
    addresses.sort();
    Ok(State {
        id: StateId {
            lineage: json
                .get("lineage")
                .and_then(Json::as_str)
                .map(str::to_string),
            serial: json.get("serial").and_then(Json::as_u64),
        },
        resources,
        addresses,
    })
}

/// Options shared by plan and apply.
pub struct Guard<'a> {
    pub inventory: &'a dyn Inventory,
    pub skip: bool,
    /// `_proxmox.node`, for import commands of VMs without `node_name`.
    pub default_node: Option<&'a str>,
    /// The fleet spans several nodes: VMs may have been moved by HA, so
    /// the guard asks where they are on every plan.
    pub cluster: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_hash_covers_every_byte() {
        let a = Config::new("{\"resource\": {}}").expect("valid");
        let b = Config::new("{\"resource\":  {}}").expect("valid");
        assert_ne!(a.sha256(), b.sha256());
        assert_eq!(a.sha256(), sha256_hex(b"{\"resource\": {}}\n"));
    }

    #[test]
    fn init_hashes_split_providers_from_backend() {
        let base = serde_json::json!({
            "terraform": {"required_providers": {"proxmox": {"source": "bpg/proxmox", "version": "0.111.1"}}},
            "resource": {"x": {}}
        });
        let mut other_resources = base.clone();
        other_resources["resource"] = serde_json::json!({"y": {}});
        let mut other_version = base.clone();
        other_version["terraform"]["required_providers"]["proxmox"]["version"] = "0.93.1".into();
        let mut with_backend = base.clone();
        with_backend["terraform"]["backend"] =
            serde_json::json!({"pg": {"conn_str": "postgres://db"}});
        let h = |j: &Json| Config::new(&j.to_string()).expect("valid").init_hashes();
        assert_eq!(h(&base), h(&other_resources), "resources do not need init");
        assert_ne!(
            h(&base).terraform_sha256,
            h(&other_version).terraform_sha256
        );
        assert_eq!(h(&base).backend_sha256, h(&other_version).backend_sha256);
        assert_eq!(h(&base).terraform_sha256, h(&with_backend).terraform_sha256);
        assert_ne!(h(&base).backend_sha256, h(&with_backend).backend_sha256);
    }

    #[test]
    fn state_pull_output_is_read() {
        assert!(parse_state("").expect("empty").is_empty());
        let s = parse_state(
            r#"{"version":4,"serial":7,"lineage":"abc","resources":[
                {"mode":"managed","type":"proxmox_virtual_environment_vm","name":"a","instances":[]},
                {"mode":"data","type":"x","name":"b","instances":[]}]}"#,
        )
        .expect("state");
        assert_eq!(s.resources, 1);
        assert_eq!(s.addresses, ["proxmox_virtual_environment_vm.a"]);
        assert_eq!(
            s.id,
            StateId {
                lineage: Some("abc".into()),
                serial: Some(7)
            }
        );
        assert!(parse_state("not json").is_err());
    }

    #[test]
    fn refuses_a_config_that_is_not_a_json_object() {
        assert!(Config::new("[]").is_err());
        assert!(Config::new("{").is_err());
    }
}
