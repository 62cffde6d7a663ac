//! `pve init`: a working fleet in an empty folder or an existing flake
//! repository. Nothing is overwritten: an existing hosts.nix refuses the
//! whole run; other existing files are kept; `.gitignore` gets only the
//! lines it lacks.

use std::path::{Path, PathBuf};

use askama::Template;

use crate::cli::init::Args;
use crate::error::{exit, Classify, Kind, Result};
use crate::fleet::edit::names::{attr_name, string_literal};
use crate::fleet::{self, SourceFile};
use crate::fsutil::RepoLock;
use crate::report::{Prompt, Reporter};
use crate::ui::TerminalPrompt;

use super::{Context, UsageError};

pub use crate::fleet::defaults::NODE as DEFAULT_NODE;
pub use crate::fleet::defaults::STORAGE as DEFAULT_STORAGE;
pub use crate::fleet::defaults::TEMPLATE_VMID as DEFAULT_TEMPLATE_VMID;

/// The consumer flake of docs/flake.md, as it is there.
pub const FLAKE_NIX: &str = include_str!("../../templates/init/flake.nix");

/// What pve writes into a fleet that must not be committed: the lock, the
/// OpenTofu working folder (state, plans, provider cache) and the journals
/// of stopped workflows.
pub const GITIGNORE_LINES: &[&str] = &[".pve.lock", "/vms/tofu/.state/", "/vms/.journal/"];

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{} exists already: this folder has a fleet", path.display())]
    FleetExists { path: PathBuf },
    /// Values nobody gave and nobody can be asked for.
    #[error("missing {}: there is no terminal to ask on", flags.join(", "))]
    Missing { flags: Vec<&'static str> },
    #[error("{flag} {value:?} is not valid: {reason}")]
    BadValue {
        flag: &'static str,
        value: String,
        reason: String,
    },
    /// No admin age recipient could be found.
    #[error("no age recipient for `_sops.admins` found: not given, and none of {} exists", tried.join(", "))]
    NoRecipient { tried: Vec<String> },
    #[error("cannot read the age key in {}: {source}", path.display())]
    ReadKey {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A key file that holds no usable key (its contents are never shown).
    #[error("{}: {why}", path.display())]
    BadKey { path: PathBuf, why: String },
    #[error("cannot render {what}: {source}")]
    Template {
        what: &'static str,
        #[source]
        source: askama::Error,
    },
    /// The hosts.nix init would write fails `pve check` (shown above).
    #[error("the hosts.nix pve init would write does not pass `pve check`; nothing was written")]
    WouldFailCheck,
}

impl Classify for InitError {
    fn kind(&self) -> Kind {
        match self {
            InitError::FleetExists { .. } => Kind::Refused,
            _ => Kind::Input,
        }
    }
    fn help(&self) -> Option<String> {
        Some(match self {
            InitError::FleetExists { .. } => "nothing was written; `pve check` validates the fleet there, `pve config set` changes its settings".into(),
            InitError::Missing { .. } => "give them as flags, or pass --yes to take the defaults (--proxmox-host has none)".into(),
            InitError::BadValue { .. } | InitError::WouldFailCheck => "fix the value; nothing was written".into(),
            InitError::NoRecipient { .. } => "pass --admin-age-recipient age1... (`age-keygen -y KEYFILE` prints yours), or create one with `age-keygen -o ~/.config/sops/age/keys.txt`".into(),
            InitError::ReadKey { .. } | InitError::BadKey { .. } => "fix the key file, or pass --admin-age-recipient age1...".into(),
            InitError::Template { .. } => return None,
        })
    }
}

/// The `_proxmox` settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Settings {
    pub host: String,
    pub node: String,
    pub storage: String,
    pub template_vmid: u32,
}

/// Where the admin's recipient came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientSource {
    Flag,
    /// Typed in answer to the wizard.
    Asked,
    /// An age identity file (its public recipient derived).
    AgeKeyFile(PathBuf),
    /// An ssh-ed25519 public key, converted as ssh-to-age does.
    SshKey(PathBuf),
}

impl std::fmt::Display for RecipientSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecipientSource::Flag => write!(f, "--admin-age-recipient"),
            RecipientSource::Asked => write!(f, "your answer"),
            RecipientSource::AgeKeyFile(p) => write!(f, "the age key in {}", p.display()),
            RecipientSource::SshKey(p) => write!(f, "{} (as ssh-to-age converts it)", p.display()),
        }
    }
}

