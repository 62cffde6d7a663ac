//! `pve plan`, `pve apply`, `pve output`, `pve destroy`: OpenTofu in
//! `vms/tofu/.state` with the config rendered from hosts.nix.

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
