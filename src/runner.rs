//! The one way this tool runs another program: the program is resolved
//! (a path baked in at build time by the Nix package, else PATH), the argv is
//! logged when asked (`PVE_LOG=1` or `-v`), a timeout applies, stdin can
//! carry data, and a failure keeps the child's stderr.
//!
//! Secrets never go in argv: pass them through [`Cmd::secret_env`] or
//! [`Cmd::stdin`]; neither is ever logged or put into an error.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// External programs, each with where the Nix package bakes its path in
/// and how to get it when it is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Ssh,
    SshKeygen,
    SshKeyscan,
    Tofu,
    Sops,
    NixosRebuild,
    Nix,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Ssh => "ssh",
            Tool::SshKeygen => "ssh-keygen",
            Tool::SshKeyscan => "ssh-keyscan",
            Tool::Tofu => "tofu",
            Tool::Sops => "sops",
            Tool::NixosRebuild => "nixos-rebuild",
            Tool::Nix => "nix",
        }
    }

    /// The store path set by the Nix derivation at build time, if any.
    fn baked(self) -> Option<&'static str> {
        match self {
            Tool::Ssh => option_env!("PVE_SSH"),
            Tool::SshKeygen => option_env!("PVE_SSH_KEYGEN"),
            Tool::SshKeyscan => option_env!("PVE_SSH_KEYSCAN"),
            Tool::Tofu => option_env!("PVE_TOFU"),
            Tool::Sops => option_env!("PVE_SOPS"),
            Tool::NixosRebuild => option_env!("PVE_NIXOS_REBUILD"),
            Tool::Nix => option_env!("PVE_NIX"),
        }
    }

    pub fn install_hint(self) -> &'static str {
        match self {
            Tool::Ssh | Tool::SshKeygen | Tool::SshKeyscan => "install OpenSSH (`apt install openssh-client`, or `nix shell nixpkgs#openssh`)",
            Tool::Tofu => "`nix run .#tofu-plan` brings OpenTofu, or install it (`nix shell nixpkgs#opentofu`)",
            Tool::Sops => "`nix develop` brings sops, or `nix shell nixpkgs#sops`",
            Tool::NixosRebuild => "run from NixOS, or `nix shell nixpkgs#nixos-rebuild`",
            Tool::Nix => "install Nix (https://nixos.org/download)",
        }
    }

    /// The program to run: an override from the environment
    /// (`PVE_TOOL_<NAME>`, used by tests and unusual setups), the baked
    /// store path when it exists, else the bare name looked up on PATH.
    pub fn program(self) -> PathBuf {
        let var = format!("PVE_TOOL_{}", self.name().to_uppercase().replace('-', "_"));
        if let Some(p) = std::env::var_os(var) {
            return PathBuf::from(p);
        }
        match self.baked() {
            Some(p) if std::path::Path::new(p).exists() => PathBuf::from(p),
            _ => PathBuf::from(self.name()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("`{program}` was not found")]
    Missing { program: String, hint: &'static str },
    #[error("`{program}` did not finish within {}s", after.as_secs())]
    Timeout { program: String, after: Duration },
    #[error("`{program}` failed ({status}){}", stderr_tail(stderr))]
    Failed {
        program: String,
        status: String,
        code: Option<i32>,
        stdout: String,
        stderr: String,
    },
    #[error("cannot run `{program}`: {source}")]
    Io {
        program: String,
        source: std::io::Error,
    },
}

impl RunError {
    pub fn help(&self) -> Option<String> {
        match self {
            RunError::Missing { hint, .. } => Some(hint.to_string()),
            _ => None,
        }
    }
}

fn stderr_tail(stderr: &str) -> String {
    let t = stderr.trim();
    if t.is_empty() {
        String::new()
    } else {
        let lines: Vec<&str> = t.lines().collect();
        let start = lines.len().saturating_sub(12);
        format!(":\n{}", lines[start..].join("\n"))
    }
}

#[derive(Debug, Clone)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub code: Option<i32>,
}

/// A command to run. Built with plain arguments only; secrets travel in
/// the environment or on stdin.
#[derive(Debug, Clone)]
pub struct Cmd {
    tool_name: String,
    program: PathBuf,
    hint: &'static str,
    args: Vec<String>,
    env: Vec<(String, String)>,
    secret_env: Vec<(String, String)>,
    /// Names of [`SECRET_VARS`] this child may inherit from pve's own
    /// environment.
    pass_env: Vec<String>,
    stdin: Option<Vec<u8>>,
    cwd: Option<PathBuf>,
    timeout: Duration,
    inherit_stdio: bool,
    /// Output shown live and kept ([`Cmd::tee`]).
    tee: bool,
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Secrets pve may find in its own environment. No child inherits them: a
/// command that needs one says so ([`Cmd::secret_env`], [`Cmd::pass_env`]),
/// so ssh (and through a user's `SendEnv`, the VMs), nixos-rebuild and
/// `tofu init` / `output` never see the API token, the Tailscale client
/// secret or the sops age identity.
pub const SECRET_VARS: &[&str] = &[
    "PROXMOX_VE_API_TOKEN",
    "PROXMOX_VE_PASSWORD",
    "TS_OAUTH_CLIENT_SECRET",
    "TS_AUTHKEY",
    "TS_API_KEY",
    "SOPS_AGE_KEY",
    "SOPS_AGE_KEY_FILE",
    "SOPS_AGE_KEY_CMD",
    "SOPS_AGE_SSH_PRIVATE_KEY_FILE",
];

impl Cmd {
    pub fn new(tool: Tool) -> Self {
        Cmd {
            tool_name: tool.name().to_string(),
            program: tool.program(),
            hint: tool.install_hint(),
            args: Vec::new(),
            env: Vec::new(),
            secret_env: Vec::new(),
            pass_env: Vec::new(),
            stdin: None,
            cwd: None,
            timeout: DEFAULT_TIMEOUT,
            inherit_stdio: false,
            tee: false,
        }
    }

    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }
    pub fn args<I, S>(mut self, a: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }
    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
    /// An environment variable whose value is never logged.
    pub fn secret_env(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.secret_env.push((k.into(), v.into()));
        self
    }
    /// Lets the child inherit `name`, one of [`SECRET_VARS`], from pve's
    /// environment (sops reads its age identity from there).
    pub fn pass_env(mut self, name: &str) -> Self {
        self.pass_env.push(name.to_string());
        self
    }
    /// Data written to the child's stdin (never logged).
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
    /// Let the child use the terminal (interactive prompts, live output).
    pub fn interactive(mut self) -> Self {
        self.inherit_stdio = true;
        self
    }

    /// Like [`Cmd::interactive`] for what the user sees (the child reads
    /// the terminal, its output appears as it comes), but a copy of both
    /// streams is kept in the [`Output`] (its last [`TEE_KEEP_BYTES`]), so
    /// pve can recognise a failure and add advice (a held state lock).
    pub fn tee(mut self) -> Self {
        self.inherit_stdio = true;
        self.tee = true;
        self
    }

    pub fn argv(&self) -> &[String] {
        &self.args
    }

    /// The command line as logged: program and arguments, each quoted as a
    /// shell would need; environment variable names only.
    pub fn display(&self) -> String {
        let mut parts: Vec<String> = self
            .env
            .iter()
            .map(|(k, _)| format!("{k}=…"))
            .chain(
                self.secret_env
                    .iter()
                    .map(|(k, _)| format!("{k}=<redacted>")),
            )
            .collect();
        parts.push(crate::shell::quote(&self.program.to_string_lossy()));
        parts.extend(self.args.iter().map(|a| crate::shell::quote(a)));
        parts.join(" ")
    }

    /// Runs to completion; a non-zero exit is [`RunError::Failed`].
    pub fn run(&self) -> Result<Output, RunError> {
        let out = self.run_unchecked()?;
        if out.code == Some(0) {
            Ok(out)
        } else {
            Err(RunError::Failed {
                program: self.tool_name.clone(),
                status: out
                    .code
                    .map_or("killed by a signal".into(), |c| format!("exit code {c}")),
                code: out.code,
                stdout: out.stdout,
                stderr: out.stderr,
            })
        }
    }

    /// Runs to completion and returns the output whatever the exit code.
    pub fn run_unchecked(&self) -> Result<Output, RunError> {
        log_command(self);
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        for k in SECRET_VARS
            .iter()
            .filter(|k| !self.pass_env.iter().any(|p| p == *k))
        {
            cmd.env_remove(k);
        }
        for (k, v) in self.env.iter().chain(self.secret_env.iter()) {
            cmd.env(k, v);
        }
        if let Some(d) = &self.cwd {
            cmd.current_dir(d);
        }
        if self.inherit_stdio {
            cmd.stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::inherit()
            });
            if self.tee {
                cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            }
        } else {
            cmd.stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        }
        let mut child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => RunError::Missing {
                program: self.tool_name.clone(),
                hint: self.hint,
            },
            _ => RunError::Io {
                program: self.tool_name.clone(),
                source: e,
            },
        })?;
        if let (Some(data), Some(mut pipe)) = (self.stdin.clone(), child.stdin.take()) {
            std::thread::spawn(move || {
                let _ = pipe.write_all(&data);
            });
        }
        let (out_reader, err_reader) = if self.tee {
            (
                child
                    .stdout
                    .take()
                    .map(|r| spawn_tee(r, || Box::new(std::io::stdout()))),
                child
                    .stderr
                    .take()
                    .map(|r| spawn_tee(r, || Box::new(std::io::stderr()))),
            )
        } else {
            (
                child.stdout.take().map(spawn_reader),
                child.stderr.take().map(spawn_reader),
            )
        };
        let start = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if start.elapsed() >= self.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(RunError::Timeout {
                        program: self.tool_name.clone(),
                        after: self.timeout,
                    });
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => {
                    return Err(RunError::Io {
                        program: self.tool_name.clone(),
                        source: e,
                    })
                }
            }
        };
        let join = |h: Option<std::thread::JoinHandle<Option<String>>>| match h {
            Some(h) => h.join().ok().flatten().ok_or_else(|| RunError::Io {
                program: self.tool_name.clone(),
                source: crate::fsutil::too_large(MAX_OUTPUT_BYTES),
            }),
            None => Ok(String::new()),
        };
        Ok(Output {
            stdout: join(out_reader)?,
            stderr: join(err_reader)?,
            code: status.code(),
        })
    }
}

