//! The typed fleet: what hosts.nix means once evaluated. Built leniently:
//! a wrong type or an unknown key becomes a diagnostic (so `pve check`
//! reports every problem at once) and the field is left unset.

use std::collections::BTreeMap;
use std::path::PathBuf;

use compact_str::CompactString;
use rowan::TextRange;

use super::value::{Attr, Attrs, Kind, Value};
use crate::diag::{did_you_mean, Code, Diagnostic};

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: TextRange,
}

#[derive(Debug, Clone, Default)]
pub struct Fleet {
    pub proxmox: Option<ProxmoxConfig>,
    pub sops: SopsConfig,
    /// Hosts sorted by attribute name.
    pub hosts: Vec<Host>,
}

#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub name_span: TextRange,
    pub span: TextRange,
    pub configuration_file: Option<Spanned<PathBuf>>,
    pub home_file: Option<Spanned<PathBuf>>,
    pub hostname: Option<Spanned<String>>,
    pub ssh_alias: Option<Spanned<String>>,
    pub public_key: Option<Spanned<String>>,
    /// `public_key` parsed, once for every rule and output that needs the
    /// point (see [`Host::public_point`]).
    public_point: Option<Result<[u8; 32], crate::keys::KeyError>>,
    pub proxmox: Option<Box<ProxmoxSpec>>,
    /// `secrets = true|false;`: whether the host's key gets its own
    /// secrets and the catch-all's (default: see [`Host::takes_secrets`]).
    pub secrets: Option<Spanned<bool>>,
    /// `renamedFrom = "old";` (or a list, oldest first), written by `pve
    /// host rename`: the VM keeps its OpenTofu resource (a `moved` block)
    /// and the host's secrets under `hosts/<old>/` keep their rule.
    pub renamed_from: Vec<Spanned<String>>,
}

impl Host {
    /// The Ed25519 point of `publicKey` (`None` without one), parsed when
    /// the model was built: the check rules and the outputs read it here
    /// instead of parsing the key again each.
    pub fn public_point(&self) -> Option<&Result<[u8; 32], crate::keys::KeyError>> {
        self.public_point.as_ref()
    }

    /// The machine's hostname: `hostname`, or the attribute name.
    pub fn hostname(&self) -> &str {
        self.hostname.as_ref().map_or(&self.name, |h| &h.value)
    }

    /// Whether the host decrypts secrets on boot (sops-nix in its NixOS
    /// configuration): `secrets` when written, else every host except one
    /// with only a `homeFile` (Home Manager on a machine that is not NixOS
    /// has no sops-nix to give the host key to).
    pub fn takes_secrets(&self) -> bool {
        match &self.secrets {
            Some(s) => s.value,
            None => self.configuration_file.is_some() || self.home_file.is_none(),
        }
    }
}

/// A `virtiofs` share (a set, or one of a list of sets).
#[derive(Debug, Clone, PartialEq)]
pub struct Virtiofs {
    pub mapping: String,
    pub cache: Option<String>,
    pub direct_io: Option<bool>,
    pub expose_acl: Option<bool>,
    pub expose_xattr: Option<bool>,
    pub span: TextRange,
}

#[derive(Debug, Clone)]
pub struct ProxmoxSpec {
    pub span: TextRange,
    pub vmid: Option<Spanned<i64>>,
    pub cores: Option<Spanned<i64>>,
    pub memory: Option<Spanned<i64>>,
    pub disk: Option<Spanned<String>>,
    pub storage: Option<Spanned<String>>,
    pub name: Option<Spanned<String>>,
    pub bios: Option<Spanned<String>>,
    pub machine: Option<Spanned<String>>,
    pub cpu_type: Option<Spanned<String>>,
    pub disk_interface: Option<Spanned<String>>,
    pub clone_from_template: Option<Spanned<bool>>,
    pub ignore_init: bool,
    pub tags: Option<Vec<CompactString>>,
    pub description: Option<String>,
    pub ignore_changes_extra: Box<[CompactString]>,
    pub readonly: bool,
    pub virtiofs: Box<[Virtiofs]>,
    /// Extension: the cluster node this VM lives on (default `_proxmox.node`).
    pub node: Option<Spanned<String>>,
    /// Extension: adopt an existing VM with an OpenTofu `import` block.
    pub import: bool,
    /// Extension: network bridge (default `_proxmox.bridge` or "vmbr0").
    pub bridge: Option<String>,
    /// Extension: VLAN tag on the network device.
    pub vlan: Option<Spanned<i64>>,
    /// Extension: fixed MAC address.
    pub mac_address: Option<Spanned<String>>,
}

