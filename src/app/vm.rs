//! `pve vm <op>` and `proxmox-ops <op>`. Flags are validated here (VMIDs,
//! names, readonly VMs) before anything connects; the work is in
//! `remote::proxmox`.

use std::time::Duration;

use serde::Serialize;

use crate::cli::vm::{Args, Op};
use crate::error::{exit, Result};
use crate::remote::proxmox::cluster_ops::{check_node, Listing};
use crate::remote::proxmox::{self, parse_vmid, Proxmox, Settings};
use crate::remote::ssh;
use crate::report::Reporter as _;
use crate::ui::{self, Terminal};

use super::{Context, VmCommandError};

fn json_out<T: Serialize>(v: &T) -> Result<u8> {
    // Through serde_json::Value: object keys come out sorted.
    let value = serde_json::to_value(v).map_err(|source| VmCommandError::EncodeJson { source })?;
    let mut text = serde_json::to_string_pretty(&value)
        .map_err(|source| VmCommandError::EncodeJson { source })?;
    text.push('\n');
    super::print(&text)
}

/// Runs a slow operation (a Proxmox task) with progress on the terminal.
fn slow<T>(message: &str, op: impl FnOnce() -> Result<T>) -> Result<T> {
    let task = Terminal::new().task(message);
    let result = op()?;
    task.done();
    Ok(result)
}

fn print_stdout_of_remote(text: &str, summary: &str) -> Result<u8> {
    let mut out = String::from(text);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(summary);
    out.push('\n');
    super::print(&out)
}

/// Checks everything that needs no connection, in the order a person
/// would want to hear about it.
fn precheck(op: &Op, settings: &Settings) -> Result<()> {
    let w = |v: &str, what: &str| -> Result<()> { settings.ensure_writable(parse_vmid(v)?, what) };
    match op {
        Op::Status { vmid, .. }
        | Op::Config { vmid, .. }
        | Op::Console { vmid }
        | Op::GetIp { vmid, .. }
        | Op::WaitSsh { vmid, .. }
        | Op::Hostkey { vmid } => parse_vmid(vmid).map(|_| ()),
        Op::Clone {
            source,
            target,
            name,
            storage,
            target_node,
            ..
        } => {
            parse_vmid(source)?;
            proxmox::check_name(name)?;
            if let Some(n) = target_node {
                check_node(n)?;
            }
            if let Some(s) = storage {
                proxmox::check_storage(s)?;
            }
            w(target, "clone onto")
        }
        Op::Configure {
            vmid,
            cores,
            memory,
        } => {
            if cores.is_none() && memory.is_none() {
                return Err(VmCommandError::NothingToChange.into());
            }
            w(vmid, "configure")
        }
        Op::Resize { vmid, disk, size } => {
            proxmox::check_disk_slot(disk)?;
            proxmox::check_size(size)?;
            w(vmid, "resize")
        }
        Op::CreateDisk {
            vmid,
            slot,
            storage,
            ..
        } => {
            proxmox::check_disk_slot(slot)?;
            proxmox::check_storage(storage)?;
            w(vmid, "add a disk to")
        }
        Op::Start { vmid } => w(vmid, "start"),
        Op::Stop { vmid } => w(vmid, "stop"),
        Op::Shutdown { vmid, .. } => w(vmid, "shut down"),
        Op::Restart { vmid } => w(vmid, "restart"),
        Op::Template { vmid } => w(vmid, "convert to a template"),
        Op::Destroy {
            vmid,
            yes,
            expect_name,
        } => {
            w(vmid, "destroy")?;
            if *yes && expect_name.is_none() {
                return Err(VmCommandError::YesWithoutExpectName.into());
            }
            Ok(())
        }
        Op::List { .. } | Op::Storage { .. } | Op::NextVmid { .. } => Ok(()),
        Op::Trust { fingerprint, .. } => match fingerprint {
            Some(f) if !f.starts_with("SHA256:") => Err(VmCommandError::NotAFingerprint {
                fingerprint: f.clone(),
            }
            .into()),
            _ => Ok(()),
        },
    }
}

