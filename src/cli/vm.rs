//! `pve vm <op>` and `proxmox-ops <op>`: one clap definition, two entry
//! points. Flags are validated here (VMIDs, names, readonly VMs) before
//! anything connects; the work is in `remote::proxmox`.

use clap::builder::Resettable;
use clap::Subcommand;

pub const EXAMPLES: &str = "\
Examples:
  proxmox-ops list --json | jq '.[] | select(.status == \"running\")'
  proxmox-ops trust                      # first contact: shows the host key fingerprint
  proxmox-ops clone 9000 112 web-2 --full
  proxmox-ops get-ip 112
  proxmox-ops destroy 112 --yes --expect-name web-2

Environment: PROXMOX_HOST, PROXMOX_USER, PROXMOX_NODE override _proxmox in hosts.nix;
PROXMOX_SSH_PORT, PROXMOX_SSH_IDENTITY, PROXMOX_CONNECT_TIMEOUT (seconds) tune SSH;
PROXMOX_READONLY_VMIDS=104,105 adds readonly VMs.";

/// Proxmox operations over SSH: qm / pvesh / pvesm on the Proxmox host.
///
/// The host and user come from `_proxmox` in hosts.nix. Host keys are
/// pinned in vms/proxmox_known_hosts (record the key once with `trust`);
/// VMs marked readonly refuse every changing operation.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Seconds each remote command may take (default: 120, clone/destroy/template 1800).
    #[arg(long, global = true, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Open a new SSH connection for every remote command (no ControlMaster).
    #[arg(long, global = true)]
    pub no_reuse: bool,
    #[command(subcommand)]
    pub op: Op,
}

