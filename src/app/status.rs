//! `pve status`: hosts.nix beside what Proxmox reports. One
//! `/cluster/resources` round trip, then (unless `--quick`) `qm config`
//! and the guest agent per VM on this node, in parallel and bounded;
//! [`model::rows`] turns the answers into rows with their drift,
//! [`table`] renders them for people, `--json` for scripts.

pub mod model;
pub mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::cli::status::Args;
use crate::error::{exit, Classify, Kind, Result};
use crate::fleet::Fleet;
use crate::remote::proxmox::guests::{Guest, GuestDetails};
use crate::remote::proxmox::Proxmox;

use super::Context;
use model::Row;

/// Queries to the guest agent and `qm config` in flight at once (sshd's
/// default `MaxSessions` is 10 per shared connection).
const PARALLEL: usize = 6;

/// Bad selections of `pve status` (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("`{}` is not a host in {file}", crate::diag::escape_text(.name, 80))]
    UnknownHost {
        name: String,
        file: String,
        known: Vec<String>,
    },
    #[error("no host has the tag `{}` (in hosts.nix or on Proxmox)", crate::diag::escape_text(.tag, 80))]
    UnknownTag { tag: String },
    #[error("`@` names no tag")]
    EmptyTag,
}

impl Classify for StatusError {
    fn kind(&self) -> Kind {
        Kind::Input
    }
    fn help(&self) -> Option<String> {
        match self {
            StatusError::UnknownHost { known, .. } if known.is_empty() => {
                Some("hosts.nix has no hosts yet".into())
            }
            StatusError::UnknownHost { known, .. } => {
                Some(format!("the hosts are: {}", known.join(", ")))
            }
            StatusError::UnknownTag { .. } => Some(
                "tags come from `proxmox.tags` in hosts.nix and from Proxmox; `pve status` lists them"
                    .into(),
            ),
            StatusError::EmptyTag => Some("write a tag after the `@`, as in `@web`".into()),
        }
    }
}

/// What the command line selects.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Host(String),
    Tag(String),
}

pub fn run(ctx: &Context, args: Args) -> Result<u8> {
    let loaded = ctx.load()?;
    let fleet = &loaded.fleet;
    let targets = parse_targets(
        fleet,
        &args.targets,
        &loaded.file.path.display().to_string(),
    )?;
    let px = needs_proxmox(fleet)
        .then(|| Proxmox::from_loaded(&loaded))
        .transpose()?;
    let options = Options {
        quick: args.quick,
        timeout: Duration::from_secs(args.agent_timeout),
    };
    let Some(secs) = args.watch else {
        let rows = {
            let reporter = super::reporter(args.json);
            let task = reporter.task("Reading the cluster");
            let rows = gather(fleet, px.as_ref(), &targets, &options)?;
            task.done();
            rows
        };
        super::print(&render(&rows, args.json))?;
        return Ok(exit_code(&rows));
    };
    loop {
        let shown = match gather(fleet, px.as_ref(), &targets, &options) {
            Ok(rows) => crate::ui::screen::redraw(&render(&rows, args.json), !args.json),
            // An input error stays one; an unreachable Proxmox is shown and
            // tried again at the next refresh.
            Err(e) if e.kind() == Kind::Input => return Err(e),
            Err(e) => {
                // Ctrl-C fails the query in flight: that is no error to show.
                crate::remote::ssh::interrupt::wait_if_interrupted();
                if args.json {
                    // stdout stays JSON lines; the error goes to stderr.
                    crate::ui::report_error(&e);
                    true
                } else {
                    crate::ui::screen::redraw(&watch_error(&e), true)
                }
            }
        };
        if !shown {
            // Nobody reads any more (`pve status --watch | head`).
            return Ok(exit::OK);
        }
        std::thread::sleep(Duration::from_secs(secs));
    }
}

/// A refresh that failed, as the frame in its place (escaped: the message
/// carries what the remote said).
fn watch_error(e: &crate::error::AppError) -> String {
    let shown = |t: &str| crate::diag::escape_text(t, 4000);
    let mut text = format!("error: {}\n", shown(&e.to_string()));
    if let Some(h) = e.help() {
        text.push_str(&format!("  = help: {}\n", shown(&h)));
    }
    text.push_str("(trying again at the next refresh; Ctrl-C stops)\n");
    text
}

/// A fleet without VMs and without `_proxmox` is shown without asking
/// Proxmox anything (its hosts are all "not a VM").
fn needs_proxmox(fleet: &Fleet) -> bool {
    fleet.proxmox.is_some() || fleet.vms().next().is_some()
}