pub fn run(ctx: &Context, args: Args) -> Result<u8> {
    let loaded = ctx.load()?;
    let mut settings = Settings::from_loaded(&loaded)?;
    settings.op_timeout = args.timeout.map(Duration::from_secs);
    settings.reuse = !args.no_reuse;
    precheck(&args.op, &settings)?;
    if let Op::Trust {
        yes,
        fingerprint,
        replace,
    } = &args.op
    {
        return trust(&settings, *yes, fingerprint.as_deref(), *replace);
    }
    let px = Proxmox::connect(settings)?;
    let id = |v: &str| parse_vmid(v);
    match args.op {
        Op::List { json } => {
            let l = px.list_cluster()?;
            if json {
                return json_out(&l.vms);
            }
            super::print(&list_text(&l))
        }
        Op::Status { vmid, json } => {
            let st = px.status(id(&vmid)?)?;
            if json {
                return json_out(&st);
            }
            let mut t = format!(
                "vmid: {}\nname: {}\nstatus: {}\nqmpstatus: {}\nuptime: {}s\n",
                st.vmid, st.name, st.status, st.qmpstatus, st.uptime_s
            );
            if let Some(l) = &st.lock {
                t.push_str(&format!("lock: {l}\n"));
            }
            super::print(&t)
        }
        Op::Config { vmid, json } => {
            let c = px.config(id(&vmid)?)?;
            if json {
                return json_out(&c.entries);
            }
            let t: String = c
                .entries
                .iter()
                .map(|(k, v)| format!("{k}: {v}\n"))
                .collect();
            super::print(&t)
        }
        Op::Clone {
            source,
            target,
            name,
            full,
            storage,
            target_node,
        } => {
            let (s, t) = (id(&source)?, id(&target)?);
            let node = target_node.as_deref().map(check_node).transpose()?;
            let out = slow(&format!("cloning VM {s} to VM {t}"), || {
                px.clone_vm_to(s, t, &name, full, storage.as_deref(), node.as_ref())
            })?;
            print_stdout_of_remote(&out, &format!("cloned VM {s} to VM {t} ({name})"))
        }
        Op::Configure {
            vmid,
            cores,
            memory,
        } => {
            let v = id(&vmid)?;
            let out = px.configure(v, cores, memory)?;
            print_stdout_of_remote(&out, &format!("configured VM {v}"))
        }
        Op::Resize { vmid, disk, size } => {
            let v = id(&vmid)?;
            let out = slow(&format!("resizing {disk} of VM {v}"), || {
                px.resize(v, &disk, &size)
            })?;
            print_stdout_of_remote(&out, &format!("resized {disk} of VM {v} ({size})"))
        }
        Op::CreateDisk {
            vmid,
            slot,
            storage,
            size_gib,
        } => {
            let v = id(&vmid)?;
            let out = px.create_disk(v, &slot, &storage, size_gib)?;
            print_stdout_of_remote(
                &out,
                &format!("added {slot} ({size_gib} GiB on {storage}) to VM {v}"),
            )
        }
        Op::Start { vmid } => {
            let v = id(&vmid)?;
            let out = slow(&format!("starting VM {v}"), || px.start(v))?;
            print_stdout_of_remote(&out, &format!("started VM {v}"))
        }
        Op::Stop { vmid } => {
            let v = id(&vmid)?;
            let out = slow(&format!("stopping VM {v}"), || px.stop(v))?;
            print_stdout_of_remote(&out, &format!("stopped VM {v}"))
        }
        Op::Shutdown { vmid, wait } => {
            let v = id(&vmid)?;
            let out = slow(&format!("shutting down VM {v}"), || {
                px.shutdown(v, Duration::from_secs(wait))
            })?;
            print_stdout_of_remote(&out, &format!("shut down VM {v}"))
        }
        Op::Restart { vmid } => {
            let v = id(&vmid)?;
            let out = slow(&format!("restarting VM {v}"), || px.restart(v))?;
            print_stdout_of_remote(&out, &format!("restarted VM {v}"))
        }
        Op::Template { vmid } => {
            let v = id(&vmid)?;
            let out = slow(&format!("converting VM {v} to a template"), || {
                px.template(v)
            })?;
            print_stdout_of_remote(&out, &format!("VM {v} is now a template"))
        }
        Op::Destroy {
            vmid,
            yes: _,
            expect_name,
        } => {
            let v = id(&vmid)?;
            let name = match expect_name {
                Some(n) => n,
                None => {
                    let actual = px.vm_name(v)?;
                    ask_name(v, &actual)?
                }
            };
            let out = slow(&format!("destroying VM {v}"), || px.destroy(v, &name))?;
            print_stdout_of_remote(&out, &format!("destroyed VM {v} ({name})"))
        }
        Op::Console { vmid } => {
            let code = px.console(id(&vmid)?)?;
            Ok(if code == 0 { exit::OK } else { exit::EXTERNAL })
        }
        Op::GetIp { vmid, json } => {
            let ip = px.get_ip(id(&vmid)?)?;
            if json {
                return json_out(&ip);
            }
            super::print(&format!("{}\n", ip.ip))
        }
        Op::WaitSsh { vmid, port, wait } => {
            let ip = px.wait_ssh(id(&vmid)?, port, Duration::from_secs(wait))?;
            super::print(&format!("{}\n", ip.ip))
        }
        Op::Storage { json } => {
            let st = px.storage()?;
            if json {
                return json_out(&st);
            }
            let mut t = format!(
                "{:<16} {:<10} {:<9} {:>14} {:>14} {:>8}\n",
                "NAME", "TYPE", "STATUS", "TOTAL(GiB)", "AVAIL(GiB)", "USED%"
            );
            for s in &st {
                t.push_str(&format!(
                    "{:<16} {:<10} {:<9} {:>14.1} {:>14.1} {:>8}\n",
                    s.name,
                    s.kind,
                    s.status,
                    s.total_kib as f64 / 1048576.0,
                    s.available_kib as f64 / 1048576.0,
                    s.used_percent.map_or("N/A".into(), |p| format!("{p:.2}%"))
                ));
            }
            super::print(&t)
        }
        Op::NextVmid { json } => {
            let v = px.next_vmid(&loaded.fleet)?;
            if json {
                return json_out(&serde_json::json!({ "vmid": v }));
            }
            super::print(&format!("{v}\n"))
        }
        Op::Hostkey { vmid } => {
            let k = px.host_key(id(&vmid)?)?;
            super::print(&format!("{k}\n"))
        }
        Op::Trust { .. } => Ok(exit::OK),
    }
}