/// Where to look for the admin's key: from the environment, passed in so
/// the search can be tested without changing it.
#[derive(Debug, Clone, Default)]
pub struct KeyPlaces {
    /// `SOPS_AGE_KEY_FILE`.
    pub sops_age_key_file: Option<PathBuf>,
    /// `XDG_CONFIG_HOME`.
    pub xdg_config_home: Option<PathBuf>,
    /// `HOME`.
    pub home: Option<PathBuf>,
}

impl KeyPlaces {
    pub fn from_env() -> KeyPlaces {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        KeyPlaces {
            sops_age_key_file: var("SOPS_AGE_KEY_FILE"),
            xdg_config_home: var("XDG_CONFIG_HOME"),
            home: var("HOME"),
        }
    }

    /// The age identity files, in the order sops reads them.
    fn age_key_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Some(f) = &self.sops_age_key_file {
            out.push(f.clone());
        }
        let config = self
            .xdg_config_home
            .clone()
            .or_else(|| self.home.as_ref().map(|h| h.join(".config")));
        if let Some(c) = config {
            out.push(c.join("sops").join("age").join("keys.txt"));
        }
        out
    }

    fn ssh_key(&self) -> Option<PathBuf> {
        self.home
            .as_ref()
            .map(|h| h.join(".ssh").join("id_ed25519.pub"))
    }
}

/// The admin's age recipient: the flag, else the first age identity sops
/// would use (only its public half is derived; the file's text is never
/// shown), else `~/.ssh/id_ed25519.pub` converted. `None` when none exists.
pub fn find_recipient(
    flag: Option<&str>,
    places: &KeyPlaces,
) -> std::result::Result<Option<(String, RecipientSource)>, InitError> {
    if let Some(r) = flag {
        crate::keys::parse_recipient(r).map_err(|e| InitError::BadValue {
            flag: "--admin-age-recipient",
            value: r.to_string(),
            reason: e.to_string(),
        })?;
        return Ok(Some((r.to_string(), RecipientSource::Flag)));
    }
    for path in places.age_key_files() {
        if !path.exists() {
            continue;
        }
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(&path).map_err(|source| {
            InitError::ReadKey {
                path: path.clone(),
                source,
            }
        })?);
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(crate::keys::age::IDENTITY_HRP))
            .ok_or_else(|| InitError::BadKey {
                path: path.clone(),
                why: "no `AGE-SECRET-KEY-1...` line".into(),
            })?;
        let recipient =
            crate::keys::age::recipient_from_identity(line).map_err(|e| InitError::BadKey {
                path: path.clone(),
                why: e.to_string(),
            })?;
        return Ok(Some((recipient, RecipientSource::AgeKeyFile(path))));
    }
    if let Some(path) = places.ssh_key().filter(|p| p.exists()) {
        let text = std::fs::read_to_string(&path).map_err(|source| InitError::ReadKey {
            path: path.clone(),
            source,
        })?;
        let recipient = crate::keys::ssh_to_age(text.trim()).map_err(|e| InitError::BadKey {
            path: path.clone(),
            why: e.to_string(),
        })?;
        return Ok(Some((recipient, RecipientSource::SshKey(path))));
    }
    Ok(None)
}

fn tried(places: &KeyPlaces) -> Vec<String> {
    let mut out: Vec<String> = places
        .age_key_files()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    out.extend(places.ssh_key().map(|p| p.display().to_string()));
    out
}

#[derive(Template)]
#[template(path = "init/hosts.nix", escape = "none")]
struct HostsNix {
    host: String,
    node: String,
    storage: String,
    template_vmid: u32,
    admin_name: String,
    admin_recipient: String,
}

/// The new hosts.nix (every value quoted as Nix text).
pub fn hosts_nix(s: &Settings, admin_name: &str, recipient: &str) -> Result<String> {
    let t = HostsNix {
        host: string_literal(&s.host),
        node: string_literal(&s.node),
        storage: string_literal(&s.storage),
        template_vmid: s.template_vmid,
        admin_name: attr_name(admin_name),
        admin_recipient: string_literal(recipient),
    };
    let mut text = t.render().map_err(|source| InitError::Template {
        what: "hosts.nix",
        source,
    })?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// The lines of `GITIGNORE_LINES` that `.gitignore` (its text) lacks; a
/// line counts as there with or without its leading or trailing `/`.
pub fn missing_gitignore_lines(existing: &str) -> Vec<&'static str> {
    let norm = |l: &str| l.trim().trim_matches('/').to_string();
    let have: Vec<String> = existing.lines().map(norm).collect();
    GITIGNORE_LINES
        .iter()
        .copied()
        .filter(|l| !have.contains(&norm(l)))
        .collect()
}

