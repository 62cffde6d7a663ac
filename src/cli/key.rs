use std::path::PathBuf;

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  pve key to-age \"$(cat /etc/ssh/ssh_host_ed25519_key.pub)\"")]
pub struct Args {
    #[command(subcommand)]
    pub command: KeyCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum KeyCommand {
    ToAge(ToAgeArgs),
}

/// Convert ssh-ed25519 keys to age, exactly as ssh-to-age does.
///
/// Public keys: the KEY-LINE argument, or one key per line on stdin
/// (authorized_keys and known_hosts lines are accepted; empty and `#` lines
/// are skipped; keys of other types are skipped with a note). Prints one
/// `age1...` recipient per key.
///
/// With --private FILE: an OpenSSH ed25519 private key (`-` for stdin) is
/// converted to its `AGE-SECRET-KEY-1...` identity. An encrypted key needs
/// its passphrase: from --passphrase-file, else asked on the terminal.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  pve key to-age \"$(cat /etc/ssh/ssh_host_ed25519_key.pub)\"\n  ssh-keyscan web-1 | pve key to-age\n  pve key to-age --private ~/.ssh/id_ed25519 > ~/.config/sops/age/keys.txt"
)]
pub struct ToAgeArgs {
    /// `ssh-ed25519 AAAA... [comment]`; read from stdin when absent.
    #[arg(value_name = "KEY-LINE", conflicts_with = "private")]
    pub key: Option<String>,
    /// Convert this OpenSSH private key file instead (`-` = stdin).
    #[arg(long, value_name = "FILE")]
    pub private: Option<PathBuf>,
    /// Read the private key's passphrase from the first line of this file.
    #[arg(long, value_name = "FILE", requires = "private")]
    pub passphrase_file: Option<PathBuf>,
}
