//! Which hosts a deploy touches, in which waves: names, `@tags`
//! (`proxmox.tags`), `--all` (every VM), readonly VMs, and the per-host
//! health checks from hosts.nix (`deploy.healthCheck`).

use std::collections::BTreeSet;

use super::DeployError;
use crate::error::Result;
use crate::fleet::{Host, Loaded};
use crate::report::Reporter;

/// One host to deploy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Target {
    pub name: String,
    /// The name its SSH host key is pinned under (HostKeyAlias).
    pub hostname: String,
    pub vmid: Option<u32>,
    /// Deployed only because `--include-readonly` named the intent: no
    /// snapshot, no Proxmox operation.
    pub readonly: bool,
    /// `deploy.healthCheck`: shell commands run on the host after the
    /// switch, each must exit 0.
    pub health_checks: Vec<String>,
}

/// The waves, in order; every host in exactly one.
pub fn select(
    loaded: &Loaded,
    args: &[String],
    all: bool,
    include_readonly: bool,
    waves: &[String],
    report: &dyn Reporter,
) -> Result<Vec<Vec<Target>>> {
    let fleet = &loaded.fleet;
    let readonly_ids = crate::remote::proxmox::readonly_vmids(fleet)?;
    let is_readonly = |h: &Host| {
        h.proxmox.as_ref().is_some_and(|p| {
            p.readonly
                || p.vmid
                    .as_ref()
                    .and_then(|v| u32::try_from(v.value).ok())
                    .is_some_and(|v| readonly_ids.contains(&v))
        })
    };
    // (host, named explicitly) in the order asked, each host once.
    let mut wanted: Vec<(&Host, bool)> = Vec::new();
    if all {
        wanted.extend(
            fleet
                .hosts
                .iter()
                .filter(|h| h.proxmox.is_some())
                .map(|h| (h, false)),
        );
    }
    for a in args {
        if let Some(tag) = a.strip_prefix('@') {
            let before = wanted.len();
            wanted.extend(
                fleet
                    .hosts
                    .iter()
                    .filter(|h| has_tag(h, tag))
                    .map(|h| (h, false)),
            );
            if wanted.len() == before {
                return Err(DeployError::UnknownTag {
                    tag: tag.to_string(),
                    file: loaded.file.path.clone(),
                }
                .into());
            }
        } else {
            let h = fleet.host(a).ok_or_else(|| DeployError::UnknownHost {
                name: a.clone(),
                file: loaded.file.path.clone(),
                suggestion: crate::diag::did_you_mean(
                    a,
                    fleet.hosts.iter().map(|h| h.name.as_str()),
                )
                .map(str::to_string),
            })?;
            wanted.push((h, true));
        }
    }
    let mut picked: Vec<&Host> = Vec::new();
    for (h, explicit) in wanted {
        if picked.iter().any(|c| c.name == h.name) {
            continue;
        }
        if is_readonly(h) && !include_readonly {
            if explicit {
                return Err(DeployError::Readonly {
                    name: h.name.clone(),
                }
                .into());
            }
            report.note(&format!(
                "note: leaving out `{}`: it is readonly (--include-readonly deploys it)",
                h.name
            ));
            continue;
        }
        picked.push(h);
    }
    let chosen = picked;
    if chosen.is_empty() {
        return Err(DeployError::NothingSelected.into());
    }
    let targets = chosen
        .into_iter()
        .map(|h| target(loaded, h, is_readonly(h)))
        .collect::<Result<Vec<_>>>()?;
    into_waves(loaded, targets, waves)
}

fn has_tag(h: &Host, tag: &str) -> bool {
    h.proxmox
        .as_ref()
        .and_then(|p| p.tags.as_ref())
        .is_some_and(|t| t.iter().any(|x| x == tag))
}

fn target(loaded: &Loaded, h: &Host, readonly: bool) -> Result<Target> {
    if h.configuration_file.is_none() {
        return Err(DeployError::NotNixos {
            name: h.name.clone(),
        }
        .into());
    }
    crate::remote::proxmox::check_name(&h.name)?;
    crate::remote::proxmox::check_name(h.hostname())?;
    Ok(Target {
        name: h.name.clone(),
        hostname: h.hostname().to_string(),
        vmid: h
            .proxmox
            .as_ref()
            .and_then(|p| p.vmid.as_ref())
            .and_then(|v| u32::try_from(v.value).ok()),
        readonly,
        health_checks: health_checks(loaded, &h.name)?,
    })
}

/// `<host>.deploy.healthCheck` (absent: none).
fn health_checks(loaded: &Loaded, name: &str) -> Result<Vec<String>> {
    let Some(check) = loaded
        .value
        .as_attrs()
        .and_then(|a| a.get(name))
        .and_then(|h| h.value.as_attrs())
        .and_then(|h| h.get("deploy"))
        .and_then(|d| d.value.as_attrs())
        .and_then(|d| d.get("healthCheck"))
    else {
        return Ok(Vec::new());
    };
    let bad = || DeployError::BadHealthCheck {
        name: name.to_string(),
        location: loaded.file.location(check.value.span.start().into()),
    };
    let list = check.value.as_list().ok_or_else(bad)?;
    list.iter()
        .map(|v| v.as_str().map(str::to_string).ok_or_else(|| bad().into()))
        .collect()
}

/// Splits the hosts into waves: each goes into the first `--wave @tag` it
/// carries; `@rest` (or no wave at all) takes every host left, and hosts
/// no wave names form a last wave. Without `--wave`: one wave.
fn into_waves(loaded: &Loaded, targets: Vec<Target>, waves: &[String]) -> Result<Vec<Vec<Target>>> {
    let mut left = targets;
    let mut out: Vec<Vec<Target>> = Vec::new();
    for w in waves {
        let tag = w
            .strip_prefix('@')
            .filter(|t| !t.is_empty())
            .ok_or_else(|| DeployError::BadWave { wave: w.clone() })?;
        let (now, later): (Vec<Target>, Vec<Target>) = if tag == "rest" {
            (left, Vec::new())
        } else {
            let tagged: BTreeSet<&str> = loaded
                .fleet
                .hosts
                .iter()
                .filter(|h| has_tag(h, tag))
                .map(|h| h.name.as_str())
                .collect();
            left.into_iter()
                .partition(|t| tagged.contains(t.name.as_str()))
        };
        left = later;
        if !now.is_empty() {
            out.push(now);
        }
    }
    if !left.is_empty() {
        out.push(left);
    }
    Ok(out)
}
