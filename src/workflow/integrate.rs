//! `pve integrate <name> [ip] [vmid]`: brings a freshly cloned VM into the
//! fleet, as ordered, idempotent steps with a journal (`vms/.journal/`):
//!
//!  1. resolve the IP (argument, `tofu output`, or the guest agent);
//!  2. pin the VM's host key, read through the guest agent over the
//!     authenticated Proxmox connection; without an agent, only a
//!     fingerprint the user confirmed (`--accept-host-key`, or a prompt on a
//!     terminal) — never blind trust. It goes into `vms/known_hosts` under the
//!     host's names, and every later SSH connection looks it up there
//!     (`HostKeyAlias`), so a DHCP address change does not matter;
//!  3. wait for SSH (re-resolving the address through the guest agent);
//!  4. `hardware-configuration.nix` from `nixos-generate-config
//!     --show-hardware-config` (kept when present unless forced);
//!  5. `nixos-rebuild switch --flake .#<name> --target-host`, watching the
//!     address: when it goes away (a rebuild restarts networking, DHCP hands
//!     out a new address) the guest agent says where the VM went, and the
//!     switch is confirmed there;
//!  6. Tailscale: a one-off tagged key minted with OAuth client credentials,
//!     `tailscale up` with the key on stdin (skipped when already enrolled);
//!  7. read `/etc/ssh/ssh_host_ed25519_key.pub` and compare it with the key
//!     pinned at first contact;
//!  8. publicKey into hosts.nix (format-preserving editor);
//!  9. re-render `.sops.yaml` and `vms/known_hosts`;
//! 10. `sops updatekeys` on every secret file, in parallel, each reported;
//! 11. a summary with next steps.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{AppError, Result};
use crate::fleet::{self, Host, Loaded};
use crate::remote::proxmox::{IpSource, Proxmox};
use crate::remote::ssh::{self, Endpoint, Ssh, SshError};
use crate::runner::{Cmd, RunError, Tool};
use crate::workflow::{Journal, Step};

pub const WORKFLOW: &str = "integrate";
/// Where the Tailscale OAuth client credentials are looked for (sops
/// encrypted) when the environment has none.
pub const DEFAULT_TS_CREDENTIALS: &str = "secrets/tailscale.yaml";

const HOST_KEY_FILE: &str = "/etc/ssh/ssh_host_ed25519_key.pub";
const REMOTE_TIMEOUT: Duration = Duration::from_secs(120);

/// What the user asked for (flags converted and validated once).
#[derive(Debug, Clone)]
pub struct Options {
    pub name: String,
    pub ip: Option<IpAddr>,
    pub vmid: Option<u32>,
    /// The login on the VM; other than root, commands that need root go
    /// through `sudo -n` (and nixos-rebuild gets `--use-remote-sudo`).
    pub user: String,
    pub port: u16,
    pub identity: Option<PathBuf>,
    /// `SHA256:...` the user compared out of band.
    pub accept_host_key: Option<String>,
    pub force_hardware_config: bool,
    pub skip_tailscale: bool,
    pub tailscale_tags: Vec<String>,
    /// The sops-encrypted credentials file (relative to the fleet root).
    pub tailscale_credentials: PathBuf,
    /// How long to wait for SSH to answer.
    pub ssh_wait: Duration,
    pub rebuild_timeout: Duration,
    /// How often the address is checked during the rebuild.
    pub watch_interval: Duration,
    /// Ask on the terminal when the fingerprint needs confirming.
    pub interactive: bool,
}

impl Options {
    pub fn new(name: impl Into<String>) -> Options {
        Options {
            name: name.into(),
            ip: None,
            vmid: None,
            user: "root".into(),
            port: 22,
            identity: None,
            accept_host_key: None,
            force_hardware_config: false,
            skip_tailscale: false,
            tailscale_tags: vec!["tag:vm".into()],
            tailscale_credentials: PathBuf::from(DEFAULT_TS_CREDENTIALS),
            ssh_wait: Duration::from_secs(300),
            rebuild_timeout: Duration::from_secs(2 * 3600),
            watch_interval: Duration::from_secs(2),
            interactive: false,
        }
    }
}

/// The state the steps share.
pub struct Integrate {
    pub opts: Options,
    pub loaded: Loaded,
    proxmox: Option<Proxmox>,
    /// Filled by the last step: what to do next.
    pub summary: String,
}

impl Integrate {
    /// Checks the host exists in hosts.nix.
    pub fn new(opts: Options, loaded: Loaded) -> Result<Integrate> {
        crate::remote::proxmox::check_name(&opts.name)?;
        if !ssh::valid_user(&opts.user) {
            return Err(AppError::input(format!(
                "`{}` is not a valid user name",
                opts.user
            )));
        }
        let c = Integrate {
            opts,
            loaded,
            proxmox: None,
            summary: String::new(),
        };
        c.refuse_readonly()?;
        Ok(c)
    }

