//! `vms/tofu/config.tf.json`: the OpenTofu configuration for the bpg/proxmox
//! provider, through serde types (never string templates).
//!
//! Each VM resource carries the values the old Terranix module produced
//! (see docs/render.md for the rules and the deliberate differences).
//! Keys come out sorted (struct fields are declared in alphabetical order of
//! their JSON names, maps are BTreeMaps; a test holds this), indented by two
//! spaces, with a final newline.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{gate, invalid, tf_escape};
use crate::diag::{did_you_mean, Code, Diagnostic, RuleId};
use crate::error::AppError;
use crate::fleet::model::{Host, ProxmoxConfig, ProxmoxSpec};
use crate::fleet::DiskSize;
use crate::fleet::{Kind, Loaded, Value};

pub use crate::fleet::defaults::PROVIDER_VERSION as DEFAULT_PROVIDER_VERSION;
/// OpenTofu 1.6.0 is the first release (with `import` blocks).
pub const REQUIRED_VERSION: &str = ">= 1.6.0";
/// S3 locking with `use_lockfile` came in OpenTofu 1.10.0.
pub const REQUIRED_VERSION_S3: &str = ">= 1.10.0";
pub use crate::fleet::defaults::STATE_PATH as DEFAULT_STATE_PATH;

pub use crate::fleet::defaults::PARALLEL_CLONES as DEFAULT_PARALLEL_CLONES;
/// `_proxmox.parallelClones`: VMs one apply clones at once, at most.
pub const MAX_PARALLEL_CLONES: u32 = 64;

pub const RESOURCE_TYPE: &str = "proxmox_virtual_environment_vm";
pub use crate::fleet::defaults::BIOS as DEFAULT_BIOS;
pub use crate::fleet::defaults::BRIDGE as DEFAULT_BRIDGE;
pub use crate::fleet::defaults::CPU_TYPE as DEFAULT_CPU_TYPE;
pub use crate::fleet::defaults::DISK_INTERFACE as DEFAULT_DISK_INTERFACE;
pub use crate::fleet::defaults::TAGS as DEFAULT_TAGS;
pub const BASE_IGNORE_CHANGES: &[&str] = &["cpu[0].architecture", "vga"];

/// The `check` rules whose errors would make the configuration wrong.
pub(crate) const GATE: &[RuleId] = &[
    RuleId::HostName,
    RuleId::Required,
    RuleId::ProxmoxConfig,
    RuleId::DuplicateVmid,
    RuleId::Resources,
    RuleId::Disk,
    RuleId::Node,
    RuleId::TemplateNode,
];

#[derive(Serialize)]
struct Config<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    import: Vec<Import>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    moved: Vec<Moved>,
    #[serde(skip_serializing_if = "Outputs::is_empty")]
    output: Outputs<'a>,
    provider: Providers,
    #[serde(skip_serializing_if = "Resources::is_empty")]
    resource: Resources<'a>,
    terraform: Terraform,
}

/// The VMs to render, with what their blocks are built from.
struct Vms<'a> {
    loaded: &'a Loaded,
    cfg: &'a ProxmoxConfig,
    /// Sorted by host name, every one past [`refuse_vm`].
    list: Vec<(&'a Host, &'a ProxmoxSpec)>,
}

/// `resource`: `{ "proxmox_virtual_environment_vm": { name: vm, ... } }`,
/// each VM's block built only while it is written. Built all at once,
/// the blocks of 10,000 VMs took about as much memory as their text.
struct Resources<'a>(std::rc::Rc<Vms<'a>>);

impl Resources<'_> {
    fn is_empty(&self) -> bool {
        self.0.list.is_empty()
    }
}

impl Serialize for Resources<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut outer = s.serialize_map(Some(1))?;
        outer.serialize_entry(RESOURCE_TYPE, &VmBlocks(&self.0))?;
        outer.end()
    }
}

struct VmBlocks<'r, 'a>(&'r Vms<'a>);

impl Serialize for VmBlocks<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeMap as _};
        let v = self.0;
        let mut map = s.serialize_map(Some(v.list.len()))?;
        for (host, spec) in &v.list {
            // Refused before serialising began (see `build`): an error here
            // would be a bug, reported as a failed serialisation.
            let vm =
                vm(v.loaded, v.cfg, host, spec).map_err(|e| S::Error::custom(e.to_string()))?;
            map.serialize_entry(&host.name, &vm)?;
        }
        map.end()
    }
}

/// `output`: one `<name>_ip` per VM, in the order of those names (not of
/// the host names: `web-1_ip` comes before `web_ip`), built while written.
struct Outputs<'a>(std::rc::Rc<Vms<'a>>);

