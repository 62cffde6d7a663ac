//! `pve config get|set`: the fleet's settings (`_proxmox`, `_sops`, ...),
//! through the format-preserving editor. A `set` that would make `pve
//! check` fail is refused unless `--force`.

use crate::cli::config::{Args, ConfigCommand, GetArgs, SetArgs};
use crate::error::{exit, Classify, Kind, Result};
use crate::fleet::edit::{self, names, EditError, ErrorKind};
use crate::fleet::value::Value;

use super::Context;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("bad setting {key:?}: {detail}")]
    BadKey { key: String, detail: String },
    /// The path does not start with a `_` set.
    #[error("`{key}` is not a fleet setting: settings live in the `_` sets of hosts.nix (`_proxmox`, `_sops`, ...)")]
    NotASetting { key: String },
    #[error("hosts.nix does not set `{key}`")]
    NotSet {
        key: String,
        did_you_mean: Option<String>,
    },
    /// The edit would add `pve check` errors (shown above).
    #[error("{what} would make `pve check` fail; hosts.nix was not changed")]
    WouldFailCheck { what: String },
}

impl Classify for ConfigError {
    fn kind(&self) -> Kind {
        match self {
            ConfigError::WouldFailCheck { .. } => Kind::Refused,
            _ => Kind::Input,
        }
    }
    fn help(&self) -> Option<String> {
        Some(match self {
            ConfigError::BadKey { .. } => "write the key as a dotted path: `_proxmox.templateVmid`".into(),
            ConfigError::NotASetting { key } => format!(
                "a host's attributes are changed with `pve host set HOST ATTR VALUE`; did you mean `_{key}`?"
            ),
            ConfigError::NotSet { did_you_mean: Some(s), .. } => format!("did you mean `{s}`?"),
            ConfigError::NotSet { .. } => "`pve config set KEY VALUE` sets it; `pve config get _proxmox` shows a whole set".into(),
            ConfigError::WouldFailCheck { .. } => "fix the value, or pass --force to write it anyway".into(),
        })
    }
}

pub fn run(ctx: &Context, args: Args) -> Result<u8> {
    match args.command {
        ConfigCommand::Get(a) => get(ctx, a),
        ConfigCommand::Set(a) => set(ctx, a),
    }
}

/// `_proxmox.templateVmid` → `["_proxmox", "templateVmid"]`; the first
/// name must be a settings set.
pub fn split_key(key: &str) -> std::result::Result<Vec<String>, ConfigError> {
    let path = names::split_attr_path(key).map_err(|detail| ConfigError::BadKey {
        key: key.to_string(),
        detail,
    })?;
    match path.first() {
        Some(first) if first.starts_with('_') && first.len() > 1 => Ok(path),
        _ => Err(ConfigError::NotASetting {
            key: key.to_string(),
        }),
    }
}

fn get(ctx: &Context, a: GetArgs) -> Result<u8> {
    let path = split_key(&a.key)?;
    let loaded = ctx.load()?;
    let value = match lookup(&loaded.value, &path, &a.key) {
        Ok(value) => value,
        Err(unset) => {
            let default = crate::fleet::defaults::setting(&path).ok_or(unset)?;
            return super::print(&format!("{}\n", shown_default(&default, a.json)));
        }
    };
    let json = value.to_nix_json(&loaded.root_dir);
    let text = match value.as_str() {
        Some(s) if !a.json => s.to_string(),
        _ => json,
    };
    super::print(&format!("{text}\n"))
}

/// pve's default for an unset key, marked so that nobody takes it for a
/// value of hosts.nix: `2 (default)`. With `--json` the value alone, as pve
/// will use it: the same shape as a set key's, so a script reads one type.
fn shown_default(default: &serde_json::Value, json: bool) -> String {
    match default.as_str() {
        Some(s) if !json => format!("{s} (default)"),
        _ if json => default.to_string(),
        _ => format!("{default} (default)"),
    }
}