    /// A readonly VM is never integrated (it would be contacted, rebuilt
    /// and enrolled), as `remove` and `vm stop` refuse it.
    fn refuse_readonly(&self) -> Result<()> {
        let name = &self.opts.name;
        let marked = self.host()?.proxmox.as_ref().is_some_and(|p| p.readonly);
        let listed = match self.vmid() {
            Some(v) => crate::remote::proxmox::readonly_vmids(&self.loaded.fleet)?.contains(&v),
            None => false,
        };
        if marked || listed {
            return Err(AppError::input(format!(
                "`{name}` is a readonly VM; refusing to integrate it"
            ))
            .with_help("it is marked `proxmox.readonly = true` in hosts.nix or listed in PROXMOX_READONLY_VMIDS; change that first if you really mean it"));
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.loaded.root_dir
    }

    pub fn host(&self) -> Result<&Host> {
        let name = &self.opts.name;
        self.loaded
            .fleet
            .hosts
            .iter()
            .find(|h| &h.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self
                    .loaded
                    .fleet
                    .hosts
                    .iter()
                    .map(|h| h.name.as_str())
                    .collect();
                let e = AppError::input(format!(
                    "there is no host `{name}` in {}",
                    self.loaded.file.path.display()
                ));
                match crate::diag::did_you_mean(name, names.iter().copied()) {
                    Some(s) => e.with_help(format!("did you mean `{s}`?")),
                    None => e.with_help("add it first (`pve new`, or `pve host add`)"),
                }
            })
    }

    /// The names the host's key is pinned under (`sshAlias`, hostname), as
    /// `pve render` writes them into vms/known_hosts.
    fn key_names(&self) -> Result<Vec<String>> {
        let h = self.host()?;
        let mut names = Vec::new();
        if let Some(a) = &h.ssh_alias {
            names.push(a.value.clone());
        }
        if !names.iter().any(|n| n == h.hostname()) {
            names.push(h.hostname().to_string());
        }
        for n in &names {
            if !ssh::valid_host(n) {
                return Err(AppError::input(format!(
                    "`{n}` (sshAlias or hostname of {}) is not a usable host name",
                    self.opts.name
                )));
            }
        }
        Ok(names)
    }

    /// The name every SSH connection to the VM looks its key up under.
    fn alias(&self) -> Result<String> {
        Ok(self.host()?.hostname().to_string())
    }

    fn vmid(&self) -> Option<u32> {
        self.opts.vmid.or_else(|| {
            self.host()
                .ok()?
                .proxmox
                .as_ref()?
                .vmid
                .as_ref()
                .and_then(|v| u32::try_from(v.value).ok())
        })
    }

    fn require_vmid(&self) -> Result<u32> {
        self.vmid().ok_or_else(|| {
            AppError::input(format!(
                "no VMID for {}: hosts.nix has no `proxmox.vmid` for it",
                self.opts.name
            ))
            .with_help(format!(
                "give the VMID (`pve integrate {} <ip> <vmid>`) or the IP",
                self.opts.name
            ))
        })
    }

    fn proxmox(&mut self) -> Result<&Proxmox> {
        if self.proxmox.is_none() {
            self.proxmox = Some(Proxmox::from_loaded(&self.loaded)?);
        }
        self.proxmox
            .as_ref()
            .ok_or_else(|| AppError::external("no Proxmox connection"))
    }

    fn known_hosts(&self) -> PathBuf {
        self.root().join(crate::render::KNOWN_HOSTS_PATH)
    }

    fn ssh(&self, ip: IpAddr) -> Result<Ssh> {
        let s = Ssh::new(
            Endpoint {
                host: ip.to_string(),
                user: self.opts.user.clone(),
                port: Some(self.opts.port),
                identity: self.opts.identity.clone(),
            },
            ssh::Options {
                known_hosts: vec![self.known_hosts()],
                connect_timeout: Duration::from_secs(10),
                reuse: true,
            },
        )?;
        Ok(s.with_host_key_alias(&self.alias()?)?)
    }

    /// `sudo -n` in front of commands that need root, for a non-root login.
    fn as_root(&self, argv: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        if self.opts.user != "root" {
            v.extend(["sudo".into(), "-n".into()]);
        }
        v.extend(argv.iter().map(|s| s.to_string()));
        v
    }

    /// The address from the guest agent (None without a VMID or agent).
    fn agent_ip(&mut self) -> Option<IpAddr> {
        let vmid = self.vmid()?;
        let px = self.proxmox().ok()?;
        match px.get_ip(vmid) {
            Ok(r) if r.source == IpSource::GuestAgent => Some(r.ip),
            _ => None,
        }
    }

    /// `ssh` options for nixos-rebuild (`NIX_SSHOPTS`): the same pinned
    /// known_hosts, strict checking. Every value is validated again here,
    /// whatever ran before (a resumed run reads hosts.nix afresh).
    fn nix_sshopts(&self) -> Result<String> {
        let alias = self.alias()?;
        if !crate::fleet::HostName::is_valid(&alias) {
            return Err(AppError::input(format!(
                "the hostname of {} ({alias:?}) is not a DNS label; refusing to pass it to ssh",
                self.opts.name
            ))
            .with_help("fix it in hosts.nix (`pve check` shows where)"));
        }
        if !ssh::valid_user(&self.opts.user) {
            return Err(AppError::input(format!(
                "`{}` is not a valid user name",
                self.opts.user
            )));
        }
        let kh = self.known_hosts().to_string_lossy().into_owned();
        let mut o = vec![
            ("UserKnownHostsFile", kh),
            ("StrictHostKeyChecking", "yes".into()),
            ("HostKeyAlias", alias),
            ("UpdateHostKeys", "no".into()),
            ("CheckHostIP", "no".into()),
            ("BatchMode", "yes".into()),
            ("ConnectTimeout", "10".into()),
            ("ServerAliveInterval", "5".into()),
            ("ServerAliveCountMax", "3".into()),
            ("Port", self.opts.port.to_string()),
        ];
        if let Some(id) = &self.opts.identity {
            o.push(("IdentityFile", id.to_string_lossy().into_owned()));
            o.push(("IdentitiesOnly", "yes".into()));
        }
        sshopts_line(&o)
    }

