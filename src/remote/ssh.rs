//! The OpenSSH client, used safely: every remote argument shell-quoted, host
//! keys pinned in the project's known_hosts files with strict checking, a
//! connect timeout and a per-command timeout, and one reused connection
//! (ControlMaster in a private 0700 folder, closed and removed on drop).
//!
//! Users' `~/.ssh/config` and agent keep working: we only add options.
//!
//! Failures are told apart so a person knows what to fix: refused, timed
//! out, authentication failed, unknown or changed host key, connection
//! dropped, or the remote command itself failed (its stderr is kept).

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use sha2::Digest as _;

use crate::error::AppError;
use crate::runner::{Cmd, RunError, Tool};

/// Printed on the remote stderr before the command runs: if it is missing,
/// the command never started and any failure is ssh's own.
const BEGIN: &str = "pve-ops:begin";

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub user: String,
    pub port: Option<u16>,
    /// A private key to use (`-i`, with IdentitiesOnly); else ssh's defaults.
    pub identity: Option<PathBuf>,
}

impl Endpoint {
    /// `host` as known_hosts and ssh-keyscan write it: `[host]:port` for a
    /// port other than 22.
    pub fn known_hosts_name(&self) -> String {
        match self.port {
            Some(p) if p != 22 => format!("[{}]:{p}", self.host),
            _ => self.host.clone(),
        }
    }

    fn shown(&self) -> String {
        match self.port {
            Some(p) if p != 22 => format!("{}@{}:{p}", self.user, self.host),
            _ => format!("{}@{}", self.user, self.host),
        }
    }
}

/// Checks a host name or IP address before it goes into ssh's argv: no
/// leading `-` (it would be read as an option), no spaces or shell text.
pub fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && !h.starts_with('-')
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:_".contains(c))
}

/// A remote login name: POSIX-ish user names only.
pub fn valid_user(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= 32
        && !u.starts_with('-')
        && u.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Known hosts files, all passed to ssh (`UserKnownHostsFile`).
    pub known_hosts: Vec<PathBuf>,
    pub connect_timeout: Duration,
    /// Share one connection between commands (ControlMaster).
    pub reuse: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("{target} refused the SSH connection{}", tail(stderr))]
    Refused { target: String, stderr: String },
    #[error("connecting to {target} timed out{}", tail(stderr))]
    ConnectTimeout { target: String, stderr: String },
    #[error("cannot resolve the host name of {target}{}", tail(stderr))]
    Resolve { target: String, stderr: String },
    #[error(
        "{target} did not accept our SSH key (authentication failed){}",
        tail(stderr)
    )]
    AuthFailed { target: String, stderr: String },
    #[error(
        "the host key of {target} is not in the project's known_hosts{}",
        tail(stderr)
    )]
    HostKeyUnknown { target: String, stderr: String },
    #[error(
        "the host key of {target} has CHANGED since it was trusted; refusing to connect{}",
        tail(stderr)
    )]
    HostKeyChanged { target: String, stderr: String },
    #[error(
        "the connection to {target} dropped while `{command}` ran{}",
        tail(stderr)
    )]
    Dropped {
        target: String,
        command: String,
        stderr: String,
    },
    #[error("`{command}` on {target} did not finish within {}s", after.as_secs())]
    Timeout {
        target: String,
        command: String,
        after: Duration,
    },
    #[error("{0}")]
    RemoteFailed(Box<RemoteFailure>),
    #[error("ssh to {target} failed{}", tail(stderr))]
    Other { target: String, stderr: String },
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("{0}")]
    Setup(String),
}

fn tail(stderr: &str) -> String {
    let t = stderr.replace('\r', "");
    let t = t.trim();
    if t.is_empty() {
        String::new()
    } else {
        let lines: Vec<&str> = t.lines().collect();
        let start = lines.len().saturating_sub(12);
        format!(":\n{}", lines[start..].join("\n"))
    }
}