impl ProxmoxSpec {
    pub fn clones_template(&self) -> bool {
        self.clone_from_template.as_ref().is_none_or(|c| c.value)
    }
}

pub const PROXMOX_KEYS: &[&str] = &[
    "vmid",
    "cores",
    "memory",
    "disk",
    "storage",
    "name",
    "bios",
    "machine",
    "cpuType",
    "diskInterface",
    "cloneFromTemplate",
    "ignoreInit",
    "tags",
    "description",
    "ignoreChangesExtra",
    "readonly",
    "virtiofs",
    "node",
    "import",
    "bridge",
    "vlan",
    "macAddress",
];

/// The keys of a host that pve reads; any other key belongs to other
/// modules (a close misspelling of one of these is a warning: `typos`).
pub const HOST_KEYS: &[&str] = &[
    "configurationFile",
    "homeFile",
    "hostname",
    "sshAlias",
    "publicKey",
    "secrets",
    "proxmox",
    "checks",
];

/// The top-level `_` settings pve knows (`typos` warns on close
/// misspellings; `_defaults` is read by `pve new`).
pub const CONFIG_NAMES: &[&str] = &["_proxmox", "_sops", "_checks", "_defaults"];

pub const PROXMOX_CONFIG_KEYS: &[&str] = &[
    "host",
    "node",
    "defaultStorage",
    "templateVmid",
    "endpoint",
    "insecure",
    "providerVersion",
    "vmidRange",
    "nodes",
    "backend",
    "user",
    "bridge",
    "templates",
    "placement",
    "parallelClones",
];

#[derive(Debug, Clone)]
pub struct ProxmoxConfig {
    pub span: TextRange,
    pub host: Option<Spanned<String>>,
    pub node: Option<Spanned<String>>,
    pub default_storage: Option<Spanned<String>>,
    pub template_vmid: Option<Spanned<i64>>,
    pub endpoint: Option<String>,
    pub insecure: Option<bool>,
    pub provider_version: Option<String>,
    /// Inclusive range of VMIDs `pve new` may hand out (default 100–999).
    pub vmid_range: (i64, i64),
    pub vmid_range_span: Option<TextRange>,
    /// The cluster's node names (`nodes = [ "pve1" "pve2" ];`, or the
    /// names of `nodes = { pve1 = "10.0.0.1"; ... };`).
    pub nodes: Option<Vec<String>>,
    /// `nodes = { pve2 = "10.0.0.2"; };`: the SSH address of each node,
    /// for operations on a VM that lives on another node than `host`.
    pub node_addresses: BTreeMap<String, Spanned<String>>,
    pub backend: Option<Value>,
    pub user: Option<String>,
    pub bridge: Option<String>,
    /// `templates = { pve1 = 9003; pve2 = 9013; };`: the NixOS template on
    /// each node; `templateVmid` is the fallback (on `node`, cloned across
    /// nodes by the provider).
    pub templates: BTreeMap<String, Spanned<i64>>,
    pub templates_span: Option<TextRange>,
    /// `placement = "least-memory";`: how `pve new` picks a node for a VM
    /// when `--node` is not given (`pve new --node auto` always does).
    pub placement: Option<Spanned<String>>,
    /// `parallelClones = 2;`: how many VMs one apply creates at a time.
    pub parallel_clones: Option<Spanned<i64>>,
}

impl ProxmoxConfig {
    /// An empty `_proxmox` (every key unset) at `span`.
    pub fn empty(span: TextRange) -> ProxmoxConfig {
        ProxmoxConfig {
            span,
            host: None,
            node: None,
            default_storage: None,
            template_vmid: None,
            endpoint: None,
            insecure: None,
            provider_version: None,
            vmid_range: DEFAULT_VMID_RANGE,
            vmid_range_span: None,
            nodes: None,
            node_addresses: BTreeMap::new(),
            backend: None,
            user: None,
            bridge: None,
            templates: BTreeMap::new(),
            templates_span: None,
            placement: None,
            parallel_clones: None,
        }
    }