    fn rebuild_cmd(&self, ip: IpAddr) -> Result<Cmd> {
        let mut c = Cmd::new(Tool::NixosRebuild)
            .args(["switch", "--flake"])
            .arg(format!(".#{}", self.opts.name))
            .arg("--target-host")
            .arg(format!("{}@{ip}", self.opts.user));
        if self.opts.user != "root" {
            c = c.arg("--use-remote-sudo");
        }
        Ok(c.env("NIX_SSHOPTS", self.nix_sshopts()?)
            .cwd(self.root())
            .timeout(self.opts.rebuild_timeout))
    }

    fn hardware_path(&self) -> Result<PathBuf> {
        let h = self.host()?;
        let dir = match &h.configuration_file {
            Some(f) => f
                .value
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| self.root().join("hosts").join(&h.name)),
            None => self.root().join("hosts").join(&h.name),
        };
        Ok(dir.join("hardware-configuration.nix"))
    }

    fn show(&self, p: &Path) -> String {
        p.strip_prefix(self.root())
            .unwrap_or(p)
            .display()
            .to_string()
    }
}

/// The steps, in order.
pub fn steps() -> Vec<Step<Integrate>> {
    vec![
        Step {
            name: "resolve-ip",
            title: "Resolve the VM's IP address",
            slow: false,
            run: resolve_ip,
        },
        Step {
            name: "pin-host-key",
            title: "Pin the VM's SSH host key",
            slow: false,
            run: pin_host_key,
        },
        Step {
            name: "wait-ssh",
            title: "Wait for SSH",
            slow: true,
            run: wait_ssh,
        },
        Step {
            name: "hardware-config",
            title: "hardware-configuration.nix",
            slow: false,
            run: hardware_config,
        },
        Step {
            name: "rebuild",
            title: "nixos-rebuild switch",
            slow: true,
            run: rebuild,
        },
        Step {
            name: "tailscale",
            title: "Enroll in Tailscale",
            slow: true,
            run: tailscale,
        },
        Step {
            name: "verify-host-key",
            title: "Verify the host key",
            slow: false,
            run: verify_host_key,
        },
        Step {
            name: "public-key",
            title: "Write publicKey into hosts.nix",
            slow: false,
            run: public_key,
        },
        Step {
            name: "render",
            title: "Re-render .sops.yaml, known_hosts",
            slow: false,
            run: render,
        },
        Step {
            name: "rekey",
            title: "Re-key secrets (sops updatekeys)",
            slow: true,
            run: rekey,
        },
        Step {
            name: "summary",
            title: "Summary",
            slow: false,
            run: summary,
        },
    ]
}

fn fact_ip(j: &Journal) -> Result<IpAddr> {
    j.fact("ip").and_then(|s| s.parse().ok()).ok_or_else(|| {
        AppError::input(format!(
            "the journal {} has no IP address",
            Journal::path_for(Path::new("."), WORKFLOW, &j.host).display()
        ))
        .with_help("delete the journal to start from the first step")
    })
}

fn fact_key(j: &Journal) -> Result<String> {
    j.fact("host_key").map(str::to_string).ok_or_else(|| {
        AppError::input("the journal has no pinned host key")
            .with_help("delete the journal to start from the first step")
    })
}

fn fingerprint_of(key: &str) -> String {
    key.split_whitespace()
        .nth(1)
        .and_then(ssh::fingerprint)
        .unwrap_or_else(|| "(unreadable key)".into())
}

/// `-o Key=value ...` for `NIX_SSHOPTS`. nixos-rebuild splits the variable
/// on whitespace (the shell script) or shell-style (nixos-rebuild-ng, Nix's
/// own ssh stores): a value is accepted only when quoting it changes
/// nothing, so both readers see exactly these arguments. `%` is refused
/// too: ssh expands `%` tokens in file names.
fn sshopts_line(options: &[(&str, String)]) -> Result<String> {
    let mut words = Vec::with_capacity(options.len() * 2);
    for (key, value) in options {
        let word = format!("{key}={value}");
        if value.is_empty() || value.contains('%') || crate::shell::quote(&word) != word {
            return Err(AppError::input(format!(
                "the ssh option {key}={value:?} cannot be passed through NIX_SSHOPTS (spaces, quotes, `%` or shell characters)"
            ))
            .with_help("move the fleet (or the key) to a path of letters, digits and `-_./`, and keep hosts.nix values to DNS labels"));
        }
        words.push("-o".to_string());
        words.push(word);
    }
    Ok(crate::shell::join(&words))
}

