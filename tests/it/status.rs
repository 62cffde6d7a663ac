//! `pve status` against the simulated Proxmox host (a stand-in for
//! Proxmox VE behind a real sshd, see tests/it/support/pvesim): every
//! drifted attribute, missing and unknown VMs, non-VM hosts, `--json`,
//! selection, exit codes, a hostile guest agent, `--watch`.

use std::io::{BufRead as _, BufReader, Lines};
use std::process::{Child, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::pvesim::Sim;
use crate::support::{stderr, stdout};

/// web is exactly what the simulator's VM 111 is; doc2 (readonly) is 104;
/// laptop has no `proxmox`.
const FLEET: &str = r#"{
  _proxmox = {
    host = "127.0.0.1";
    node = "pve";
    templateVmid = 9000;
    vmidRange = [ 100 199 ];
  };
  web = {
    proxmox = { vmid = 111; name = "nixos-web01"; cores = 4; memory = 4096; disk = "64G"; tags = [ "web" "nixos" ]; };
  };
  doc2 = {
    proxmox = { vmid = 104; readonly = true; };
  };
  laptop = {
    homeFile = ./home.nix;
  };
}
"#;

/// A host that hosts.nix names and Proxmox does not have.
const FRESH: &str = "  fresh = { proxmox = { vmid = 101; cores = 2; memory = 2048; }; };\n";

/// [`FLEET`] with `hosts` (lines of host sets) before laptop.
fn fleet_with(hosts: &str) -> String {
    FLEET.replace("  laptop = {", &format!("{hosts}  laptop = {{"))
}

/// A simulator (its host key pinned) with `fleet` as hosts.nix; `strays`
/// keeps its VMs 100 (dns01) and 112 (unnamed), in the fleet's range but
/// not in hosts.nix.
fn sim_with(fleet: &str, strays: bool) -> Sim {
    let s = Sim::start();
    s.pin_host_key();
    std::fs::write(s.fleet.join("hosts.nix"), fleet).unwrap();
    if !strays {
        s.update(|st| {
            let vms = st["vms"].as_object_mut().unwrap();
            vms.remove("100");
            vms.remove("112");
        });
    }
    s
}

/// A simulator whose VMs are those of [`FLEET`] and the template: no
/// drift anywhere.
fn sim() -> Sim {
    sim_with(FLEET, false)
}

fn status(s: &Sim, args: &[&str]) -> std::process::Output {
    s.pve().arg("status").args(args).output().expect("runs")
}

fn expect(o: &std::process::Output, code: i32) -> String {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// `pve status --json`, parsed, with its exit code checked.
fn rows(s: &Sim, args: &[&str], code: i32) -> Vec<Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = expect(&status(s, &all), code);
    let v: Value = serde_json::from_str(&out).expect("--json prints one JSON array");
    v.as_array().expect("an array").clone()
}

fn row<'a>(rows: &'a [Value], host: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["host"] == host)
        .unwrap_or_else(|| panic!("no row for {host} in {rows:?}"))
}

fn calls_of(s: &Sim, prog: &str, sub: &str) -> Vec<Vec<String>> {
    s.calls()
        .into_iter()
        .filter(|c| c[0] == prog && c.get(1).map(String::as_str) == Some(sub))
        .collect()
}

#[test]
fn a_fleet_as_hosts_nix_says_shows_every_host_and_exits_0() {
    let s = sim();
    let out = expect(&status(&s, &[]), 0);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("HOST"), "{out}");
    let web = lines.iter().find(|l| l.starts_with("web ")).expect(&out);
    for cell in ["pve", "111", "running", "192.0.2.111", "nixos,web"] {
        assert!(web.contains(cell), "{cell} missing in {web}");
    }
    let laptop = lines.iter().find(|l| l.starts_with("laptop")).expect(&out);
    assert!(laptop.contains("not a VM"), "{laptop}");
    assert_eq!(
        lines.last().copied(),
        Some("3 hosts: 2 running, 1 not a VM; no drift")
    );
    // One round trip for the cluster; per VM on this node one config
    // read; the agent only for a running VM that has one (104 has none).
    let resources: Vec<_> = s
        .calls()
        .into_iter()
        .filter(|c| c[0] == "pvesh" && c[2] == "/cluster/resources")
        .collect();
    assert_eq!(resources.len(), 1);
    assert_eq!(calls_of(&s, "qm", "config").len(), 2);
    let agent = calls_of(&s, "qm", "guest");
    assert_eq!(agent.len(), 1);
    assert_eq!(agent[0][3], "111");
}