/// One file of the plan.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Planned {
    /// Relative to the fleet root.
    pub path: PathBuf,
    pub action: Action,
    #[serde(skip)]
    pub contents: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A new file.
    Write,
    /// Lines appended to an existing file.
    Append,
    /// It exists: left as it is.
    Keep,
}

/// What init writes into `root`, given the new hosts.nix text.
pub fn plan(root: &Path, hosts_name: &Path, hosts_text: String) -> Result<Vec<Planned>> {
    let mut wanted = vec![(hosts_name.to_path_buf(), hosts_text)];
    for f in crate::render::scaffold::base_files()? {
        wanted.push((f.path, f.contents));
    }
    wanted.push((PathBuf::from("flake.nix"), FLAKE_NIX.to_string()));
    let mut out: Vec<Planned> = wanted
        .into_iter()
        .map(|(path, contents)| {
            let exists = root.join(&path).symlink_metadata().is_ok();
            Planned {
                action: if exists { Action::Keep } else { Action::Write },
                path,
                contents: if exists { String::new() } else { contents },
            }
        })
        .collect();
    let gitignore = root.join(".gitignore");
    let existing = match std::fs::read_to_string(&gitignore) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(crate::render::RenderError::ReadFile {
                path: gitignore,
                source,
            }
            .into())
        }
    };
    let missing = missing_gitignore_lines(existing.as_deref().unwrap_or(""));
    let mut add = String::new();
    if existing.is_none() {
        add.push_str("# Written by pve, never committed.\n");
    }
    for l in &missing {
        add.push_str(l);
        add.push('\n');
    }
    out.push(Planned {
        path: PathBuf::from(".gitignore"),
        action: match (&existing, missing.is_empty()) {
            (_, true) => Action::Keep,
            (None, false) => Action::Write,
            (Some(_), false) => Action::Append,
        },
        contents: match existing {
            Some(t) if !missing.is_empty() => {
                let sep = if t.is_empty() || t.ends_with('\n') {
                    ""
                } else {
                    "\n"
                };
                format!("{t}{sep}{add}")
            }
            Some(_) => String::new(),
            None => add,
        },
    });
    Ok(out)
}

pub fn run(ctx: &Context, args: Args) -> Result<u8> {
    let cwd = std::env::current_dir().map_err(|source| UsageError::CurrentFolder { source })?;
    let hosts = match &ctx.hosts {
        Some(p) => cwd.join(p),
        None => cwd.join("hosts.nix"),
    };
    let root = hosts.parent().map_or(cwd.clone(), Path::to_path_buf);
    let hosts_name = PathBuf::from(hosts.file_name().unwrap_or("hosts.nix".as_ref()));
    if hosts.symlink_metadata().is_ok() {
        return Err(InitError::FleetExists { path: hosts }.into());
    }
    let report = super::reporter(args.json);
    let report = report.as_ref();
    let mut prompt = TerminalPrompt::new(false);
    let asking = crate::ui::interactive() && !args.yes;
    let settings = settings(
        &args,
        asking.then_some(&mut prompt as &mut dyn Prompt),
        report,
    )?;
    let places = KeyPlaces::from_env();
    let (recipient, source) = match find_recipient(args.admin_age_recipient.as_deref(), &places)? {
        Some(found) => found,
        None if asking => {
            let r = ask_until_valid(
                &mut prompt,
                report,
                "Your age recipient (age1...)",
                None,
                &|r| {
                    crate::keys::parse_recipient(r)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                },
            )?;
            (r, RecipientSource::Asked)
        }
        None => {
            return Err(InitError::NoRecipient {
                tried: tried(&places),
            }
            .into())
        }
    };
    if !crate::fleet::edit::names::is_plain_identifier(&args.admin_name) {
        return Err(InitError::BadValue {
            flag: "--admin-name",
            value: args.admin_name.clone(),
            reason: "use letters, digits, `-` and `_`, starting with a letter".into(),
        }
        .into());
    }
    let text = hosts_nix(&settings, &args.admin_name, &recipient)?;
    check_new_fleet(&hosts, &text, report)?;
    let planned = plan(&root, &hosts_name, text)?;

    if !args.dry_run {
        std::fs::create_dir_all(&root).map_err(|source| crate::fsutil::FsError::Create {
            path: root.clone(),
            source,
        })?;
        let _lock = RepoLock::take(&root)?;
        // hosts.nix last: a run that stops half-way can be run again.
        for p in planned.iter().rev() {
            let target = root.join(&p.path);
            match p.action {
                Action::Keep => {}
                Action::Write => crate::fsutil::write_new(&target, p.contents.as_bytes())?,
                Action::Append => crate::fsutil::write_atomic(&target, p.contents.as_bytes())?,
            }
        }
    }
    show(
        &args, &root, &planned, &settings, &recipient, &source, report,
    )?;
    Ok(exit::OK)
}