/// `SHA256:...` whether or not the user typed the prefix.
fn normalise_fingerprint(fp: &str) -> String {
    let fp = fp.trim();
    if fp.starts_with("SHA256:") {
        fp.to_string()
    } else {
        format!("SHA256:{fp}")
    }
}

/// `ssh-ed25519 AAAA...` of a valid public key line, re-encoded from the
/// key itself: leading fields and the comment never come along.
fn normalise_key(line: &str) -> Option<String> {
    crate::keys::normalise_ed25519(line).ok()
}

// ------------------------------------------------------------------ steps

fn resolve_ip(c: &mut Integrate, j: &mut Journal) -> Result<String> {
    let (ip, source) = if let Some(ip) = c.opts.ip {
        (ip, "the command line".to_string())
    } else if let Some(ip) = tofu_ip(c) {
        (ip, "`tofu output`".to_string())
    } else {
        let vmid = c.require_vmid()?;
        let r = c.proxmox()?.get_ip(vmid)?;
        let src = match r.source {
            IpSource::GuestAgent => "the guest agent",
            IpSource::NeighbourTable => "the Proxmox host's neighbour table",
        };
        (r.ip, format!("{src} of VM {vmid}"))
    };
    j.set_fact("ip", ip.to_string())?;
    Ok(format!("{ip} (from {source})"))
}

/// `<name>_ip` from `tofu output -json`, when OpenTofu's folder is set up
/// and the output has a value; anything else falls through.
fn tofu_ip(c: &Integrate) -> Option<IpAddr> {
    let dir = crate::tofu::workdir(c.root()).ok()?;
    let tofu = crate::tofu::Tofu::new(dir, None);
    if !tofu.is_initialised() {
        return None;
    }
    let out = tofu
        .output(true, Some(&format!("{}_ip", c.opts.name)))
        .ok()?;
    let v: serde_json::Value = serde_json::from_str(out.trim()).ok()?;
    v.as_str()?.parse().ok()
}

fn pin_host_key(c: &mut Integrate, j: &mut Journal) -> Result<String> {
    let ip = fact_ip(j)?;
    let from_agent = match c.vmid() {
        Some(vmid) => c.proxmox().and_then(|p| p.host_key(vmid)),
        None => Err(AppError::input("no VMID, so no guest agent to ask")),
    };
    let (key, source) = match from_agent {
        Ok(k) => {
            if let Some(fp) = &c.opts.accept_host_key {
                let got = fingerprint_of(&k);
                if normalise_fingerprint(fp) != got {
                    return Err(AppError::input(format!(
                        "the guest agent of {} reports the host key {got}, not the {} you accepted; refusing to trust either",
                        c.opts.name,
                        normalise_fingerprint(fp)
                    ))
                    .with_help("compare again on the VM console (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`); you may be looking at another VM"));
                }
            }
            (k, "read through the guest agent".to_string())
        }
        Err(agent_err) => (
            confirmed_scan(c, ip, &agent_err)?,
            "confirmed by you".into(),
        ),
    };
    let names = c.key_names()?;
    crate::workflow::key_owner::refuse_shared_key(&c.loaded, &c.opts.name, &names, &key)?;
    write_pin(&c.known_hosts(), &names, &key)?;
    j.set_fact("host_key", &key)?;
    Ok(format!(
        "{} ({source}), pinned in {} as {}",
        fingerprint_of(&key),
        crate::render::KNOWN_HOSTS_PATH,
        names.join(",")
    ))
}

/// Without the agent: the key the SSH server shows, only if the user
/// confirmed its fingerprint.
fn confirmed_scan(c: &Integrate, ip: IpAddr, agent_err: &AppError) -> Result<String> {
    let endpoint = Endpoint {
        host: ip.to_string(),
        user: c.opts.user.clone(),
        port: Some(c.opts.port),
        identity: None,
    };
    let keys = ssh::scan(&endpoint, Duration::from_secs(10))?;
    let k = keys
        .iter()
        .find(|k| k.key_type == "ssh-ed25519")
        .ok_or_else(|| AppError::external(format!("{ip} offers no ssh-ed25519 host key")))?;
    let key = normalise_key(&format!(
        "ssh-ed25519 {}",
        k.line.split_whitespace().nth(2).unwrap_or("")
    ))
    .ok_or_else(|| AppError::external(format!("{ip} offers an unreadable host key")))?;
    let why = format!("the guest agent could not give the VM's host key ({agent_err})");
    match &c.opts.accept_host_key {
        Some(fp) => {
            let want = normalise_fingerprint(fp);
            if want == k.fingerprint {
                Ok(key)
            } else {
                Err(AppError::input(format!(
                    "the SSH server at {ip} shows the host key {}, not the {want} you accepted; refusing to trust it",
                    k.fingerprint
                ))
                .with_help("compare again on the VM console (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`); someone may be intercepting the connection"))
            }
        }
        None if c.opts.interactive => {
            eprintln!("{why}.");
            eprintln!(
                "The SSH server at {ip} shows the ED25519 host key\n  {}\nCompare it with the VM console (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`).",
                k.fingerprint
            );
            eprint!("Is it the same? Type yes to trust it: ");
            let mut answer = String::new();
            std::io::stdin()
                .read_line(&mut answer)
                .map_err(|e| AppError::input(format!("cannot read the answer: {e}")))?;
            if answer.trim() == "yes" {
                Ok(key)
            } else {
                Err(AppError::input("the host key was not confirmed; nothing was trusted"))
            }
        }
        None => Err(AppError::input(format!(
            "{why}; the SSH server at {ip} shows the host key {}, which nobody has confirmed",
            k.fingerprint
        ))
        .with_help(format!(
            "compare it with the VM console (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`), then run again with `--accept-host-key {}`",
            k.fingerprint
        ))),
    }
}