    /// The node a VM lives on: its `node`, else `_proxmox.node`.
    pub fn node_of<'a>(&'a self, spec: &'a ProxmoxSpec) -> Option<&'a str> {
        spec.node
            .as_ref()
            .map(|n| n.value.as_str())
            .or(self.node.as_ref().map(|n| n.value.as_str()))
    }

    /// Where a VM on `node` is cloned from: (template VMID, the template's
    /// node). `templates` for that node first, else `templateVmid` on
    /// `_proxmox.node`. None: no template reaches this node.
    pub fn template_for(&self, node: &str) -> Option<(i64, String)> {
        if let Some(t) = self.templates.get(node) {
            return Some((t.value, node.to_string()));
        }
        let t = self.template_vmid.as_ref()?;
        let home = self.node.as_ref().map_or(node, |n| n.value.as_str());
        Some((t.value, home.to_string()))
    }

    /// Every template VMID the fleet names.
    pub fn template_vmids(&self) -> Vec<i64> {
        let mut v: Vec<i64> = self.templates.values().map(|t| t.value).collect();
        v.extend(self.template_vmid.as_ref().map(|t| t.value));
        v
    }
}

/// `_proxmox.placement = "least-memory";`: the one placement `pve new` knows.
pub const PLACEMENT_LEAST_MEMORY: &str = "least-memory";

pub use super::defaults::VMID_RANGE as DEFAULT_VMID_RANGE;

#[derive(Debug, Clone, Default)]
pub struct SopsConfig {
    pub span: Option<TextRange>,
    /// name → age recipient or ssh-ed25519 public key.
    pub admins: BTreeMap<String, Spanned<String>>,
    /// Where .sops.yaml goes, relative to the fleet root.
    pub path: Option<Spanned<String>>,
    /// Extra creation rules, passed through as written.
    pub rules: Option<Value>,
    /// `catchAll = false;` leaves out the last rule (admins and every host
    /// for any other file).
    pub catch_all: Option<Spanned<bool>>,
}

/// Reads one attribute set, recording diagnostics for wrong types and, when
/// `strict`, for keys it was not asked about.
struct Reader<'a> {
    attrs: &'a Attrs,
    /// The [`signature`]s of the set's names, or'ed: most keys a reader
    /// asks for are not in the set (a host's `proxmox` writes about 7 of
    /// its 23), and a clear bit answers those without a search (which was
    /// a twentieth of reading a 10,000-host fleet).
    names: u64,
    /// What the keys' names follow in messages, in two parts (e.g. the
    /// host's name and `.proxmox.`): joined only when there is a message,
    /// not for every host.
    context: (&'a str, &'static str),
    diags: &'a mut Vec<Diagnostic>,
}

/// One bit of 64 for a name, from its length and its first and last bytes
/// (the keys a reader asks for mostly differ there).
fn signature(name: &[u8]) -> u64 {
    let (first, last) = match name {
        [] => (0, 0),
        [first, .., last] => (*first, *last),
        [only] => (*only, *only),
    };
    let bit = (name.len() as u32).wrapping_mul(7) ^ u32::from(first) ^ u32::from(last) << 2;
    1 << (bit % 64)
}

impl<'a> Reader<'a> {
    fn new(
        attrs: &'a Attrs,
        context: (&'a str, &'static str),
        diags: &'a mut Vec<Diagnostic>,
    ) -> Reader<'a> {
        let names = attrs.keys().fold(0, |m, n| m | signature(n.as_bytes()));
        Reader {
            attrs,
            names,
            context,
            diags,
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        if self.names & signature(key.as_bytes()) == 0 {
            return None;
        }
        self.attrs.get(key).map(|a| &a.value)
    }

    fn wrong_type(&mut self, key: &str, v: &Value, want: &str) {
        self.diags.push(
            Diagnostic::error(
                Code::WrongType,
                v.span,
                format!(
                    "`{}{}{key}` must be {want}, not {}",
                    self.context.0,
                    self.context.1,
                    v.kind.type_name()
                ),
            )
            .help(format!("write e.g. `{key} = {};`", example_for(key, want))),
        );
    }

    fn string(&mut self, key: &str) -> Option<Spanned<String>> {
        let v = self.get(key)?;
        match &v.kind {
            Kind::Str(s) => Some(Spanned {
                value: s.as_str().to_string(),
                span: v.span,
            }),
            _ => {
                self.wrong_type(key, v, "a string");
                None
            }
        }
    }

