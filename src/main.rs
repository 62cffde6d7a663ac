use std::process::ExitCode;

use clap::Parser;
use pve_fleet::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            cli::report(&err);
            ExitCode::from(err.exit_code())
        }
    }
}
