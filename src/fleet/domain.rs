//! The fleet's domain values: a VMID, a host name, a disk size, a memory
//! size. Each type holds a value that passed its validation, so whoever
//! has one does not check it again. Every check, render, workflow and CLI
//! rule about these values lives here, once.
//!
//! `FromStr` (and `TryFrom`) are the one way in; their error,
//! [`DomainError`], carries the wording the CLI shows, so the types can be
//! clap `value_parser`s as they are.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The lowest VMID Proxmox accepts (lower ones are reserved).
pub const MIN_VMID: u32 = 100;
/// The highest VMID Proxmox accepts.
pub const MAX_VMID: u32 = 999_999_999;

pub const MAX_CORES: i64 = 512;
/// MiB. Proxmox refuses less than 16 MiB; NixOS needs far more.
pub const MIN_MEMORY: i64 = 256;
pub const MAX_MEMORY: i64 = 16 * 1024 * 1024;

/// Disk values that mean "no disk block": the disk is passed through or
/// managed outside OpenTofu.
pub const NON_SIZE_DISKS: &[&str] = &["passthrough", "none"];

/// Why a string or number is not a valid domain value. The messages are
/// the ones the CLI has always printed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("`{0}` is not a VMID")]
    Vmid(String),
    #[error("{0:?} is not a valid host name: use lowercase letters, digits and `-` (at most 63, not starting or ending with `-`), e.g. `web-1`")]
    HostName(String),
    #[error("disk {0:?} is not a size like \"32G\" / \"1T\"")]
    DiskSize(String),
    #[error("memory is in MiB: {mib} GiB is {} (at least {MIN_MEMORY})", u64::from(*mib) * 1024)]
    MemoryInGib { mib: u32 },
    #[error("memory is MiB between {MIN_MEMORY} and {MAX_MEMORY}")]
    Memory { mib: u64 },
}

impl DomainError {
    /// What the user can do about it.
    pub fn help(&self) -> Option<String> {
        match self {
            DomainError::Vmid(_) => {
                Some("a VMID is a whole number from 100 to 999999999, e.g. 111".to_string())
            }
            _ => None,
        }
    }
}

/// A Proxmox VMID: a whole number from 100 to 999999999.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Vmid(u32);

impl Vmid {
    pub fn get(self) -> u32 {
        self.0
    }
    /// Whether Proxmox accepts `n` as a VMID.
    pub fn in_range(n: i64) -> bool {
        (i64::from(MIN_VMID)..=i64::from(MAX_VMID)).contains(&n)
    }
}

impl FromStr for Vmid {
    type Err = DomainError;
    /// Digits only (no sign, no `0x`), surrounding blanks ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        match t.parse::<u32>() {
            Ok(v) if t.chars().all(|c| c.is_ascii_digit()) => {
                Vmid::try_from(v).map_err(|_| DomainError::Vmid(s.to_string()))
            }
            _ => Err(DomainError::Vmid(s.to_string())),
        }
    }
}

impl TryFrom<u32> for Vmid {
    type Error = DomainError;
    fn try_from(v: u32) -> Result<Self, Self::Error> {
        if (MIN_VMID..=MAX_VMID).contains(&v) {
            Ok(Vmid(v))
        } else {
            Err(DomainError::Vmid(v.to_string()))
        }
    }
}

impl TryFrom<i64> for Vmid {
    type Error = DomainError;
    fn try_from(v: i64) -> Result<Self, Self::Error> {
        u32::try_from(v)
            .map_err(|_| DomainError::Vmid(v.to_string()))
            .and_then(Vmid::try_from)
    }
}

impl From<Vmid> for u32 {
    fn from(v: Vmid) -> u32 {
        v.0
    }
}

impl fmt::Display for Vmid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A host name: a DNS label, which is what a name must be to serve as
/// hostname, OpenTofu resource name, sops path component and shell-safe
/// argument at once.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HostName(String);

impl HostName {
    /// Whether `s` is a DNS label: lowercase letters, digits and `-`, at
    /// most 63, not starting or ending with `-`.
    pub fn is_valid(s: &str) -> bool {
        let b = s.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for HostName {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HostName::try_from(s.to_string())
    }
}

impl TryFrom<String> for HostName {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if HostName::is_valid(&s) {
            Ok(HostName(s))
        } else {
            Err(DomainError::HostName(s))
        }
    }
}

impl From<HostName> for String {
    fn from(h: HostName) -> String {
        h.0
    }
}

impl AsRef<str> for HostName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A disk size in whole GiB, written `64G` or `1T` (no other unit, no
/// zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DiskSize {
    gib: u64,
}

