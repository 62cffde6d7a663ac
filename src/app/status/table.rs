//! `pve status` for people: an aligned table, the drift of each row in its
//! last column, and a summary line. Text from Proxmox (names, tags, node)
//! is escaped and clipped, so a VM's name cannot drive the terminal or
//! stretch the table.

use super::model::{Row, State, Summary};

const HEADERS: [&str; 10] = [
    "HOST", "NODE", "VMID", "STATE", "UPTIME", "CPU", "MEMORY", "IP", "TAGS", "DRIFT",
];

/// Longest cell shown for a value Proxmox or a guest reports.
const MAX_CELL: usize = 32;

pub fn render(rows: &[Row], summary: &Summary) -> String {
    let cells: Vec<[String; 10]> = rows.iter().map(cells).collect();
    let mut widths = HEADERS.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    line(&mut out, &HEADERS.map(str::to_string), &widths);
    for row in &cells {
        line(&mut out, row, &widths);
    }
    out.push('\n');
    out.push_str(&summary_line(summary));
    out.push('\n');
    out
}

fn line(out: &mut String, cells: &[String; 10], widths: &[usize; 10]) {
    let mut l = String::new();
    for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
        if i > 0 {
            l.push_str("  ");
        }
        l.push_str(c);
        let pad = w.saturating_sub(c.chars().count());
        l.extend(std::iter::repeat_n(' ', pad));
    }
    out.push_str(l.trim_end());
    out.push('\n');
}

fn shown(s: &str) -> String {
    crate::diag::escape_text(s, MAX_CELL)
}

fn or_dash<T>(v: Option<T>, f: impl FnOnce(T) -> String) -> String {
    v.map_or_else(|| "-".to_string(), f)
}

fn cells(r: &Row) -> [String; 10] {
    let host = match (&r.host, &r.name) {
        (Some(h), _) => shown(h),
        (None, Some(n)) => format!("({})", shown(n)),
        (None, None) => "-".to_string(),
    };
    let tags = if r.tags.is_empty() {
        "-".to_string()
    } else {
        shown(&r.tags.join(","))
    };
    [
        host,
        or_dash(r.node.as_deref(), shown),
        or_dash(r.vmid, |v| v.to_string()),
        r.state.to_string(),
        or_dash(r.uptime_s, uptime),
        cpu(r),
        memory(r),
        or_dash(r.ip, |ip| ip.to_string()),
        tags,
        drift(r),
    ]
}

/// `3d 4h`, `5h 12m`, `7m`, `42s`.
pub fn uptime(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

fn cpu(r: &Row) -> String {
    match (r.cpu_percent, r.cores) {
        (Some(p), Some(c)) => format!("{p:.1}% of {c}"),
        (None, Some(1)) => "1 core".to_string(),
        (None, Some(c)) => format!("{c} cores"),
        (Some(p), None) => format!("{p:.1}%"),
        (None, None) => "-".to_string(),
    }
}

fn memory(r: &Row) -> String {
    let gib = |mib: u64| format!("{:.1}", mib as f64 / 1024.0);
    match (r.mem_used_mib, r.mem_max_mib) {
        (Some(u), Some(m)) => format!("{}/{} GiB", gib(u), gib(m)),
        (None, Some(m)) => format!("{} GiB", gib(m)),
        _ => "-".to_string(),
    }
}

/// `cores 4→2, tags nixos;web→nixos` (hosts.nix → live), or `-`.
fn drift(r: &Row) -> String {
    if r.drift.is_empty() {
        return match r.state {
            State::Missing => "no VM with this VMID".to_string(),
            State::NotInHostsNix => "VMID in the managed range".to_string(),
            _ => "-".to_string(),
        };
    }
    r.drift
        .iter()
        .map(|d| format!("{} {}→{}", d.attribute, shown(&d.hosts_nix), shown(&d.live)))
        .collect::<Vec<_>>()
        .join(", ")
}

use crate::plural::plural_of as plural;

/// `4 hosts: 2 running, 1 stopped, 1 not a VM; 1 VM not in hosts.nix; 1 drifted`.
pub fn summary_line(s: &Summary) -> String {
    let mut states = Vec::new();
    for (n, what) in [
        (s.running, "running"),
        (s.stopped, "stopped"),
        (s.missing, "missing on Proxmox"),
        (s.not_a_vm, "not a VM"),
    ] {
        if n > 0 {
            states.push(format!("{n} {what}"));
        }
    }
    let others = s.hosts - s.running - s.stopped - s.missing - s.not_a_vm;
    if others > 0 {
        states.push(format!("{others} in another state"));
    }
    let mut out = plural(s.hosts, "host", "hosts");
    if !states.is_empty() {
        out.push_str(": ");
        out.push_str(&states.join(", "));
    }
    if s.not_in_hosts_nix > 0 {
        out.push_str("; ");
        out.push_str(&plural(
            s.not_in_hosts_nix,
            "VM not in hosts.nix",
            "VMs not in hosts.nix",
        ));
    }
    out.push_str("; ");
    out.push_str(&match s.drifted {
        0 => "no drift".to_string(),
        n => format!("{} drifted", plural(n, "host", "hosts")),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptimes() {
        assert_eq!(uptime(42), "42s");
        assert_eq!(uptime(7 * 60 + 5), "7m");
        assert_eq!(uptime(5 * 3600 + 12 * 60), "5h 12m");
        assert_eq!(uptime(86523), "1d 0h");
    }

    #[test]
    fn summary_counts_in_the_singular_and_the_plural() {
        let one = Summary {
            hosts: 1,
            running: 1,
            drifted: 1,
            not_in_hosts_nix: 1,
            ..Summary::default()
        };
        assert_eq!(
            summary_line(&one),
            "1 host: 1 running; 1 VM not in hosts.nix; 1 host drifted"
        );
        let many = Summary {
            hosts: 4,
            running: 2,
            missing: 1,
            not_a_vm: 1,
            not_in_hosts_nix: 2,
            drifted: 0,
            ..Summary::default()
        };
        assert_eq!(
            summary_line(&many),
            "4 hosts: 2 running, 1 missing on Proxmox, 1 not a VM; 2 VMs not in hosts.nix; no drift"
        );
    }
}
