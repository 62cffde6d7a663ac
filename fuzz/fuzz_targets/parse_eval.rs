//! Fuzz target: any bytes as hosts.nix. Parsing, the scope check and the
//! evaluator must return a value or a diagnostic, never panic, hang or
//! overflow the stack; the typed fleet and `pve check`'s rules must cope
//! with whatever evaluates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pve_fleet::fleet::{load_source, SourceFile};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let file = SourceFile::new("/nonexistent/hosts.nix", text.to_string());
    if let Ok(loaded) = load_source(file) {
        let _ = pve_fleet::check::check(&loaded);
        let _ = loaded.value.to_nix_json(&loaded.root_dir);
    }
});