impl SshError {
    pub fn help(&self) -> Option<String> {
        Some(match self {
            SshError::Refused { .. } => "check that sshd runs on the Proxmox host and the address/port are right (_proxmox.host, PROXMOX_HOST, PROXMOX_SSH_PORT)".into(),
            SshError::ConnectTimeout { .. } => "check the network path and the address (_proxmox.host or PROXMOX_HOST); PROXMOX_CONNECT_TIMEOUT sets the limit".into(),
            SshError::Resolve { .. } => "check _proxmox.host (or PROXMOX_HOST)".into(),
            SshError::AuthFailed { .. } => "check that your key is loaded (ssh-add -l) and in the Proxmox host's authorized_keys, and the user (_proxmox.user / PROXMOX_USER)".into(),
            SshError::HostKeyUnknown { .. } => "run `proxmox-ops trust` to see the host's fingerprint and record it after comparing it with the one on the Proxmox console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub)".into(),
            SshError::HostKeyChanged { .. } => "someone may be intercepting the connection, or the host was reinstalled. Compare the fingerprint on the Proxmox console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub); only if it is the new genuine key, run `proxmox-ops trust --replace`".into(),
            SshError::Dropped { .. } => "the operation may or may not have completed on Proxmox: check with `proxmox-ops status <vmid>` before retrying".into(),
            SshError::Timeout { .. } => "the command may still be running on Proxmox; check with `proxmox-ops status <vmid>`, or raise --timeout".into(),
            SshError::Run(e) => return e.help(),
            _ => return None,
        })
    }

    /// The remote command's stderr, when it ran and failed.
    pub fn remote_stderr(&self) -> Option<&str> {
        match self {
            SshError::RemoteFailed(f) => Some(&f.stderr),
            _ => None,
        }
    }
}

impl From<SshError> for AppError {
    fn from(e: SshError) -> Self {
        let help = e.help();
        let err = match &e {
            SshError::Setup(m) => AppError::input(m.clone()),
            SshError::Run(RunError::Missing { .. }) => AppError::input(e.to_string()),
            _ => AppError::external(e.to_string()),
        };
        match help {
            Some(h) => err.with_help(h),
            None => err,
        }
    }
}

/// A remote command that ran and failed: its exit status and output.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{command}` failed on {target} ({status}){}", tail(stderr))]
pub struct RemoteFailure {
    pub target: String,
    pub command: String,
    pub status: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// What a remote command printed and how it ended.
#[derive(Debug, Clone)]
pub struct RemoteOutput {
    pub stdout: String,
    pub stderr: String,
    pub code: Option<i32>,
}

/// An SSH client for one endpoint. Cheap to create: nothing connects
/// until the first command.
pub struct Ssh {
    endpoint: Endpoint,
    options: Options,
    /// Private folder of the control socket (0700), removed on drop.
    control: Option<tempfile::TempDir>,
    /// The name the host key is looked up under (`HostKeyAlias`), so a
    /// VM's pinned key keeps matching when its DHCP address changes.
    host_key_alias: Option<String>,
}

impl std::fmt::Debug for Ssh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ssh")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// Writes a path into an ssh_config value: `%` would start a token and a
/// space would split the list, so escape and quote.
fn config_path(p: &Path) -> Result<String, SshError> {
    let s = p.to_string_lossy();
    if s.contains('"') || s.contains('\n') {
        return Err(SshError::Setup(format!(
            "cannot pass the path {} to ssh (it contains a quote or newline)",
            p.display()
        )));
    }
    let s = s.replace('%', "%%");
    Ok(if s.contains(' ') {
        format!("\"{s}\"")
    } else {
        s
    })
}

impl Ssh {
    pub fn new(endpoint: Endpoint, options: Options) -> Result<Ssh, SshError> {
        if !valid_host(&endpoint.host) {
            return Err(SshError::Setup(format!(
                "`{}` is not a valid host name or address",
                endpoint.host
            )));
        }
        if !valid_user(&endpoint.user) {
            return Err(SshError::Setup(format!(
                "`{}` is not a valid user name",
                endpoint.user
            )));
        }
        let control = if options.reuse {
            use std::os::unix::fs::PermissionsExt as _;
            // Private: only we may reach the control socket.
            let dir = tempfile::Builder::new()
                .prefix("pve-ssh.")
                .permissions(std::fs::Permissions::from_mode(0o700))
                .tempdir_in(std::env::temp_dir())
                .map_err(|e| {
                    SshError::Setup(format!("cannot create the SSH control folder: {e}"))
                })?;
            interrupt::register(dir.path(), &endpoint.host);
            Some(dir)
        } else {
            None
        };
        Ok(Ssh {
            endpoint,
            options,
            control,
            host_key_alias: None,
        })
    }