/// The answers: flags, else asked (with defaults), else defaults with
/// --yes; missing ones without a terminal are named.
fn settings(
    args: &Args,
    mut prompt: Option<&mut dyn Prompt>,
    report: &dyn Reporter,
) -> Result<Settings> {
    if prompt.is_none() {
        let mut missing = Vec::new();
        if args.proxmox_host.is_none() {
            missing.push("--proxmox-host");
        }
        if !args.yes {
            for (flag, given) in [
                ("--node", args.node.is_some()),
                ("--storage", args.storage.is_some()),
                ("--template-vmid", args.template_vmid.is_some()),
            ] {
                if !given {
                    missing.push(flag);
                }
            }
        }
        if !missing.is_empty() {
            return Err(InitError::Missing { flags: missing }.into());
        }
    }
    let mut ask = |flag: &'static str,
                   given: Option<String>,
                   question: &str,
                   default: Option<&str>,
                   valid: &dyn Fn(&str) -> std::result::Result<(), String>|
     -> Result<String> {
        let value = match (given, prompt.as_deref_mut()) {
            (Some(v), _) => v,
            (None, Some(p)) => return ask_until_valid(p, report, question, default, valid),
            (None, None) => default.unwrap_or_default().to_string(),
        };
        valid(&value).map_err(|reason| InitError::BadValue {
            flag,
            value: value.clone(),
            reason,
        })?;
        Ok(value)
    };
    let host = ask(
        "--proxmox-host",
        args.proxmox_host.clone(),
        "Proxmox host (API and SSH address)",
        None,
        &|h| {
            if crate::remote::ssh::valid_host(h) && !h.contains('_') {
                Ok(())
            } else {
                Err("use a host name or an IP address, e.g. 192.168.1.12".into())
            }
        },
    )?;
    let node = ask(
        "--node",
        args.node.clone(),
        "Proxmox node",
        Some(DEFAULT_NODE),
        &|n| {
            if crate::fleet::HostName::is_valid(n) {
                Ok(())
            } else {
                Err("a node name is a DNS label, e.g. `pve`".into())
            }
        },
    )?;
    let storage = ask(
        "--storage",
        args.storage.clone(),
        "Storage for VM disks",
        Some(DEFAULT_STORAGE),
        &|s| crate::remote::proxmox::check_storage(s).map_err(|e| e.to_string()),
    )?;
    let vmid = ask(
        "--template-vmid",
        args.template_vmid.map(|v| v.to_string()),
        "VMID of the NixOS template",
        Some(&DEFAULT_TEMPLATE_VMID.to_string()),
        &|v| match v.parse::<u32>() {
            Ok(n) if (100..=999_999_999).contains(&n) => Ok(()),
            _ => Err("a VMID is a number from 100 to 999999999".into()),
        },
    )?;
    Ok(Settings {
        host,
        node,
        storage,
        template_vmid: vmid.parse().unwrap_or(DEFAULT_TEMPLATE_VMID),
    })
}

/// Asks `question` until the answer (or `default` for an empty one)
/// passes `valid`, showing the reason after each bad answer.
fn ask_until_valid(
    prompt: &mut dyn Prompt,
    report: &dyn Reporter,
    question: &str,
    default: Option<&str>,
    valid: &dyn Fn(&str) -> std::result::Result<(), String>,
) -> Result<String> {
    super::wizard::ask_until(prompt, report, "write hosts.nix", question, default, &|a| {
        valid(a)
            .map(|()| a.to_string())
            .map_err(|reason| format!("{a:?} is not valid: {reason}"))
    })
}

/// `pve check` on the hosts.nix init would write, before anything is.
fn check_new_fleet(hosts: &Path, text: &str, report: &dyn Reporter) -> Result<()> {
    let loaded = fleet::load_source(SourceFile::new(hosts, text.to_string()))?;
    let diags = crate::check::check(&loaded);
    if diags.iter().any(|d| d.is_error()) {
        report.block(&crate::diag::render_human(&diags, &loaded.file));
        return Err(InitError::WouldFailCheck.into());
    }
    Ok(())
}

