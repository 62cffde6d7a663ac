//! `pve integrate`: flags converted once, then the workflow in
//! `workflow::integrate`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{exit, AppError, Result};
use crate::remote::proxmox::parse_vmid;
use crate::workflow::{self, integrate, Journal, Progress};

use super::Context;

pub const EXAMPLES: &str = "\
Examples:
  pve integrate web1                      # IP from tofu output or the guest agent
  pve integrate web1 192.0.2.50 111
  pve integrate web1 --resume             # continue where a run stopped
  pve integrate --status web1
  pve integrate web1 --json | jq -c 'select(.status != \"started\")'

Steps: resolve IP, pin host key, wait for SSH, hardware-configuration.nix, nixos-rebuild switch,
Tailscale, verify host key, publicKey into hosts.nix, re-render .sops.yaml and known_hosts,
sops updatekeys, summary. A journal in vms/.journal/ records each step.

Environment: TS_OAUTH_CLIENT_ID / TS_OAUTH_CLIENT_SECRET (Tailscale OAuth client), SOPS_AGE_KEY_FILE
(admin key for sops), PROXMOX_* (see `pve vm --help`), PVE_LOG=1 shows every command run,
PVE_INTEGRATE_WATCH_MS how often the address is checked during the rebuild (default 2000).

Exit codes: 0 done; 2 bad input (unknown host, bad IP/VMID, unconfirmed host key, an unfinished
run without --resume); 3 a remote host or tool failed (Proxmox, SSH, nixos-rebuild, Tailscale, sops,
a host key mismatch).";

/// Integrate a new VM into the fleet: hardware config, NixOS, Tailscale,
/// host key, publicKey in hosts.nix, secrets re-keyed. Resumable.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The host's name in hosts.nix.
    pub name: String,
    /// The VM's IP address (default: `tofu output`, else the guest agent).
    /// A lone number is taken as the VMID.
    pub ip: Option<String>,
    /// The VMID (default: proxmox.vmid in hosts.nix).
    pub vmid: Option<String>,
    /// Continue the run that stopped (the journal in vms/.journal/).
    #[arg(long)]
    pub resume: bool,
    /// Show the steps and what the journal says of each; changes nothing.
    #[arg(long)]
    pub status: bool,
    /// One JSON event per step on stdout.
    #[arg(long)]
    pub json: bool,
    /// Trust this host key fingerprint (SHA256:...) when the guest agent
    /// cannot give the key; compare it on the VM console first.
    #[arg(long, value_name = "FINGERPRINT")]
    pub accept_host_key: Option<String>,
    /// Generate hardware-configuration.nix again even when it exists.
    #[arg(long)]
    pub force_hardware_config: bool,
    /// Leave Tailscale out.
    #[arg(long)]
    pub skip_tailscale: bool,
    /// The login on the VM (not root: commands run through `sudo -n`).
    #[arg(long, default_value = "root", env = "PVE_VM_USER")]
    pub user: String,
    /// The VM's SSH port.
    #[arg(long, default_value_t = 22, env = "PVE_VM_SSH_PORT")]
    pub ssh_port: u16,
    /// The SSH key to log in with (default: ssh's own choice and agent).
    #[arg(long, value_name = "FILE", env = "PVE_VM_SSH_IDENTITY")]
    pub identity: Option<PathBuf>,
    /// Tailscale tag for the VM (repeat for several); the OAuth client must own it.
    #[arg(long = "tailscale-tag", value_name = "TAG", default_value = "tag:vm")]
    pub tailscale_tags: Vec<String>,
    /// sops-encrypted file (relative to the fleet folder) with
    /// TS_OAUTH_CLIENT_ID / TS_OAUTH_CLIENT_SECRET, used when the environment
    /// has neither.
    #[arg(long, value_name = "FILE", default_value = integrate::DEFAULT_TS_CREDENTIALS)]
    pub tailscale_credentials: PathBuf,
    /// Seconds to wait for SSH to answer.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 300,
        env = "PVE_VM_SSH_WAIT"
    )]
    pub ssh_wait: u64,
}

fn positional(args: &Args) -> Result<(Option<IpAddr>, Option<u32>)> {
    let mut ip = None;
    let mut vmid = None;
    for v in [&args.ip, &args.vmid].into_iter().flatten() {
        if let Ok(a) = v.parse::<IpAddr>() {
            if ip.is_some() {
                return Err(AppError::input(format!("two IP addresses given ({v})")));
            }
            ip = Some(a);
        } else if v.chars().all(|c| c.is_ascii_digit()) && vmid.is_none() {
            vmid = Some(parse_vmid(v)?);
        } else {
            return Err(
                AppError::input(format!("`{v}` is neither an IP address nor a VMID"))
                    .with_help("e.g. `pve integrate web1 192.0.2.50 111`"),
            );
        }
    }
    Ok((ip, vmid))
}

