//! `pve eval`.

use crate::cli::eval::Args;
use crate::error::Result;
use crate::fleet::{self, FleetError, SourceFile};

use super::Context;

pub fn run(ctx: &Context, _args: Args) -> Result<u8> {
    let file = SourceFile::read(&ctx.hosts_path()?)?;
    let root_dir = std::path::absolute(file.dir()).map_err(|source| FleetError::Io {
        path: file.path.clone(),
        source,
    })?;
    match fleet::evaluate_text(&file.text, &root_dir) {
        Ok(value) => {
            let mut json = value.to_nix_json(&root_dir);
            json.push('\n');
            super::print(&json)
        }
        Err(d) => Err(FleetError::Invalid {
            file: Box::new(file),
            diagnostic: Box::new(d),
        }
        .into()),
    }
}
