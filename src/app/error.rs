//! How the commands in `app/` can fail on their own account: bad arguments
//! or usage ([`UsageError`]), `proxmox-ops` ([`VmCommandError`]) and
//! `pve key to-age` ([`KeyCommandError`]). Failures of the library below
//! have their own types.

use std::path::PathBuf;

use crate::error::{Classify, Kind};
use crate::keys::KeyError;

/// Advice for an invalid host name.
const DNS_LABEL_HELP: &str =
    "use a DNS label: lowercase letters, digits and `-`, at most 63 characters";

/// Bad arguments or usage of a `pve` command (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("cannot read the current folder: {source}")]
    CurrentFolder {
        #[source]
        source: std::io::Error,
    },
    #[error("cannot resolve the fleet folder: {source}")]
    FleetFolder {
        #[source]
        source: std::io::Error,
    },
    #[error("bad attribute path {detail}")]
    BadAttrPath { detail: String },
    #[error("`{name}` is not a valid host name")]
    InvalidHostName { name: String },
    /// Every VM resource flag that `pve check` would refuse, one per line.
    #[error("{}", bad_flags_message(.problems))]
    BadVmFlags {
        problems: Vec<(&'static str, String)>,
    },
    #[error("--authorized-keys `{}` is not one Nix expression: {why}", .keys.escape_debug())]
    AuthorizedKeysNotOneExpression { keys: String, why: String },
    #[error("cannot render the host entry: {source}")]
    RenderHostEntry {
        #[source]
        source: askama::Error,
    },
    #[error("not removing `{name}` without confirmation")]
    HostRemovalNotConfirmed { name: String },
    #[error("cannot read the answer: {source}")]
    ReadAnswer {
        #[source]
        source: std::io::Error,
    },
    #[error("VM {vmid} does not exist on Proxmox")]
    NoSuchVm { vmid: u32 },
    #[error("VM {vmid} is a template; templates are not hosts")]
    ImportTemplate { vmid: u32 },
    #[error("`{name}` (VM {vmid}) is readonly; refusing to import it")]
    ImportReadonly { name: String, vmid: u32 },
    #[error("VM {vmid} has no name on Proxmox")]
    VmWithoutName { vmid: u32 },
    #[error("cannot import VM {vmid} as `{name}`: {reason}")]
    ImportName {
        vmid: u32,
        name: String,
        reason: String,
    },
    #[error("two IP addresses given ({given})")]
    TwoIpAddresses { given: String },
    #[error("`{value}` is neither an IP address nor a VMID")]
    NeitherIpNorVmid { value: String },
    #[error("an earlier `pve integrate {name}` stopped at {at}")]
    IntegrateStopped {
        name: String,
        /// Where it stopped: "step N (title)" or "the end".
        at: String,
        /// The journal to delete to start over.
        journal: PathBuf,
    },
    #[error("no valid answer to {question:?}")]
    NoValidAnswer { question: String },
    #[error("missing --name: which run to continue or undo")]
    ResumeWithoutName,
    #[error("--name: {name:?} is not a host name")]
    NameNotHostName { name: String },
    /// A flag whose value its validator refused, with the reason.
    #[error("{flag}: {reason}")]
    BadFlag { flag: &'static str, reason: String },
    #[error("there is no stopped `pve new` run for `{name}`")]
    NoStoppedNewRun { name: String },
    #[error("a run of `pve new` for `{name}` stopped before it finished")]
    NewRunStopped { name: String },
    #[error("missing --name: there is no terminal to ask on")]
    NoTerminalWithoutName,
    #[error("refusing to create a VM without confirmation: there is no terminal to ask on")]
    NewNotConfirmed {
        /// The flags whose defaults --yes would use.
        missing: Vec<&'static str>,
    },
    #[error("missing --name")]
    MissingName,
    #[error("a run of `pve remove {name}` stopped before it finished")]
    RemoveRunStopped { name: String },
    #[error("there is no stopped `pve remove` run for `{name}`")]
    NoStoppedRemoveRun { name: String },
    #[error("not removing `{name}` without confirmation: there is no terminal to ask on")]
    RemoveNotConfirmed { name: String },
    #[error("{} has {}; not planning from it", .file.display(), crate::plural::plural(*.errors, "error"))]
    HostsFileHasErrors { file: PathBuf, errors: usize },
}

impl Classify for UsageError {
    fn kind(&self) -> Kind {
        Kind::Input
    }

    fn help(&self) -> Option<String> {
        use UsageError as U;
        Some(match self {
            U::BadAttrPath { .. } => {
                "write it like `proxmox.cores`; quote odd names: '\"my-key\".x'".into()
            }
            U::InvalidHostName { .. } => DNS_LABEL_HELP.into(),
            U::BadVmFlags { .. } => {
                "fix each flag above (memory is in MiB, disk a size like `32G`); nothing was contacted or written".into()
            }
            U::AuthorizedKeysNotOneExpression { .. } => {
                "pass a single value, e.g. `adminKeys` or `[ \"ssh-ed25519 AAAA...\" ]`".into()
            }
            U::HostRemovalNotConfirmed { .. } => {
                "pass --yes to remove it, or --dry-run to see the change".into()
            }
            U::NoSuchVm { .. } => "`proxmox-ops list` shows the VMs".into(),
            U::VmWithoutName { .. } => "pass --name NAME".into(),
            U::ImportName { .. } => "pass --name with another name".into(),
            U::NeitherIpNorVmid { .. } => "e.g. `pve integrate web1 192.0.2.50 111`".into(),
            U::IntegrateStopped { name, journal, .. } => format!(
                "continue it with `pve integrate {name} --resume` (see `pve integrate --status {name}`), or delete {} to start over",
                journal.display()
            ),
            U::ResumeWithoutName => "e.g. `pve new --name web-2 --resume`".into(),
            U::NewRunStopped { name } => format!(
                "continue it with `pve new --name {name} --resume`, or undo it with `pve new --name {name} --rollback`"
            ),
            U::NoTerminalWithoutName => {
                "give every answer as a flag and --yes, e.g. `pve new --name web-2 --yes`".into()
            }
            U::NewNotConfirmed { missing } if missing.is_empty() => {
                "pass --yes to go ahead".into()
            }
            U::NewNotConfirmed { missing } => format!(
                "pass --yes (defaults are then used for {})",
                missing.join(", ")
            ),
            U::RemoveRunStopped { name } => {
                format!("continue it with `pve remove {name} --resume`")
            }
            U::RemoveNotConfirmed { .. } => "pass --yes to remove it from a script".into(),
            U::HostsFileHasErrors { .. } => {
                "fix them (`pve check` lists them) and run again".into()
            }
            U::CurrentFolder { .. }
            | U::FleetFolder { .. }
            | U::RenderHostEntry { .. }
            | U::ReadAnswer { .. }
            | U::ImportTemplate { .. }
            | U::ImportReadonly { .. }
            | U::TwoIpAddresses { .. }
            | U::NoValidAnswer { .. }
            | U::NameNotHostName { .. }
            | U::BadFlag { .. }
            | U::NoStoppedNewRun { .. }
            | U::MissingName
            | U::NoStoppedRemoveRun { .. } => return None,
        })
    }
}

/// "2 bad flags:" and one indented line per flag.
fn bad_flags_message(problems: &[(&'static str, String)]) -> String {
    let n = problems.len();
    let mut out = format!("{n} bad flag{}:", if n == 1 { "" } else { "s" });
    for (flag, why) in problems {
        out.push_str(&format!("\n  {flag}: {why}"));
    }
    out
}

/// Where to compare the Proxmox host key by hand.
const COMPARE_ON_CONSOLE: &str = "`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`";

/// How a `proxmox-ops` command can fail on its own account.
#[derive(Debug, thiserror::Error)]
pub enum VmCommandError {
    #[error("cannot encode JSON: {source}")]
    EncodeJson {
        #[source]
        source: serde_json::Error,
    },
    #[error("nothing to change")]
    NothingToChange,
    #[error("--yes needs --expect-name NAME")]
    YesWithoutExpectName,
    #[error("`{fingerprint}` is not a SHA256 fingerprint")]
    NotAFingerprint { fingerprint: String },
    #[error("cannot read the confirmation: {source}")]
    ReadConfirmation {
        #[source]
        source: std::io::Error,
    },
    #[error("destroy not confirmed; nothing was changed")]
    DestroyNotConfirmed,
    #[error("the host key of {name} differs from the one recorded in {}; refusing to change it", .file.display())]
    HostKeyChanged { name: String, file: PathBuf },
    #[error("trusting a host key needs a confirmation")]
    TrustNeedsConfirmation,
    #[error("not trusted; nothing was written")]
    NotTrusted,
    #[error("{name} does not offer a key with fingerprint {fingerprint}; refusing to trust it")]
    FingerprintNotOffered { name: String, fingerprint: String },
    #[error("{name} offers no ssh-ed25519 host key")]
    NoEd25519Key { name: String },
}

impl Classify for VmCommandError {
    fn kind(&self) -> Kind {
        use VmCommandError as V;
        match self {
            V::EncodeJson { .. }
            | V::HostKeyChanged { .. }
            | V::FingerprintNotOffered { .. }
            | V::NoEd25519Key { .. } => Kind::External,
            V::NothingToChange
            | V::YesWithoutExpectName
            | V::NotAFingerprint { .. }
            | V::ReadConfirmation { .. }
            | V::DestroyNotConfirmed
            | V::TrustNeedsConfirmation
            | V::NotTrusted => Kind::Input,
        }
    }

    fn help(&self) -> Option<String> {
        use VmCommandError as V;
        Some(match self {
            V::NothingToChange => "give --cores and/or --memory".into(),
            V::YesWithoutExpectName => {
                "name the VM you mean to destroy, e.g. `--yes --expect-name web-2`".into()
            }
            V::NotAFingerprint { .. } => {
                format!("copy it from {COMPARE_ON_CONSOLE} on the Proxmox console")
            }
            V::DestroyNotConfirmed => {
                "type the VM's name, or pass --yes --expect-name NAME".into()
            }
            V::HostKeyChanged { .. } => format!(
                "compare with {COMPARE_ON_CONSOLE} on the Proxmox console; if the host was reinstalled, run `proxmox-ops trust --replace`"
            ),
            V::TrustNeedsConfirmation => "compare the fingerprint above with the Proxmox console, then pass --fingerprint SHA256:... (or --yes)".into(),
            V::FingerprintNotOffered { .. } => "check the fingerprint on the Proxmox console; someone may be intercepting the connection".into(),
            V::NoEd25519Key { .. } => {
                "pass --fingerprint SHA256:... of the key you compared on the Proxmox console"
                    .into()
            }
            V::EncodeJson { .. } | V::ReadConfirmation { .. } | V::NotTrusted => return None,
        })
    }
}

/// How `pve key to-age` can fail on its own account (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum KeyCommandError {
    /// A key that does not convert; `what` names where it came from.
    #[error("{what}: {source}")]
    Key {
        what: String,
        #[source]
        source: KeyError,
    },
    #[error("no ssh-ed25519 key found on stdin")]
    NoKeyOnStdin,
    #[error("cannot read the passphrase file {}: {source}", .file.display())]
    ReadPassphraseFile {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the passphrase: {source}")]
    ReadPassphrase {
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} is not UTF-8 text")]
    NotUtf8 { what: String },
}

impl Classify for KeyCommandError {
    fn kind(&self) -> Kind {
        Kind::Input
    }

    fn help(&self) -> Option<String> {
        match self {
            KeyCommandError::Key { source, .. } => match source {
                KeyError::WrongType(_) => Some("only ssh-ed25519 keys convert to age (`ssh-keygen -t ed25519`)"),
                KeyError::PassphraseMissing => Some("pass --passphrase-file FILE, or run in a terminal to be asked"),
                KeyError::UnsupportedCipher(_) => Some("re-encrypt the key with `ssh-keygen -p -f FILE` (aes256-ctr), or remove its passphrase"),
                _ => None,
            },
            KeyCommandError::NoKeyOnStdin => Some("pipe `ssh-ed25519 AAAA...` lines, e.g. `ssh-keyscan -t ed25519 HOST | pve key to-age`"),
            KeyCommandError::ReadPassphraseFile { .. }
            | KeyCommandError::ReadPassphrase { .. }
            | KeyCommandError::Read { .. }
            | KeyCommandError::NotUtf8 { .. } => None,
        }
        .map(String::from)
    }
}
