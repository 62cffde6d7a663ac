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

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  pve man --out share/man/man1 && man -l share/man/man1/pve.1")]
pub struct ManArgs {
    /// Folder to write the pages to (created when missing).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: std::path::PathBuf,
}
