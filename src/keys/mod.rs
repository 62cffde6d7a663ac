//! SSH keys and age: parsing ssh-ed25519 public keys, and (in `age`) the
//! conversion to age recipients and identities that ssh-to-age performs;
//! `openssh` reads (and decrypts) OpenSSH private keys.
//!
//! No error message ever contains private key material.

pub mod age;
mod jacobi;
pub mod openssh;

pub use age::{
    identity_from_seed, parse_recipient, recipient_from_point, recipient_id,
    recipient_ids_from_points, recipients_from_points, ssh_to_age, RecipientId,
};
pub use openssh::{private_key_to_age, Passphrase};

use base64::Engine as _;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("expected `ssh-ed25519 AAAA...`, got an empty value")]
    Empty,
    #[error("{0} keys are not supported; only ssh-ed25519 keys convert to age")]
    WrongType(String),
    #[error("the key data is not valid base64")]
    BadBase64,
    #[error("the key data is malformed: {0}")]
    Malformed(&'static str),
    #[error("an Ed25519 public key is 32 bytes, this one is {0}")]
    WrongLength(usize),
    #[error("the key is not a valid Ed25519 point (it cannot be a real host key)")]
    InvalidPoint,
    #[error("the key is a small-order Ed25519 point (a degenerate key no SSH server generates); refusing to convert it")]
    SmallOrder,
    #[error("not an age recipient: {0}")]
    BadRecipient(String),
    /// What is wrong with an `AGE-SECRET-KEY-1...` line (never its text).
    #[error("not an age identity: {0}")]
    BadIdentity(&'static str),
    #[error("not an OpenSSH private key: {0}")]
    NotOpensshPrivate(&'static str),
    #[error("the private key is passphrase protected; give its passphrase")]
    PassphraseMissing,
    #[error("wrong passphrase for the private key (or the key file is damaged)")]
    WrongPassphrase,
    #[error("the private key is encrypted with `{0}`, which is not supported (supported: aes256-ctr, the ssh-keygen default, and aes256-cbc)")]
    UnsupportedCipher(String),
}

/// Parses `ssh-ed25519 AAAA... [comment]` (also with leading known_hosts or
/// authorized_keys fields) into the 32-byte Ed25519 point.
pub fn parse_ed25519_public(line: &str) -> Result<[u8; 32], KeyError> {
    let mut fields = fields(line).peekable();
    if fields.peek().is_none() {
        return Err(KeyError::Empty);
    }
    let Some(kind) = fields.find(|f| is_key_type(f)) else {
        return Err(KeyError::Malformed("no key type such as ssh-ed25519 found"));
    };
    if kind != "ssh-ed25519" {
        return Err(KeyError::WrongType(kind.to_string()));
    }
    let data = fields
        .next()
        .ok_or(KeyError::Malformed("the base64 key data is missing"))?;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| KeyError::BadBase64)?;
    let mut r = Wire(&blob);
    if r.string()? != b"ssh-ed25519" {
        return Err(KeyError::Malformed("the key data names another key type"));
    }
    let point = r.string()?;
    if !r.0.is_empty() {
        return Err(KeyError::Malformed("trailing bytes after the key"));
    }
    point
        .try_into()
        .map_err(|_| KeyError::WrongLength(point.len()))
}

/// `ssh-ed25519 AAAA...` re-encoded from the parsed point: the validated
/// type and key data only, whatever fields, comment or options surrounded
/// them (`zzz ssh-ed25519 AAAA...` gives `ssh-ed25519 AAAA...`).
pub fn normalise_ed25519(line: &str) -> Result<String, KeyError> {
    Ok(ed25519_line(&parse_ed25519_public(line)?))
}

/// The OpenSSH public key line of an Ed25519 point.
pub fn ed25519_line(point: &[u8; 32]) -> String {
    let mut blob = Vec::with_capacity(51);
    blob.extend_from_slice(&11u32.to_be_bytes());
    blob.extend_from_slice(b"ssh-ed25519");
    blob.extend_from_slice(&32u32.to_be_bytes());
    blob.extend_from_slice(point);
    format!(
        "ssh-ed25519 {}",
        base64::engine::general_purpose::STANDARD.encode(blob)
    )
}

/// The line's fields, as `split_whitespace` gives them, one at a time (a
/// key's comment is never cut). An ASCII line (any real key line) is cut
/// on its bytes: decoding it a char at a time was half of parsing a key,
/// and a read of 10,000 hosts parses 10,000.
fn fields(line: &str) -> Fields<'_> {
    if line.is_ascii() {
        Fields::Ascii(line)
    } else {
        Fields::Other(line.split_whitespace())
    }
}

enum Fields<'a> {
    /// What is left of an ASCII line.
    Ascii(&'a str),
    Other(std::str::SplitWhitespace<'a>),
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        // `char::is_whitespace` within ASCII (with \x0b, which
        // `u8::is_ascii_whitespace` leaves out).
        let space = |b: &u8| matches!(b, b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r' | b' ');
        match self {
            Fields::Other(words) => words.next(),
            Fields::Ascii(rest) => {
                let bytes = rest.as_bytes();
                let start = bytes.iter().position(|b| !space(b))?;
                let end = bytes[start..]
                    .iter()
                    .position(space)
                    .map_or(bytes.len(), |n| start + n);
                // Both ends are at ASCII bytes: char boundaries.
                let field = rest.get(start..end)?;
                *rest = rest.get(end..)?;
                Some(field)
            }
        }
    }
}

fn is_key_type(f: &str) -> bool {
    f.starts_with("ssh-") || f.starts_with("ecdsa-sha2-") || f.starts_with("sk-")
}

/// Reader for the SSH wire format (RFC 4251 strings).
pub(crate) struct Wire<'a>(pub &'a [u8]);

impl<'a> Wire<'a> {
    pub fn string(&mut self) -> Result<&'a [u8], KeyError> {
        let len = self.u32()? as usize;
        if self.0.len() < len {
            return Err(KeyError::Malformed("truncated key data"));
        }
        let (s, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(s)
    }
    pub fn u32(&mut self) -> Result<u32, KeyError> {
        if self.0.len() < 4 {
            return Err(KeyError::Malformed("truncated key data"));
        }
        let (n, rest) = self.0.split_at(4);
        self.0 = rest;
        Ok(u32::from_be_bytes([n[0], n[1], n[2], n[3]]))
    }
}

#[cfg(test)]
mod tests {
    proptest::proptest! {
        /// The byte-wise cut of an ASCII line is `split_whitespace`'s,
        /// for every ASCII whitespace byte (and others' lines go to it).
        #[test]
        fn fields_are_split_whitespaces(line in "[ \t\n\x0b\x0c\r\x1fa-zA-Z0-9+/=\u{a0}\u{2003}é-]{0,40}") {
            let want: Vec<&str> = line.split_whitespace().collect();
            let got: Vec<&str> = super::fields(&line).collect();
            proptest::prop_assert_eq!(got, want);
        }
    }
}
