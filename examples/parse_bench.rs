//! Benchmark: the fast parser against rnix (alone and with `lower`) on one
//! hosts.nix, best of 7 runs each, with ratios.
//!
//!   scripts/gen-fleet 10000 /tmp/f10k
//!   cargo run --release --example parse_bench -- /tmp/f10k/hosts.nix

use std::time::Instant;

// The allocator the `pve` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use pve_fleet::fleet::{fast_parse, lower, syntax};

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: parse_bench HOSTS.NIX");
        std::process::exit(2);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(2);
        }
    };
    // rnix recurses deeply on some input: run where the evaluator runs it.
    let worker = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || run(&text));
    if !worker.is_ok_and(|h| h.join().is_ok()) {
        std::process::exit(1);
    }
}

fn run(text: &str) {
    let best = |f: &dyn Fn() -> bool| {
        let mut best = f64::MAX;
        for _ in 0..7 {
            let t0 = Instant::now();
            assert!(f(), "the file does not parse");
            best = best.min(t0.elapsed().as_secs_f64() * 1e3);
        }
        best
    };
    let fast = best(&|| fast_parse::parse(text).is_some());
    let rnix = best(&|| syntax::parse(text).is_ok());
    let rnix_lower = best(&|| {
        syntax::parse(text)
            .ok()
            .and_then(|r| r.expr())
            .and_then(|e| lower::lower(&e).ok())
            .is_some()
    });
    println!(
        "{} bytes (parse to the evaluator's tree, then free it)",
        text.len()
    );
    println!("fast_parse          {fast:8.1} ms");
    println!(
        "rnix parse          {rnix:8.1} ms   ({:.1}x fast_parse)",
        rnix / fast
    );
    println!(
        "rnix parse + lower  {rnix_lower:8.1} ms   ({:.1}x fast_parse)",
        rnix_lower / fast
    );
}
