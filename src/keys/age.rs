//! The ssh-to-age conversion (Mic92/ssh-to-age `convert.go`), byte for byte:
//!
//! - public: Ed25519 point → Montgomery u = (1+y)/(1−y), Bech32 (BIP-173,
//!   not Bech32m) with HRP `age`;
//! - private: scalar = SHA-512(seed)[0..32] **without clamping**, Bech32
//!   with HRP `AGE-SECRET-KEY-`, upper case.
//!
//! Unlike ssh-to-age, small-order points (the identity and the other
//! torsion points) are refused: they give a recipient anyone can decrypt.

use bech32::primitives::decode::CheckedHrpstring;
use bech32::{Bech32, Hrp};
use curve25519_dalek::edwards::CompressedEdwardsY;
use sha2::{Digest, Sha512};
use zeroize::{Zeroize, Zeroizing};

use super::KeyError;

pub const RECIPIENT_HRP: &str = "age";
pub const IDENTITY_HRP: &str = "AGE-SECRET-KEY-";

/// `ssh-ed25519 AAAA... [comment]` (or a known_hosts / authorized_keys line)
/// → `age1...`.
pub fn ssh_to_age(line: &str) -> Result<String, KeyError> {
    let point = super::parse_ed25519_public(line)?;
    recipient_from_point(&point)
}

/// The 32-byte Ed25519 public key → `age1...`.
pub fn recipient_from_point(point: &[u8; 32]) -> Result<String, KeyError> {
    let p = CompressedEdwardsY(*point)
        .decompress()
        .ok_or(KeyError::InvalidPoint)?;
    if p.is_small_order() {
        return Err(KeyError::SmallOrder);
    }
    let u = p.to_montgomery().to_bytes();
    Ok(encode(RECIPIENT_HRP, &u, false))
}

/// Many 32-byte Ed25519 public keys → `age1...`, each exactly as
/// [`recipient_from_point`] gives it, but with one field inversion for all
/// of them (Montgomery's trick) instead of one per key: at 10,000 hosts
/// the inversions were a seventh of `pve check`.
pub fn recipients_from_points(points: &[[u8; 32]]) -> Vec<Result<String, KeyError>> {
    // Every point is still decompressed (that is the test that it is on
    // the curve) and tested for small order, as one at a time.
    let checked: Vec<Result<(), KeyError>> = points.iter().map(check_point).collect();
    let ys: Vec<field::Fe> = points
        .iter()
        .zip(&checked)
        .filter(|(_, c)| c.is_ok())
        .map(|(p, _)| field::y_of(p))
        .collect();
    // u = (1 + y) / (1 - y); 1 - y is never zero here: y = 1 is the
    // identity, refused above as small-order.
    let dens: Vec<field::Fe> = ys.iter().map(|y| field::sub(&field::ONE, y)).collect();
    let mut us = field::batch_invert(&dens)
        .into_iter()
        .zip(&ys)
        .map(|(inv, y)| field::to_bytes(&field::mul(&field::add(&field::ONE, y), &inv)));
    checked
        .into_iter()
        .map(|c| c.map(|()| encode(RECIPIENT_HRP, &us.next().unwrap_or_default(), false)))
        .collect()
}

fn check_point(point: &[u8; 32]) -> Result<(), KeyError> {
    let p = CompressedEdwardsY(*point)
        .decompress()
        .ok_or(KeyError::InvalidPoint)?;
    if p.is_small_order() {
        return Err(KeyError::SmallOrder);
    }
    Ok(())
}

/// GF(2^255 - 19) on fiat-crypto's verified primitives: only what the
/// batch conversion needs.
mod field {
    use fiat_crypto::curve25519_64::{
        fiat_25519_add, fiat_25519_carry, fiat_25519_carry_mul, fiat_25519_carry_square,
        fiat_25519_from_bytes, fiat_25519_loose_field_element as Loose, fiat_25519_relax,
        fiat_25519_sub, fiat_25519_tight_field_element as Tight, fiat_25519_to_bytes,
    };

    pub type Fe = Tight;
    pub const ONE: Fe = Tight([1, 0, 0, 0, 0]);

    /// The y-coordinate of a compressed Edwards point (the top bit is the
    /// sign of x, not part of y; y ≥ p reduces as decompression does).
    pub fn y_of(point: &[u8; 32]) -> Fe {
        let mut b = *point;
        b[31] &= 0x7f;
        let mut out = Tight([0; 5]);
        fiat_25519_from_bytes(&mut out, &b);
        out
    }

    pub fn to_bytes(a: &Fe) -> [u8; 32] {
        let mut out = [0u8; 32];
        fiat_25519_to_bytes(&mut out, a);
        out
    }

    fn relax(a: &Fe) -> Loose {
        let mut out = Loose([0; 5]);
        fiat_25519_relax(&mut out, a);
        out
    }