#[test]
fn quick_reads_only_cluster_resources() {
    let s = sim();
    let r = rows(&s, &["--quick"], 0);
    assert_eq!(row(&r, "web")["ip"], Value::Null);
    assert_eq!(s.calls().len(), 1, "{:?}", s.calls());
}

/// `count` more VMs like web (111), as `vm-<vmid>` with VMIDs from 121 and
/// their own MACs, in the simulator and in hosts.nix (each one VM per
/// case, so one `pve status` run covers them all).
fn clones(s: &Sim, count: u32) -> Vec<u32> {
    let ids: Vec<u32> = (121..121 + count).collect();
    s.update(|st| {
        for id in &ids {
            let mut vm = st["vms"]["111"].clone();
            vm["config"]["name"] = json!(format!("vm-{id}"));
            vm["config"]["net0"] = json!(format!("virtio=BC:24:11:5E:7B:{id:02X},bridge=vmbr0"));
            vm["ips"] = json!([format!("192.0.2.{id}")]);
            st["vms"][id.to_string()] = vm;
        }
    });
    let hosts: String = ids
        .iter()
        .map(|id| format!(
            "  vm-{id} = {{ proxmox = {{ vmid = {id}; cores = 4; memory = 4096; disk = \"64G\"; tags = [ \"web\" \"nixos\" ]; }}; }};\n"
        ))
        .collect();
    std::fs::write(s.fleet.join("hosts.nix"), fleet_with(&hosts)).unwrap();
    ids
}

/// Each attribute changed alone on Proxmox (one VM per attribute) is
/// reported as that attribute's drift with both values; exit 1.
#[test]
fn drift_in_each_attribute_is_shown_and_exits_1() {
    let s = sim();
    type Change = fn(&mut Value);
    let cases: [(&str, Change, &str, &str); 7] = [
        ("cores", |v| v["config"]["cores"] = json!("2"), "4", "2"),
        (
            "memory",
            |v| v["config"]["memory"] = json!("2048"),
            "4096 MiB",
            "2048 MiB",
        ),
        (
            "disk",
            |v| {
                v["config"]["virtio0"] =
                    json!("local-lvm:vm-111-disk-0,discard=on,iothread=1,size=80G")
            },
            "64G",
            "80G",
        ),
        ("node", |v| v["node"] = json!("pve2"), "pve", "pve2"),
        (
            "tags",
            |v| v["config"]["tags"] = json!("nixos;db"),
            "web;nixos",
            "nixos;db",
        ),
        (
            "name",
            |v| v["config"]["name"] = json!("web-old"),
            "vm-126",
            "web-old",
        ),
        (
            "on-boot",
            |v| v["config"]["onboot"] = json!("1"),
            "off",
            "on",
        ),
    ];
    let ids = clones(&s, 7);
    s.update(|st| {
        for ((_, change, _, _), id) in cases.iter().zip(&ids) {
            change(&mut st["vms"][id.to_string()]);
        }
    });
    let r = rows(&s, &[], 1);
    for ((attribute, _, nix, live), id) in cases.iter().zip(&ids) {
        assert_eq!(
            row(&r, &format!("vm-{id}"))["drift"],
            json!([{"attribute": attribute, "hosts_nix": nix, "live": live}]),
            "{attribute}"
        );
    }
    for untouched in ["web", "doc2", "laptop"] {
        assert_eq!(row(&r, untouched)["drift"], json!([]), "{untouched}");
    }
    // The table says it too, in each row's DRIFT column and the summary.
    let out = expect(&status(&s, &[]), 1);
    let line = |host: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{host} ")))
            .unwrap_or_else(|| panic!("no {host} in {out}"))
            .to_string()
    };
    assert!(line("vm-121").ends_with("cores 4→2"), "{out}");
    assert!(line("vm-127").ends_with("on-boot off→on"), "{out}");
    assert!(line("web").ends_with(" -"), "{out}");
    assert!(out.ends_with("; 7 hosts drifted\n"), "{out}");
}