    fn int(&mut self, key: &str) -> Option<Spanned<i64>> {
        let v = self.get(key)?;
        match v.kind {
            Kind::Int(i) => Some(Spanned {
                value: i,
                span: v.span,
            }),
            _ => {
                self.wrong_type(key, v, "an integer");
                None
            }
        }
    }

    fn bool(&mut self, key: &str) -> Option<Spanned<bool>> {
        let v = self.get(key)?;
        match v.kind {
            Kind::Bool(b) => Some(Spanned {
                value: b,
                span: v.span,
            }),
            _ => {
                self.wrong_type(key, v, "true or false");
                None
            }
        }
    }

    fn path(&mut self, key: &str) -> Option<Spanned<PathBuf>> {
        let v = self.get(key)?;
        match &v.kind {
            Kind::Path(p) => Some(Spanned {
                value: p.to_path_buf(),
                span: v.span,
            }),
            _ => {
                self.wrong_type(key, v, "a path");
                None
            }
        }
    }

    fn strings<S: for<'s> From<&'s str>>(&mut self, key: &str) -> Option<Vec<S>> {
        let v = self.get(key)?;
        let items = match &v.kind {
            Kind::List(items) => items,
            _ => {
                self.wrong_type(key, v, "a list of strings");
                return None;
            }
        };
        // Sized once: a long list would otherwise keep up to half its
        // size again as slack (40 tags a host: 64 places).
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item.as_str() {
                Some(s) => out.push(S::from(s)),
                None => {
                    self.wrong_type(key, item, "a list of strings");
                    return None;
                }
            }
        }
        Some(out)
    }

    fn reject_unknown(&mut self, known: &[&str]) {
        for (key, attr) in self.attrs {
            if known.contains(&key.as_str()) {
                continue;
            }
            let mut d = Diagnostic::error(
                Code::UnknownKey,
                attr.name_span,
                format!("unknown key `{}{}{key}`", self.context.0, self.context.1),
            );
            d = match did_you_mean(key, known.iter().copied()) {
                Some(s) => d.help(format!("did you mean `{s}`?")),
                None => d.help(format!("known keys: {}", known.join(", "))),
            };
            self.diags.push(d);
        }
    }
}

/// A value of the right type for `key`, for the wrong-type help: the
/// key's own kind of value where it has one (`memory = 8192;`, not `= 4`).
fn example_for(key: &str, want: &str) -> &'static str {
    match key {
        "vmid" => "120",
        "cores" => "2",
        "memory" => "8192",
        "templateVmid" => "9000",
        "vlan" => "10",
        "disk" => "\"64G\"",
        "storage" | "defaultStorage" => "\"local-lvm\"",
        "tags" => "[ \"web\" ]",
        "nodes" => "[ \"pve\" ]",
        "node" => "\"pve\"",
        "placement" => "\"least-memory\"",
        "host" => "\"192.168.1.12\"",
        "hostname" | "sshAlias" | "name" => "\"web\"",
        "publicKey" => "\"ssh-ed25519 AAAA...\"",
        "configurationFile" => "./hosts/NAME/configuration.nix",
        "homeFile" => "./hosts/NAME/home.nix",
        "bios" => "\"seabios\"",
        "cpuType" => "\"x86-64-v2-AES\"",
        "diskInterface" => "\"virtio0\"",
        "bridge" => "\"vmbr0\"",
        "macAddress" => "\"BC:24:11:00:00:01\"",
        "vmidRange" => "[ 100 999 ]",
        "ignoreChangesExtra" => "[ \"disk\" ]",
        _ => match want {
            "a string" => "\"...\"",
            "an integer" => "4",
            "true or false" => "true",
            "a path" => "./hosts/NAME/configuration.nix",
            "a list of strings" => "[ \"a\" \"b\" ]",
            _ => "{ ... }",
        },
    }
}

impl Fleet {
    /// Builds the typed fleet from the evaluated file. The root must be a set
    /// (checked by the caller).
    pub fn from_value(root: &Attrs) -> (Fleet, Vec<Diagnostic>) {
        Fleet::from_typed(root.into_iter().map(|(name, attr)| Typed::of(name, attr)))
    }

