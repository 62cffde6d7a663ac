//! `pve plan`, `pve apply`, `pve output`, `pve destroy`: OpenTofu in
//! `vms/tofu/.state` with the config rendered from hosts.nix.

/// Plan the changes hosts.nix asks for, and save the plan.
///
/// Renders the OpenTofu config from hosts.nix into the working folder, runs
/// `tofu init` when the provider or backend settings changed, refuses when
/// the state is empty but the VMs already exist on Proxmox, then runs
/// `tofu plan` and saves the plan with the hash of the config it was made
/// from. `pve apply` applies that plan only while hosts.nix stays the same.
/// When `_proxmox.backend` changed (say from local to pg) while a state
/// exists, it asks before copying the state there (--yes accepts; without
/// a terminal and without --yes it stops, exit 2). When another run holds
/// the state lock, it says who holds it and how the lock is freed.
#[derive(Debug, clap::Args)]
#[command(after_help = concat!(
    "Examples:\n  pve plan && pve apply\n  pve plan --yes            after moving `_proxmox.backend` to pg: copy the state there\n\n",
    "The Proxmox API token comes from PROXMOX_VE_API_TOKEN, or from the file named by PVE_TOKEN_FILE \
(default $XDG_CONFIG_HOME/pve/token or ~/.config/pve/token), which must be mode 0600 and hold \
user@realm!tokenid=secret. The working folder is vms/tofu/.state (TOFU_WORKDIR overrides it)."
))]
pub struct PlanArgs {
    /// Accept copying the state to a new backend without asking (when
    /// `_proxmox.backend` changed; for scripts).
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[command(flatten)]
    pub guard: GuardArgs,
}

/// Apply the saved plan, or plan again and ask.
///
/// A plan saved by `pve plan` is applied only when it was made from the
/// current hosts.nix and the state has not changed since. Otherwise pve plans
/// again, shows the plan and asks before applying; without a terminal it
/// refuses unless --yes is given. Exits 1 when you answer no.
#[derive(Debug, clap::Args)]
#[command(after_help = concat!(
    "Examples:\n  pve plan && pve apply      review, then apply exactly that plan\n  pve apply --yes            plan and apply from a script\n\n",
    "The Proxmox API token comes from PROXMOX_VE_API_TOKEN, or from the file named by PVE_TOKEN_FILE \
(default $XDG_CONFIG_HOME/pve/token or ~/.config/pve/token), which must be mode 0600 and hold \
user@realm!tokenid=secret. The working folder is vms/tofu/.state (TOFU_WORKDIR overrides it)."
))]
pub struct ApplyArgs {
    /// Apply a new plan without asking, and copy the state to a new backend
    /// when `_proxmox.backend` changed (for scripts).
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[command(flatten)]
    pub guard: GuardArgs,
}

/// Print OpenTofu's outputs (IP addresses and the like).
///
/// Runs `tofu output` in the working folder; with --json its JSON is passed
/// through unchanged. Sensitive outputs are printed in clear text with --json.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  pve output\n  pve output --json | jq 'map_values(.value)'\n  pve output --json NAME"
)]
pub struct OutputArgs {
    /// Print JSON, as `tofu output -json`.
    #[arg(long)]
    pub json: bool,
    /// One output only.
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
}

/// Destroy every VM the OpenTofu state manages.
///
/// Plans the destroy, shows it, and asks you to type `destroy` (or --yes),
/// then applies exactly that plan. To remove one VM, use `pve remove`.
/// Exits 1 when you do not confirm.
#[derive(Debug, clap::Args)]
#[command(after_help = concat!(
    "Example:\n  pve destroy\n\n",
    "The Proxmox API token comes from PROXMOX_VE_API_TOKEN, or from the file named by PVE_TOKEN_FILE \
(default $XDG_CONFIG_HOME/pve/token or ~/.config/pve/token), which must be mode 0600 and hold \
user@realm!tokenid=secret. The working folder is vms/tofu/.state (TOFU_WORKDIR overrides it)."
))]
pub struct DestroyArgs {
    /// Destroy without asking (for scripts).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, clap::Args)]
pub struct GuardArgs {
    /// Do not check Proxmox for existing VMs when the state is empty.
    #[arg(long)]
    pub skip_state_guard: bool,
}