#[test]
fn missing_unknown_and_non_vm_hosts_with_one_json_object_each() {
    // The simulator keeps 100 (dns01) and 112 (unnamed) in the range;
    // `fresh` was never created.
    let s = sim_with(&fleet_with(FRESH), true);
    let r = rows(&s, &[], 1);
    let hosts: Vec<&Value> = r.iter().map(|r| &r["host"]).collect();
    let want = [
        json!("doc2"),
        json!("fresh"),
        json!("laptop"),
        json!("web"),
        Value::Null,
        Value::Null,
    ];
    assert_eq!(hosts, want.iter().collect::<Vec<_>>());
    let states: Vec<(&Value, &Value)> = r.iter().map(|r| (&r["vmid"], &r["state"])).collect();
    assert_eq!(
        states,
        vec![
            (&json!(104), &json!("running")),
            (&json!(101), &json!("missing")),
            (&Value::Null, &json!("not-a-vm")),
            (&json!(111), &json!("running")),
            (&json!(100), &json!("not-in-hosts-nix")),
            (&json!(112), &json!("not-in-hosts-nix")),
        ]
    );
    // Stable field names, the same on every object.
    let fields = [
        "cores",
        "cpu_percent",
        "drift",
        "host",
        "ip",
        "mem_max_mib",
        "mem_used_mib",
        "name",
        "node",
        "state",
        "tags",
        "uptime_s",
        "vmid",
    ];
    for o in &r {
        let mut keys: Vec<&str> = o.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, fields);
    }
    assert_eq!(r[4]["name"], "dns01");
    let out = expect(&status(&s, &[]), 1);
    assert!(out.contains("(dns01)"), "{out}");
    assert!(
        out.ends_with(
            "4 hosts: 2 running, 1 missing on Proxmox, 1 not a VM; 2 VMs not in hosts.nix; no drift\n"
        ),
        "{out}"
    );
}

#[test]
fn selection_by_name_and_tag() {
    let s = sim();
    let r = rows(&s, &["@web"], 0);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["host"], "web");
    let r = rows(&s, &["doc2", "laptop"], 0);
    let hosts: Vec<&Value> = r.iter().map(|r| &r["host"]).collect();
    assert_eq!(hosts, vec!["doc2", "laptop"]);
    // A tag only Proxmox knows selects too.
    s.update(|st| st["vms"]["104"]["config"]["tags"] = json!("legacy"));
    let r = rows(&s, &["@legacy"], 0);
    assert_eq!(r[0]["host"], "doc2");

    let before = s.calls().len();
    let o = status(&s, &["ghost"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("`ghost` is not a host in"), "{err}");
    assert!(err.contains("the hosts are: doc2, laptop, web"), "{err}");
    assert_eq!(s.calls().len(), before, "nothing was asked of Proxmox");
    let o = status(&s, &["@nope"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no host has the tag `nope`"));
}

#[test]
fn an_unreachable_proxmox_exits_3() {
    let s = sim();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = s
        .pve()
        .env("PROXMOX_SSH_PORT", closed.to_string())
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(stdout(&o), "", "no half a table on stdout");
}

/// The guest agent speaks for the guest: bogus addresses, an address on
/// another interface, control characters, a huge answer, an agent that is
/// not running or does not answer in time: the IP shows `-`, nothing else
/// changes.
#[test]
fn a_hostile_or_silent_guest_agent_shows_as_no_address() {
    let s = sim();
    let iface = |mac: &str, ips: &[&str]| {
        json!({"hardware-address": mac, "name": "ens18",
               "ip-addresses": ips.iter().map(|i| json!({"ip-address": i, "prefix": 24})).collect::<Vec<_>>()})
    };
    let ids = clones(&s, 5);
    let mac = |id: u32| format!("bc:24:11:5e:7b:{id:02x}");
    let answers = [
        json!([iface(
            &mac(121),
            &[
                "\u{1b}[31m192.0.2.9",
                "999.1.1.1",
                "127.0.0.1",
                "169.254.0.9",
                "192.0.2.111; rm -rf /"
            ]
        )])
        .to_string(),
        json!([
            iface("02:00:00:00:00:09", &["192.0.2.200"]),
            iface(&mac(122), &[])
        ])
        .to_string(),
        format!(
            "[{}]",
            vec![iface(&mac(123), &["192.0.2.7"]).to_string(); 5000].join(",")
        ),
        "not json at all \u{1b}]0;pwned\u{7}".to_string(),
    ];
    s.update(|st| {
        for (answer, id) in answers.iter().zip(&ids) {
            st["vms"][id.to_string()]["agent_answer"] = json!(answer);
        }
        st["vms"]["125"]["agent_running"] = json!(false);
    });
    let r = rows(&s, &[], 0);
    for id in &ids {
        assert_eq!(row(&r, &format!("vm-{id}"))["ip"], Value::Null, "vm-{id}");
    }
    assert_eq!(
        row(&r, "web")["ip"],
        "192.0.2.111",
        "the agent's word is read"
    );
    let out = expect(&status(&s, &[]), 0);
    assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out}");

    // Answering after 5 s, web's agent would name 192.0.2.111: `-` means
    // the 1-second bound held.
    s.update(|st| st["faults"]["slow"] = json!({"qm guest": 5}));
    let r = rows(&s, &["web", "--agent-timeout", "1"], 0);
    assert_eq!(row(&r, "web")["ip"], Value::Null);
}

#[test]
fn names_and_tags_from_proxmox_cannot_drive_the_terminal() {
    let s = sim();
    s.update(|st| {
        st["vms"]["150"] = json!({"status": "stopped", "agent_running": false, "ips": [],
            "config": {"name": "evil\u{1b}]0;owned\u{7}", "cores": "1", "memory": "512",
                       "tags": "a\u{1b}[2J;b"}});
    });
    let out = expect(&status(&s, &[]), 1);
    assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out}");
    assert!(out.contains(r"(evil\u{1b}]0;owned\u{7})"), "{out}");
}

