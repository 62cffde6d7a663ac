/// Print a shell completion script for pve.
///
/// The script completes subcommands, flags and their values. Load it in
/// the running shell, or save it where the shell loads completions from.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
pve completions bash > ~/.local/share/bash-completion/completions/pve\n  \
pve completions zsh > \"${fpath[1]}/_pve\"\n  \
pve completions fish > ~/.config/fish/completions/pve.fish\n  \
source <(pve completions bash)   for the running bash only")]
pub struct Args {
    /// The shell to write the script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// The shells pve writes completions for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Write pve's manual pages: pve.1 and one page per subcommand
/// (pve-check.1, pve-host-add.1, ...). The package installs them; this
/// command is how it makes them.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  pve man --out share/man/man1 && man -l share/man/man1/pve.1")]
pub struct ManArgs {
    /// Folder to write the pages to (created when missing).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: std::path::PathBuf,
}
