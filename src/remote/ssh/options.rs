//! Every ssh option pve passes, in one place: to `ssh` itself ([`client`])
//! and, through `NIX_SSHOPTS`, to the ssh that nixos-rebuild and
//! `nix copy` start ([`nix_sshopts`]). Both get the same host key policy
//! ([`host_key_checking`]) and the same liveness limits ([`liveness`]).
//!
//! Host key checking is never disabled: unknown keys go through
//! `proxmox-ops trust` or `pve integrate`'s pinning step.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Endpoint, SshError};

/// One `-o Key=value`.
pub type Opt = (&'static str, String);

/// Only the project's pinned files (`known_hosts`, already in ssh_config
/// syntax), strict; ssh never learns or rewrites a key (UpdateHostKeys),
/// and the address is not checked against the file (CheckHostIP): a VM's
/// key is looked up under its name (`alias`, HostKeyAlias), so a DHCP
/// address change does not matter.
pub fn host_key_checking(known_hosts: String, alias: Option<&str>) -> Vec<Opt> {
    let mut o = vec![
        ("UserKnownHostsFile", known_hosts),
        ("StrictHostKeyChecking", "yes".into()),
        ("UpdateHostKeys", "no".into()),
        ("CheckHostIP", "no".into()),
    ];
    if let Some(alias) = alias {
        o.push(("HostKeyAlias", alias.to_string()));
    }
    o
}

/// Never ask on the terminal (a password, a passphrase): fail instead.
pub fn batch_mode() -> Opt {
    ("BatchMode", "yes".into())
}

/// How long a connection may take to open, and how fast a dead one is
/// noticed (three missed keep-alives five seconds apart).
pub fn liveness(connect_timeout: Duration) -> Vec<Opt> {
    vec![
        (
            "ConnectTimeout",
            connect_timeout.as_secs().max(1).to_string(),
        ),
        ("ServerAliveInterval", "5".into()),
        ("ServerAliveCountMax", "3".into()),
    ]
}

/// Shares one connection through the socket `control_path` (kept 60 s
/// after the last command), or none at all.
fn connection_sharing(control_path: Option<String>) -> Vec<Opt> {
    match control_path {
        Some(cp) => vec![
            ("ControlMaster", "auto".into()),
            ("ControlPath", cp),
            ("ControlPersist", "60".into()),
        ],
        None => vec![("ControlMaster", "no".into())],
    }
}

/// `-o ControlPath=...` alone, to talk to a running master (`-O exit`).
pub fn control_path_only(control_path: &Path) -> Result<Vec<String>, SshError> {
    Ok(vec![
        "-o".into(),
        format!("ControlPath={}", config_path(control_path)?),
    ])
}

/// What [`client`] needs to know about one connection.
pub struct Client<'a> {
    pub endpoint: &'a Endpoint,
    pub known_hosts: &'a [PathBuf],
    pub host_key_alias: Option<&'a str>,
    pub connect_timeout: Duration,
    /// The ControlMaster socket, when the connection is shared.
    pub control_path: Option<PathBuf>,
    /// BatchMode (everything but an interactive console).
    pub batch: bool,
}

