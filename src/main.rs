use std::process::ExitCode;

// pve allocates many small objects (syntax tree, thunks, values); mimalloc
// is markedly faster at that than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use pve_fleet::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = cli::run(cli);
    // An interrupted op fails as a side effect of closing its connection;
    // the interrupt handler owns the exit then (130, after cleanup).
    pve_fleet::remote::ssh::interrupt::wait_if_interrupted();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            cli::report(&err);
            ExitCode::from(err.exit_code())
        }
    }
}