/// The most a child may print on stdout or stderr. Real outputs (a
/// `qm config`, a plan, a hardware-configuration.nix) are kilobytes; a
/// remote that prints without end must not fill our memory.
pub const MAX_OUTPUT_BYTES: u64 = 64 * 1024 * 1024;

/// Reads a child's stream up to [`MAX_OUTPUT_BYTES`]; past that, the rest
/// is read and dropped (so the child is not blocked) and `None` returned.
fn spawn_reader<R: Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<Option<String>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = (&mut r).take(MAX_OUTPUT_BYTES + 1).read_to_end(&mut buf);
        if buf.len() as u64 > MAX_OUTPUT_BYTES {
            let _ = std::io::copy(&mut r, &mut std::io::sink());
            return None;
        }
        Some(String::from_utf8_lossy(&buf).into_owned())
    })
}

/// How much of a teed stream is kept: the end of it, where tools print
/// their errors.
pub const TEE_KEEP_BYTES: usize = 1024 * 1024;

/// Passes a child's stream on to pve's own stream as it comes (the same
/// bytes the terminal would have had from [`Cmd::interactive`]) and keeps
/// its last [`TEE_KEEP_BYTES`].
fn spawn_tee<R: Read + Send + 'static>(
    mut r: R,
    sink: fn() -> Box<dyn Write>,
) -> std::thread::JoinHandle<Option<String>> {
    std::thread::spawn(move || {
        let mut sink = sink();
        let mut kept: Vec<u8> = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = match r.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            // A closed terminal must not stop the child: keep reading.
            let _ = sink.write_all(&chunk[..n]).and_then(|()| sink.flush());
            kept.extend_from_slice(&chunk[..n]);
            if kept.len() > 2 * TEE_KEEP_BYTES {
                kept.drain(..kept.len() - TEE_KEEP_BYTES);
            }
        }
        Some(String::from_utf8_lossy(&kept).into_owned())
    })
}

