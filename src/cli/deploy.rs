//! `pve deploy`: flags only; the logic is `app::deploy` and
//! `workflow::deploy`.

use std::path::PathBuf;

pub const EXAMPLES: &str = "\
Examples:
  pve deploy web1                         # build, copy, snapshot, switch, check web1
  pve deploy @web db1 --parallel 8        # every VM tagged `web`, and db1
  pve deploy --all --wave @canary,@rest   # canaries first; the rest only if they are healthy
  pve deploy web1 --action test           # activate without making it the boot default
  pve deploy --all --dry-run              # show the plan, change nothing
  pve deploy --resume                     # continue a run that stopped
  pve deploy --all --json | jq -c 'select(.result)'   # one result object per host

Per host: record the running system (readlink /run/current-system, generation), nix copy the closure
(ssh-ng, pinned host key), Proxmox snapshot `pve-pre-deploy-<UTC time>` (the newest --keep-snapshots
kept), nix-env --set + switch-to-configuration, then the health check: SSH answers with the pinned key,
`systemctl is-system-running` is `running`, and the host's `deploy.healthCheck` commands exit 0:

  web1 = { ...; deploy.healthCheck = [ \"curl -fsS localhost:8080/health\" ]; };

A failed health check switches the host back to its old system; a host that does not answer within
--timeout is rolled back to its snapshot (qm rollback, then started). Either way no further host or
wave starts, and pve deploy exits 3. A VM whose storage cannot snapshot fails before anything changes
unless --allow-no-snapshot (or --no-snapshot) says to go on without one.

Environment: PROXMOX_* (see `pve vm --help`), PVE_VM_USER, PVE_VM_SSH_PORT, PVE_VM_SSH_IDENTITY,
PVE_LOG=1 shows every command run.

Exit codes: 0 every host deployed; 2 bad input (unknown host or tag, a readonly VM, an unfinished run
without --resume/--fresh); 3 a build, a copy or a host failed (the summary says which and what was done).";

#[derive(Debug, clap::Args)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    /// Hosts by name, or `@tag` for every VM with that `proxmox.tags` entry.
    #[arg(value_name = "HOST|@TAG")]
    pub targets: Vec<String>,
    /// Every VM in hosts.nix (readonly ones left out).
    #[arg(long)]
    pub all: bool,
    /// Deploy readonly VMs too when selected (no snapshot is taken of them).
    #[arg(long)]
    pub include_readonly: bool,
    /// What switch-to-configuration does: switch, boot, test or dry-activate.
    #[arg(long, value_enum, default_value = "switch")]
    pub action: ActionArg,
    /// How many hosts deploy at the same time.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub parallel: usize,
    /// Waves by tag, comma separated: `@canary,@rest` (`@rest` = every host
    /// left); a wave starts only when the one before is healthy.
    #[arg(long, value_name = "@TAG,…", value_delimiter = ',')]
    pub wave: Vec<String>,
    /// Take no Proxmox snapshot before activating.
    #[arg(long)]
    pub no_snapshot: bool,
    /// Go on without a snapshot when a VM's storage cannot take one.
    #[arg(long)]
    pub allow_no_snapshot: bool,
    /// How many `pve-pre-deploy-*` snapshots to keep per VM (older ones are deleted).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub keep_snapshots: usize,
    /// Accept `degraded` from `systemctl is-system-running`.
    #[arg(long)]
    pub allow_degraded: bool,
    /// Seconds a host may take to answer after the switch before it is
    /// rolled back to its snapshot.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub timeout: u64,
    /// Continue the run that stopped (vms/.journal/deploy-run.json).
    #[arg(long, conflicts_with = "fresh")]
    pub resume: bool,
    /// Drop an unfinished run's journal and start over.
    #[arg(long)]
    pub fresh: bool,
    /// Show the plan (waves, hosts, snapshots) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// JSON events on stdout, then one object per host with its result.
    #[arg(long)]
    pub json: bool,
    /// The login on the hosts (not root: commands run through `sudo -n`).
    #[arg(long, default_value = "root", env = "PVE_VM_USER")]
    pub user: String,
    /// The hosts' SSH port.
    #[arg(long, default_value_t = 22, env = "PVE_VM_SSH_PORT")]
    pub ssh_port: u16,
    /// The SSH key to log in with (default: ssh's own choice and agent).
    #[arg(long, value_name = "FILE", env = "PVE_VM_SSH_IDENTITY")]
    pub identity: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ActionArg {
    Switch,
    Boot,
    Test,
    DryActivate,
}
