//! `pve key to-age`: ssh-ed25519 keys converted to age.

use crate::cli::key::{Args, KeyCommand, ToAgeArgs};
use crate::error::{AppError, Result};

use super::KeyCommandError;
use crate::keys::{self, KeyError, Passphrase};
use crate::report::Reporter as _;

use super::Context;

pub fn run(_ctx: &Context, args: Args) -> Result<u8> {
    match args.command {
        KeyCommand::ToAge(a) => to_age(a),
    }
}

fn key_error(what: &str, source: KeyError) -> AppError {
    KeyCommandError::Key {
        what: what.to_string(),
        source,
    }
    .into()
}

fn to_age(a: ToAgeArgs) -> Result<u8> {
    if let Some(file) = &a.private {
        return private(file, a.passphrase_file.as_deref());
    }
    if let Some(line) = &a.key {
        let r = keys::ssh_to_age(line).map_err(|e| key_error("cannot convert the key", e))?;
        return super::print(&format!("{r}\n"));
    }
    let input = read_text("stdin", crate::ui::read_stdin(MAX_KEYS_BYTES))?;
    let mut out = String::new();
    for (i, line) in input.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        match keys::ssh_to_age(t) {
            Ok(r) => {
                out.push_str(&r);
                out.push('\n');
            }
            Err(KeyError::WrongType(kind)) => crate::ui::Terminal::new().note(&format!(
                "skipped line {}: {kind} key (only ssh-ed25519 converts)",
                i + 1
            )),
            Err(e) => return Err(key_error(&format!("stdin line {}", i + 1), e)),
        }
    }
    if out.is_empty() {
        return Err(KeyCommandError::NoKeyOnStdin.into());
    }
    super::print(&out)
}

fn private(file: &std::path::Path, passphrase_file: Option<&std::path::Path>) -> Result<u8> {
    let shown = file.display().to_string();
    let pem = zeroize::Zeroizing::new(if file.as_os_str() == "-" {
        read_text(
            "the private key on stdin",
            crate::ui::read_stdin(MAX_KEY_FILE_BYTES),
        )?
    } else {
        read_text(
            &shown,
            crate::fsutil::read_limited(file, MAX_KEY_FILE_BYTES),
        )?
    });
    let encrypted = keys::openssh::is_encrypted(&pem).map_err(|e| key_error(&shown, e))?;
    let pass: Option<Passphrase> = if !encrypted {
        None
    } else if let Some(pf) = passphrase_file {
        let raw =
            zeroize::Zeroizing::new(crate::fsutil::read_limited(pf, MAX_KEY_FILE_BYTES).map_err(
                |source| KeyCommandError::ReadPassphraseFile {
                    file: pf.to_path_buf(),
                    source,
                },
            )?);
        let line = raw.split(|b| *b == b'\n').next().unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        Some(zeroize::Zeroizing::new(line.to_vec()))
    } else if crate::ui::stdin_is_terminal() && file.as_os_str() != "-" {
        let p = crate::ui::read_passphrase(&format!("Passphrase for {shown}: "))
            .map_err(|source| KeyCommandError::ReadPassphrase { source })?;
        Some(zeroize::Zeroizing::new(p.into_bytes()))
    } else {
        return Err(key_error(&shown, KeyError::PassphraseMissing));
    };
    let identity = keys::private_key_to_age(&pem, pass.as_ref().map(|p| p.as_slice()))
        .map_err(|e| key_error(&shown, e))?;
    let mut line = zeroize::Zeroizing::new(String::with_capacity(80));
    line.push_str(&identity);
    line.push('\n');
    super::print(&line)
}

/// Public keys piped in: thousands of lines at most.
const MAX_KEYS_BYTES: u64 = 16 * 1024 * 1024;
/// A private key or passphrase file: an OpenSSH key is a few KiB.
const MAX_KEY_FILE_BYTES: u64 = 1024 * 1024;

/// Text read with a bound, or an error naming what was read and why.
fn read_text(what: &str, read: std::io::Result<Vec<u8>>) -> Result<String> {
    let bytes = read.map_err(|source| KeyCommandError::Read {
        what: what.to_string(),
        source,
    })?;
    Ok(
        String::from_utf8(bytes).map_err(|_| KeyCommandError::NotUtf8 {
            what: what.to_string(),
        })?,
    )
}