pub fn run(ctx: &Context, args: Args) -> Result<u8> {
    let loaded = ctx.load()?;
    let root = loaded.root_dir.clone();
    crate::remote::proxmox::check_name(&args.name)?;
    let steps = integrate::steps();
    let existing = Journal::load(&root, integrate::WORKFLOW, &args.name)?;
    if args.status {
        let mut text = String::new();
        if existing.is_none() {
            text.push_str(&format!(
                "no unfinished `pve integrate {}` run (a finished run leaves no journal)\n",
                args.name
            ));
        }
        for l in workflow::status_lines(&steps, existing.as_ref()) {
            text.push_str(&l);
            text.push('\n');
        }
        if let Some(j) = &existing {
            for (k, v) in &j.facts {
                let v = if k == "host_key" {
                    format!(
                        "{v} ({})",
                        crate::remote::ssh::fingerprint(v.split_whitespace().nth(1).unwrap_or(""))
                            .unwrap_or_default()
                    )
                } else {
                    v.clone()
                };
                text.push_str(&format!("    {k}: {v}\n"));
            }
        }
        return super::print(&text);
    }
    let (ip, vmid) = positional(&args)?;
    let mut opts = integrate::Options::new(&args.name);
    opts.ip = ip;
    opts.vmid = vmid;
    opts.user = args.user;
    opts.port = args.ssh_port;
    opts.identity = args.identity;
    opts.accept_host_key = args.accept_host_key;
    opts.force_hardware_config = args.force_hardware_config;
    opts.skip_tailscale = args.skip_tailscale;
    opts.tailscale_tags = args.tailscale_tags;
    opts.tailscale_credentials = args.tailscale_credentials;
    opts.ssh_wait = Duration::from_secs(args.ssh_wait);
    if let Ok(ms) = std::env::var("PVE_INTEGRATE_WATCH_MS") {
        if let Ok(ms) = ms.trim().parse::<u64>() {
            opts.watch_interval = Duration::from_millis(ms.max(100));
        }
    }
    let mut journal = match (existing, args.resume) {
        (Some(j), true) => j,
        (Some(j), false) => {
            let at = steps
                .iter()
                .enumerate()
                .find(|(_, s)| !j.is_done(s.name))
                .map(|(i, s)| format!("step {} ({})", i + 1, s.title))
                .unwrap_or_else(|| "the end".into());
            return Err(AppError::input(format!(
                "an earlier `pve integrate {}` stopped at {at}",
                args.name
            ))
            .with_help(format!(
                "continue it with `pve integrate {} --resume` (see `pve integrate --status {}`), or delete {} to start over",
                args.name,
                args.name,
                Journal::path_for(std::path::Path::new(""), integrate::WORKFLOW, &args.name).display()
            )));
        }
        (None, resume) => {
            if resume {
                eprintln!(
                    "note: no unfinished run of `pve integrate {}`; starting from the first step",
                    args.name
                );
            }
            Journal::new(&root, integrate::WORKFLOW, &args.name)
        }
    };
    let reporter: Box<dyn crate::report::Reporter> = if args.json {
        Box::new(crate::ui::Json)
    } else {
        Box::new(crate::ui::Terminal::new())
    };
    let prompt: Box<dyn crate::report::Prompt> = if crate::ui::interactive() {
        Box::new(crate::ui::TerminalPrompt { yes: false })
    } else {
        Box::new(crate::report::NoPrompt)
    };
    let mut c = integrate::Integrate::new(opts, loaded, reporter.as_ref(), prompt)?;
    // Fresh or resumed: hosts.nix passes `pve check` before any step.
    workflow::gate::check(&c.loaded, integrate::WORKFLOW, |_| false)?;
    let progress = if args.json {
        Progress::Json
    } else {
        Progress::Human
    };
    workflow::run(&mut c, &steps, &mut journal, progress).map_err(|e| {
        let help = e.help().unwrap_or_default();
        let more = format!(
            "{}{}after fixing it: `pve integrate {} --resume`",
            help,
            if help.is_empty() { "" } else { "; " },
            c.opts.name
        );
        e.with_help(more)
    })?;
    journal.finish()?;
    if !args.json {
        super::print(&c.summary)?;
    }
    Ok(exit::OK)
}
