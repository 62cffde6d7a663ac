//! Reading a host's keys with ssh-keyscan, before anything trusts them:
//! the caller shows the fingerprints and a person decides.

use std::time::Duration;

use super::{fingerprint, valid_host, Endpoint, ScannedKey, SshError};
use crate::runner::{Cmd, Tool};

/// Reads the host's keys with ssh-keyscan (no authentication happens;
/// the caller must show the fingerprints and let a person decide).
pub fn scan(endpoint: &Endpoint, timeout: Duration) -> Result<Vec<ScannedKey>, SshError> {
    if !valid_host(&endpoint.host) {
        return Err(SshError::InvalidHost {
            host: endpoint.host.clone(),
        });
    }
    let mut cmd = Cmd::new(Tool::SshKeyscan)
        .arg("-T")
        .arg(timeout.as_secs().max(1).to_string());
    if let Some(p) = endpoint.port {
        cmd = cmd.arg("-p").arg(p.to_string());
    }
    let out = cmd
        .args(["-t", "ed25519,ecdsa,rsa"])
        .arg(endpoint.host.clone())
        .timeout(timeout + Duration::from_secs(5))
        .run_unchecked()?;
    let want = endpoint.known_hosts_name();
    let mut keys = Vec::new();
    for line in out.stdout.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if line.starts_with('#') || fields.len() < 3 || fields[0] != want {
            continue;
        }
        let Some(fp) = fingerprint(fields[2]) else {
            continue;
        };
        keys.push(ScannedKey {
            line: format!("{} {} {}", fields[0], fields[1], fields[2]),
            key_type: fields[1].to_string(),
            fingerprint: fp,
        });
    }
    keys.sort_by(|a, b| a.line.cmp(&b.line));
    if keys.is_empty() {
        let target = endpoint.shown();
        let s = out.stderr.to_ascii_lowercase();
        return Err(if s.contains("refused") {
            SshError::Refused {
                target,
                stderr: out.stderr,
            }
        } else if s.contains("timeout") || s.contains("timed out") {
            SshError::ConnectTimeout {
                target,
                stderr: out.stderr,
            }
        } else {
            SshError::Other {
                target,
                stderr: format!("ssh-keyscan returned no host key\n{}", out.stderr),
            }
        });
    }
    Ok(keys)
}