/// Puts `names key` into vms/known_hosts in place of any line for those
/// names (the format `pve render` writes, so rendering later changes
/// nothing), atomically, under the repository lock.
fn write_pin(file: &Path, names: &[String], key: &str) -> Result<()> {
    let root = file
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| Path::new("."));
    let _lock = crate::fsutil::RepoLock::acquire(root, Duration::from_secs(30))?;
    let old = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(AppError::input(format!(
                "cannot read {}: {e}",
                file.display()
            )))
        }
    };
    let line = format!("{} {key}", names.join(","));
    let mut out = String::new();
    if old.is_empty() {
        out.push_str("# Generated by `pve render` from the publicKey of each host in hosts.nix.\n");
    }
    let mut placed = false;
    for l in old.lines() {
        let first = l.split_whitespace().next().unwrap_or("");
        let ours = !l.starts_with('#') && first.split(',').any(|n| names.iter().any(|m| m == n));
        if ours && !first.split(',').all(|n| names.iter().any(|m| m == n)) {
            // The line also names someone else: replacing it would delete
            // another machine's pin.
            return Err(AppError::input(format!(
                "{} pins `{first}`, which shares a name with {}; refusing to replace another host's line",
                file.display(),
                names.join(",")
            ))
            .with_help("every hostname and sshAlias must be unique (`pve check`); fix hosts.nix and run `pve render`"));
        }
        if ours {
            if !placed {
                out.push_str(&line);
                out.push('\n');
                placed = true;
            }
            continue;
        }
        out.push_str(l);
        out.push('\n');
    }
    if !placed {
        out.push_str(&line);
        out.push('\n');
    }
    if out == old {
        return Ok(());
    }
    let existed = file.exists();
    crate::fsutil::write_atomic(file, out.as_bytes())?;
    if !existed {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644));
    }
    Ok(())
}

fn ssh_banner(ip: IpAddr, port: u16, timeout: Duration) -> bool {
    use std::io::Read as _;
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&(ip, port).into(), timeout) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(timeout));
    let mut b = [0u8; 4];
    s.read_exact(&mut b).is_ok() && &b == b"SSH-"
}

/// A refusal that names the pinned key.
fn host_key_refused(c: &Integrate, ip: IpAddr, j: &Journal, e: &SshError) -> AppError {
    let pinned = j.fact("host_key").map(fingerprint_of).unwrap_or_default();
    AppError::external(format!(
        "the SSH server at {ip} does not present the host key pinned for {} ({pinned}); refusing to connect\n{e}",
        c.opts.name
    ))
    .with_help(format!(
        "someone may be intercepting the connection, or another machine has this address. Check the VM on its console; if the VM was reinstalled, delete {} and run `pve integrate {}` again",
        Journal::path_for(Path::new(""), WORKFLOW, &c.opts.name).display(),
        c.opts.name
    ))
}