/// The command log: with `PVE_LOG=1`, every command is shown on stderr
/// as `+ program args…` (like `sh -x`) before it runs, whichever part of
/// pve runs it. The one print in the library besides [`crate::ui`]: it
/// is a debugging trace of the process, not output of a command, and it
/// must also cover commands run deep inside workflows and threads, where
/// no [`crate::report::Reporter`] is at hand. Secrets never appear
/// ([`Cmd::display`]).
fn log_command(cmd: &Cmd) {
    if log_enabled() {
        eprintln!("+ {}", cmd.display());
    }
}

/// Whether to print each command before running it (`PVE_LOG=1`).
pub fn log_enabled() -> bool {
    std::env::var_os("PVE_LOG").is_some_and(|v| !v.is_empty() && v != "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_the_logged_command() {
        let c = Cmd::new(Tool::Tofu)
            .arg("apply")
            .arg("plan file")
            .secret_env("PROXMOX_VE_API_TOKEN", "root@pam!t=s3cret")
            .stdin("tskey-auth-s3cret");
        let shown = c.display();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("PROXMOX_VE_API_TOKEN=<redacted>"));
        assert!(shown.ends_with("apply 'plan file'"), "{shown}");
    }

    #[test]
    fn a_missing_program_is_named_with_how_to_get_it() {
        let mut c = Cmd::new(Tool::Sops);
        c.program = PathBuf::from("/nonexistent/sops");
        match c.run() {
            Err(e @ RunError::Missing { .. }) => {
                assert_eq!(e.to_string(), "`sops` was not found");
                assert!(e.help().is_some_and(|h| h.contains("sops")));
            }
            other => panic!("expected Missing, got {other:?}"),
        }
    }
}