/// `qm list`'s columns; NODE after VMID when VMs live on other nodes too.
fn list_text(l: &Listing) -> String {
    let node = |n: &str| {
        if l.other_nodes {
            format!(" {n:<12}")
        } else {
            String::new()
        }
    };
    let mut t = format!(
        "{:>6}{}  {:<24} {:<9} {:>8} {:>12} {:>8}\n",
        "VMID",
        node("NODE"),
        "NAME",
        "STATUS",
        "MEM(MB)",
        "BOOTDISK(GB)",
        "PID"
    );
    for e in &l.vms {
        let pid = e.pid.map_or("-".to_string(), |p| p.to_string());
        t.push_str(&format!(
            "{:>6}{}  {:<24} {:<9} {:>8} {:>12.2} {:>8}\n",
            e.vmid,
            node(&e.node),
            e.name,
            e.status,
            e.mem_mib,
            e.bootdisk_gib,
            pid
        ));
    }
    t
}

/// Asks for the VM's name on the terminal (or reads it from stdin).
fn ask_name(vmid: u32, actual: &str) -> Result<String> {
    let typed = ui::read_line(&format!(
        "VM {vmid} on Proxmox is named `{actual}`. Type its name to destroy it and its disks:"
    ))
    .map_err(|source| VmCommandError::ReadConfirmation { source })?;
    if typed.is_empty() {
        return Err(VmCommandError::DestroyNotConfirmed.into());
    }
    Ok(typed)
}

