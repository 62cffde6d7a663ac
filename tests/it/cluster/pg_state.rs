//! Shared state for a team, for real: the `pg` backend pve renders, run by
//! the real `terraform` binary against a real PostgreSQL (a throwaway
//! server on a unix socket in a temp folder, no TCP port). OpenTofu has no
//! package on this machine; its pg backend is Terraform's
//! (`internal/backend/remote-state/pg`, forked with the rest in 2023), so
//! the init, the state in the database, the advisory lock and its "Lock
//! Info" message are the same code. The config holds only built-in
//! `terraform_data` resources: no provider download.
//!
//! PostgreSQL refuses to run as root; as root the test runs its programs
//! as `nobody` (setpriv). Missing terraform or PostgreSQL prints SKIP
//! (a failure when PVE_REQUIRE_TERRAFORM / PVE_REQUIRE_POSTGRES is set).

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;

use pve_fleet::error::AppError;
use pve_fleet::tofu::{guard, lock, parse_state};

use super::{fleet_dir, rendered, terraform, FLEET};
use crate::support::out;

const NOBODY: &str = "65534";

/// The folder of initdb, pg_ctl and postgres (found by support::tools:
/// PATH, else Debian's /usr/lib/postgresql/<version>/bin, which
/// `scripts/test` installs); None with a SKIP line when one is missing.
fn pg_bin(test: &str) -> Option<PathBuf> {
    let initdb = crate::support::optional_tool("initdb", test)?;
    let bin = initdb.parent().expect("a folder").to_path_buf();
    for program in ["pg_ctl", "postgres"] {
        crate::support::optional_tool(program, test)?;
        assert!(
            bin.join(program).is_file(),
            "{program} is not next to {}",
            initdb.display()
        );
    }
    Some(bin)
}

struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_root: bool,
}