/// The value at `path`, or which name is missing (with a did-you-mean
/// among its neighbours).
fn lookup<'a>(
    root: &'a Value,
    path: &[String],
    key: &str,
) -> std::result::Result<&'a Value, ConfigError> {
    let mut v = root;
    for (i, name) in path.iter().enumerate() {
        let attrs = v.as_attrs();
        match attrs.and_then(|a| a.get(name)) {
            Some(attr) => v = &attr.value,
            None => {
                let near = attrs.and_then(|a| {
                    crate::diag::did_you_mean(name, a.keys().map(|k| k.as_str())).map(|s| {
                        let mut p: Vec<&str> = path[..i].iter().map(String::as_str).collect();
                        p.push(s);
                        names::attr_path(&p)
                    })
                });
                return Err(ConfigError::NotSet {
                    key: key.to_string(),
                    did_you_mean: near,
                });
            }
        }
    }
    Ok(v)
}

/// `{ a = { b = VALUE; }; }` for the names below a set that does not exist
/// yet.
fn nested(rest: &[String], value: &str) -> String {
    rest.iter().rev().fold(value.to_string(), |inner, name| {
        format!("{{ {} = {inner}; }}", names::attr_name(name))
    })
}

/// The edit: set the value, creating the top-level set when hosts.nix has
/// none.
fn edit_text(text: &str, path: &[String], value: &str) -> std::result::Result<String, EditError> {
    let refs: Vec<&str> = path.iter().map(String::as_str).collect();
    match edit::set_attr(text, &refs, value) {
        Err(e) if e.kind == ErrorKind::NoSuchHost => {
            edit::add_config_attr(text, &path[0], &nested(&path[1..], value))
        }
        other => other,
    }
}

fn set(ctx: &Context, a: SetArgs) -> Result<u8> {
    let path = split_key(&a.key)?;
    let hosts = ctx.hosts_path()?;
    let value = if a.string {
        names::string_literal(&a.value)
    } else {
        a.value.clone()
    };
    let op = |t: &str| edit_text(t, &path, &value);
    let guard = super::checked_edit::Guard {
        what: format!("setting `{}`", a.key),
        dry_run: a.dry_run,
        force: a.force,
        skip: &[],
    };
    let Some(applied) = super::checked_edit::write_unless_check_fails(&hosts, &guard, op)? else {
        return Ok(exit::OK);
    };
    let msg = if applied.changed() {
        format!(
            "{}: set {}\n",
            applied.path.display(),
            names::attr_path(&path.iter().map(String::as_str).collect::<Vec<_>>())
        )
    } else {
        format!("{}: already so; nothing written\n", applied.path.display())
    };
    super::print(&msg)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_name_a_settings_set() {
        assert_eq!(
            split_key("_proxmox.templateVmid").unwrap(),
            ["_proxmox", "templateVmid"]
        );
        assert!(matches!(
            split_key("sandbox.proxmox.cores"),
            Err(ConfigError::NotASetting { .. })
        ));
        assert!(matches!(
            split_key("_"),
            Err(ConfigError::NotASetting { .. })
        ));
        assert!(matches!(
            split_key("_a..b"),
            Err(ConfigError::BadKey { .. })
        ));
    }

    #[test]
    fn a_missing_set_is_created_and_an_existing_one_edited_in_place() {
        let text = "{\n  _proxmox = { host = \"h\"; }; # the host\n  web = { };\n}\n";
        let out = edit_text(
            text,
            &["_sops".into(), "admins".into(), "alice".into()],
            "\"age1x\"",
        )
        .unwrap();
        assert_eq!(
            out,
            "{\n  _proxmox = { host = \"h\"; }; # the host\n  _sops = { admins = { alice = \"age1x\"; }; };\n  web = { };\n}\n"
        );
        let out = edit_text(&out, &["_proxmox".into(), "templateVmid".into()], "9003").unwrap();
        assert!(
            out.contains("_proxmox = { host = \"h\"; templateVmid = 9003; }; # the host"),
            "{out}"
        );
    }
}