#[derive(Debug, Subcommand)]
pub enum Op {
    /// List the VMs of every node (`qm list`, other nodes from `/cluster/resources`).
    #[command(
        after_help = "A NODE column appears when VMs live on other nodes than the one pve connects to;\ntheir PID is `-` (`/cluster/resources` has none). --json always carries `node`\n(and `pid: null` for those VMs).\n\nExample:\n  proxmox-ops list --json | jq -r '.[] | select(.node == \"pve2\") | .name'"
    )]
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show a VM's state (`qm status --verbose`).
    #[command(after_help = "Example:\n  proxmox-ops status 111 --json")]
    Status {
        /// The VM's id on Proxmox, e.g. 112.
        vmid: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show a VM's configuration (`qm config`).
    #[command(after_help = "Example:\n  proxmox-ops config 111")]
    Config {
        /// The VM's id on Proxmox, e.g. 112.
        vmid: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Clone SOURCE (usually the template) to a new VM TARGET named NAME.
    #[command(
        after_help = "Runs on the node that holds SOURCE (on another node: `pvesh create\n/nodes/<node>/qemu/<SOURCE>/clone`, a task followed to its end).\n\nExamples:\n  proxmox-ops clone 9003 112 web-2 --full --storage nvmeprom\n  proxmox-ops clone 9001 113 web-3 --target-node pve3   # template on shared storage"
    )]
    Clone {
        /// VMID to clone from (usually the template, e.g. 9003).
        source: String,
        /// VMID of the new VM.
        target: String,
        /// Name of the new VM on Proxmox (a DNS label).
        name: String,
        /// Full clone (copy the disks) instead of a linked clone.
        #[arg(long)]
        full: bool,
        /// Target storage (full clones only).
        #[arg(long)]
        storage: Option<String>,
        /// Node the new VM lands on, e.g. pve3 (default: SOURCE's node; another
        /// only when SOURCE is on shared storage).
        #[arg(long, value_name = "NODE")]
        target_node: Option<String>,
    },
    /// Set cores and/or memory (`qm set`).
    #[command(after_help = "Example:\n  proxmox-ops configure 112 --cores 4 --memory 8192")]
    Configure {
        /// The VM's id on Proxmox, e.g. 112.
        vmid: String,
        /// CPU cores.
        #[arg(long)]
        cores: Option<u32>,
        /// Memory in MiB.
        #[arg(long)]
        memory: Option<u32>,
    },
    /// Grow a disk: SIZE is `+16G` (by) or `80G` (to).
    #[command(after_help = "Example:\n  proxmox-ops resize 112 virtio0 +16G")]
    Resize {
        /// The VM's id on Proxmox, e.g. 112.
        vmid: String,
        /// The disk to grow, e.g. virtio0 or scsi1.
        disk: String,
        /// `+16G` grows by 16 GiB; `80G` grows to 80 GiB.
        #[arg(allow_hyphen_values = true)]
        size: String,
    },
    /// Add a new empty disk SLOT (e.g. scsi1) of SIZE GiB on STORAGE.
    #[command(after_help = "Example:\n  proxmox-ops create-disk 112 scsi1 nvmeprom 32")]
    CreateDisk {
        /// The VM's id on Proxmox, e.g. 112.
        vmid: String,
        /// The new disk's slot, e.g. scsi1.
        slot: String,
        /// Datastore for the disk, e.g. local-lvm.
        storage: String,
        /// Size in GiB.
        size_gib: u32,
    },
    /// Start a VM.
    #[command(after_help = "Example:\n  proxmox-ops start 112")]
    Start {
        /// The VM's id on Proxmox, e.g. 112.
        vmid: String,
    },
    /// Stop a VM at once (like pulling the plug).
    #[command(after_help = "Example:\n  proxmox-ops stop 112")]
    Stop {
        /// The VM's id on Proxmox, e.g. 112.
        vmid: String,
    },
    /// Shut a VM down through ACPI.
    #[command(after_help = "Example:\n  proxmox-ops shutdown 112 --wait 60")]
    Shutdown {
        /// The VM's id on Proxmox, e.g. 112.
        vmid: String,
        /// Seconds to wait for the guest.
        #[arg(long, default_value_t = 120)]
        wait: u64,
    },
    /// Reboot a VM (`qm reboot`).
    #[command(after_help = "Example:\n  proxmox-ops restart 112")]
    Restart {
        /// The VM's id on Proxmox, e.g. 112.
        vmid: String,
    },
    /// Destroy a VM and its disks. Asks for its name, or takes --yes --expect-name.
    #[command(after_help = "Example:\n  proxmox-ops destroy 112 --yes --expect-name web-2")]
    Destroy {
        /// The VM's id on Proxmox, e.g. 112.
        vmid: String,
        /// Do not ask; needs --expect-name.
        #[arg(long)]
        yes: bool,
        /// The name the VM must have on Proxmox (`VM <vmid>` if it has none).
        #[arg(long, value_name = "NAME")]
        expect_name: Option<String>,
    },
    /// Convert a stopped VM into a template.
    #[command(after_help = "Example:\n  proxmox-ops template 9003")]
    Template {
        /// The VM's id on Proxmox, e.g. 112.
        vmid: String,
    },
    /// Attach to the VM's serial console (`qm terminal`; Ctrl+O leaves).
    #[command(after_help = "Example:\n  proxmox-ops console 112")]
    Console {
        /// The VM's id on Proxmox, e.g. 112.
        vmid: String,
    },
    /// The VM's IP: guest agent first, else its MAC in the host's neighbour table.
    #[command(after_help = "Example:\n  proxmox-ops get-ip 112 --json")]
    GetIp {
        /// The VM's id on Proxmox, e.g. 112.
        vmid: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Wait until the VM answers on SSH; prints its IP.
    #[command(after_help = "Example:\n  proxmox-ops wait-ssh 112 --wait 600")]
    WaitSsh {
        /// The VM's id on Proxmox, e.g. 112.
        vmid: String,
        /// SSH port to try.
        #[arg(long, default_value_t = 22)]
        port: u16,
        /// Seconds to wait.
        #[arg(long, default_value_t = 300)]
        wait: u64,
    },
    /// Storages of the node (`pvesm status`).
    #[command(after_help = "Example:\n  proxmox-ops storage --json")]
    Storage {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The lowest VMID free in hosts.nix and on Proxmox within _proxmox.vmidRange.
    #[command(after_help = "Example:\n  proxmox-ops next-vmid")]
    NextVmid {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Record the Proxmox host's SSH key after showing its fingerprint.
    #[command(after_help = "Example:\n  proxmox-ops trust")]
    Trust {
        /// Accept the key shown without asking.
        #[arg(long)]
        yes: bool,
        /// Accept only a key with this fingerprint (SHA256:...).
        #[arg(long, value_name = "SHA256:...")]
        fingerprint: Option<String>,
        /// Replace a recorded key that changed.
        #[arg(long)]
        replace: bool,
    },
    /// Print a VM's ssh-ed25519 host key, read through the guest agent.
    #[command(after_help = "Example:\n  proxmox-ops hostkey 112 >> known_hosts.candidate")]
    Hostkey {
        /// The VM's id on Proxmox, e.g. 112.
        vmid: String,
    },
}

/// `pve vm`: proxmox-ops's arguments (one clap definition serves both
/// binaries), their examples spelled `pve vm`.
///
/// The renaming is part of defining the arguments rather than a
/// `mut_subcommand` on pve's tree: when `vm`'s arguments are deferred
/// (`super::Lazy`), they do not exist yet when the tree is made.
#[derive(Debug)]
pub struct PveVm(pub Args);

impl clap::Args for PveVm {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        as_pve_vm(cmd, <Args as clap::Args>::augment_args)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        as_pve_vm(cmd, <Args as clap::Args>::augment_args_for_update)
    }

    fn group_id() -> Option<clap::Id> {
        <Args as clap::Args>::group_id()
    }
}

impl clap::FromArgMatches for PveVm {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Args::from_arg_matches(matches).map(PveVm)
    }

    fn from_arg_matches_mut(matches: &mut clap::ArgMatches) -> Result<Self, clap::Error> {
        Args::from_arg_matches_mut(matches).map(PveVm)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(matches)
    }

    fn update_from_arg_matches_mut(
        &mut self,
        matches: &mut clap::ArgMatches,
    ) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches_mut(matches)
    }
}

/// `augment` (`Args`'s) on `cmd`, with `pve vm`'s description and examples.
fn as_pve_vm(cmd: clap::Command, augment: fn(clap::Command) -> clap::Command) -> clap::Command {
    // `Args`'s description is proxmox-ops's. pve's `Vm` variant gives its
    // own: after this when the tree is made at once, before it (kept here)
    // when `vm` is deferred.
    let about = Resettable::from(cmd.get_about().cloned());
    let long_about = Resettable::from(cmd.get_long_about().cloned());
    let cmd = augment(cmd).about(about).long_about(long_about);
    let rename = |c: clap::Command| match c.get_after_help().map(|h| h.to_string()) {
        Some(h) => c.after_help(h.replace("proxmox-ops ", "pve vm ")),
        None => c,
    };
    rename(cmd).mut_subcommands(rename)
}