/// Waits until `ip` (or where the guest agent says the VM went) answers
/// SSH with the pinned key; returns the address.
fn wait_for_ssh(c: &mut Integrate, j: &mut Journal, mut ip: IpAddr) -> Result<IpAddr> {
    let deadline = Instant::now() + c.opts.ssh_wait;
    let mut last;
    loop {
        if ssh_banner(ip, c.opts.port, Duration::from_secs(3)) {
            match c
                .ssh(ip)?
                .run(&["true".to_string()], Duration::from_secs(60))
            {
                Ok(_) => return Ok(ip),
                Err(e @ (SshError::HostKeyChanged { .. } | SshError::HostKeyUnknown { .. })) => {
                    return Err(host_key_refused(c, ip, j, &e))
                }
                Err(e @ SshError::AuthFailed { .. }) => return Err(e.into()),
                Err(e) => last = e.to_string(),
            }
        } else {
            last = format!("{ip}:{} does not answer SSH", c.opts.port);
        }
        if let Some(now) = c.agent_ip() {
            if now != ip {
                eprintln!("note: the guest agent now reports {now} (was {ip})");
                ip = now;
                j.set_fact("ip", ip.to_string())?;
                continue;
            }
        }
        if Instant::now() >= deadline {
            return Err(AppError::external(format!(
                "{} did not answer SSH within {}s (last: {last})",
                c.opts.name,
                c.opts.ssh_wait.as_secs()
            ))
            .with_help(format!(
                "check that the VM is running and sshd is enabled; then `pve integrate {} --resume`",
                c.opts.name
            )));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn wait_ssh(c: &mut Integrate, j: &mut Journal) -> Result<String> {
    let before = fact_ip(j)?;
    let ip = wait_for_ssh(c, j, before)?;
    Ok(if ip == before {
        format!("{ip}:{} answers with the pinned key", c.opts.port)
    } else {
        format!(
            "{ip}:{} answers with the pinned key (moved from {before})",
            c.opts.port
        )
    })
}

fn hardware_config(c: &mut Integrate, j: &mut Journal) -> Result<String> {
    let path = c.hardware_path()?;
    let shown = c.show(&path);
    if path.exists() && !c.opts.force_hardware_config {
        return Ok(format!(
            "kept {shown} (--force-hardware-config generates it again)"
        ));
    }
    ensure_in_host_folder(c, &path)?;
    let ip = fact_ip(j)?;
    let out = c.ssh(ip)?.run(
        &[
            "nixos-generate-config".into(),
            "--show-hardware-config".into(),
        ],
        REMOTE_TIMEOUT,
    )?;
    let text = out.stdout;
    if let Some(why) = crate::workflow::hardware::module_problem(&text) {
        return Err(AppError::external(format!(
            "`nixos-generate-config --show-hardware-config` on {} printed no plain hardware module: {why}; nothing was written",
            c.opts.name
        ))
        .with_help("check the VM on its console; a generated hardware configuration is a plain attribute set"));
    }
    let old = std::fs::read_to_string(&path).ok();
    if old.as_deref() == Some(text.as_str()) {
        return Ok(format!("{shown} unchanged"));
    }
    if let Some(old) = &old {
        // A re-run (--force-hardware-config): show what the VM changed.
        let diff = similar::TextDiff::from_lines(old.as_str(), text.as_str())
            .unified_diff()
            .context_radius(2)
            .header(&format!("a/{shown}"), &format!("b/{shown}"))
            .to_string();
        eprint!("{diff}");
    }
    let existed = path.exists();
    crate::fsutil::write_atomic(&path, text.as_bytes())?;
    if !existed {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644));
    }
    Ok(format!("wrote {shown}"))
}

/// The VM's text goes only to `hosts/<name>/hardware-configuration.nix`
/// inside the fleet: never through a symlink, never elsewhere (a
/// `configurationFile` outside `hosts/<name>/` does not move it).
fn ensure_in_host_folder(c: &Integrate, path: &Path) -> Result<()> {
    let refuse = |why: &str| {
        AppError::input(format!(
            "refusing to write {}: {why}",
            path.display()
        ))
        .with_help(format!(
            "hardware-configuration.nix is written only as hosts/{}/hardware-configuration.nix, a plain file inside the fleet",
            c.opts.name
        ))
    };
    let want = c.root().join("hosts").join(&c.opts.name);
    let dir = path.parent().ok_or_else(|| refuse("it has no folder"))?;
    let same = match (dir.canonicalize(), want.canonicalize()) {
        (Ok(a), Ok(b)) => a == b && want.symlink_metadata().is_ok_and(|m| m.is_dir()),
        _ => false,
    };
    if !same {
        return Err(refuse(&format!("it is not in hosts/{}/", c.opts.name)));
    }
    if path.symlink_metadata().is_ok_and(|m| !m.is_file()) {
        return Err(refuse("it is a symlink or not a plain file"));
    }
    Ok(())
}

fn rebuild_failed(e: RunError) -> AppError {
    match e {
        RunError::Missing { .. } => e.into(),
        other => AppError::external(format!("nixos-rebuild switch failed: {other}")),
    }
}

fn rebuild(c: &mut Integrate, j: &mut Journal) -> Result<String> {
    let ip = fact_ip(j)?;
    let cmd = c.rebuild_cmd(ip)?;
    let worker = std::thread::spawn(move || cmd.run());
    // Watch the address while the switch runs: a restarted network may
    // hand the VM a new one.
    let mut misses = 0;
    let mut moved: Option<IpAddr> = None;
    while !worker.is_finished() {
        std::thread::sleep(c.opts.watch_interval);
        if worker.is_finished() || moved.is_some() {
            continue;
        }
        if ssh_banner(ip, c.opts.port, Duration::from_secs(2)) {
            misses = 0;
            continue;
        }
        misses += 1;
        if misses >= 2 {
            if let Some(now) = c.agent_ip().filter(|now| *now != ip) {
                eprintln!(
                    "note: {ip} went away during the switch; the guest agent now reports {now}"
                );
                moved = Some(now);
            }
        }
    }
    let result = worker
        .join()
        .map_err(|_| AppError::external("the nixos-rebuild runner stopped unexpectedly"))?;
    match result {
        Ok(_) => {
            if let Some(now) = moved {
                j.set_fact("ip", now.to_string())?;
                return Ok(format!(
                    "switched {} (the address moved from {ip} to {now})",
                    c.opts.name
                ));
            }
            Ok(format!("switched {} on {ip}", c.opts.name))
        }
        Err(e @ RunError::Missing { .. }) => Err(e.into()),
        Err(e) => {
            let now = moved.or_else(|| c.agent_ip().filter(|now| *now != ip));
            let Some(now) = now else {
                return Err(rebuild_failed(e));
            };
            // The switch most likely went through and took the address
            // with it: confirm it at the new address (switching to the
            // same configuration again changes nothing).
            j.set_fact("ip", now.to_string())?;
            eprintln!("note: the VM moved from {ip} to {now}; confirming the switch there");
            let now = wait_for_ssh(c, j, now)?;
            c.rebuild_cmd(now)?.run().map_err(rebuild_failed)?;
            Ok(format!(
                "switched {} (the address moved from {ip} to {now})",
                c.opts.name
            ))
        }
    }
}

fn tailscale(c: &mut Integrate, j: &mut Journal) -> Result<String> {
    if c.opts.skip_tailscale {
        return Ok("skipped (--skip-tailscale)".into());
    }
    let ip = fact_ip(j)?;
    let ssh = c.ssh(ip)?;
    let status = ssh.run_unchecked(
        &c.as_root(&["tailscale", "status", "--json"]),
        REMOTE_TIMEOUT,
    )?;
    if status.code == Some(127) {
        return Err(AppError::external(format!(
            "tailscale is not installed on {} ({})",
            c.opts.name,
            status.stderr.trim()
        ))
        .with_help(format!(
            "enable it in the host's configuration (`services.tailscale.enable = true;`), then `pve integrate {} --resume`; or pass --skip-tailscale",
            c.opts.name
        )));
    }
    if status.code == Some(0) {
        let state = serde_json::from_str::<serde_json::Value>(&status.stdout)
            .ok()
            .and_then(|v| v.get("BackendState")?.as_str().map(str::to_string));
        if state.as_deref() == Some("Running") {
            return Ok("already enrolled (tailscale status: Running)".into());
        }
    }
    let cfg = crate::render::sops::config_path(&c.loaded)
        .map(|p| c.root().join(p))
        .unwrap_or_else(|_| c.root().join(crate::secrets::DEFAULT_SOPS_YAML));
    let sops = crate::secrets::sops::Sops::new(cfg);
    let file = c.root().join(&c.opts.tailscale_credentials);
    let client = crate::tailscale::credentials(Some((&sops, &file)))?;
    let hostname = c.alias()?;
    let req = crate::tailscale::KeyRequest::for_host(&hostname, c.opts.tailscale_tags.clone());
    let key = crate::tailscale::Api::from_env().mint(&client, &req)?;
    let mut up = crate::tailscale::UpOptions::new(&hostname, c.opts.tailscale_tags.clone());
    up.sudo = c.opts.user != "root";
    let cmd = crate::tailscale::up_command(&key, &up);
    ssh.run_with_stdin(&cmd.argv, &cmd.stdin, REMOTE_TIMEOUT)?;
    Ok(format!(
        "enrolled as {hostname} ({}), with a one-off key",
        c.opts.tailscale_tags.join(",")
    ))
}

fn verify_host_key(c: &mut Integrate, j: &mut Journal) -> Result<String> {
    let ip = fact_ip(j)?;
    let pinned = fact_key(j)?;
    let out = match c
        .ssh(ip)?
        .run(&["cat".into(), HOST_KEY_FILE.into()], REMOTE_TIMEOUT)
    {
        Ok(o) => o,
        Err(e @ (SshError::HostKeyChanged { .. } | SshError::HostKeyUnknown { .. })) => {
            return Err(host_key_refused(c, ip, j, &e))
        }
        Err(e) => return Err(e.into()),
    };
    let line = out
        .stdout
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let got = normalise_key(line).ok_or_else(|| {
        AppError::external(format!(
            "{HOST_KEY_FILE} on {} holds no usable ssh-ed25519 key",
            c.opts.name
        ))
    })?;
    if got != pinned {
        return Err(AppError::external(format!(
            "{HOST_KEY_FILE} on {} holds {}, not the key pinned at first contact ({}); refusing to write it into hosts.nix",
            c.opts.name,
            fingerprint_of(&got),
            fingerprint_of(&pinned)
        ))
        .with_help("the VM's host key changed after first contact (a configuration that regenerates host keys, or another machine at this address); check the VM on its console before trusting anything"));
    }
    Ok(format!(
        "{} matches the key pinned at first contact",
        fingerprint_of(&got)
    ))
}

fn public_key(c: &mut Integrate, j: &mut Journal) -> Result<String> {
    let key = fact_key(j)?;
    let names = c.key_names()?;
    crate::workflow::key_owner::refuse_shared_key(&c.loaded, &c.opts.name, &names, &key)?;
    let path = c.loaded.file.path.clone();
    let name = c.opts.name.clone();
    let old = c
        .host()?
        .public_key
        .as_ref()
        .map(|k| k.value.clone())
        .filter(|k| normalise_key(k).is_some_and(|k| k != key));
    let literal = fleet::edit::names::string_literal(&key);
    let applied = fleet::edit::apply_to_file(&path, |text| {
        fleet::edit::set_attr(text, &[name.as_str(), "publicKey"], &literal)
    })?;
    c.loaded = fleet::load(&path)?;
    Ok(if let Some(old) = old {
        format!(
            "hosts.{name}.publicKey = \"{key}\" (replaced {}: the VM was re-created?)",
            fingerprint_of(&old)
        )
    } else if applied.changed() {
        format!("hosts.{name}.publicKey = \"{key}\"")
    } else {
        format!("hosts.{name}.publicKey already holds this key")
    })
}

fn render(c: &mut Integrate, _j: &mut Journal) -> Result<String> {
    let loaded = fleet::load(&c.loaded.file.path)?;
    let mut targets = vec![crate::render::Target::KnownHosts];
    if loaded.fleet.sops.span.is_some() {
        targets.push(crate::render::Target::Sops);
    }
    let files = crate::render::render(&loaded, &targets)?;
    let changed = crate::render::write(&loaded, &loaded.root_dir, &files)?;
    c.loaded = loaded;
    let all: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
    Ok(if changed.is_empty() {
        format!("{} unchanged", all.join(", "))
    } else {
        format!(
            "updated {}",
            changed
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

fn rekey(c: &mut Integrate, _j: &mut Journal) -> Result<String> {
    crate::workflow::rekey_step::run(&c.loaded, &c.opts.name)
}

fn summary(c: &mut Integrate, j: &mut Journal) -> Result<String> {
    let ip = fact_ip(j)?;
    let name = &c.opts.name;
    let host = c.host()?;
    let target = host
        .ssh_alias
        .as_ref()
        .map_or_else(|| ip.to_string(), |a| a.value.clone());
    let hw = c.show(&c.hardware_path()?);
    let sops_dir = crate::render::sops::config_path(&c.loaded)
        .ok()
        .and_then(|p| p.parent().map(|d| d.display().to_string()))
        .filter(|d| !d.is_empty());
    let mut add = vec![
        "hosts.nix".to_string(),
        hw,
        crate::render::KNOWN_HOSTS_PATH.to_string(),
    ];
    if let Some(d) = sops_dir {
        add.push(d);
    }
    c.summary = format!(
        "{name} is integrated: NixOS switched at {ip}, host key pinned, secrets re-keyed.\n\
         Next steps:\n  \
         git add {} && git commit -m 'integrate {name}'\n  \
         ssh -o UserKnownHostsFile={} {}@{target}   # {target} must resolve (sshAlias in your ssh config, or Tailscale MagicDNS)\n  \
         pve check\n",
        add.join(" "),
        crate::render::KNOWN_HOSTS_PATH,
        c.opts.user,
    );
    Ok(format!("{name} integrated at {ip}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pin_replaces_lines_for_the_same_names_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("vms/known_hosts");
        std::fs::create_dir_all(f.parent().expect("parent")).expect("mkdir");
        std::fs::write(
            &f,
            "# header\nother ssh-ed25519 AAAAother\nweb,web1 ssh-ed25519 AAAAold\n",
        )
        .expect("write");
        let names = vec!["web".to_string(), "web1".to_string()];
        write_pin(&f, &names, "ssh-ed25519 AAAAnew").expect("pin");
        assert_eq!(
            std::fs::read_to_string(&f).expect("read"),
            "# header\nother ssh-ed25519 AAAAother\nweb,web1 ssh-ed25519 AAAAnew\n"
        );
        // A line that also names another host is never replaced.
        std::fs::write(&f, "web,prod ssh-ed25519 AAAAprod\n").expect("write");
        let e = write_pin(&f, &names, "ssh-ed25519 AAAAnew").expect_err("refused");
        assert!(e.to_string().contains("web,prod"), "{e}");
        assert_eq!(
            std::fs::read_to_string(&f).expect("read"),
            "web,prod ssh-ed25519 AAAAprod\n"
        );
        std::fs::create_dir(dir.path().join("x")).expect("fleet root");
        let fresh = dir.path().join("x/vms/known_hosts");
        write_pin(&fresh, &names, "ssh-ed25519 AAAAnew").expect("pin");
        assert!(std::fs::read_to_string(&fresh)
            .expect("read")
            .ends_with("\nweb,web1 ssh-ed25519 AAAAnew\n"));
    }

    #[test]
    fn nix_sshopts_carries_only_values_that_split_the_same_every_way() {
        let line = sshopts_line(&[
            ("HostKeyAlias", "web".into()),
            ("UserKnownHostsFile", "/srv/fleet/vms/known_hosts".into()),
        ])
        .expect("plain values");
        assert_eq!(
            line,
            "-o HostKeyAlias=web -o UserKnownHostsFile=/srv/fleet/vms/known_hosts"
        );
        for hostile in [
            "web -oProxyCommand=touch${IFS}/tmp/x",
            "web\t-oProxyCommand=x",
            "web'x",
            "web\"x",
            "$(id)",
            "web;id",
            "/tmp/%h",
            "",
        ] {
            let e = sshopts_line(&[("HostKeyAlias", hostile.to_string())]).expect_err(hostile);
            assert_eq!(e.exit_code(), 2, "{hostile}");
            assert!(e.to_string().contains("HostKeyAlias"), "{e}");
        }
    }

    #[test]
    fn keys_are_compared_without_comments() {
        let k = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOHz+U0YtjINc54dZiJNclfmEFifF7RXCFlNlTbuZBji";
        assert_eq!(normalise_key(&format!("{k} root@web")).as_deref(), Some(k));
        assert_eq!(normalise_key("ssh-rsa AAAA"), None);
        // Leading junk is not pinned with the key.
        assert_eq!(normalise_key(&format!("zzz {k} c")).as_deref(), Some(k));
    }
}