    pub fn add(a: &Fe, b: &Fe) -> Fe {
        let mut loose = Loose([0; 5]);
        fiat_25519_add(&mut loose, a, b);
        let mut out = Tight([0; 5]);
        fiat_25519_carry(&mut out, &loose);
        out
    }

    pub fn sub(a: &Fe, b: &Fe) -> Fe {
        let mut loose = Loose([0; 5]);
        fiat_25519_sub(&mut loose, a, b);
        let mut out = Tight([0; 5]);
        fiat_25519_carry(&mut out, &loose);
        out
    }

    pub fn mul(a: &Fe, b: &Fe) -> Fe {
        let mut out = Tight([0; 5]);
        fiat_25519_carry_mul(&mut out, &relax(a), &relax(b));
        out
    }

    fn square(a: &Fe) -> Fe {
        let mut out = Tight([0; 5]);
        fiat_25519_carry_square(&mut out, &relax(a));
        out
    }

    /// a^(p-2) = 1/a (0 for 0), square and multiply over p - 2 =
    /// 2^255 - 21: it runs once per batch, so no addition chain.
    fn invert(a: &Fe) -> Fe {
        // p - 2, little-endian bytes.
        let mut e = [0xffu8; 32];
        e[0] = 0xeb;
        e[31] = 0x7f;
        let mut r = ONE;
        for bit in (0..255).rev() {
            r = square(&r);
            if (e[bit / 8] >> (bit % 8)) & 1 == 1 {
                r = mul(&r, a);
            }
        }
        r
    }

    /// Every element's inverse with one inversion: prefix products, the
    /// inverse of the whole product, then back down the prefixes.
    pub fn batch_invert(xs: &[Fe]) -> Vec<Fe> {
        let mut prefix = Vec::with_capacity(xs.len());
        let mut acc = ONE;
        for x in xs {
            prefix.push(acc);
            acc = mul(&acc, x);
        }
        let mut inv = invert(&acc);
        let mut out = vec![ONE; xs.len()];
        for i in (0..xs.len()).rev() {
            out[i] = mul(&inv, &prefix[i]);
            inv = mul(&inv, &xs[i]);
        }
        out
    }
}

/// The 32-byte Ed25519 seed (first half of OpenSSH's 64-byte secret) →
/// `AGE-SECRET-KEY-1...`, unclamped as ssh-to-age writes it.
pub fn identity_from_seed(seed: &[u8; 32]) -> Zeroizing<String> {
    let mut digest = Sha512::digest(seed);
    let mut scalar = [0u8; 32];
    scalar.copy_from_slice(&digest[..32]);
    let out = Zeroizing::new(encode(IDENTITY_HRP, &scalar, true));
    scalar.zeroize();
    digest.as_mut_slice().zeroize();
    out
}

fn encode(hrp: &str, data: &[u8; 32], upper: bool) -> String {
    // Both HRPs are valid constants and 32 bytes are far below Bech32's
    // length limit, so encoding cannot fail; fall back to an empty string
    // rather than panicking.
    let Ok(hrp) = Hrp::parse(hrp) else {
        return String::new();
    };
    let r = if upper {
        bech32::encode_upper::<Bech32>(hrp, data)
    } else {
        bech32::encode::<Bech32>(hrp, data)
    };
    r.unwrap_or_default()
}

/// Validates an `age1...` X25519 recipient: Bech32 (a Bech32m checksum is
/// refused, as age does), HRP `age`, 32 bytes. Returns the u-coordinate.
pub fn parse_recipient(s: &str) -> Result<[u8; 32], KeyError> {
    let bad = |why: &str| KeyError::BadRecipient(why.to_string());
    if !s.starts_with("age1") {
        return Err(bad("it does not start with `age1`"));
    }
    let checked = CheckedHrpstring::new::<Bech32>(s)
        .map_err(|e| bad(&format!("invalid Bech32 checksum or characters ({e})")))?;
    if checked.hrp().as_str() != RECIPIENT_HRP {
        return Err(bad("its prefix is not `age`"));
    }
    let bytes: Vec<u8> = checked.byte_iter().collect();
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| bad(&format!("it holds {} bytes, an X25519 key is 32", b.len())))
}

