//! Fuzz target: the fast parser against the rnix path. For any text it
//! either declines (`None`) or gives exactly the tree that rnix + lower
//! give; it must never accept what the rnix path refuses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pve_fleet::fleet::{fast_parse, lower, syntax};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // The rnix path recurses deeply; run both where the evaluator runs them.
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn_scoped(s, || {
                let Some(fast) = fast_parse::parse(text) else { return };
                let reference = syntax::parse(text)
                    .ok()
                    .and_then(|root| root.expr())
                    .and_then(|e| lower::lower(&e).ok());
                assert_eq!(Some(fast), reference, "fast parser disagrees with rnix + lower");
            })
            .expect("thread")
            .join()
            .expect("no disagreement");
    });
});
