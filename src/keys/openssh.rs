//! OpenSSH private keys (`-----BEGIN OPENSSH PRIVATE KEY-----`, the
//! openssh-key-v1 format of OpenSSH's PROTOCOL.key), unencrypted or
//! encrypted with bcrypt + aes256-ctr (what `ssh-keygen` writes) or
//! aes256-cbc (the two ciphers ssh-to-age reads), turned into
//! the age identity ssh-to-age prints.
//!
//! Errors never quote the key or the passphrase.

use aes::cipher::{BlockDecryptMut, KeyIvInit, StreamCipher};
use base64::Engine as _;
use zeroize::{Zeroize, Zeroizing};

use super::{KeyError, Wire};

const BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
const END: &str = "-----END OPENSSH PRIVATE KEY-----";
const MAGIC: &[u8] = b"openssh-key-v1\0";

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;
type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

/// A passphrase, wiped from memory when dropped.
pub type Passphrase = Zeroizing<Vec<u8>>;

/// The decoded key: the 32-byte seed and the public point.
pub struct Ed25519Private {
    pub seed: Zeroizing<[u8; 32]>,
    pub public: [u8; 32],
}

/// PEM text → `AGE-SECRET-KEY-1...`. `passphrase` is needed only when the
/// key is encrypted.
pub fn private_key_to_age(
    pem: &str,
    passphrase: Option<&[u8]>,
) -> Result<Zeroizing<String>, KeyError> {
    let key = parse_private(pem, passphrase)?;
    Ok(super::age::identity_from_seed(&key.seed))
}

/// Is this PEM text an encrypted OpenSSH key? (So a caller can ask for the
/// passphrase only when one is needed.)
pub fn is_encrypted(pem: &str) -> Result<bool, KeyError> {
    let blob = Zeroizing::new(decode_armor(pem)?);
    let mut r = Wire(&blob);
    let cipher = header(&mut r)?;
    Ok(cipher != b"none")
}

fn header<'a>(r: &mut Wire<'a>) -> Result<&'a [u8], KeyError> {
    if !r.0.starts_with(MAGIC) {
        return Err(KeyError::NotOpensshPrivate(
            "the openssh-key-v1 header is missing",
        ));
    }
    r.0 = &r.0[MAGIC.len()..];
    r.string()
}

fn decode_armor(pem: &str) -> Result<Vec<u8>, KeyError> {
    let text = pem.trim();
    if text.starts_with("-----BEGIN RSA PRIVATE KEY-----") {
        return Err(KeyError::WrongType("RSA".into()));
    }
    if text.starts_with("-----BEGIN EC PRIVATE KEY-----") {
        return Err(KeyError::WrongType("ECDSA".into()));
    }
    if text.starts_with("-----BEGIN PRIVATE KEY-----")
        || text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    {
        return Err(KeyError::NotOpensshPrivate(
            "this is a PKCS#8 key; ssh-to-age reads only the OpenSSH format (`ssh-keygen -p -f FILE` rewrites it)",
        ));
    }
    let Some(body) = text.strip_prefix(BEGIN) else {
        return Err(KeyError::NotOpensshPrivate(
            "expected a file starting with -----BEGIN OPENSSH PRIVATE KEY-----",
        ));
    };
    let Some(body) = body.trim_end().strip_suffix(END) else {
        return Err(KeyError::NotOpensshPrivate(
            "the -----END OPENSSH PRIVATE KEY----- line is missing (is the file cut short?)",
        ));
    };
    let b64: Zeroizing<String> =
        Zeroizing::new(body.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| KeyError::BadBase64)
}