    /// The fleet from its top-level attributes typed one by one
    /// ([`Typed::of`]), in name order (the two-thread read types each
    /// half's on its own thread).
    pub fn from_typed(typed: impl ExactSizeIterator<Item = Typed>) -> (Fleet, Vec<Diagnostic>) {
        let mut fleet = FleetBuilder::with_capacity(typed.len());
        typed.for_each(|t| fleet.add(t));
        fleet.finish()
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// Hosts that are VMs on Proxmox.
    pub fn vms(&self) -> impl Iterator<Item = (&Host, &ProxmoxSpec)> {
        self.hosts
            .iter()
            .filter_map(|h| h.proxmox.as_deref().map(|p| (h, p)))
    }
}

/// A fleet put together from its top-level attributes typed one by one
/// ([`Typed::of`]), added in name order: [`Fleet::from_typed`], or the
/// two-thread read as it merges its halves (each typed attribute moved
/// once, into the fleet, not into a list of them first).
pub struct FleetBuilder {
    fleet: Fleet,
    diags: Vec<Diagnostic>,
}

impl FleetBuilder {
    pub fn with_capacity(hosts: usize) -> FleetBuilder {
        let mut fleet = Fleet::default();
        // Sized once: a 10,000-host fleet would otherwise copy its hosts
        // through a dozen ever larger allocations.
        fleet.hosts.reserve_exact(hosts);
        FleetBuilder {
            fleet,
            diags: Vec::new(),
        }
    }

    pub fn add(&mut self, typed: Typed) {
        self.diags.extend(typed.diags);
        match typed.part {
            TypedPart::Host(host) => self.fleet.hosts.push(host),
            TypedPart::Proxmox(p) => self.fleet.proxmox = *p,
            TypedPart::Sops(s) => self.fleet.sops = *s,
            TypedPart::Other => {}
        }
    }

    pub fn finish(self) -> (Fleet, Vec<Diagnostic>) {
        (self.fleet, self.diags)
    }
}

/// What one top-level attribute adds to the fleet, and the problems
/// found typing it: the hosts of a file read in parts are typed on each
/// part's thread, then put together by [`Fleet::from_typed`].
pub struct Typed {
    part: TypedPart,
    diags: Vec<Diagnostic>,
}

impl Typed {
    pub fn of(name: &str, attr: &Attr) -> Typed {
        let mut diags = Vec::new();
        let part = type_entry(name, attr, &mut diags);
        Typed { part, diags }
    }
}

// Hosts are most of them: boxing each would cost an allocation per host.
// The two settings, larger than a host, are boxed so that a list of typed
// attributes is not much larger than its hosts.
#[allow(clippy::large_enum_variant)]
enum TypedPart {
    Host(Host),
    Proxmox(Box<Option<ProxmoxConfig>>),
    Sops(Box<SopsConfig>),
    /// Another `_` setting, or a host that is not a set (reported by the
    /// check rules).
    Other,
}

fn type_entry(name: &str, attr: &Attr, diags: &mut Vec<Diagnostic>) -> TypedPart {
    let value = &attr.value;
    match name {
        "_proxmox" => TypedPart::Proxmox(Box::new(read_proxmox_config(value, diags))),
        "_sops" => TypedPart::Sops(Box::new(read_sops(value, diags))),
        n if n.starts_with('_') => TypedPart::Other,
        _ => match value.as_attrs() {
            Some(attrs) => {
                TypedPart::Host(read_host(name, attr.name_span, value.span, attrs, diags))
            }
            None => TypedPart::Other,
        },
    }
}

/// `what`: the value's name in two parts, joined only for the message.
fn expect_set<'v>(
    value: &'v Value,
    what: (&str, &str),
    diags: &mut Vec<Diagnostic>,
) -> Option<&'v Attrs> {
    let attrs = value.as_attrs();
    if attrs.is_none() {
        let what = format!("{}{}", what.0, what.1);
        diags.push(
            Diagnostic::error(
                Code::WrongType,
                value.span,
                format!("`{what}` must be a set, not {}", value.kind.type_name()),
            )
            .help(format!("write `{what} = {{ ... }};`")),
        );
    }
    attrs
}