fn parse_targets(fleet: &Fleet, args: &[String], file: &str) -> Result<Vec<Target>> {
    let mut out = Vec::new();
    for a in args {
        if let Some(tag) = a.strip_prefix('@') {
            if tag.is_empty() {
                return Err(StatusError::EmptyTag.into());
            }
            out.push(Target::Tag(tag.to_string()));
        } else if fleet.host(a).is_some() {
            out.push(Target::Host(a.clone()));
        } else {
            return Err(StatusError::UnknownHost {
                name: a.clone(),
                file: file.to_string(),
                known: fleet.hosts.iter().map(|h| h.name.clone()).collect(),
            }
            .into());
        }
    }
    Ok(out)
}

/// How much to ask beyond `/cluster/resources`.
struct Options {
    /// Nothing: no per-VM queries at all.
    quick: bool,
    /// What one VM's query may take: a hung guest agent shows as `-`.
    timeout: Duration,
}

/// The rows to show: everything read from Proxmox, then filtered.
fn gather(
    fleet: &Fleet,
    px: Option<&Proxmox>,
    targets: &[Target],
    options: &Options,
) -> Result<Vec<Row>> {
    let guests = match px {
        Some(px) => px.guests()?,
        None => Vec::new(),
    };
    let rows = select(
        fleet,
        model::rows(fleet, &guests, &BTreeMap::new()),
        targets,
    )?;
    let (Some(px), false) = (px, options.quick) else {
        return Ok(rows);
    };
    let wanted = detail_queries(&rows, &guests);
    if wanted.is_empty() {
        return Ok(rows);
    }
    let details = fetch_details(px, &wanted, options.timeout);
    select(fleet, model::rows(fleet, &guests, &details), targets)
}

/// The VMs worth a config query (and, when running, an agent query): the
/// shown ones, on whichever node holds them (`qm` on the node pve talks
/// to, `pvesh get /nodes/<node>/...` for the others).
fn detail_queries(rows: &[Row], guests: &[Guest]) -> Vec<(u32, String, bool)> {
    let shown: BTreeSet<u32> = rows.iter().filter_map(|r| r.vmid).collect();
    guests
        .iter()
        .filter(|g| g.kind == "qemu" && shown.contains(&g.vmid))
        .map(|g| (g.vmid, g.node.clone(), g.status == "running"))
        .collect()
}

/// Runs the per-VM queries with at most [`PARALLEL`] in flight.
fn fetch_details(
    px: &Proxmox,
    wanted: &[(u32, String, bool)],
    timeout: Duration,
) -> BTreeMap<u32, GuestDetails> {
    let next = AtomicUsize::new(0);
    let found = Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for _ in 0..PARALLEL.min(wanted.len()) {
            s.spawn(|| {
                while let Some((vmid, node, running)) =
                    wanted.get(next.fetch_add(1, Ordering::SeqCst))
                {
                    let d = px.guest_details(*vmid, node, *running, timeout);
                    if let Ok(mut f) = found.lock() {
                        f.insert(*vmid, d);
                    }
                }
            });
        }
    });
    found.into_inner().unwrap_or_default()
}

/// Keeps the rows the targets name (all without targets); a tag matches
/// the tags on Proxmox and those hosts.nix gives the host.
fn select(fleet: &Fleet, rows: Vec<Row>, targets: &[Target]) -> Result<Vec<Row>> {
    if targets.is_empty() {
        return Ok(rows);
    }
    let nix_tags: BTreeMap<&str, Vec<String>> = fleet
        .vms()
        .filter_map(|(h, spec)| {
            model::expected(fleet, h, spec)
                .tags
                .map(|t| (h.name.as_str(), t))
        })
        .collect();
    let has_tag = |r: &Row, tag: &str| {
        r.tags.iter().any(|t| t == tag)
            || r.host
                .as_deref()
                .and_then(|h| nix_tags.get(h))
                .is_some_and(|t| t.iter().any(|t| t == tag))
    };
    for t in targets {
        if let Target::Tag(tag) = t {
            if !rows.iter().any(|r| has_tag(r, tag)) {
                return Err(StatusError::UnknownTag { tag: tag.clone() }.into());
            }
        }
    }
    Ok(rows
        .into_iter()
        .filter(|r| {
            targets.iter().any(|t| match t {
                Target::Host(h) => r.host.as_deref() == Some(h.as_str()),
                Target::Tag(tag) => has_tag(r, tag),
            })
        })
        .collect())
}

/// The table, or with `--json` one JSON array on one line.
fn render(rows: &[Row], json: bool) -> String {
    if json {
        // Rows hold only strings, numbers and finite floats: always JSON.
        let mut line = serde_json::to_string(rows).unwrap_or_else(|_| "[]".into());
        line.push('\n');
        line
    } else {
        table::render(rows, &model::summary(rows))
    }
}

fn exit_code(rows: &[Row]) -> u8 {
    if rows.iter().any(Row::drifted) {
        exit::FINDINGS
    } else {
        exit::OK
    }
}