    /// Looks the host key up under `alias` instead of the address
    /// (`HostKeyAlias`); checking stays strict.
    pub fn with_host_key_alias(mut self, alias: &str) -> Result<Ssh, SshError> {
        if !valid_host(alias) {
            return Err(SshError::Setup(format!(
                "`{alias}` is not a valid host key alias"
            )));
        }
        self.host_key_alias = Some(alias.to_string());
        Ok(self)
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn control_path(&self) -> Option<PathBuf> {
        self.control.as_ref().map(|d| d.path().join("c"))
    }

    /// The options every ssh invocation gets. Never disables host key
    /// checking: unknown keys go through `trust`.
    fn base_args(&self, batch: bool) -> Result<Vec<String>, SshError> {
        let mut a: Vec<String> = Vec::new();
        let mut opt = |s: String| {
            a.push("-o".into());
            a.push(s);
        };
        let files = self
            .options
            .known_hosts
            .iter()
            .map(|p| config_path(p))
            .collect::<Result<Vec<_>, _>>()?;
        opt(format!("UserKnownHostsFile={}", files.join(" ")));
        opt("StrictHostKeyChecking=yes".into());
        opt("UpdateHostKeys=no".into());
        opt("CheckHostIP=no".into());
        if let Some(alias) = &self.host_key_alias {
            opt(format!("HostKeyAlias={alias}"));
        }
        let name = self
            .host_key_alias
            .clone()
            .unwrap_or_else(|| self.endpoint.known_hosts_name());
        if let Some(algos) = host_key_algorithms(&self.options.known_hosts, &name) {
            opt(format!("HostKeyAlgorithms={algos}"));
        }
        if batch {
            opt("BatchMode=yes".into());
        }
        opt(format!(
            "ConnectTimeout={}",
            self.options.connect_timeout.as_secs().max(1)
        ));
        opt("ServerAliveInterval=5".into());
        opt("ServerAliveCountMax=3".into());
        opt("LogLevel=ERROR".into());
        match self.control_path() {
            Some(cp) => {
                opt("ControlMaster=auto".into());
                opt(format!("ControlPath={}", config_path(&cp)?));
                opt("ControlPersist=60".into());
            }
            None => opt("ControlMaster=no".into()),
        }
        if let Some(id) = &self.endpoint.identity {
            a.push("-i".into());
            // ssh expands %-tokens in IdentityFile.
            a.push(id.to_string_lossy().replace('%', "%%"));
            a.push("-o".into());
            a.push("IdentitiesOnly=yes".into());
        }
        if let Some(p) = self.endpoint.port {
            a.push("-p".into());
            a.push(p.to_string());
        }
        a.push("-l".into());
        a.push(self.endpoint.user.clone());
        Ok(a)
    }

    /// Runs `argv` on the remote host (each argument quoted); a non-zero
    /// exit is [`SshError::RemoteFailed`] with the remote stderr.
    pub fn run(&self, argv: &[String], timeout: Duration) -> Result<RemoteOutput, SshError> {
        let out = self.run_unchecked(argv, timeout)?;
        if out.code == Some(0) {
            Ok(out)
        } else {
            Err(SshError::RemoteFailed(Box::new(RemoteFailure {
                target: self.endpoint.shown(),
                command: crate::shell::join(argv),
                status: out
                    .code
                    .map_or("killed by a signal".into(), |c| format!("exit code {c}")),
                code: out.code,
                stdout: out.stdout,
                stderr: out.stderr,
            })))
        }
    }

    /// Runs `argv` remotely and returns its output whatever its exit code;
    /// only ssh's own failures (connect, auth, host key, drop, timeout)
    /// are errors.
    pub fn run_unchecked(
        &self,
        argv: &[String],
        timeout: Duration,
    ) -> Result<RemoteOutput, SshError> {
        self.run_unchecked_stdin(argv, None, timeout)
    }

    /// Like [`Ssh::run`], with `stdin` fed to the remote command (secrets
    /// travel this way, never in the command line).
    pub fn run_with_stdin(
        &self,
        argv: &[String],
        stdin: &[u8],
        timeout: Duration,
    ) -> Result<RemoteOutput, SshError> {
        let out = self.run_unchecked_stdin(argv, Some(stdin), timeout)?;
        if out.code == Some(0) {
            Ok(out)
        } else {
            Err(SshError::RemoteFailed(Box::new(RemoteFailure {
                target: self.endpoint.shown(),
                command: crate::shell::join(argv),
                status: out
                    .code
                    .map_or("killed by a signal".into(), |c| format!("exit code {c}")),
                code: out.code,
                stdout: out.stdout,
                stderr: out.stderr,
            })))
        }
    }

    fn run_unchecked_stdin(
        &self,
        argv: &[String],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<RemoteOutput, SshError> {
        let command = crate::shell::join(argv);
        let remote = format!("echo {BEGIN} >&2; exec {command}");
        let mut cmd = Cmd::new(Tool::Ssh)
            .args(self.base_args(true)?)
            .arg(self.endpoint.host.clone())
            .arg(remote)
            .timeout(timeout);
        if let Some(data) = stdin {
            cmd = cmd.stdin(data.to_vec());
        }
        let out = match cmd.run_unchecked() {
            Ok(o) => o,
            Err(RunError::Timeout { after, .. }) => {
                return Err(SshError::Timeout {
                    target: self.endpoint.shown(),
                    command,
                    after,
                })
            }
            Err(e) => return Err(e.into()),
        };
        self.classify(&command, out.stdout, out.stderr, out.code)
    }

    fn classify(
        &self,
        command: &str,
        stdout: String,
        stderr: String,
        code: Option<i32>,
    ) -> Result<RemoteOutput, SshError> {
        let target = self.endpoint.shown();
        let marker = format!("{BEGIN}\n");
        match stderr.find(&marker) {
            None => Err(connect_error(target, stderr)),
            Some(i) => {
                let before = &stderr[..i];
                let after = &stderr[i + marker.len()..];
                // qm/pvesh always explain a failure on stderr; 255 with
                // nothing after the marker is ssh losing the connection.
                if code == Some(255) && (is_drop(after) || after.trim().is_empty()) {
                    return Err(SshError::Dropped {
                        target,
                        command: command.to_string(),
                        stderr: after.to_string(),
                    });
                }
                let mut rest = before.to_string();
                rest.push_str(after);
                Ok(RemoteOutput {
                    stdout,
                    stderr: rest,
                    code,
                })
            }
        }
    }

    /// Runs `argv` with the terminal attached (`ssh -t`), for `console`.
    pub fn interactive(&self, argv: &[String]) -> Result<i32, SshError> {
        let command = crate::shell::join(argv);
        let cmd = Cmd::new(Tool::Ssh)
            .args(self.base_args(false)?)
            .arg("-t")
            .arg(self.endpoint.host.clone())
            .arg(command)
            .timeout(Duration::from_secs(24 * 3600))
            .interactive();
        let out = cmd.run_unchecked()?;
        Ok(out.code.unwrap_or(255))
    }

    /// Closes the shared connection (if any) now.
    pub fn close(&mut self) {
        if let Some(dir) = self.control.as_ref().map(|d| d.path().to_path_buf()) {
            close_master(&dir, &self.endpoint.host);
            interrupt::unregister(&dir);
        }
        self.control = None;
    }
}

/// Asks the master behind the control socket in `dir` to exit.
fn close_master(dir: &Path, host: &str) {
    let cp = dir.join("c");
    if !cp.exists() {
        return;
    }
    if let Ok(cpath) = config_path(&cp) {
        let _ = Cmd::new(Tool::Ssh)
            .args(["-o".to_string(), format!("ControlPath={cpath}")])
            .args(["-O", "exit"])
            .arg(host.to_string())
            .timeout(Duration::from_secs(5))
            .run_unchecked();
    }
}

/// Ctrl-C and SIGTERM skip destructors, which would leave the shared SSH
/// connection running (up to ControlPersist) and its folder behind. A
/// handler thread closes every open one, removes the folders, and exits
/// with 130 as an interrupted program does.
///
/// The op in flight fails as a side effect (its ssh child is killed by the
/// same Ctrl-C, or its master is closed). The main thread must not race the
/// handler to report that as a transport error and exit 3, so the entry
/// points call [`interrupt::wait_if_interrupted`] before they report. The
/// flag is set inside the signal handler itself, before any child can die
/// of the signal, so the check cannot come too early.
pub mod interrupt {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Mutex, Once};

    use signal_hook::consts::{SIGINT, SIGTERM};

    static OPEN: Mutex<Vec<(PathBuf, String)>> = Mutex::new(Vec::new());
    /// Files removed on an interrupt (a saved plan nobody accepted).
    static DISCARD: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    static HANDLER: Once = Once::new();
    static INTERRUPTED: AtomicBool = AtomicBool::new(false);

    /// When an interrupt has arrived, blocks until the handler thread exits
    /// the process with 130; otherwise returns at once.
    pub fn wait_if_interrupted() {
        if INTERRUPTED.load(Ordering::SeqCst) {
            loop {
                std::thread::park();
            }
        }
    }

    pub fn register(dir: &Path, host: &str) {
        HANDLER.call_once(install);
        if let Ok(mut open) = OPEN.lock() {
            open.push((dir.to_path_buf(), host.to_string()));
        }
    }

    /// Until [`keep`], an interrupt removes `files` before the process
    /// exits (one handler for every cleanup, so none races another's exit).
    pub fn discard_on_interrupt(files: &[PathBuf]) {
        HANDLER.call_once(install);
        if let Ok(mut d) = DISCARD.lock() {
            d.extend(files.iter().cloned());
        }
    }

    pub fn keep(files: &[PathBuf]) {
        if let Ok(mut d) = DISCARD.lock() {
            d.retain(|f| !files.contains(f));
        }
    }

    pub fn unregister(dir: &Path) {
        if let Ok(mut open) = OPEN.lock() {
            open.retain(|(d, _)| d != dir);
        }
    }

    /// Without handlers the default action (terminate) still applies; the
    /// only loss is the cleanup, so a failure to install is not an error.
    /// The flag is registered only once the thread that exits is in place:
    /// a flag alone would swallow Ctrl-C.
    fn install() {
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
            return;
        };
        for sig in [SIGINT, SIGTERM] {
            let _ = signal_hook::flag::register(sig, &INTERRUPTED);
        }
        std::thread::spawn(move || {
            if signals.forever().next().is_some() {
                on_interrupt();
            }
        });
    }