/// Parses (and if needed decrypts) an ed25519 OpenSSH private key.
pub fn parse_private(pem: &str, passphrase: Option<&[u8]>) -> Result<Ed25519Private, KeyError> {
    let blob = Zeroizing::new(decode_armor(pem)?);
    let mut r = Wire(&blob);
    let cipher = header(&mut r)?;
    let kdf = r.string()?;
    let kdf_options = r.string()?;
    let nkeys = r.u32()?;
    if nkeys != 1 {
        return Err(KeyError::Malformed(
            "files with several keys are not supported",
        ));
    }
    let public_blob = r.string()?;
    {
        let mut p = Wire(public_blob);
        let kind = p.string()?;
        if kind != b"ssh-ed25519" {
            return Err(KeyError::WrongType(
                String::from_utf8_lossy(kind).into_owned(),
            ));
        }
    }
    let section = r.string()?;
    let mut plain = Zeroizing::new(section.to_vec());
    let encrypted = cipher != b"none";
    match (cipher, kdf) {
        (b"none", b"none") => {}
        (c @ (b"aes256-ctr" | b"aes256-cbc"), b"bcrypt") => {
            let Some(pass) = passphrase else {
                return Err(KeyError::PassphraseMissing);
            };
            let mut o = Wire(kdf_options);
            let salt = o.string()?;
            let rounds = o.u32()?;
            let mut km = Zeroizing::new([0u8; 48]);
            bcrypt_pbkdf::bcrypt_pbkdf(pass, salt, rounds, &mut km[..])
                .map_err(|_| KeyError::Malformed("bad bcrypt parameters"))?;
            let bad = |_| KeyError::Malformed("bad cipher parameters");
            if c == b"aes256-ctr" {
                let mut d = Aes256Ctr::new_from_slices(&km[..32], &km[32..]).map_err(bad)?;
                d.apply_keystream(&mut plain);
            } else {
                if plain.len() % 16 != 0 {
                    return Err(KeyError::Malformed(
                        "the encrypted section is not whole AES blocks",
                    ));
                }
                let mut d = Aes256CbcDec::new_from_slices(&km[..32], &km[32..]).map_err(bad)?;
                for block in plain.chunks_exact_mut(16) {
                    d.decrypt_block_mut(aes::Block::from_mut_slice(block));
                }
            }
        }
        (c, _) if c != b"none" => {
            return Err(KeyError::UnsupportedCipher(
                String::from_utf8_lossy(c).into_owned(),
            ))
        }
        _ => return Err(KeyError::Malformed("unknown key derivation")),
    }
    let mut s = Wire(&plain);
    let check1 = s.u32()?;
    let check2 = s.u32()?;
    if check1 != check2 {
        return Err(if encrypted {
            KeyError::WrongPassphrase
        } else {
            KeyError::Malformed("the check numbers differ")
        });
    }
    let kind = s.string()?;
    if kind != b"ssh-ed25519" {
        return Err(KeyError::WrongType(
            String::from_utf8_lossy(kind).into_owned(),
        ));
    }
    let pk = s.string()?;
    let sk = s.string()?;
    let public: [u8; 32] = pk.try_into().map_err(|_| KeyError::WrongLength(pk.len()))?;
    if sk.len() != 64 {
        return Err(KeyError::Malformed("an Ed25519 secret is 64 bytes"));
    }
    if sk[32..] != public {
        return Err(KeyError::Malformed(
            "the secret does not belong to the public key",
        ));
    }
    let _comment = s.string()?;
    for (i, b) in s.0.iter().enumerate() {
        if usize::from(*b) != i + 1 {
            return Err(if encrypted {
                KeyError::WrongPassphrase
            } else {
                KeyError::Malformed("bad padding")
            });
        }
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    seed.copy_from_slice(&sk[..32]);
    plain.zeroize();
    Ok(Ed25519Private { seed, public })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rejects_other_formats_without_echoing_them() {
        let rsa =
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEsecretsecret\n-----END RSA PRIVATE KEY-----\n";
        let e = private_key_to_age(rsa, None).err().unwrap();
        assert_eq!(e, KeyError::WrongType("RSA".into()));
        assert!(!e.to_string().contains("secretsecret"));
        let cut = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n";
        assert!(matches!(
            private_key_to_age(cut, None),
            Err(KeyError::NotOpensshPrivate(_))
        ));
        let junk = "-----BEGIN OPENSSH PRIVATE KEY-----\n!!!!\n-----END OPENSSH PRIVATE KEY-----";
        assert_eq!(
            private_key_to_age(junk, None).err(),
            Some(KeyError::BadBase64)
        );
    }
}