impl Outputs<'_> {
    fn is_empty(&self) -> bool {
        self.0.list.is_empty()
    }
}

impl Serialize for Outputs<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        // Each output's name built once and sorted as a string (byte order,
        // as the names compare): comparing `name` + `_ip` piece by piece
        // on every comparison cost more than the rest of the outputs.
        let mut hosts: Vec<(String, &Host)> = self
            .0
            .list
            .iter()
            .map(|(h, _)| (format!("{}_ip", h.name), *h))
            .collect();
        // Host names are unique, and so are the output names.
        hosts.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut map = s.serialize_map(Some(hosts.len()))?;
        for (name, host) in hosts {
            let address = [RESOURCE_TYPE, ".", &host.name].concat();
            let output = Output {
                description: [
                    "IPv4 address of ",
                    host.name.as_str(),
                    " reported by the QEMU guest agent (null until the agent answers)",
                ]
                .concat(),
                value: ip_expression(&address),
            };
            map.serialize_entry(&name, &output)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct Terraform {
    backend: BTreeMap<&'static str, Backend>,
    required_providers: RequiredProviders,
    required_version: &'static str,
}

#[derive(Serialize)]
struct RequiredProviders {
    proxmox: ProviderRequirement,
}

#[derive(Serialize)]
struct ProviderRequirement {
    source: &'static str,
    version: String,
}

#[derive(Serialize)]
struct Providers {
    proxmox: Provider,
}

/// No credentials: the API token comes from `PROXMOX_VE_API_TOKEN`.
#[derive(Serialize)]
struct Provider {
    endpoint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    insecure: Option<bool>,
}

#[derive(Serialize, Default, Debug, PartialEq)]
struct Backend {
    #[serde(skip_serializing_if = "Option::is_none")]
    bucket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dynamodb_table: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoints: Option<S3Endpoints>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schema_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    skip_credentials_validation: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    skip_region_validation: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    skip_s3_checksum: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    use_lockfile: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    use_path_style: Option<bool>,
}

#[derive(Serialize, Debug, PartialEq)]
struct S3Endpoints {
    s3: String,
}

#[derive(Serialize)]
struct Vm {
    agent: Agent,
    bios: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    clone: Option<Clone>,
    cpu: Cpu,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    disk: Vec<Disk>,
    #[serde(skip_serializing_if = "Option::is_none")]
    efi_disk: Option<EfiDisk>,
    lifecycle: Lifecycle,
    #[serde(skip_serializing_if = "Option::is_none")]
    machine: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory: Option<Memory>,
    /// A changed `node_name` migrates the VM instead of replacing it.
    migrate: bool,
    name: String,
    network_device: Vec<NetworkDevice>,
    node_name: String,
    on_boot: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    virtiofs: Vec<Virtiofs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vm_id: Option<i64>,
}

#[derive(Serialize)]
struct Cpu {
    #[serde(skip_serializing_if = "Option::is_none")]
    cores: Option<i64>,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Serialize)]
struct Memory {
    dedicated: i64,
}

#[derive(Serialize)]
struct Disk {
    #[serde(skip_serializing_if = "Option::is_none")]
    datastore_id: Option<String>,
    file_format: &'static str,
    interface: String,
    size: u64,
}