    fn on_interrupt() {
        let discard = DISCARD
            .lock()
            .map(|mut d| std::mem::take(&mut *d))
            .unwrap_or_default();
        for f in discard {
            let _ = std::fs::remove_file(f);
        }
        let open = OPEN
            .lock()
            .map(|mut o| std::mem::take(&mut *o))
            .unwrap_or_default();
        for (dir, host) in open {
            super::close_master(&dir, &host);
            let _ = std::fs::remove_dir_all(&dir);
        }
        std::process::exit(130);
    }
}

impl Drop for Ssh {
    fn drop(&mut self) {
        self.close();
    }
}

fn is_drop(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    [
        "closed by remote host",
        "connection reset",
        "broken pipe",
        "mux_client_read_packet",
        "timeout, server",
        "client_loop: send disconnect",
    ]
    .iter()
    .any(|p| s.contains(p))
}

fn connect_error(target: String, stderr: String) -> SshError {
    let s = stderr.to_ascii_lowercase();
    if s.contains("remote host identification has changed")
        || s.contains("host key for") && s.contains("has changed")
    {
        SshError::HostKeyChanged { target, stderr }
    } else if s.contains("host key verification failed")
        || s.contains("no ") && s.contains("host key is known")
    {
        SshError::HostKeyUnknown { target, stderr }
    } else if s.contains("connection refused") {
        SshError::Refused { target, stderr }
    } else if s.contains("timed out") {
        SshError::ConnectTimeout { target, stderr }
    } else if s.contains("could not resolve hostname") || s.contains("name or service not known") {
        SshError::Resolve { target, stderr }
    } else if s.contains("permission denied") || s.contains("too many authentication failures") {
        SshError::AuthFailed { target, stderr }
    } else if is_drop(&s) || s.contains("connection closed by") {
        SshError::Dropped {
            target,
            command: String::new(),
            stderr,
        }
    } else {
        SshError::Other { target, stderr }
    }
}

/// A host key as seen by ssh-keyscan: the known_hosts line and its
/// SHA256 fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedKey {
    pub line: String,
    pub key_type: String,
    pub fingerprint: String,
}