/// The arguments every `ssh` invocation gets, before the host.
pub fn client(c: &Client<'_>) -> Result<Vec<String>, SshError> {
    let files = c
        .known_hosts
        .iter()
        .map(|p| config_path(p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut o = host_key_checking(files.join(" "), c.host_key_alias);
    let name = c
        .host_key_alias
        .map_or_else(|| c.endpoint.known_hosts_name(), str::to_string);
    if let Some(algos) = host_key_algorithms(c.known_hosts, &name) {
        o.push(("HostKeyAlgorithms", algos));
    }
    if c.batch {
        o.push(batch_mode());
    }
    o.extend(liveness(c.connect_timeout));
    o.push(("LogLevel", "ERROR".into()));
    let control = c.control_path.as_deref().map(config_path).transpose()?;
    o.extend(connection_sharing(control));
    let mut a: Vec<String> = Vec::new();
    for (key, value) in o {
        a.push("-o".into());
        a.push(format!("{key}={value}"));
    }
    if let Some(id) = &c.endpoint.identity {
        a.push("-i".into());
        // ssh expands %-tokens in IdentityFile.
        a.push(id.to_string_lossy().replace('%', "%%"));
        a.push("-o".into());
        a.push("IdentitiesOnly=yes".into());
    }
    if let Some(p) = c.endpoint.port {
        a.push("-p".into());
        a.push(p.to_string());
    }
    a.push("-l".into());
    a.push(c.endpoint.user.clone());
    Ok(a)
}

/// `HostKeyAlgorithms` limited to the key types recorded for `name`: ssh
/// then asks the server for those only, so a key of another type (an
/// impostor offering only RSA where ed25519 was confirmed) is never even
/// considered. None when nothing is recorded (strict checking refuses).
pub fn host_key_algorithms(files: &[PathBuf], name: &str) -> Option<String> {
    let mut algos: Vec<String> = Vec::new();
    for k in files
        .iter()
        .flat_map(|f| crate::known_hosts::known_keys(f, name))
    {
        let safe = k
            .key_type
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@.-".contains(c));
        if !safe {
            continue;
        }
        let names = if k.key_type == "ssh-rsa" {
            // The key type ssh-rsa is signed with these algorithms.
            vec!["rsa-sha2-512".to_string(), "rsa-sha2-256".to_string()]
        } else {
            vec![k.key_type]
        };
        for n in names {
            if !algos.contains(&n) {
                algos.push(n);
            }
        }
    }
    (!algos.is_empty()).then(|| algos.join(","))
}

/// The ssh that nixos-rebuild (or `nix copy`) starts to reach a VM.
pub struct NixSsh<'a> {
    /// The VMs' known_hosts file.
    pub known_hosts: &'a Path,
    /// The name the VM's key is pinned under (HostKeyAlias).
    pub alias: &'a str,
    pub port: u16,
    pub identity: Option<&'a Path>,
    pub connect_timeout: Duration,
}

/// `NIX_SSHOPTS` for `n`: the same pinned known_hosts and strict checking
/// as every other connection.
pub fn nix_sshopts(n: &NixSsh<'_>) -> Result<String, SshError> {
    let mut o = host_key_checking(n.known_hosts.to_string_lossy().into_owned(), Some(n.alias));
    o.push(batch_mode());
    o.extend(liveness(n.connect_timeout));
    o.push(("Port", n.port.to_string()));
    if let Some(id) = n.identity {
        o.push(("IdentityFile", id.to_string_lossy().into_owned()));
        o.push(("IdentitiesOnly", "yes".into()));
    }
    sshopts_line(&o)
}

/// `-o Key=value ...` for `NIX_SSHOPTS`. nixos-rebuild splits the variable
/// on whitespace (the shell script) or shell-style (nixos-rebuild-ng, Nix's
/// own ssh stores): a value is accepted only when quoting it changes
/// nothing, so both readers see exactly these arguments. `%` is refused
/// too: ssh expands `%` tokens in file names.
pub fn sshopts_line(options: &[Opt]) -> Result<String, SshError> {
    let mut words = Vec::with_capacity(options.len() * 2);
    for (key, value) in options {
        let word = format!("{key}={value}");
        if value.is_empty() || value.contains('%') || crate::shell::quote(&word) != word {
            return Err(SshError::NixSshOption {
                key,
                value: value.clone(),
            });
        }
        words.push("-o".to_string());
        words.push(word);
    }
    Ok(crate::shell::join(&words))
}

/// Writes a path into an ssh_config value: `%` would start a token and a
/// space would split the list, so escape and quote.
pub fn config_path(p: &Path) -> Result<String, SshError> {
    let s = p.to_string_lossy();
    if s.contains('"') || s.contains('\n') {
        return Err(SshError::UnquotablePath {
            path: p.to_path_buf(),
        });
    }
    let s = s.replace('%', "%%");
    Ok(if s.contains(' ') {
        format!("\"{s}\"")
    } else {
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Classify as _;

    #[test]
    fn nix_sshopts_carries_only_values_that_split_the_same_every_way() {
        let line = sshopts_line(&[
            ("HostKeyAlias", "web".into()),
            ("UserKnownHostsFile", "/srv/fleet/vms/known_hosts".into()),
        ])
        .expect("plain values");
        assert_eq!(
            line,
            "-o HostKeyAlias=web -o UserKnownHostsFile=/srv/fleet/vms/known_hosts"
        );
        for hostile in [
            "web -oProxyCommand=touch${IFS}/tmp/x",
            "web\t-oProxyCommand=x",
            "web'x",
            "web\"x",
            "$(id)",
            "web;id",
            "/tmp/%h",
            "",
        ] {
            let e = sshopts_line(&[("HostKeyAlias", hostile.to_string())]).expect_err(hostile);
            assert_eq!(e.kind().exit_code(), 2, "{hostile}");
            assert!(e.to_string().contains("HostKeyAlias"), "{e}");
        }
    }

    #[test]
    fn nix_sshopts_pin_the_vm_key_like_every_connection() {
        let line = nix_sshopts(&NixSsh {
            known_hosts: Path::new("/srv/fleet/vms/known_hosts"),
            alias: "web",
            port: 2222,
            identity: Some(Path::new("/k/id")),
            connect_timeout: Duration::from_secs(10),
        })
        .expect("plain values");
        for o in [
            "-o UserKnownHostsFile=/srv/fleet/vms/known_hosts",
            "-o StrictHostKeyChecking=yes",
            "-o HostKeyAlias=web",
            "-o UpdateHostKeys=no",
            "-o CheckHostIP=no",
            "-o BatchMode=yes",
            "-o ConnectTimeout=10",
            "-o Port=2222",
            "-o IdentityFile=/k/id -o IdentitiesOnly=yes",
        ] {
            assert!(line.contains(o), "{o} in {line}");
        }
    }
}
