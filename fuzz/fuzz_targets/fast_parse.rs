//! Fuzz target: the fast parser against the rnix path. For any text it
//! either declines (`None`) or gives exactly the tree that rnix + lower
//! give; it must never accept what the rnix path refuses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pve_fleet::fleet::{fast_parse, lower, syntax};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Some(fast) = fast_parse::parse(text) else { return };
    // The rnix path recurses deeply; run it where the evaluator runs it.
    let text = text.to_string();
    let reference = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || {
            let root = syntax::parse(&text).ok()?;
            lower::lower(&root.expr()?).ok()
        })
        .expect("thread")
        .join()
        .expect("rnix path");
    assert_eq!(Some(fast), reference, "fast parser disagrees with rnix + lower");
});