/// `SHA256:...` of a public key's base64 blob, as `ssh-keygen -lf` prints it.
pub fn fingerprint(key_base64: &str) -> Option<String> {
    let blob = base64::engine::general_purpose::STANDARD
        .decode(key_base64)
        .ok()?;
    let digest = sha2::Sha256::digest(&blob);
    Some(format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    ))
}

/// Reads the host's keys with ssh-keyscan (no authentication happens;
/// the caller must show the fingerprints and let a person decide).
pub fn scan(endpoint: &Endpoint, timeout: Duration) -> Result<Vec<ScannedKey>, SshError> {
    if !valid_host(&endpoint.host) {
        return Err(SshError::Setup(format!(
            "`{}` is not a valid host name or address",
            endpoint.host
        )));
    }
    let mut cmd = Cmd::new(Tool::SshKeyscan)
        .arg("-T")
        .arg(timeout.as_secs().max(1).to_string());
    if let Some(p) = endpoint.port {
        cmd = cmd.arg("-p").arg(p.to_string());
    }
    let out = cmd
        .args(["-t", "ed25519,ecdsa,rsa"])
        .arg(endpoint.host.clone())
        .timeout(timeout + Duration::from_secs(5))
        .run_unchecked()?;
    let want = endpoint.known_hosts_name();
    let mut keys = Vec::new();
    for line in out.stdout.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if line.starts_with('#') || fields.len() < 3 || fields[0] != want {
            continue;
        }
        let Some(fp) = fingerprint(fields[2]) else {
            continue;
        };
        keys.push(ScannedKey {
            line: format!("{} {} {}", fields[0], fields[1], fields[2]),
            key_type: fields[1].to_string(),
            fingerprint: fp,
        });
    }
    keys.sort_by(|a, b| a.line.cmp(&b.line));
    if keys.is_empty() {
        let target = endpoint.shown();
        let s = out.stderr.to_ascii_lowercase();
        return Err(if s.contains("refused") {
            SshError::Refused {
                target,
                stderr: out.stderr,
            }
        } else if s.contains("timeout") || s.contains("timed out") {
            SshError::ConnectTimeout {
                target,
                stderr: out.stderr,
            }
        } else {
            SshError::Other {
                target,
                stderr: format!("ssh-keyscan returned no host key\n{}", out.stderr),
            }
        });
    }
    Ok(keys)
}

