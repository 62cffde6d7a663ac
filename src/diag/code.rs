//! The closed set of diagnostic codes, and the `pve check` rules that own
//! them. A code's string is stable: scripts match on it (`--format json`)
//! and the docs name it, so a variant may be added but its string never
//! changes.

use std::fmt;

use serde::{Serialize, Serializer};

use super::Severity;

/// A `pve check` rule, as the registry (`check::RULES`) and the render
/// gates name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleId {
    HostName,
    Required,
    ProxmoxConfig,
    DuplicateVmid,
    VmidRange,
    Duplicates,
    UniqueNames,
    UniqueKeys,
    Resources,
    Disk,
    Template,
    Node,
    TemplateNode,
    Files,
    PublicKey,
    Configuration,
    Secrets,
    ProxmoxValue,
    /// Renders every output in memory and reports what rendering refuses.
    Render,
    Typos,
}

impl RuleId {
    /// The rule's name, as the docs know it.
    pub fn name(self) -> &'static str {
        match self {
            RuleId::HostName => "host-name",
            RuleId::Required => "required",
            RuleId::ProxmoxConfig => "proxmox-config",
            RuleId::DuplicateVmid => "duplicate-vmid",
            RuleId::VmidRange => "vmid-range",
            RuleId::Duplicates => "duplicates",
            RuleId::UniqueNames => "unique-names",
            RuleId::UniqueKeys => "unique-keys",
            RuleId::Resources => "resources",
            RuleId::Disk => "disk",
            RuleId::Template => "template",
            RuleId::Node => "node",
            RuleId::TemplateNode => "template-node",
            RuleId::Files => "files",
            RuleId::PublicKey => "public-key",
            RuleId::Configuration => "configuration",
            RuleId::Secrets => "secrets",
            RuleId::ProxmoxValue => "proxmox-value",
            RuleId::Render => "render",
            RuleId::Typos => "typos",
        }
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One table, one line per code: variant, code string, default severity,
/// owning rule (`None`: the loader's own finding, reported whenever
/// hosts.nix is read, by no rule).
macro_rules! codes {
    ($($variant:ident = $string:literal, $severity:ident, $rule:expr;)*) => {
        /// A diagnostic's stable code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            /// Every code, in table order.
            pub const ALL: &[Code] = &[$(Code::$variant,)*];

            /// The code as scripts and docs know it, e.g. `duplicate-vmid`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $string,)*
                }
            }

            /// How serious a finding with this code is, unless its rule
            /// says otherwise.
            pub fn severity(self) -> Severity {
                match self {
                    $(Code::$variant => Severity::$severity,)*
                }
            }

            /// The rule that reports this code (others may report it too).
            pub fn rule(self) -> Option<RuleId> {
                match self {
                    $(Code::$variant => $rule,)*
                }
            }
        }
    };
}

use RuleId as R;

codes! {
    // The loader: hosts.nix could not be read, parsed, evaluated or typed.
    Syntax = "syntax", Error, None;
    TooDeep = "too-deep", Error, None;
    TooLong = "too-long", Error, None;
    Eval = "eval", Error, None;
    Internal = "internal", Error, None;
    NotASet = "not-a-set", Error, None;
    UnknownKey = "unknown-key", Error, None;
    WrongType = "wrong-type", Error, None;
    // The host-spec rules.
    BadHostName = "bad-host-name", Error, Some(R::HostName);
    MissingKey = "missing-key", Error, Some(R::Required);
    DuplicateVmid = "duplicate-vmid", Error, Some(R::DuplicateVmid);
    VmidRange = "vmid-range", Error, Some(R::VmidRange);
    VmidIsTemplate = "vmid-is-template", Error, Some(R::VmidRange);
    DuplicateHostname = "duplicate-hostname", Error, Some(R::Duplicates);
    DuplicateSshAlias = "duplicate-ssh-alias", Error, Some(R::Duplicates);
    NameCollision = "name-collision", Error, Some(R::UniqueNames);
    DuplicatePublicKey = "duplicate-public-key", Error, Some(R::UniqueKeys);
    CoresRange = "cores-range", Error, Some(R::Resources);
    MemoryRange = "memory-range", Error, Some(R::Resources);
    VlanRange = "vlan-range", Error, Some(R::Resources);
    BadDisk = "bad-disk", Error, Some(R::Disk);
    TemplateMismatch = "template-mismatch", Error, Some(R::Template);
    UnknownNode = "unknown-node", Error, Some(R::Node);
    NoTemplate = "no-template", Error, Some(R::TemplateNode);
    MissingFile = "missing-file", Error, Some(R::Files);
    BadPublicKey = "bad-public-key", Error, Some(R::PublicKey);
    PlaceholderKey = "placeholder-key", Warning, Some(R::PublicKey);
    SystemdBoot = "systemd-boot", Error, Some(R::Configuration);
    Disko = "disko", Error, Some(R::Configuration);
    NeedsIntegrate = "needs-integrate", Error, Some(R::Configuration);
    SecretMissingRecipient = "secret-missing-recipient", Error, Some(R::Secrets);
    SecretStaleRecipient = "secret-stale-recipient", Warning, Some(R::Secrets);
    SecretUnreadable = "secret-unreadable", Error, Some(R::Secrets);
    SecretConfigUnmanaged = "secret-config-unmanaged", Warning, Some(R::Secrets);
    ProxmoxValue = "proxmox-value", Error, Some(R::ProxmoxValue);
    // What rendering refuses (reported by the `render` rule).
    Render = "render", Error, Some(R::Render);
    RenderDestination = "render-destination", Error, Some(R::Render);
    BadBackend = "bad-backend", Error, Some(R::Render);
    BadIgnoreChanges = "bad-ignore-changes", Error, Some(R::Render);
    BadVmName = "bad-vm-name", Error, Some(R::Render);
    BadAdminKey = "bad-admin-key", Error, Some(R::Render);
    BadSopsRule = "bad-sops-rule", Error, Some(R::Render);
    DuplicateRecipient = "duplicate-recipient", Error, Some(R::Render);
    NoAdmins = "no-admins", Error, Some(R::Render);
    SopsPath = "sops-path", Error, Some(R::Render);
    SopsPathEscapes = "sops-path-escapes", Error, Some(R::Render);
    SopsPathName = "sops-path-name", Error, Some(R::Render);
    MisspelledKey = "misspelled-key", Warning, Some(R::Typos);
    // `checks.allow` / `_checks.allow` names no rule or code (or one that
    // cannot be allowed).
    UnknownAllow = "unknown-allow", Warning, None;
}

/// Codes sort by their string, as they always have (the order of findings
/// at the same position).
impl Ord for Code {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for Code {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_strings_are_unique_and_kebab_case() {
        let mut seen = std::collections::BTreeSet::new();
        for c in Code::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                s.split('-')
                    .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase())),
                "{s}"
            );
        }
    }
}