fn show(
    args: &Args,
    root: &Path,
    planned: &[Planned],
    settings: &Settings,
    recipient: &str,
    source: &RecipientSource,
    report: &dyn Reporter,
) -> Result<u8> {
    if args.json {
        let json = serde_json::json!({
            "root": root,
            "dry_run": args.dry_run,
            "files": planned,
            "proxmox": settings,
            "admin": { "name": args.admin_name, "recipient": recipient, "from": source.to_string() },
        });
        return super::print(&format!("{json}\n"));
    }
    let mut text = String::new();
    for p in planned {
        let what = match (p.action, args.dry_run) {
            (Action::Write, true) => "would write",
            (Action::Write, false) => "wrote",
            (Action::Append, true) => "would add lines to",
            (Action::Append, false) => "added lines to",
            (Action::Keep, _) => "kept (it exists)",
        };
        text.push_str(&format!("{what} {}\n", p.path.display()));
    }
    text.push_str(&format!(
        "admin `{}`: {recipient} (from {source})\n",
        args.admin_name
    ));
    if planned
        .iter()
        .any(|p| p.path == Path::new("flake.nix") && p.action == Action::Keep)
    {
        report.note("flake.nix exists and was kept: add pve-fleet's `lib.mkFleet` to it as docs/flake.md shows");
    }
    if args.dry_run {
        text.push_str("nothing written (--dry-run)\n");
    } else {
        text.push_str("Next: pve check; pve render; pve new\n");
    }
    super::print(&text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_flake_is_the_one_docs_flake_md_shows() {
        let doc = include_str!("../../docs/flake.md");
        let start = doc.find("<!-- consumer-flake").unwrap();
        let block = &doc[start..];
        let body = &block[block.find("```nix\n").unwrap() + 7..];
        let body = &body[..body.find("```").unwrap()];
        assert_eq!(body, FLAKE_NIX);
        assert!(FLAKE_NIX.contains("pve-fleet.lib.mkFleet"));
    }

    #[test]
    fn gitignore_gets_only_the_missing_lines() {
        assert_eq!(missing_gitignore_lines(""), GITIGNORE_LINES);
        assert_eq!(
            missing_gitignore_lines("/target\n/.pve.lock\nvms/tofu/.state\n"),
            ["/vms/.journal/"]
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".gitignore"), "/target").unwrap();
        let p = plan(dir.path(), Path::new("hosts.nix"), "{ }\n".into()).unwrap();
        let g = p
            .iter()
            .find(|p| p.path == Path::new(".gitignore"))
            .unwrap();
        assert_eq!(g.action, Action::Append);
        assert_eq!(
            g.contents,
            "/target\n.pve.lock\n/vms/tofu/.state/\n/vms/.journal/\n"
        );
    }

    #[test]
    fn recipient_search_order_and_no_secret_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        let mut places = KeyPlaces {
            home: Some(home.clone()),
            ..Default::default()
        };
        assert_eq!(find_recipient(None, &places).unwrap(), None);
        // ~/.ssh/id_ed25519.pub, converted (the README's ssh-to-age pair).
        std::fs::write(
            home.join(".ssh/id_ed25519.pub"),
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOHz+U0YtjINc54dZiJNclfmEFifF7RXCFlNlTbuZBji me\n",
        )
        .unwrap();
        let (r, s) = find_recipient(None, &places).unwrap().unwrap();
        assert_eq!(
            r,
            "age17044m9wgakla6pzftf4srtl3h5mcsr85jysgt5fg23zpnta8sfdqhzn452"
        );
        assert!(matches!(s, RecipientSource::SshKey(_)));
        // ~/.config/sops/age/keys.txt comes before it (age's own test
        // identity; `age-keygen -y` prints this recipient for it).
        let keys = home.join(".config/sops/age/keys.txt");
        std::fs::create_dir_all(keys.parent().unwrap()).unwrap();
        let secret = "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX";
        std::fs::write(&keys, format!("# created: today\n{secret}\n")).unwrap();
        let (r, s) = find_recipient(None, &places).unwrap().unwrap();
        assert_eq!(
            r,
            "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"
        );
        assert_eq!(s, RecipientSource::AgeKeyFile(keys.clone()));
        // SOPS_AGE_KEY_FILE before both; a broken one is an error that does
        // not show the file's text.
        let bad = dir.path().join("bad.txt");
        let broken = &secret[..secret.len() - 1];
        std::fs::write(&bad, format!("{broken}\n")).unwrap();
        places.sops_age_key_file = Some(bad);
        let e = find_recipient(None, &places).unwrap_err().to_string();
        assert!(!e.contains("GFPYY"), "{e}");
        assert!(e.contains("bad.txt"), "{e}");
        // The flag wins over everything, and is validated.
        let (r, s) = find_recipient(
            Some("age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"),
            &places,
        )
        .unwrap()
        .unwrap();
        assert!(r.starts_with("age1zvk"));
        assert_eq!(s, RecipientSource::Flag);
        assert!(find_recipient(Some("age1nope"), &places).is_err());
    }
}