#[test]
fn the_table_of_a_fixed_fleet() {
    let s = sim();
    s.update(|st| {
        st["vms"]["111"]["uptime"] = json!(186_523);
        st["vms"]["111"]["cpu"] = json!(0.0195);
        st["vms"]["104"]["config"]["cores"] = json!("3");
        st["vms"]["104"]["uptime"] = json!(4000);
        st["vms"]["130"] = json!({"status": "stopped", "agent_running": false, "ips": [],
            "config": {"name": "stray", "cores": "1", "memory": "512",
                       "scsi0": "local-lvm:vm-130-disk-0,size=8G"}});
    });
    let fleet = fleet_with(FRESH).replace(
        "vmid = 104; readonly = true;",
        "vmid = 104; readonly = true; cores = 2;",
    );
    std::fs::write(s.fleet.join("hosts.nix"), fleet).unwrap();
    let out = expect(&status(&s, &[]), 1);
    insta::assert_snapshot!(out);
}

/// `pve status --json --quick --watch 1` running, and its output's lines.
fn watch_json(s: &Sim) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = s
        .std_pve()
        .args(["status", "--json", "--quick", "--watch", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// The exit code of `child` once it ends; killed and failed (`what` says
/// what it did instead) when it is still running after 30 seconds.
fn exit_code_within_30s(mut child: Child, what: &str) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `--watch` refreshes (here as JSON lines, one per refresh) until Ctrl-C,
/// which ends it as an interrupted program (130).
#[test]
fn watch_refreshes_until_interrupted() {
    let s = sim();
    let (child, mut lines) = watch_json(&s);
    for _ in 0..2 {
        let line = lines.next().expect("a frame").unwrap();
        let v: Value = serde_json::from_str(&line).expect("each frame is JSON");
        assert_eq!(v.as_array().map(Vec::len), Some(3));
    }
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let code = exit_code_within_30s(child, "--watch did not stop on Ctrl-C");
    assert_eq!(code, Some(130));
}

/// `pve status --watch | head -1`: once nobody reads, the next refresh
/// ends it (exit 0) instead of looping on a closed pipe.
#[test]
fn watch_stops_when_nobody_reads() {
    let s = sim();
    let (child, mut lines) = watch_json(&s);
    assert!(lines.next().expect("a frame").unwrap().starts_with('['));
    drop(lines);
    let code = exit_code_within_30s(child, "--watch kept running with nobody reading");
    assert_eq!(code, Some(0));
}

/// A refresh that cannot reach Proxmox is told on stderr and retried;
/// stdout stays JSON lines (nothing half-written on it).
#[test]
fn watch_survives_an_unreachable_proxmox() {
    let s = sim();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = s
        .std_pve()
        .env("PROXMOX_SSH_PORT", closed.to_string())
        .args(["status", "--json", "--quick", "--watch", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut errors = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = 0;
    while seen < 2 {
        let line = errors.next().expect("an error line").unwrap();
        if line.starts_with("error: ") {
            seen += 1;
        }
    }
    assert_eq!(child.try_wait().unwrap(), None, "still watching");
    child.kill().unwrap();
    let _ = child.wait();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert_eq!(out, "");
}