impl Postgres {
    /// A PostgreSQL program, as `nobody` when this runs as root.
    fn cmd(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_root {
            let mut c = Command::new(crate::support::tool("setpriv"));
            c.args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"])
                .arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// initdb, a database `fleetstate` made in single-user mode, the server
    /// started on a socket in the temp folder only.
    fn start() -> Option<Postgres> {
        let bin = pg_bin("the_rendered_pg_backend_keeps_the_state_in_postgres_and_locks_it")?;
        let dir = tempfile::tempdir().unwrap();
        let as_root = crate::support::pvesim::user() == "root";
        if as_root {
            std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
        }
        let pg = Postgres { dir, bin, as_root };
        let run = |c: &mut Command| {
            let o = c.output().unwrap();
            assert!(o.status.success(), "{c:?}: {}", out(&o).1);
        };
        run(pg.cmd("initdb").arg("-D").arg(pg.data()).args([
            "--auth=trust",
            "-U",
            "fleet",
            "--no-sync",
            "-E",
            "UTF8",
        ]));
        let mut single = pg
            .cmd("postgres")
            .arg("--single")
            .arg("-D")
            .arg(pg.data())
            .arg("postgres")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        single
            .stdin
            .take()
            .unwrap()
            .write_all(b"CREATE DATABASE fleetstate;\n")
            .unwrap();
        assert!(single.wait().unwrap().success());
        run(pg
            .cmd("pg_ctl")
            .arg("-D")
            .arg(pg.data())
            .arg("-o")
            .arg(format!(
                "-k {} -c listen_addresses=''",
                pg.dir.path().display()
            ))
            .arg("-l")
            .arg(pg.dir.path().join("log"))
            .args(["-w", "start"]));
        Some(pg)
    }

    /// libpq's form: the socket folder as `host`.
    fn conn_str(&self) -> String {
        format!(
            "postgres://fleet@/fleetstate?host={}&sslmode=disable",
            self.dir.path().display()
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

/// Claims to know every VMID; asking it means the guard thought the state
/// was empty.
struct EveryVmExists;

impl guard::Inventory for EveryVmExists {
    fn placements(&self) -> Result<BTreeMap<i64, String>, AppError> {
        panic!("the state guard asked Proxmox although the remote state holds resources");
    }
}

#[test]
fn the_rendered_pg_backend_keeps_the_state_in_postgres_and_locks_it() {
    let Some(tf) = terraform("the_rendered_pg_backend_keeps_the_state_in_postgres_and_locks_it")
    else {
        return;
    };
    let Some(pg) = Postgres::start() else { return };

    // The backend block exactly as pve renders it.
    let d = fleet_dir(&FLEET.replace(
        "vmidRange = [ 100 199 ];",
        "vmidRange = [ 100 199 ]; backend = { type = \"pg\"; schemaName = \"pve_fleet\"; };",
    ));
    let c = rendered(d.path());
    let backend = c["terraform"]["backend"].clone();
    assert_eq!(backend, json!({"pg": {"schema_name": "pve_fleet"}}));

    let work = tempfile::tempdir().unwrap();
    let config = |input: &str| {
        json!({
            "terraform": {"backend": backend},
            "resource": {"terraform_data": {"web": {"input": input}}}
        })
    };
    let tf_cmd = |args: &[&str]| {
        let mut cmd = Command::new(&tf);
        cmd.current_dir(work.path())
            .args(args)
            .env("PG_CONN_STR", pg.conn_str())
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_CLI_CONFIG_FILE", "/dev/null")
            .env("HOME", work.path());
        cmd
    };
    let tf_ok = |args: &[&str]| {
        let o = tf_cmd(args).output().unwrap();
        let (stdout, stderr) = out(&o);
        assert!(o.status.success(), "terraform {args:?}: {stdout}{stderr}");
        stdout
    };
    // First a fleet on local state, as before `_proxmox.backend` was set.
    let local = json!({"resource": {"terraform_data": {"web": {"input": "vm"}}}});
    fs::write(work.path().join("main.tf.json"), local.to_string()).unwrap();
    tf_ok(&["init", "-input=false", "-no-color"]);
    tf_ok(&["apply", "-input=false", "-no-color", "-auto-approve"]);
    assert_eq!(
        parse_state(&fs::read_to_string(work.path().join("terraform.tfstate")).unwrap())
            .unwrap()
            .resources,
        1
    );
    // hosts.nix now names pg. A plain non-interactive init does not move
    // the state (it would have to ask) ...
    fs::write(work.path().join("main.tf.json"), config("vm").to_string()).unwrap();
    let o = tf_cmd(&["init", "-input=false", "-no-color"])
        .output()
        .unwrap();
    assert!(!o.status.success(), "{:?}", out(&o));
    // ... the flags pve runs after asking (`tofu::Tofu::prepare`) do.
    let init = tf_ok(&[
        "init",
        "-input=false",
        "-no-color",
        "-migrate-state",
        "-force-copy",
    ]);
    assert!(
        init.contains("Successfully configured the backend \"pg\""),
        "{init}"
    );
    let moved = parse_state(&tf_ok(&["state", "pull"])).unwrap();
    assert_eq!(moved.addresses, ["terraform_data.web"], "copied to pg");
    // The database holds the state now; the apply writes it there.
    let local_state = fs::read_to_string(work.path().join("terraform.tfstate")).unwrap_or_default();
    assert_eq!(parse_state(&local_state).unwrap().resources, 0);
    tf_ok(&["apply", "-input=false", "-no-color", "-auto-approve"]);

    // pve reads the state as `tofu state pull` prints it: one resource, so
    // the state guard does not even ask Proxmox.
    let state = parse_state(&tf_ok(&["state", "pull"])).unwrap();
    assert_eq!(state.addresses, ["terraform_data.web"]);
    let managed = guard::managed_vms(&json!({
        "resource": {"proxmox_virtual_environment_vm": {"web": {"vm_id": 150, "node_name": "pve"}}}
    }));
    guard::check(
        state.is_empty(),
        &managed,
        &EveryVmExists,
        Some("pve"),
        false,
    )
    .unwrap();

    // A second run while the first holds the lock: refused, and pve reads
    // who holds it and says how to free it.
    fs::write(work.path().join("main.tf.json"), config("vm2").to_string()).unwrap();
    let mut first: Child = tf_cmd(&["apply", "-no-color"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = first.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("Only 'yes' will be accepted") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(120))
        .expect("the first apply asks for confirmation while holding the lock");
    let o = tf_cmd(&["plan", "-input=false", "-no-color", "-lock-timeout=0s"])
        .output()
        .unwrap();
    let (stdout, stderr) = out(&o);
    assert_eq!(o.status.code(), Some(1), "{stdout}{stderr}");
    let held = lock::held_lock(&format!("{stdout}{stderr}")).expect("a held lock");
    assert!(held.id.len() >= 8, "{held:?}");
    assert!(held.operation.is_some(), "{held:?}");
    // The pg lock is the other session's advisory lock: pve says it goes
    // with that run, and does not send the user to force-unlock, which the
    // pg backend does not support (reference/tools.md §4.4).
    let advice = held.advice("pg", work.path());
    assert!(advice.contains("PostgreSQL advisory lock"), "{advice}");
    assert!(
        !advice.contains(&format!("tofu force-unlock {}", held.id)),
        "{advice}"
    );
    // The first run is told no; its lock goes with it, and the state stays.
    first.stdin.take().unwrap().write_all(b"no\n").unwrap();
    let _ = first.wait().unwrap();
    reader.join().unwrap();
    let o = tf_cmd(&["plan", "-input=false", "-no-color", "-lock-timeout=0s"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o).1);
    assert_eq!(
        parse_state(&tf_ok(&["state", "pull"])).unwrap().resources,
        1
    );
}