fn read_host(
    name: &str,
    name_span: TextRange,
    span: TextRange,
    attrs: &Attrs,
    diags: &mut Vec<Diagnostic>,
) -> Host {
    let mut r = Reader::new(attrs, (name, "."), diags);
    let configuration_file = r.path("configurationFile");
    let home_file = r.path("homeFile");
    let hostname = r.string("hostname");
    let ssh_alias = r.string("sshAlias");
    let public_key = r.string("publicKey");
    let secrets = r.bool("secrets");
    let renamed_from = read_renamed_from(name, r.get("renamedFrom"), r.diags);
    let proxmox = r
        .get("proxmox")
        .and_then(|v| expect_set(v, (name, ".proxmox"), r.diags).map(|p| (v.span, p)))
        .map(|(span, p)| Box::new(read_proxmox_spec(name, span, p, r.diags)));
    Host {
        name: name.to_string(),
        name_span,
        span,
        configuration_file,
        home_file,
        hostname,
        ssh_alias,
        public_point: public_key
            .as_ref()
            .map(|k| crate::keys::parse_ed25519_public(&k.value)),
        public_key,
        proxmox,
        secrets,
        renamed_from,
    }
}

/// `renamedFrom = "old";` or `renamedFrom = [ "older" "old" ];`.
fn read_renamed_from(
    host: &str,
    value: Option<&Value>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Spanned<String>> {
    let Some(v) = value else {
        return Vec::new();
    };
    let items: Vec<&Value> = match &v.kind {
        Kind::List(items) => items.iter().collect(),
        _ => vec![v],
    };
    let mut out = Vec::new();
    for item in items {
        match item.as_str() {
            Some(s) => out.push(Spanned {
                value: s.to_string(),
                span: item.span,
            }),
            None => {
                diags.push(
                    Diagnostic::error(
                        Code::WrongType,
                        item.span,
                        format!(
                            "`{host}.renamedFrom` must be the host's old name (a string) or a list of them, not {}",
                            item.kind.type_name()
                        ),
                    )
                    .help("write `renamedFrom = \"web-old\";` (`pve host rename` writes it)"),
                );
                return Vec::new();
            }
        }
    }
    out
}

fn read_proxmox_spec(
    host: &str,
    span: TextRange,
    attrs: &Attrs,
    diags: &mut Vec<Diagnostic>,
) -> ProxmoxSpec {
    let mut r = Reader::new(attrs, (host, ".proxmox."), diags);
    r.reject_unknown(PROXMOX_KEYS);
    let disk = match r.get("disk") {
        Some(v) => match &v.kind {
            Kind::Str(s) => Some(Spanned {
                value: s.as_str().to_string(),
                span: v.span,
            }),
            _ => {
                r.wrong_type("disk", v, "a string");
                None
            }
        },
        None => None,
    };
    let spec = ProxmoxSpec {
        span,
        vmid: r.int("vmid"),
        cores: r.int("cores"),
        memory: r.int("memory"),
        disk,
        storage: r.string("storage"),
        name: r.string("name"),
        bios: r.string("bios"),
        machine: r.string("machine"),
        cpu_type: r.string("cpuType"),
        disk_interface: r.string("diskInterface"),
        clone_from_template: r.bool("cloneFromTemplate"),
        ignore_init: r.bool("ignoreInit").is_some_and(|b| b.value),
        tags: r.strings("tags"),
        description: r.string("description").map(|s| s.value),
        ignore_changes_extra: r
            .strings("ignoreChangesExtra")
            .map(Vec::into_boxed_slice)
            .unwrap_or_default(),
        readonly: r.bool("readonly").is_some_and(|b| b.value),
        virtiofs: Box::default(),
        node: r.string("node"),
        import: r.bool("import").is_some_and(|b| b.value),
        bridge: r.string("bridge").map(|s| s.value),
        vlan: r.int("vlan"),
        mac_address: r.string("macAddress"),
    };
    let virtiofs = match r.get("virtiofs") {
        Some(v) => read_virtiofs(host, v, r.diags).into_boxed_slice(),
        None => Box::default(),
    };
    ProxmoxSpec { virtiofs, ..spec }
}

const VIRTIOFS_KEYS: &[&str] = &[
    "mapping",
    "cache",
    "direct_io",
    "expose_acl",
    "expose_xattr",
];

fn read_virtiofs(host: &str, v: &Value, diags: &mut Vec<Diagnostic>) -> Vec<Virtiofs> {
    let items: Vec<&Value> = match &v.kind {
        Kind::List(items) => items.iter().collect(),
        Kind::Attrs(_) => vec![v],
        _ => {
            diags.push(Diagnostic::error(
                Code::WrongType,
                v.span,
                format!(
                    "`{host}.proxmox.virtiofs` must be a set or a list of sets, not {}",
                    v.kind.type_name()
                ),
            ));
            return Vec::new();
        }
    };
    items
        .into_iter()
        .filter_map(|item| {
            let attrs = expect_set(item, (host, ".proxmox.virtiofs"), diags)?;
            let mut r = Reader::new(attrs, (host, ".proxmox.virtiofs."), diags);
            r.reject_unknown(VIRTIOFS_KEYS);
            Some(Virtiofs {
                mapping: r
                    .string("mapping")
                    .map_or_else(|| "containers".to_string(), |s| s.value),
                cache: r.string("cache").map(|s| s.value),
                direct_io: r.bool("direct_io").map(|b| b.value),
                expose_acl: r.bool("expose_acl").map(|b| b.value),
                expose_xattr: r.bool("expose_xattr").map(|b| b.value),
                span: item.span,
            })
        })
        .collect()
}

fn read_proxmox_config(v: &Value, diags: &mut Vec<Diagnostic>) -> Option<ProxmoxConfig> {
    let attrs = expect_set(v, ("_proxmox", ""), diags)?;
    let mut r = Reader::new(attrs, ("_proxmox.", ""), diags);
    r.reject_unknown(PROXMOX_CONFIG_KEYS);
    let (vmid_range, vmid_range_span) = match r.get("vmidRange") {
        Some(range) => match range
            .as_list()
            .map(|l| l.iter().map(Value::as_int).collect::<Vec<_>>())
            .as_deref()
        {
            Some([Some(lo), Some(hi)]) => ((*lo, *hi), Some(range.span)),
            _ => {
                r.wrong_type("vmidRange", range, "a list of two integers");
                (DEFAULT_VMID_RANGE, Some(range.span))
            }
        },
        None => (DEFAULT_VMID_RANGE, None),
    };
    let (nodes, node_addresses) = read_nodes(&mut r);
    let (templates, templates_span) = read_templates(&mut r);
    Some(ProxmoxConfig {
        span: v.span,
        host: r.string("host"),
        node: r.string("node"),
        default_storage: r.string("defaultStorage"),
        template_vmid: r.int("templateVmid"),
        endpoint: r.string("endpoint").map(|s| s.value),
        insecure: r.bool("insecure").map(|b| b.value),
        provider_version: r.string("providerVersion").map(|s| s.value),
        vmid_range,
        vmid_range_span,
        nodes,
        node_addresses,
        backend: r.get("backend").cloned(),
        user: r.string("user").map(|s| s.value),
        bridge: r.string("bridge").map(|s| s.value),
        templates,
        templates_span,
        placement: r.string("placement"),
        parallel_clones: r.int("parallelClones"),
    })
}

type NodeAddresses = BTreeMap<String, Spanned<String>>;

/// `nodes = [ "pve1" "pve2" ];` or `nodes = { pve1 = "10.0.0.1"; };`.
fn read_nodes(r: &mut Reader) -> (Option<Vec<String>>, NodeAddresses) {
    let Some(v) = r.get("nodes") else {
        return (None, BTreeMap::new());
    };
    let Some(set) = v.as_attrs() else {
        return (r.strings("nodes"), BTreeMap::new());
    };
    let mut addresses = BTreeMap::new();
    for (name, attr) in set {
        match attr.value.as_str() {
            Some(a) => {
                addresses.insert(
                    name.as_str().to_string(),
                    Spanned {
                        value: a.to_string(),
                        span: attr.value.span,
                    },
                );
            }
            None => r.diags.push(
                Diagnostic::error(
                    Code::WrongType,
                    attr.value.span,
                    format!(
                        "`_proxmox.nodes.{name}` must be the node's SSH address (a string), not {}",
                        attr.value.kind.type_name()
                    ),
                )
                .help(format!("write `{name} = \"10.0.0.2\";`")),
            ),
        }
    }
    (
        Some(set.keys().map(|k| k.as_str().to_string()).collect()),
        addresses,
    )
}

/// `templates = { pve1 = 9003; pve2 = 9013; };`: node → template VMID.
fn read_templates(r: &mut Reader) -> (BTreeMap<String, Spanned<i64>>, Option<TextRange>) {
    let Some(v) = r.get("templates") else {
        return (BTreeMap::new(), None);
    };
    let Some(set) = v.as_attrs() else {
        r.wrong_type("templates", v, "a set");
        return (BTreeMap::new(), Some(v.span));
    };
    let mut out = BTreeMap::new();
    for (node, attr) in set {
        match attr.value.as_int() {
            Some(vmid) => {
                out.insert(
                    node.as_str().to_string(),
                    Spanned {
                        value: vmid,
                        span: attr.value.span,
                    },
                );
            }
            None => r.diags.push(
                Diagnostic::error(
                    Code::WrongType,
                    attr.value.span,
                    format!(
                        "`_proxmox.templates.{node}` must be the VMID of the template on node `{node}` (an integer), not {}",
                        attr.value.kind.type_name()
                    ),
                )
                .help(format!("write `{node} = 9000;`")),
            ),
        }
    }
    (out, Some(v.span))
}

fn read_sops(v: &Value, diags: &mut Vec<Diagnostic>) -> SopsConfig {
    let Some(attrs) = expect_set(v, ("_sops", ""), diags) else {
        return SopsConfig::default();
    };
    let mut r = Reader::new(attrs, ("_sops.", ""), diags);
    let path = r.string("path");
    let rules = r.get("rules").cloned();
    let catch_all = r.bool("catchAll");
    let mut admins = BTreeMap::new();
    if let Some(a) = attrs.get("admins").map(|a| &a.value) {
        if let Some(set) = expect_set(a, ("_sops.admins", ""), diags) {
            for (name, attr) in set {
                match attr.value.as_str() {
                    Some(s) => {
                        admins.insert(name.as_str().to_string(), Spanned { value: s.to_string(), span: attr.value.span });
                    }
                    None => diags.push(Diagnostic::error(
                        Code::WrongType,
                        attr.value.span,
                        format!("`_sops.admins.{name}` must be a string (an age1... recipient or an ssh-ed25519 key)"),
                    )),
                }
            }
        }
    }
    SopsConfig {
        span: Some(v.span),
        admins,
        path,
        rules,
        catch_all,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The reader finds what the set holds and nothing else: a name's
        /// signature bit only ever skips a search that would find nothing.
        #[test]
        fn the_reader_finds_exactly_the_sets_names(
            names in proptest::collection::btree_set("[a-zA-Z_]{0,12}|vmid|cores|disk|name", 0..20),
            probe in "[a-zA-Z_]{0,12}|vmid|cores|disk|name|memory|bios",
        ) {
            let entries: Vec<(compact_str::CompactString, crate::fleet::value::Attr)> = names
                .iter()
                .map(|n| {
                    let value = Value { kind: Kind::Null, span: TextRange::default() };
                    let attr = crate::fleet::value::Attr { name_span: TextRange::default(), value };
                    (compact_str::CompactString::from(n.as_str()), attr)
                })
                .collect();
            let attrs = Attrs::from_sorted(entries);
            let mut diags = Vec::new();
            let r = Reader::new(&attrs, ("h", "."), &mut diags);
            proptest::prop_assert_eq!(r.get(&probe).is_some(), names.contains(&probe));
            for n in &names {
                proptest::prop_assert!(r.get(n).is_some());
            }
        }
    }

    #[test]
    fn hosts_stay_small() {
        // A 10,000-host fleet holds 10,000 of each, and the two-thread read
        // moves its typed hosts once more while both halves are in memory:
        // the Proxmox part, most of a host, is boxed and not moved.
        assert_eq!(std::mem::size_of::<Host>(), 288);
        assert_eq!(std::mem::size_of::<Typed>(), 312);
        // 512 is one of the allocator's sizes: a byte more takes 640.
        assert_eq!(std::mem::size_of::<ProxmoxSpec>(), 512);
    }

    #[test]
    fn lists_of_strings_are_read_without_slack() {
        let tags: Vec<Value> = (0..40)
            .map(|i| Value {
                kind: Kind::Str(format!("t{i}").into()),
                span: TextRange::default(),
            })
            .collect();
        let mut attrs = Attrs::default();
        let list = Value {
            kind: Kind::List(tags.into_boxed_slice()),
            span: TextRange::default(),
        };
        attrs.insert(
            "tags",
            Attr {
                value: list,
                name_span: TextRange::default(),
            },
        );
        let mut diags = Vec::new();
        let spec = read_proxmox_spec("web", TextRange::default(), &attrs, &mut diags);
        let tags = spec.tags.expect("the tags");
        assert_eq!(tags.len(), 40);
        assert_eq!(tags.capacity(), 40);
        assert_eq!(tags[39], "t39");
        assert!(diags.is_empty());
    }
}