/// `HostKeyAlgorithms` limited to the key types recorded for `name`: ssh
/// then asks the server for those only, so a key of another type (an
/// impostor offering only RSA where ed25519 was confirmed) is never even
/// considered. None when nothing is recorded (strict checking refuses).
pub fn host_key_algorithms(files: &[PathBuf], name: &str) -> Option<String> {
    let mut algos: Vec<String> = Vec::new();
    for k in files.iter().flat_map(|f| known_keys(f, name)) {
        let safe = k
            .key_type
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@.-".contains(c));
        if !safe {
            continue;
        }
        let names = if k.key_type == "ssh-rsa" {
            // The key type ssh-rsa is signed with these algorithms.
            vec!["rsa-sha2-512".to_string(), "rsa-sha2-256".to_string()]
        } else {
            vec![k.key_type]
        };
        for n in names {
            if !algos.contains(&n) {
                algos.push(n);
            }
        }
    }
    (!algos.is_empty()).then(|| algos.join(","))
}

/// The known_hosts lines of `file` for `name`, with their fingerprints.
pub fn known_keys(file: &Path, name: &str) -> Vec<ScannedKey> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut keys = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if line.starts_with('#') || fields.len() < 3 {
            continue;
        }
        if !fields[0].split(',').any(|n| n == name) {
            continue;
        }
        if let Some(fp) = fingerprint(fields[2]) {
            keys.push(ScannedKey {
                line: format!("{} {} {}", fields[0], fields[1], fields[2]),
                key_type: fields[1].to_string(),
                fingerprint: fp,
            });
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssh(reuse: bool) -> Ssh {
        Ssh::new(
            Endpoint {
                host: "192.0.2.12".into(),
                user: "root".into(),
                port: Some(2222),
                identity: None,
            },
            Options {
                known_hosts: vec![
                    PathBuf::from("/fleet/vms/proxmox_known_hosts"),
                    PathBuf::from("/my fleet/vms/known_hosts"),
                ],
                connect_timeout: Duration::from_secs(7),
                reuse,
            },
        )
        .expect("valid")
    }

    #[test]
    fn options_pin_host_keys_and_never_disable_checking() {
        let a = ssh(true).base_args(true).expect("args").join(" ");
        assert!(a.contains(
            "UserKnownHostsFile=/fleet/vms/proxmox_known_hosts \"/my fleet/vms/known_hosts\""
        ));
        assert!(a.contains("StrictHostKeyChecking=yes"));
        assert!(a.contains("ConnectTimeout=7"));
        assert!(a.contains("ControlMaster=auto"));
        assert!(a.contains("-p 2222"));
        assert!(!a.contains("/dev/null"));
        let b = ssh(false).base_args(true).expect("args").join(" ");
        assert!(b.contains("ControlMaster=no"));
    }

    #[test]
    fn the_control_folder_is_private_and_removed() {
        use std::os::unix::fs::PermissionsExt as _;
        let mut s = ssh(true);
        let dir = s.control.as_ref().expect("dir").path().to_path_buf();
        let mode = std::fs::metadata(&dir)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        s.close();
        assert!(!dir.exists());
    }

    #[test]
    fn hostile_hosts_and_users_are_refused() {
        for h in ["-oProxyCommand=x", "a b", "x;id", ""] {
            assert!(!valid_host(h), "{h}");
        }
        assert!(valid_host("pve.example.org"));
        assert!(valid_host("fe80::1"));
        assert!(!valid_user("-l"));
        assert!(!valid_user("a;b"));
    }

    #[test]
    fn ssh_failures_are_told_apart() {
        let t = || "root@h".to_string();
        assert!(matches!(
            connect_error(
                t(),
                "ssh: connect to host h port 22: Connection refused\r\n".into()
            ),
            SshError::Refused { .. }
        ));
        assert!(matches!(
            connect_error(
                t(),
                "ssh: connect to host 192.0.2.1 port 22: Connection timed out\r\n".into()
            ),
            SshError::ConnectTimeout { .. }
        ));
        assert!(matches!(
            connect_error(t(), "root@h: Permission denied (publickey).\r\n".into()),
            SshError::AuthFailed { .. }
        ));
        assert!(matches!(
            connect_error(t(), "No ED25519 host key is known for [127.0.0.1]:2299 and you have requested strict checking.\r\nHost key verification failed.\r\n".into()),
            SshError::HostKeyUnknown { .. }
        ));
        assert!(matches!(
            connect_error(t(), "@@@@@@@@@@@\r\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\nHost key verification failed.\r\n".into()),
            SshError::HostKeyChanged { .. }
        ));
    }

    #[test]
    fn fingerprints_match_ssh_keygen() {
        // ssh-keygen -lf of this key prints this fingerprint.
        assert_eq!(
            fingerprint("AAAAC3NzaC1lZDI1NTE5AAAAIOHz+U0YtjINc54dZiJNclfmEFifF7RXCFlNlTbuZBji")
                .as_deref(),
            Some("SHA256:wEPu5zkkhaJZhOM5BFhVJnRbJC7OEuRKz/lt2XCrN8I")
        );
    }
}
