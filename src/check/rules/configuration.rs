//! Rules about a VM's configuration.nix, read syntactically (never
//! evaluated): a clone of the GRUB/SeaBIOS template must not switch to
//! systemd-boot or import disko, and it has no hardware-configuration.nix
//! until `pve integrate` has run.

use rnix::ast::{self, HasEntry};
use rowan::ast::AstNode;

use super::files::{missing_file, reads_configuration};
use crate::check::root_dir::RootDir;
use crate::diag::{Code, Diagnostic};
use crate::fleet::lower::attr_name;
use crate::fleet::{Host, Loaded};

pub fn configuration_files(l: &Loaded) -> Vec<Diagnostic> {
    let root = RootDir::open(&l.root_dir);
    crate::check::per_host_in_parallel(l, reads_configuration, |h, out| {
        check_configuration(l, &root, h, out)
    })
}

fn check_configuration(l: &Loaded, root: &RootDir, h: &Host, out: &mut Vec<Diagnostic>) {
    let Some(cfg) = &h.configuration_file else {
        return;
    };
    let read = root
        .read_limited(&cfg.value, crate::fleet::source::MAX_FILE_BYTES)
        .and_then(|b| String::from_utf8(b).map_err(std::io::Error::other));
    let text = match read {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound || root.is_dir(&cfg.value) => {
            out.push(missing_file(l, h, "configurationFile", cfg));
            return;
        }
        // Unreadable or not UTF-8: nothing to scan (it exists).
        Err(_) => return,
    };
    // Parsing thousands of files is the slow part of `pve check`; skip it
    // when no finding is possible: nothing mentions systemd-boot or disko,
    // and the hardware configuration is not imported or exists (each
    // finding needs its word in the text).
    let may_find = text.contains("systemd-boot") || text.contains("disko");
    if !may_find && !text.contains("hardware-configuration.nix") {
        return;
    }
    let hw_exists = root.exists(&cfg.value.with_file_name("hardware-configuration.nix"));
    if hw_exists && !may_find {
        return;
    }
    let findings = scan(&text);
    let shown = crate::fleet::value::display_path(&cfg.value, &l.root_dir);
    if findings.systemd_boot {
        out.push(
            Diagnostic::error(Code::SystemdBoot, cfg.span, format!("{shown} enables systemd-boot, but `{}` is cloned from the GRUB/SeaBIOS template", h.name))
                .help("use `boot.loader.grub = { enable = true; devices = [ \"nodev\" ]; };` as hosts/vm_base does"),
        );
    }
    if findings.disko {
        out.push(
            Diagnostic::error(Code::Disko, cfg.span, format!("{shown} imports disko, but `{}` is cloned from the template, which has its own disk layout", h.name))
                .help("remove the disko import; `pve integrate` generates hardware-configuration.nix from the running VM"),
        );
    }
    if findings.imports_hardware && !hw_exists {
        out.push(
            Diagnostic::warning(
                Code::NeedsIntegrate,
                cfg.span,
                format!("`{}` has no hardware-configuration.nix yet", h.name),
            )
            .help(format!(
                "run `pve integrate {}` once the VM is up; it generates the file from the VM",
                h.name
            )),
        );
    }
}

#[derive(Debug, Default, PartialEq)]
pub struct Findings {
    pub systemd_boot: bool,
    pub disko: bool,
    pub imports_hardware: bool,
}

/// Walks every `a.b.c = value;` with its full path from the enclosing sets.
pub fn scan(text: &str) -> Findings {
    let mut f = Findings::default();
    // rnix reads long runs and chains in quadratic time: a file the
    // pre-scan refuses is not scanned (it is no configuration anyway).
    if crate::fleet::prescan::check(text).is_err() {
        return f;
    }
    let parse = rnix::Root::parse(text);
    for node in parse.syntax().descendants() {
        let Some(apv) = ast::AttrpathValue::cast(node) else {
            continue;
        };
        let path = full_path(&apv);
        let value = apv
            .value()
            .map(|v| v.syntax().text().to_string())
            .unwrap_or_default();
        if path.ends_with("systemd-boot.enable") && value.trim() == "true" {
            f.systemd_boot = true;
        }
        if path == "imports" || path.ends_with(".imports") {
            f.disko |= value.contains("disko");
            f.imports_hardware |= value.contains("hardware-configuration.nix");
        }
        // `boot.loader.systemd-boot = { enable = true; };`
        if path.ends_with("systemd-boot") && value.contains("enable") && value.contains("true") {
            if let Some(ast::Expr::AttrSet(set)) = apv.value() {
                f.systemd_boot |= set.attrpath_values().any(|e| {
                    e.attrpath().map(|p| p.syntax().text().to_string()) == Some("enable".into())
                        && e.value().map(|v| v.syntax().text().to_string()) == Some("true".into())
                });
            }
        }
    }
    f
}

fn full_path(apv: &ast::AttrpathValue) -> String {
    let mut parts = Vec::new();
    let own = |a: &ast::AttrpathValue| -> String {
        a.attrpath()
            .map(|p| {
                p.attrs()
                    .map(|x| attr_name(&x).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(".")
            })
            .unwrap_or_default()
    };
    parts.push(own(apv));
    let mut node = apv.syntax().parent();
    while let Some(n) = node {
        if let Some(outer) = ast::AttrpathValue::cast(n.clone()) {
            parts.push(own(&outer));
        }
        node = n.parent();
    }
    parts.reverse();
    parts.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_systemd_boot_in_any_spelling() {
        assert!(scan("{ boot.loader.systemd-boot.enable = true; }").systemd_boot);
        assert!(scan("{ boot = { loader = { systemd-boot.enable = true; }; }; }").systemd_boot);
        assert!(scan("{ boot.loader.systemd-boot = { enable = true; }; }").systemd_boot);
        assert!(!scan("{ boot.loader.systemd-boot.enable = false; }").systemd_boot);
    }

    #[test]
    fn finds_disko_and_hardware_imports() {
        let f =
            scan("{ imports = [ ./hardware-configuration.nix inputs.disko.nixosModules.disko ]; }");
        assert!(f.disko && f.imports_hardware);
        let f = scan("{pkgs, ...}: { imports = [ ./hardware-configuration.nix ]; }");
        assert!(!f.disko && f.imports_hardware);
    }
}