fn trust(settings: &Settings, yes: bool, want: Option<&str>, replace: bool) -> Result<u8> {
    let ep = &settings.endpoint;
    let name = ep.known_hosts_name();
    let scanned = ssh::scan(ep, settings.connect_timeout)?;
    let file = &settings.proxmox_known_hosts;
    let known = ssh::known_keys(file, &name);
    let report = Terminal::new();
    report.note(&format!("The Proxmox host {name} offers these host keys:"));
    for k in &scanned {
        report.note(&format!("  {:<20} {}", k.key_type, k.fingerprint));
    }
    // ssh-keyscan opens one connection per key type: only the key the user
    // confirmed (or, with --yes alone, the ed25519 key) is ever recorded,
    // never whatever the other connections returned.
    let chosen = choose_key(&name, &scanned, want)?;
    if !known.is_empty() {
        if known.len() == 1 && known[0].fingerprint == chosen.fingerprint {
            report.note(&format!("already trusted in {}", file.display()));
            return Ok(exit::OK);
        }
        let narrowing = known.iter().any(|k| k.fingerprint == chosen.fingerprint);
        if !replace && !narrowing {
            report.note(&format!("Recorded in {}:", file.display()));
            for k in &known {
                report.note(&format!("  {:<20} {}", k.key_type, k.fingerprint));
            }
            return Err(VmCommandError::HostKeyChanged {
                name: name.to_string(),
                file: file.to_path_buf(),
            }
            .into());
        }
    }
    if want.is_none() && !yes {
        if !ui::stdin_is_terminal() {
            return Err(VmCommandError::TrustNeedsConfirmation.into());
        }
        let line = ui::read_line(&format!("Compare {} with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the Proxmox console. Trust it? Type yes:", chosen.fingerprint)).unwrap_or_default();
        if line != "yes" {
            return Err(VmCommandError::NotTrusted.into());
        }
    }
    let scanned = [chosen];
    let root = file
        .parent()
        .and_then(|p| p.parent())
        .unwrap_or(std::path::Path::new("."));
    let _lock = crate::fsutil::RepoLock::take(root)?;
    let old = std::fs::read_to_string(file).unwrap_or_default();
    let mut lines: Vec<String> = old
        .lines()
        .filter(|l| {
            let first = l.split_whitespace().next().unwrap_or("");
            !first.split(',').any(|n| n == name)
        })
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    lines.extend(scanned.iter().map(|k| k.line.clone()));
    lines.sort();
    lines.dedup();
    let mut text = lines.join("\n");
    text.push('\n');
    crate::fsutil::write_atomic(file, text.as_bytes())?;
    report.note(&format!("recorded in {}", file.display()));
    Ok(exit::OK)
}

/// The one key to record: the one whose fingerprint the user gave, else
/// (with --yes, or to ask about) the ed25519 key.
fn choose_key(
    name: &str,
    scanned: &[ssh::ScannedKey],
    want: Option<&str>,
) -> Result<ssh::ScannedKey> {
    match want {
        Some(fp) => {
            let fp = if fp.starts_with("SHA256:") {
                fp.to_string()
            } else {
                format!("SHA256:{fp}")
            };
            scanned
                .iter()
                .find(|k| k.fingerprint == fp)
                .cloned()
                .ok_or_else(|| {
                    VmCommandError::FingerprintNotOffered {
                        name: name.to_string(),
                        fingerprint: fp,
                    }
                    .into()
                })
        }
        None => scanned
            .iter()
            .find(|k| k.key_type == "ssh-ed25519")
            .cloned()
            .ok_or_else(|| {
                VmCommandError::NoEd25519Key {
                    name: name.to_string(),
                }
                .into()
            }),
    }
}