impl DiskSize {
    pub fn gib(self) -> u64 {
        self.gib
    }
    /// Whether `s` is a disk value that is not a size (see
    /// [`NON_SIZE_DISKS`]).
    pub fn is_non_size(s: &str) -> bool {
        NON_SIZE_DISKS.contains(&s)
    }
}

impl FromStr for DiskSize {
    type Err = DomainError;
    /// "64G" → 64 GiB, "1T" → 1024 GiB; anything else is not a size.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || DomainError::DiskSize(s.to_string());
        let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let gib = match unit {
            "G" => n,
            "T" => n.checked_mul(1024).ok_or_else(bad)?,
            _ => return Err(bad()),
        };
        if gib == 0 {
            return Err(bad());
        }
        Ok(DiskSize { gib })
    }
}

impl TryFrom<String> for DiskSize {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DiskSize> for String {
    fn from(d: DiskSize) -> String {
        d.to_string()
    }
}

impl fmt::Display for DiskSize {
    /// Whole TiB as `T`, anything else as `G`: parses back to the same size.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.gib.is_multiple_of(1024) {
            write!(f, "{}T", self.gib / 1024)
        } else {
            write!(f, "{}G", self.gib)
        }
    }
}

/// A VM's memory in MiB, within what Proxmox and NixOS need
/// ([`MIN_MEMORY`] to [`MAX_MEMORY`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct MiB(u32);

impl MiB {
    pub fn get(self) -> u32 {
        self.0
    }
    /// Whether `mib` is a memory size a VM may ask for.
    pub fn in_range(mib: i64) -> bool {
        (MIN_MEMORY..=MAX_MEMORY).contains(&mib)
    }
    /// A value this small was most likely meant in GiB.
    pub fn looks_like_gib(mib: i64) -> bool {
        mib > 0 && mib <= 64
    }
}

impl TryFrom<u32> for MiB {
    type Error = DomainError;
    fn try_from(mib: u32) -> Result<Self, Self::Error> {
        if MiB::in_range(i64::from(mib)) {
            Ok(MiB(mib))
        } else if MiB::looks_like_gib(i64::from(mib)) {
            Err(DomainError::MemoryInGib { mib })
        } else {
            Err(DomainError::Memory {
                mib: u64::from(mib),
            })
        }
    }
}

impl FromStr for MiB {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let mib: u64 = t
            .parse()
            .ok()
            .filter(|_| t.chars().all(|c| c.is_ascii_digit()))
            .ok_or(DomainError::Memory { mib: 0 })?;
        let mib = u32::try_from(mib).map_err(|_| DomainError::Memory { mib })?;
        MiB::try_from(mib)
    }
}

impl From<MiB> for u32 {
    fn from(m: MiB) -> u32 {
        m.0
    }
}

impl fmt::Display for MiB {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_dns_labels() {
        for ok in ["a", "web-1", "sandbox", "x0"] {
            assert!(HostName::is_valid(ok), "{ok}");
            assert_eq!(ok.parse::<HostName>().map(|h| h.to_string()), Ok(ok.into()));
        }
        for bad in [
            "",
            "-a",
            "a-",
            "Web",
            "a_b",
            "a.b",
            "x;touch",
            &"a".repeat(64),
        ] {
            assert!(!HostName::is_valid(bad), "{bad}");
            assert!(bad.parse::<HostName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn disk_sizes() {
        let gib = |s: &str| s.parse::<DiskSize>().ok().map(DiskSize::gib);
        assert_eq!(gib("64G"), Some(64));
        assert_eq!(gib("2T"), Some(2048));
        for bad in ["64GB", "64", "G", "0G", "-1G", "64g", "passthrough"] {
            assert_eq!(gib(bad), None, "{bad}");
        }
        for s in ["64G", "2T", "1536G"] {
            assert_eq!(s.parse::<DiskSize>().map(|d| d.to_string()), Ok(s.into()));
        }
    }

    #[test]
    fn vmids() {
        assert_eq!("111".parse::<Vmid>().map(Vmid::get), Ok(111));
        assert_eq!(
            " 999999999 ".parse::<Vmid>().map(Vmid::get),
            Ok(999_999_999)
        );
        for bad in ["99", "1000000000", "+111", "0x70", "", "abc", "-5"] {
            let e = bad.parse::<Vmid>().expect_err(bad);
            assert_eq!(e.to_string(), format!("`{bad}` is not a VMID"));
        }
    }

    #[test]
    fn memory() {
        assert_eq!(MiB::try_from(2048).map(MiB::get), Ok(2048));
        assert_eq!(
            MiB::try_from(8).expect_err("8").to_string(),
            "memory is in MiB: 8 GiB is 8192 (at least 256)"
        );
        assert_eq!(
            MiB::try_from(100).expect_err("100").to_string(),
            format!("memory is MiB between 256 and {MAX_MEMORY}")
        );
    }
}