#[derive(Serialize)]
struct EfiDisk {
    #[serde(skip_serializing_if = "Option::is_none")]
    datastore_id: Option<String>,
    file_format: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// Since provider 0.98.1 `network_device` is a list attribute whose objects
/// must carry every key (`null` where unset); that form is also a valid
/// block list for 0.93.x. So every field is serialized, `None` as null.
#[derive(Serialize)]
struct NetworkDevice {
    bridge: String,
    disconnected: Option<bool>,
    enabled: Option<bool>,
    firewall: Option<bool>,
    mac_address: Option<String>,
    model: &'static str,
    mtu: Option<i64>,
    queues: Option<i64>,
    rate_limit: Option<f64>,
    trunks: Option<String>,
    vlan_id: Option<i64>,
}

#[derive(Serialize)]
struct Agent {
    enabled: bool,
}

#[derive(Serialize)]
struct Virtiofs {
    #[serde(skip_serializing_if = "Option::is_none")]
    cache: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    direct_io: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expose_acl: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expose_xattr: Option<bool>,
    mapping: String,
}

/// Every attribute here forces replacement, so `clone` is in
/// How many times the provider tries a clone: once. On a retry the
/// provider (bpg/proxmox, `proxmox/nodes/vms/vms.go` and `proxmox/retry`)
/// counts Proxmox's "config file already exists" as its own first attempt
/// having succeeded, so a VMID lost to another `pve new` on the same node
/// would end with this resource configuring (renaming, resizing, starting)
/// the other VM instead of failing. A clone that fails on a busy storage
/// lock is retried by running the apply again (`_proxmox.parallelClones`
/// keeps them few); the old stack's 3 is not kept.
const CLONE_ATTEMPTS: i64 = 1;

/// `ignore_changes`: it only matters when the VM is created.
#[derive(Serialize)]
struct Clone {
    /// Where the cloned disks go, when the clone crosses nodes or the VM's
    /// storage is not the default one.
    #[serde(skip_serializing_if = "Option::is_none")]
    datastore_id: Option<String>,
    full: bool,
    /// The template's node, when it is not the VM's.
    #[serde(skip_serializing_if = "Option::is_none")]
    node_name: Option<String>,
    retries: i64,
    vm_id: i64,
}

#[derive(Serialize)]
struct Lifecycle {
    ignore_changes: Vec<String>,
}

#[derive(Serialize)]
struct Import {
    id: String,
    to: String,
}

/// `moved { from = ...; to = ...; }`: a renamed host keeps its VM.
#[derive(Serialize)]
struct Moved {
    from: String,
    to: String,
}

#[derive(Serialize)]
struct Output {
    description: String,
    value: String,
}

/// The exact bytes of `vms/tofu/config.tf.json`.
pub fn render_json(loaded: &Loaded) -> Result<String, AppError> {
    render_json_as(loaded, false)
}

/// The same, one VM per line when `compact` or when the fleet is large
/// (see [`super::json`]).
pub fn render_json_as(loaded: &Loaded, compact: bool) -> Result<String, AppError> {
    with_config(loaded, compact, |config, layout, vms| {
        // About 2 KiB per VM pretty, 0.8 KiB one per line.
        super::json::to_text(config, layout, 2048 * vms + 4096)
            .map_err(|e| super::RenderError::TofuJson { source: e }.into())
    })
}

/// [`render_json_as`], written to `out` as it is made (a 10,000-host file
/// is 11-20 MB, never held whole). The outer error is a refusal, as
/// `render_json_as` gives it; the inner one a failed write to `out`.
pub fn write_json_as(
    loaded: &Loaded,
    compact: bool,
    out: impl std::io::Write,
) -> Result<std::io::Result<()>, AppError> {
    use std::io::Write as _;
    with_config(loaded, compact, |config, layout, _| {
        let mut out = std::io::BufWriter::with_capacity(128 * 1024, out);
        match super::json::to_writer(config, layout, &mut out) {
            Ok(()) => Ok(out.flush()),
            Err(e) if e.is_io() => Ok(Err(e.into())),
            Err(e) => Err(super::RenderError::TofuJson { source: e }.into()),
        }
    })
}

/// Calls `f` with the configuration to write, its layout and its number
/// of VMs: every refusal is made before, and none after.
fn with_config<T>(
    loaded: &Loaded,
    compact: bool,
    f: impl FnOnce(&Config, super::json::Layout, usize) -> Result<T, AppError>,
) -> Result<T, AppError> {
    gate(loaded, GATE)?;
    let empty = ProxmoxConfig::empty(loaded.value.span);
    let cfg = loaded.fleet.proxmox.as_ref().unwrap_or(&empty);
    let config = build(loaded, cfg)?;
    let vms = loaded.fleet.vms().count();
    f(&config, super::json::Layout::choose(vms, compact), vms)
}

/// Whether `config.tf.json` renders (what [`render_json_as`] would refuse),
/// without its text: for `pve check`.
///
/// It runs the same refusals in the same order as [`build`], without
/// building the configuration (about 1 KiB of strings per VM).
pub fn check_renders(loaded: &Loaded) -> Result<(), AppError> {
    gate(loaded, GATE)?;
    let empty = ProxmoxConfig::empty(loaded.value.span);
    let cfg = loaded.fleet.proxmox.as_ref().unwrap_or(&empty);
    settings(loaded, cfg)?;
    for (host, spec) in loaded.fleet.vms() {
        if !spec.readonly {
            refuse_vm(loaded, host, spec)?;
            refuse_moves(loaded, host)?;
        }
    }
    Ok(())
}

/// The fleet-wide settings' refusals: the default node, the backend and
/// the provider version.
fn settings(
    loaded: &Loaded,
    cfg: &ProxmoxConfig,
) -> Result<(&'static str, Backend, String), AppError> {
    check_default_node(loaded, cfg)?;
    let (backend_name, backend) = backend(loaded, cfg)?;
    let version = cfg
        .provider_version
        .clone()
        .unwrap_or_else(|| DEFAULT_PROVIDER_VERSION.to_string());
    literal_only(loaded, cfg.span, "_proxmox.providerVersion", &version)?;
    Ok((backend_name, backend, version))
}

/// The configuration, once everything that would refuse it has been
/// tested (in the order one VM after the other finds it); the VM blocks
/// and outputs are built while they are written.
fn build<'a>(loaded: &'a Loaded, cfg: &'a ProxmoxConfig) -> Result<Config<'a>, AppError> {
    let fleet = &loaded.fleet;
    let (backend_name, backend, version) = settings(loaded, cfg)?;

    let endpoint = match (&cfg.endpoint, &cfg.host) {
        (Some(e), _) => e.clone(),
        (None, Some(h)) => format!("https://{}:8006/", h.value),
        (None, None) => "https://localhost:8006/".to_string(),
    };

    let mut list = Vec::new();
    let mut imports = Vec::new();
    let mut moved = Vec::new();
    for (host, spec) in fleet.vms() {
        if spec.readonly {
            continue;
        }
        let vmid = refuse_vm(loaded, host, spec)?;
        moved.extend(moves(loaded, host)?);
        if spec.import {
            imports.push(Import {
                to: format!("{RESOURCE_TYPE}.{}", host.name),
                id: tf_escape(&format!("{}/{vmid}", tf_escape(&node_of(cfg, spec)))),
            });
        }
        list.push((host, spec));
    }
    // Host names are unique and nearly always sorted already.
    list.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    let vms = std::rc::Rc::new(Vms { loaded, cfg, list });
    Ok(Config {
        terraform: Terraform {
            required_version: if backend_name == "s3" {
                REQUIRED_VERSION_S3
            } else {
                REQUIRED_VERSION
            },
            required_providers: RequiredProviders {
                proxmox: ProviderRequirement {
                    source: "bpg/proxmox",
                    version,
                },
            },
            backend: BTreeMap::from([(backend_name, backend)]),
        },
        provider: Providers {
            proxmox: Provider {
                endpoint: tf_escape(&endpoint),
                insecure: cfg.insecure,
            },
        },
        resource: Resources(std::rc::Rc::clone(&vms)),
        import: imports,
        moved,
        output: Outputs(vms),
    })
}

/// The VM's first IPv4 address, robust to the order in which the guest
/// agent lists interfaces: the interface whose MAC is the VM's first
/// network device, else the first non-loopback interface with an address,
/// else null. (`ipv4_addresses`, `mac_addresses` and
/// `network_interface_names` are index-aligned, one entry per interface.)
pub fn ip_expression(address: &str) -> String {
    // Joined, not formatted: 10,000 VMs format this 10,000 times.
    let r = address;
    [
        "${try([for i, mac in ",
        r,
        ".mac_addresses : ",
        r,
        ".ipv4_addresses[i][0] if lower(mac) == lower(",
        r,
        ".network_device[0].mac_address) && length(",
        r,
        ".ipv4_addresses[i]) > 0][0], [for i, ifname in ",
        r,
        ".network_interface_names : ",
        r,
        ".ipv4_addresses[i][0] if ifname != \"lo\" && length(",
        r,
        ".ipv4_addresses[i]) > 0][0], null)}",
    ]
    .concat()
}

#[cfg(test)]
fn ip_expression_formatted(address: &str) -> String {
    let r = address;
    format!(
        "${{try([for i, mac in {r}.mac_addresses : {r}.ipv4_addresses[i][0] if lower(mac) == lower({r}.network_device[0].mac_address) && length({r}.ipv4_addresses[i]) > 0][0], [for i, ifname in {r}.network_interface_names : {r}.ipv4_addresses[i][0] if ifname != \"lo\" && length({r}.ipv4_addresses[i]) > 0][0], null)}}"
    )
}

/// What stops one VM from rendering: a name OpenTofu cannot take, no
/// VMID, a VM name that is no DNS name, an `ignoreChangesExtra` entry that
/// is no attribute. Returns the VMID.
fn refuse_vm(loaded: &Loaded, host: &Host, p: &ProxmoxSpec) -> Result<i64, AppError> {
    if !host
        .name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
    {
        return Err(invalid(
            loaded,
            Diagnostic::error(
                Code::BadHostName,
                host.name_span,
                format!(
                    "host `{}` is a VM, and OpenTofu resource names must start with a letter",
                    host.name
                ),
            )
            .help(format!("rename the host, e.g. `vm-{}`", host.name)),
        ));
    }
    let Some(vmid) = &p.vmid else {
        return Err(invalid(
            loaded,
            Diagnostic::error(
                Code::MissingKey,
                p.span,
                format!("`{}.proxmox` lacks `vmid`", host.name),
            )
            .help("add e.g. `vmid = 120;` (`pve new` picks the next free VMID)"),
        ));
    };
    if let Some(n) = &p.name {
        if !is_dns_name(&n.value) {
            return Err(invalid(
                loaded,
                Diagnostic::error(
                    Code::BadVmName,
                    n.span,
                    format!(
                        "`{}.proxmox.name` {:?} is not a DNS name",
                        host.name, n.value
                    ),
                )
                .help("Proxmox VM names are DNS names: letters, digits, `-` and `.`"),
            ));
        }
    }
    if let Some(extra) = p
        .ignore_changes_extra
        .iter()
        .find(|e| !is_attribute_reference(e))
    {
        let span = loaded
            .value
            .as_attrs()
            .and_then(|root| root.get(&host.name))
            .and_then(|a| a.value.as_attrs())
            .and_then(|h| h.get("proxmox"))
            .and_then(|a| a.value.as_attrs())
            .and_then(|a| a.get("ignoreChangesExtra"))
            .map_or(p.span, |a| a.value.span);
        return Err(invalid(
            loaded,
            Diagnostic::error(
                Code::BadIgnoreChanges,
                span,
                format!(
                    "`{}.proxmox.ignoreChangesExtra` entry {extra:?} is not an attribute of the VM resource",
                    host.name
                ),
            )
            .help("write attribute paths such as \"hostpci\", \"disk\" or \"cpu[0].flags\""),
        ));
    }
    Ok(vmid.value)
}

/// The VM's node: its own, else `_proxmox.node`, else none.
fn node_of(cfg: &ProxmoxConfig, p: &ProxmoxSpec) -> String {
    p.node
        .as_ref()
        .map(|n| n.value.clone())
        .or_else(|| cfg.node.as_ref().map(|n| n.value.clone()))
        .unwrap_or_default()
}

fn vm(loaded: &Loaded, cfg: &ProxmoxConfig, host: &Host, p: &ProxmoxSpec) -> Result<Vm, AppError> {
    let vmid = refuse_vm(loaded, host, p)?;
    let node = node_of(cfg, p);
    let storage = p
        .storage
        .as_ref()
        .or(cfg.default_storage.as_ref())
        .map(|s| tf_escape(&s.value));
    let bios = p
        .bios
        .as_ref()
        .map_or(DEFAULT_BIOS.to_string(), |b| b.value.clone());
    let cloned = p.clones_template();

    let disk = match &p.disk {
        Some(d) => match d.value.parse().map(DiskSize::gib).ok() {
            Some(size) => vec![Disk {
                interface: tf_escape(
                    p.disk_interface
                        .as_ref()
                        .map_or(DEFAULT_DISK_INTERFACE, |i| &i.value),
                ),
                datastore_id: storage.clone(),
                file_format: "raw",
                size,
            }],
            None => Vec::new(),
        },
        None => Vec::new(),
    };

    let mut ignore_changes: Vec<String> =
        BASE_IGNORE_CHANGES.iter().map(|s| s.to_string()).collect();
    if p.ignore_init {
        ignore_changes.push("initialization".to_string());
    }
    ignore_changes.extend(p.ignore_changes_extra.iter().map(|s| s.to_string()));

    let clone = if cloned {
        clone_block(cfg, p, &node, storage.as_deref())
    } else {
        None
    };
    if clone.is_some() {
        ignore_changes.push("clone".to_string());
    }
    let description = match (&p.description, cloned) {
        (Some(d), _) => Some(tf_escape(d)),
        (None, true) => Some(tf_escape(&format!(
            "Managed by OpenTofu - {}",
            host.hostname()
        ))),
        (None, false) => None,
    };
    let tags = match (&p.tags, cloned) {
        (Some(t), _) => Some(t.iter().map(|s| tf_escape(s)).collect()),
        (None, true) => Some(DEFAULT_TAGS.iter().map(|s| s.to_string()).collect()),
        (None, false) => None,
    };

    Ok(Vm {
        name: tf_escape(p.name.as_ref().map_or(&host.name, |n| &n.value)),
        node_name: tf_escape(&node),
        vm_id: Some(vmid),
        on_boot: false,
        efi_disk: (bios == "ovmf").then(|| EfiDisk {
            datastore_id: storage.clone(),
            file_format: "raw",
            kind: "4m",
        }),
        bios: tf_escape(&bios),
        machine: p.machine.as_ref().map(|m| tf_escape(&m.value)),
        cpu: Cpu {
            cores: p.cores.as_ref().map(|c| c.value),
            kind: tf_escape(p.cpu_type.as_ref().map_or(DEFAULT_CPU_TYPE, |c| &c.value)),
        },
        memory: p.memory.as_ref().map(|m| Memory { dedicated: m.value }),
        migrate: true,
        disk,
        network_device: vec![NetworkDevice {
            bridge: tf_escape(
                p.bridge
                    .as_deref()
                    .or(cfg.bridge.as_deref())
                    .unwrap_or(DEFAULT_BRIDGE),
            ),
            disconnected: None,
            enabled: None,
            firewall: None,
            mac_address: p.mac_address.as_ref().map(|m| tf_escape(&m.value)),
            model: "virtio",
            mtu: None,
            queues: None,
            rate_limit: None,
            trunks: None,
            vlan_id: p.vlan.as_ref().map(|v| v.value),
        }],
        agent: Agent { enabled: true },
        virtiofs: p
            .virtiofs
            .iter()
            .map(|v| Virtiofs {
                mapping: tf_escape(&v.mapping),
                cache: v.cache.as_ref().map(|c| tf_escape(c)),
                direct_io: v.direct_io,
                expose_acl: v.expose_acl,
                expose_xattr: v.expose_xattr,
            })
            .collect(),
        clone,
        description,
        tags,
        lifecycle: Lifecycle { ignore_changes },
    })
}

/// `renamedFrom = [ "a" "b" ];` on host `c`: a → b, b → c (OpenTofu
/// follows the chain from whichever address its state holds).
fn moves(loaded: &Loaded, host: &Host) -> Result<Vec<Moved>, AppError> {
    refuse_moves(loaded, host)?;
    let address = |name: &str| format!("{RESOURCE_TYPE}.{name}");
    let mut names: Vec<&str> = host.renamed_from.iter().map(|s| s.value.as_str()).collect();
    names.push(&host.name);
    let moved = names
        .windows(2)
        .filter(|w| w[0] != w[1])
        .map(|w| Moved {
            from: address(w[0]),
            to: address(w[1]),
        })
        .collect();
    Ok(moved)
}

/// A `renamedFrom` entry that names another host, or no name a resource
/// could have had.
fn refuse_moves(loaded: &Loaded, host: &Host) -> Result<(), AppError> {
    for old in &host.renamed_from {
        let taken = old.value != host.name && loaded.fleet.host(&old.value).is_some();
        let valid = old.value.starts_with(|c: char| c.is_ascii_alphabetic())
            && crate::fleet::HostName::is_valid(&old.value);
        if taken || !valid {
            let why = if taken {
                "is the name of another host, whose VM would be taken over"
            } else {
                "is not a host name an OpenTofu resource could have had"
            };
            return Err(invalid(
                loaded,
                Diagnostic::error(
                    Code::Render,
                    old.span,
                    format!("`{}.renamedFrom` {:?} {why}", host.name, old.value),
                )
                .help("`renamedFrom` names the host's previous names (`pve host rename` writes it); remove it once `pve apply` has moved the VM"),
            ));
        }
    }
    Ok(())
}

/// Where a VM on `node` is cloned from (see `ProxmoxConfig::template_for`):
/// across nodes the block names the template's node and the VM's storage;
/// on the template's node only a storage other than the default one.
fn clone_block(
    cfg: &ProxmoxConfig,
    p: &ProxmoxSpec,
    node: &str,
    storage: Option<&str>,
) -> Option<Clone> {
    let (vm_id, template_node) = cfg.template_for(node)?;
    let across = template_node != node;
    let own_storage = p
        .storage
        .as_ref()
        .is_some_and(|s| cfg.default_storage.as_ref().map(|d| &d.value) != Some(&s.value));
    Some(Clone {
        vm_id,
        full: true,
        retries: CLONE_ATTEMPTS,
        node_name: across.then(|| tf_escape(&template_node)),
        datastore_id: if across || own_storage {
            storage.map(str::to_string)
        } else {
            None
        },
    })
}

/// `_proxmox.node` must itself be one of `_proxmox.nodes` when both are set
/// (the per-VM `node` is checked by the `node` rule of `pve check`).
fn check_default_node(loaded: &Loaded, cfg: &ProxmoxConfig) -> Result<(), AppError> {
    let (Some(nodes), Some(node)) = (&cfg.nodes, &cfg.node) else {
        return Ok(());
    };
    if nodes.contains(&node.value) {
        return Ok(());
    }
    let d = Diagnostic::error(
        Code::UnknownNode,
        node.span,
        format!(
            "the default node `{}` is not in `_proxmox.nodes`",
            node.value
        ),
    );
    Err(invalid(
        loaded,
        match did_you_mean(&node.value, nodes.iter().map(String::as_str)) {
            Some(s) => d.help(format!("did you mean `{s}`?")),
            None => d.help(format!("known nodes: {}", nodes.join(", "))),
        },
    ))
}

/// Values in the `terraform` block are not templates: refuse `${`.
fn literal_only(
    loaded: &Loaded,
    span: rowan::TextRange,
    what: &str,
    s: &str,
) -> Result<(), AppError> {
    if s.contains("${") || s.contains("%{") {
        return Err(invalid(
            loaded,
            Diagnostic::error(
                Code::BadBackend,
                span,
                format!("`{what}` contains `${{` or `%{{`, which OpenTofu cannot take here"),
            )
            .help("settings of the terraform block must be plain text"),
        ));
    }
    Ok(())
}

const BACKEND_KEYS: &[(&str, &[&str])] = &[
    ("local", &["type", "path"]),
    ("pg", &["type", "schemaName"]),
    (
        "s3",
        &[
            "type",
            "bucket",
            "key",
            "region",
            "endpoint",
            "usePathStyle",
            "dynamodbTable",
            "skipCredentialsValidation",
            "skipRegionValidation",
            "skipS3Checksum",
        ],
    ),
];

/// `_proxmox.backend`: where OpenTofu keeps its state.
/// - absent: `local` at `vms/tofu/.state/terraform.tfstate`;
/// - `{ type = "local"; path = "..."; }`;
/// - `{ type = "pg"; schemaName = "..."; }`: the connection string comes
///   from `PG_CONN_STR` (and libpq's `PG*` variables) at run time;
/// - `{ type = "s3"; bucket; key; region; endpoint; usePathStyle; ... }`:
///   always with `use_lockfile = true`; credentials from the AWS variables.
fn backend(loaded: &Loaded, cfg: &ProxmoxConfig) -> Result<(&'static str, Backend), AppError> {
    let Some(v) = &cfg.backend else {
        return Ok((
            "local",
            Backend {
                path: Some(DEFAULT_STATE_PATH.to_string()),
                ..Backend::default()
            },
        ));
    };
    let err = |span, msg: String, help: &str| {
        invalid(
            loaded,
            Diagnostic::error(Code::BadBackend, span, msg).help(help.to_string()),
        )
    };
    let Some(attrs) = v.as_attrs() else {
        return Err(err(
            v.span,
            format!("`_proxmox.backend` must be a set, not {}", v.kind.type_name()),
            "write `backend = { type = \"s3\"; bucket = \"tofu-state\"; key = \"fleet.tfstate\"; region = \"eu-central-1\"; };`",
        ));
    };
    let kind = match attrs.get("type").map(|a| &a.value) {
        Some(Value {
            kind: Kind::Str(s), ..
        }) => s.as_str(),
        Some(other) => {
            return Err(err(
                other.span,
                "`_proxmox.backend.type` must be a string".into(),
                "one of \"local\", \"pg\", \"s3\"",
            ))
        }
        None => {
            return Err(err(
                v.span,
                "`_proxmox.backend` lacks `type`".into(),
                "add `type = \"local\";` (or \"pg\", \"s3\")",
            ))
        }
    };
    let Some((name, known)) = BACKEND_KEYS.iter().find(|(n, _)| *n == kind) else {
        let span = attrs.get("type").map_or(v.span, |a| a.value.span);
        return Err(err(
            span,
            format!("unknown state backend {kind:?}"),
            "supported backends: \"local\", \"pg\", \"s3\"",
        ));
    };
    for (key, attr) in attrs {
        if known.contains(&key.as_str()) {
            continue;
        }
        let help = if key == "conn_str"
            || key == "connStr"
            || key.contains("secret")
            || key.contains("password")
        {
            "credentials never go into hosts.nix: set PG_CONN_STR (pg) or the AWS_* variables (s3) when running pve".to_string()
        } else {
            match did_you_mean(key, known.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("known keys for {name}: {}", known.join(", ")),
            }
        };
        return Err(err(
            attr.name_span,
            format!("unknown key `_proxmox.backend.{key}` for the {name} backend"),
            &help,
        ));
    }
    let string = |key: &str| -> Result<Option<String>, AppError> {
        match attrs.get(key) {
            None => Ok(None),
            Some(a) => match a.value.as_str() {
                Some(s) => {
                    literal_only(loaded, a.value.span, &format!("_proxmox.backend.{key}"), s)?;
                    Ok(Some(s.to_string()))
                }
                None => Err(err(
                    a.value.span,
                    format!("`_proxmox.backend.{key}` must be a string"),
                    "write it in double quotes",
                )),
            },
        }
    };
    let boolean = |key: &str| -> Result<Option<bool>, AppError> {
        match attrs.get(key) {
            None => Ok(None),
            Some(a) => a.value.as_bool().map(Some).ok_or_else(|| {
                err(
                    a.value.span,
                    format!("`_proxmox.backend.{key}` must be true or false"),
                    "write `true` or `false`",
                )
            }),
        }
    };
    let backend = match *name {
        "local" => Backend {
            path: Some(string("path")?.unwrap_or_else(|| DEFAULT_STATE_PATH.to_string())),
            ..Backend::default()
        },
        "pg" => Backend {
            schema_name: string("schemaName")?,
            ..Backend::default()
        },
        _ => {
            let bucket = string("bucket")?;
            if bucket.is_none() {
                return Err(err(
                    v.span,
                    "the s3 backend needs `bucket`".into(),
                    "add `bucket = \"tofu-state\";`",
                ));
            }
            Backend {
                bucket,
                key: Some(string("key")?.unwrap_or_else(|| "pve-fleet/terraform.tfstate".into())),
                region: Some(string("region")?.unwrap_or_else(|| "us-east-1".into())),
                endpoints: string("endpoint")?.map(|s3| S3Endpoints { s3 }),
                use_path_style: boolean("usePathStyle")?,
                use_lockfile: Some(true),
                dynamodb_table: string("dynamodbTable")?,
                skip_credentials_validation: boolean("skipCredentialsValidation")?,
                skip_region_validation: boolean("skipRegionValidation")?,
                skip_s3_checksum: boolean("skipS3Checksum")?,
                ..Backend::default()
            }
        }
    };
    Ok((name, backend))
}

/// A DNS name as the provider's HostnameValidator accepts it.
fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

/// `hostpci`, `disk`, `cpu[0].flags`: what `ignore_changes` accepts.
fn is_attribute_reference(s: &str) -> bool {
    let ident = |p: &str| {
        let mut c = p.chars();
        c.next().is_some_and(|f| f.is_ascii_lowercase() || f == '_')
            && c.all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || x == '_')
    };
    !s.is_empty()
        && s.split('.').all(|part| {
            let (name, index) = match part.split_once('[') {
                Some((n, rest)) => (n, Some(rest)),
                None => (part, None),
            };
            ident(name)
                && index.is_none_or(|i| {
                    i.strip_suffix(']')
                        .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
                })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pve check` tests without building (`check_renders`) what `pve
    /// render` refuses while building: the same first refusal, or none.
    #[test]
    fn check_refuses_what_render_refuses() {
        let breaks = [
            ("", ""),
            ("vmid = 121; ", ""),
            ("  db = {", "  \"1db\" = {"),
            ("cores = 2; memory = 2048; disk", "name = \"no_dns\"; cores = 2; memory = 2048; disk"),
            ("vmid = 121;", "vmid = 121; ignoreChangesExtra = [ \"!x\" ];"),
            ("  db = {", "  db = {\n    renamedFrom = [ \"web\" ];"),
            ("  db = {", "  db = {\n    renamedFrom = [ \"9old\" ];"),
            ("vmid = 121;", "vmid = 121; ignoreChangesExtra = [ \"!x\" ];\n    }; renamedFrom = [ \"web\" ]; x = {"),
        ];
        let mut refused = 0;
        for (from, to) in breaks {
            let text = crate::check::testing::fleet().replacen(from, to, 1);
            let path = std::env::temp_dir().join("pve-tofu-refusal-test/hosts.nix");
            let Ok(loaded) = crate::fleet::load_source(crate::fleet::SourceFile::new(path, text))
            else {
                panic!("the test fleet with {to:?} does not load");
            };
            let (checked, rendered) = crate::render::without_gates(|| {
                (check_renders(&loaded), render_json_as(&loaded, false))
            });
            let checked = checked.err().map(|e| format!("{e:?}"));
            refused += usize::from(checked.is_some());
            assert_eq!(checked, rendered.err().map(|e| format!("{e:?}")), "{to:?}");
        }
        // Every break but the first (none) is refused.
        assert_eq!(refused, breaks.len() - 1);
    }

    #[test]
    fn attribute_references() {
        for ok in [
            "hostpci",
            "disk",
            "cpu[0].flags",
            "initialization",
            "network_device[1]",
        ] {
            assert!(is_attribute_reference(ok), "{ok}");
        }
        for bad in [
            "", "Disk", "a b", "${x}", "cpu[x]", "cpu[0", ".disk", "disk.",
        ] {
            assert!(!is_attribute_reference(bad), "{bad}");
        }
    }

    #[test]
    fn the_ip_expression_is_the_formatted_one() {
        for a in ["proxmox_virtual_environment_vm.web-1", "", "x.y"] {
            assert_eq!(ip_expression(a), ip_expression_formatted(a));
        }
    }

    #[test]
    fn dns_names() {
        assert!(is_dns_name("web-1.lan"));
        assert!(is_dns_name("Web1"));
        assert!(!is_dns_name("web_1"));
        assert!(!is_dns_name("-web"));
        assert!(!is_dns_name(""));
    }
}
