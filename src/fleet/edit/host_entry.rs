//! A new host's entry, rendered from `templates/host_entry.nix`. Every value
//! reaches the template as finished Nix text (strings quoted and escaped
//! here), so the template cannot produce invalid Nix from odd input.

use askama::Template;

use super::names::{attr_name, string_literal};

/// What `pve host add` writes. Paths default to `./hosts/<name>/...`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostEntry {
    pub name: String,
    /// Defaults to the name.
    pub hostname: Option<String>,
    pub ssh_alias: Option<String>,
    /// A Nix expression for `authorizedKeys` (e.g. `adminKeys`), verbatim.
    pub authorized_keys: Option<String>,
    pub vmid: Option<u32>,
    pub cores: Option<u32>,
    pub memory: Option<u32>,
    pub disk: Option<String>,
    pub storage: Option<String>,
    pub node: Option<String>,
    pub tags: Vec<String>,
    pub description: Option<String>,
    /// More attributes, each as (attribute path, Nix text) written as
    /// given (`pve new` from `_defaults` and its flags: `user`,
    /// `authorizedKeys` ...).
    pub extra: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "host_entry.nix", escape = "none")]
struct HostEntryTemplate {
    configuration_file: String,
    home_file: String,
    hostname: String,
    ssh_alias: Option<String>,
    authorized_keys: Option<String>,
    extra: Vec<(String, String)>,
    proxmox: Vec<(String, String)>,
}

impl HostEntry {
    pub fn new(name: &str) -> Self {
        HostEntry {
            name: name.to_string(),
            ..Default::default()
        }
    }

    /// The entry's set as Nix text (two-space indentation; `add_host`
    /// re-indents it to match the file).
    pub fn render(&self) -> Result<String, askama::Error> {
        let dir = if super::names::is_plain_identifier(&self.name)
            || self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            format!("./hosts/{}", self.name)
        } else {
            // a path literal cannot hold odd characters; build it from a string
            format!("./hosts + {}", string_literal(&format!("/{}", self.name)))
        };
        let mut proxmox = Vec::new();
        let mut add = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                proxmox.push((attr_name(k), v));
            }
        };
        add("vmid", self.vmid.map(|v| v.to_string()));
        add("cores", self.cores.map(|v| v.to_string()));
        add("memory", self.memory.map(|v| v.to_string()));
        add("disk", self.disk.as_deref().map(string_literal));
        add("storage", self.storage.as_deref().map(string_literal));
        add("node", self.node.as_deref().map(string_literal));
        if !self.tags.is_empty() {
            let items: Vec<String> = self.tags.iter().map(|t| string_literal(t)).collect();
            add("tags", Some(format!("[ {} ]", items.join(" "))));
        }
        add(
            "description",
            self.description.as_deref().map(string_literal),
        );
        let (configuration_file, home_file) = if dir.starts_with("./hosts/") {
            (
                format!("{dir}/configuration.nix"),
                format!("{dir}/home.nix"),
            )
        } else {
            (
                format!("({dir} + \"/configuration.nix\")"),
                format!("({dir} + \"/home.nix\")"),
            )
        };
        HostEntryTemplate {
            configuration_file,
            home_file,
            hostname: string_literal(self.hostname.as_deref().unwrap_or(&self.name)),
            ssh_alias: self.ssh_alias.as_deref().map(string_literal),
            authorized_keys: self.authorized_keys.clone(),
            extra: self.extra.clone(),
            proxmox,
        }
        .render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_fields_given_and_nothing_else() {
        let mut e = HostEntry::new("web1");
        e.vmid = Some(120);
        e.cores = Some(2);
        e.disk = Some("32G".into());
        e.tags = vec!["a\"b".into()];
        assert_eq!(
            e.render().expect("render"),
            "{\n  configurationFile = ./hosts/web1/configuration.nix;\n  homeFile = ./hosts/web1/home.nix;\n  hostname = \"web1\";\n  proxmox = {\n    vmid = 120;\n    cores = 2;\n    disk = \"32G\";\n    tags = [ \"a\\\"b\" ];\n  };\n}"
        );
        let bare = HostEntry::new("x").render().expect("render");
        assert!(!bare.contains("proxmox"), "{bare}");
    }
}