/// The recipient (`age1...`) of an X25519 identity (`AGE-SECRET-KEY-1...`),
/// as `age-keygen -y` prints it. The error never contains the identity.
pub fn recipient_from_identity(identity: &str) -> Result<String, KeyError> {
    let checked = CheckedHrpstring::new::<Bech32>(identity.trim())
        .map_err(|_| KeyError::BadIdentity("invalid Bech32 checksum or characters"))?;
    if !checked.hrp().as_str().eq_ignore_ascii_case(IDENTITY_HRP) {
        return Err(KeyError::BadIdentity("its prefix is not `AGE-SECRET-KEY-`"));
    }
    let mut bytes: Zeroizing<Vec<u8>> = Zeroizing::new(checked.byte_iter().collect());
    if bytes.len() != 32 {
        return Err(KeyError::BadIdentity("an X25519 key is 32 bytes"));
    }
    let mut scalar = [0u8; 32];
    scalar.copy_from_slice(&bytes);
    bytes.zeroize();
    let point = curve25519_dalek::MontgomeryPoint::mul_base_clamped(scalar);
    scalar.zeroize();
    Ok(encode(RECIPIENT_HRP, &point.to_bytes(), false))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn identity_to_recipient_as_age_keygen_y() {
        // From age's own test vectors (age-keygen -y of this identity).
        assert_eq!(
            recipient_from_identity(
                "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX"
            )
            .unwrap(),
            "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"
        );
        let e = recipient_from_identity("AGE-SECRET-KEY-1QQQQ").unwrap_err();
        assert!(!e.to_string().contains("QQQQ"), "{e}");
    }

    #[test]
    fn readme_public_example() {
        assert_eq!(
            ssh_to_age("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOHz+U0YtjINc54dZiJNclfmEFifF7RXCFlNlTbuZBji joerg@turingmachine").unwrap(),
            "age17044m9wgakla6pzftf4srtl3h5mcsr85jysgt5fg23zpnta8sfdqhzn452"
        );
    }

    #[test]
    fn small_order_and_invalid_points_are_refused() {
        // identity point y = 1, and its non-canonical twin y = p + 1
        for k in [
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO7///////////////////////////////////////9/",
        ] {
            assert_eq!(ssh_to_age(k), Err(KeyError::SmallOrder), "{k}");
        }
        assert_eq!(
            ssh_to_age(
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            ),
            Err(KeyError::InvalidPoint)
        );
        assert_eq!(
            ssh_to_age(
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAHwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
            ),
            Err(KeyError::WrongLength(31))
        );
    }

    #[test]
    fn recipients_are_bech32_not_bech32m() {
        let good = "age1wy42r2p2c67ckywgq8xj7ejf6eykqfu623wktxeh729rtagu4fkqkvsudc";
        assert_eq!(
            ssh_to_age(
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICFrs5OngYGD5FHUaYqr3gAk7NApAuFCL3cVaHLSWRXL"
            )
            .unwrap(),
            good
        );
        assert!(parse_recipient(good).is_ok());
        let bech32m = "age1wy42r2p2c67ckywgq8xj7ejf6eykqfu623wktxeh729rtagu4fkqrsqsg6";
        assert!(matches!(
            parse_recipient(bech32m),
            Err(KeyError::BadRecipient(_))
        ));
        assert!(parse_recipient("age1short").is_err());
        assert!(parse_recipient("ssh-ed25519 AAAA").is_err());
    }

    #[test]
    fn batch_gives_what_one_at_a_time_gives() {
        // Real points (multiples of the base point), with an invalid
        // point, a small-order one and a non-canonical y among them, and
        // the same point twice.
        let mut points: Vec<[u8; 32]> = (1u64..200)
            .map(|k| {
                (curve25519_dalek::constants::ED25519_BASEPOINT_POINT
                    * curve25519_dalek::Scalar::from(k * 7919 + 3))
                .compress()
                .to_bytes()
            })
            .collect();
        let mut invalid = [0u8; 32];
        invalid[0] = 2;
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut non_canonical = [0xffu8; 32];
        non_canonical[0] = 0xee;
        non_canonical[31] = 0x7f;
        points.insert(5, invalid);
        points.insert(50, identity);
        points.insert(100, non_canonical);
        points.push(points[7]);
        let one_at_a_time: Vec<_> = points.iter().map(recipient_from_point).collect();
        assert_eq!(recipients_from_points(&points), one_at_a_time);
        assert_eq!(one_at_a_time[5], Err(KeyError::InvalidPoint));
        assert_eq!(one_at_a_time[50], Err(KeyError::SmallOrder));
        assert!(one_at_a_time.iter().filter(|r| r.is_ok()).count() > 190);
        assert!(recipients_from_points(&[]).is_empty());
    }

    #[test]
    fn identity_is_not_clamped() {
        // seed of Mic92/ssh-to-age test-assets/id_ed25519
        let seed: [u8; 32] = [
            0xec, 0x06, 0x8d, 0x22, 0x2e, 0x40, 0xb6, 0x53, 0xd0, 0x92, 0xe5, 0x78, 0x12, 0xa3,
            0xbc, 0xd2, 0xfe, 0x74, 0x2f, 0x8f, 0x16, 0x8f, 0x7e, 0x17, 0xc5, 0x09, 0x1f, 0x81,
            0xb2, 0x1c, 0x68, 0x2f,
        ];
        assert_eq!(
            identity_from_seed(&seed).as_str(),
            "AGE-SECRET-KEY-1K3VN4N03PTHJWSJSCCMQCN33RY5FSKQPJ4KRRTG3JMQUYE0TUSEQEDH6V8"
        );
    }
}
