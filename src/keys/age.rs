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
    on_cores(points, |part, out| {
        for (o, r) in out.iter_mut().zip(recipients_on_this_thread(part)) {
            *o = r;
        }
    })
}

/// What tells recipients apart without writing them: the canonical y of
/// the Ed25519 point (sign bit cleared, reduced mod p). u = (1 + y) /
/// (1 − y) is one to one (y = 1 is refused as small order), and a
/// recipient is u written canonically, so two keys have the same
/// recipient exactly when they have the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecipientId([u8; 32]);

/// [`recipients_from_points`] for comparing only (`pve check`): each
/// point's [`RecipientId`], or the refusal `recipients_from_points` gives.
/// No inversion and no text: what is left is the test that each point
/// is on the curve (its Jacobi symbol).
pub fn recipient_ids_from_points(points: &[[u8; 32]]) -> Vec<Result<RecipientId, KeyError>> {
    on_cores(points, |part, out| {
        for (o, p) in out.iter_mut().zip(part) {
            *o = check_point(p);
        }
    })
}

/// The [`RecipientId`] of an `age1...` recipient, or None when no
/// Ed25519 key converts to it: a converted recipient is always written
/// the one way Bech32 gives for a u below p, and u = −1 has no y.
pub fn recipient_id(recipient: &str) -> Option<RecipientId> {
    let u = parse_recipient(recipient).ok()?;
    if u[31] & 0x80 != 0 || encode_recipient(&u) != recipient {
        return None;
    }
    let fe = field::y_of(&u);
    let den = field::add(&fe, &field::ONE);
    if field::to_bytes(&fe) != u || field::to_bytes(&den) == [0; 32] {
        return None;
    }
    // y = (u − 1) / (u + 1), the inverse of u = (1 + y) / (1 − y).
    let inv = field::batch_invert(&[den]);
    let y = field::mul(&field::sub(&fe, &field::ONE), inv.first()?);
    Some(RecipientId(field::to_bytes(&y)))
}

/// Converts the keys of its first argument into its second.
type Convert<T> = fn(&[[u8; 32]], &mut [Result<T, KeyError>]);

/// `convert` on parts of `points`, one per core, each writing its part
/// of the results in place (gathering each thread's own list was a copy
/// of them all).
fn on_cores<T: Send>(points: &[[u8; 32]], convert: Convert<T>) -> Vec<Result<T, KeyError>> {
    // Every result is written; the error is only what the list starts with.
    let mut out: Vec<Result<T, KeyError>> = points.iter().map(|_| Err(KeyError::Empty)).collect();
    // Halves on the machine's cores, each with its own inversion: at
    // 10,000 hosts this is a fifth of `pve check`.
    let threads = crate::cores::available();
    if threads < 2 || points.len() < 512 {
        convert(points, &mut out);
        return out;
    }
    let chunk = points.len().div_ceil(threads);
    // The first part on this thread, which would otherwise only wait.
    let (mine, theirs) = points.split_at(chunk);
    let (mine_found, rest_found) = out.split_at_mut(chunk);
    std::thread::scope(|s| {
        let workers: Vec<_> = rest_found
            .chunks_mut(chunk)
            .zip(theirs.chunks(chunk))
            .map(|(found, part)| {
                s.spawn(move || {
                    convert(part, found);
                    crate::fleet::memory::release_freed();
                })
            })
            .collect();
        convert(mine, mine_found);
        for w in workers {
            if let Err(panic) = w.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
    out
}

fn recipients_on_this_thread(points: &[[u8; 32]]) -> Vec<Result<String, KeyError>> {
    // Every point is tested for being on the curve and for small order,
    // refused as one at a time refuses it (see `check_point`).
    let checked: Vec<Result<(), KeyError>> =
        points.iter().map(|p| check_point(p).map(|_| ())).collect();
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
        .map(|c| c.map(|()| encode_recipient(&us.next().unwrap_or_default())))
        .collect()
}

/// What [`recipient_from_point`] refuses, without decompressing: a point
/// is on the curve when x² = (y² − 1)/(d·y² + 1) has a root, which a
/// Jacobi symbol answers in a third of the square root's time (the root
/// itself is never needed: u depends on y alone). Small order depends on
/// y alone too (both x of a y are torsion points or neither), so it is a
/// look-up among the torsion points' y. Gives the point's
/// [`RecipientId`].
fn check_point(point: &[u8; 32]) -> Result<RecipientId, KeyError> {
    let y = field::y_of(point);
    let canonical = field::to_bytes(&y);
    if torsion_ys().contains(&canonical) {
        return Err(KeyError::SmallOrder);
    }
    let yy = field::square(&y);
    let u = field::sub(&yy, &field::ONE);
    let v = field::add(&field::mul(&yy, &field::D), &field::ONE);
    // u/v is a square iff u·v is (v is never 0: −1/d is not a square).
    if field::is_square(&field::mul(&u, &v)) {
        Ok(RecipientId(canonical))
    } else {
        Err(KeyError::InvalidPoint)
    }
}

/// The y (canonical bytes, sign bit clear) of the eight points of small
/// order: 1, −1, 0 and ±y₈ (five values).
fn torsion_ys() -> &'static [[u8; 32]] {
    static YS: std::sync::OnceLock<Vec<[u8; 32]>> = std::sync::OnceLock::new();
    YS.get_or_init(|| {
        let mut ys: Vec<[u8; 32]> = curve25519_dalek::constants::EIGHT_TORSION
            .iter()
            .map(|p| {
                let mut y = p.compress().to_bytes();
                y[31] &= 0x7f;
                y
            })
            .collect();
        ys.sort_unstable();
        ys.dedup();
        ys
    })
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
    /// d = −121665/121666, the curve constant (curve25519-dalek's
    /// `EDWARDS_D` limbs, radix 2^51 as fiat's).
    pub const D: Fe = Tight([
        929955233495203,
        466365720129213,
        1662059464998953,
        2033849074728123,
        1442794654840575,
    ]);

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

    pub fn square(a: &Fe) -> Fe {
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

    /// Whether `a` is a square (0 counts) mod p = 2^255 − 19: the Jacobi
    /// symbol (a/p) (see `keys::jacobi`).
    pub fn is_square(a: &Fe) -> bool {
        let a = canonical_limbs(a);
        a == [0; 4] || crate::keys::jacobi::is_residue(&a)
    }

    /// `a` (below p) as little-endian 64-bit limbs.
    pub(super) fn canonical_limbs(a: &Fe) -> [u64; 4] {
        let b = to_bytes(a);
        let mut out = [0u64; 4];
        for (limb, chunk) in out.iter_mut().zip(b.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            *limb = u64::from_le_bytes(word);
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

/// `age1...` for a u-coordinate: what `encode(RECIPIENT_HRP, u, false)`
/// gives (a test holds this), written straight into one string. The
/// generic encoder costs five times as much, a tenth of the conversion of
/// a large fleet's keys.
fn encode_recipient(u: &[u8; 32]) -> String {
    const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    // "age1", 52 groups of 5 bits (256 bits, the last padded), 6 of checksum.
    let mut out = [0u8; 4 + 52 + 6];
    out[..4].copy_from_slice(b"age1");
    let mut len = 4;
    let mut checksum = RECIPIENT_HRP_CHECKSUM;
    let mut push = |checksum: &mut u32, group: u32| {
        *checksum = polymod_step(*checksum, group as u8);
        out[len] = CHARSET[group as usize];
        len += 1;
    };
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in u {
        acc = ((acc << 8) | u32::from(*b)) & 0xfff;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            push(&mut checksum, (acc >> bits) & 31);
        }
    }
    if bits > 0 {
        push(&mut checksum, (acc << (5 - bits)) & 31);
    }
    for _ in 0..6 {
        checksum = polymod_step(checksum, 0);
    }
    // Bech32's constant is 1 (Bech32m's would be 0x2bc830a3).
    checksum ^= 1;
    for (i, c) in out[56..].iter_mut().enumerate() {
        *c = CHARSET[((checksum >> (5 * (5 - i))) & 31) as usize];
    }
    // Only CHARSET's letters and digits: always UTF-8.
    String::from_utf8(out.to_vec()).unwrap_or_default()
}

/// BIP-173's checksum after the HRP `age`: its high bits, a 0, its low
/// bits (the same for every recipient).
const RECIPIENT_HRP_CHECKSUM: u32 = {
    let hrp = RECIPIENT_HRP.as_bytes();
    let mut checksum = 1;
    let mut i = 0;
    while i < hrp.len() {
        checksum = polymod_step(checksum, hrp[i] >> 5);
        i += 1;
    }
    checksum = polymod_step(checksum, 0);
    let mut i = 0;
    while i < hrp.len() {
        checksum = polymod_step(checksum, hrp[i] & 31);
        i += 1;
    }
    checksum
};

/// One step of BIP-173's checksum (a BCH code over 5-bit groups).
const fn polymod_step(checksum: u32, group: u8) -> u32 {
    let top = (checksum >> 25) as usize;
    ((checksum & 0x1ff_ffff) << 5) ^ group as u32 ^ POLYMOD_TOP[top]
}

/// BIP-173's generators.
const GEN: [u32; 5] = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];

/// For each value of the checksum's top 5 bits, the XOR of the generators
/// its set bits select: one look-up per step instead of five tests (the
/// encoding was a fifth of the key conversion).
const POLYMOD_TOP: [u32; 32] = {
    let mut table = [0u32; 32];
    let mut top = 0;
    while top < 32 {
        let mut i = 0;
        while i < 5 {
            if (top >> i) & 1 == 1 {
                table[top] ^= GEN[i];
            }
            i += 1;
        }
        top += 1;
    }
    table
};

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
        // Enough for the threads (and an uneven last part).
        let many: Vec<[u8; 32]> = points.iter().cycle().take(1_111).copied().collect();
        let expected: Vec<_> = many.iter().map(recipient_from_point).collect();
        assert_eq!(recipients_from_points(&many), expected);
    }

    /// Real points, each also negated (the same recipient from other
    /// bytes), with an invalid one, a small-order one and a repeat.
    fn mixed_points() -> Vec<[u8; 32]> {
        let mut points = Vec::new();
        for k in 1u64..120 {
            let p = (curve25519_dalek::constants::ED25519_BASEPOINT_POINT
                * curve25519_dalek::Scalar::from(k * 7919 + 3))
            .compress()
            .to_bytes();
            let mut negated = p;
            negated[31] ^= 0x80;
            points.extend([p, negated]);
        }
        let mut invalid = [0u8; 32];
        invalid[0] = 2;
        let mut identity = [0u8; 32];
        identity[0] = 1;
        points.insert(5, invalid);
        points.insert(50, identity);
        points.push(points[7]);
        points
    }

    /// The fast path of `pve check` (ids) refuses what the conversion
    /// refuses, and finds two recipients equal exactly when their texts
    /// are.
    #[test]
    fn ids_are_equal_exactly_when_recipients_are() {
        // Twice over the threads' threshold: both paths of `on_cores`.
        for points in [mixed_points(), mixed_points().repeat(3)] {
            let recipients = recipients_from_points(&points);
            let ids = recipient_ids_from_points(&points);
            assert_eq!(ids.len(), recipients.len());
            for (id, r) in ids.iter().zip(&recipients) {
                match (id, r) {
                    (Ok(id), Ok(r)) => assert_eq!(recipient_id(r), Some(*id), "{r}"),
                    (Err(a), Err(b)) => assert_eq!(a, b),
                    other => panic!("{other:?}"),
                }
            }
            let mut equal = 0;
            for (i, a) in ids.iter().enumerate() {
                for (j, b) in ids.iter().enumerate() {
                    if let (Ok(a), Ok(b)) = (a, b) {
                        assert_eq!(a == b, recipients[i] == recipients[j], "{i} {j}");
                        equal += usize::from(i != j && a == b);
                    }
                }
            }
            assert!(equal >= 240, "{equal}");
        }
    }

    /// An `age1...` text with these 5-bit groups, checksummed.
    fn bech32_of_groups(groups: &[u8]) -> String {
        const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
        let mut checksum = RECIPIENT_HRP_CHECKSUM;
        let mut out = String::from("age1");
        for g in groups {
            checksum = polymod_step(checksum, *g);
            out.push(CHARSET[*g as usize] as char);
        }
        for _ in 0..6 {
            checksum = polymod_step(checksum, 0);
        }
        checksum ^= 1;
        for i in 0..6 {
            out.push(CHARSET[((checksum >> (5 * (5 - i))) & 31) as usize] as char);
        }
        out
    }

    #[test]
    fn no_key_has_the_id_of_a_recipient_no_key_converts_to() {
        let real = recipient_from_point(&mixed_points()[0]).unwrap();
        assert!(recipient_id(&real).is_some());
        // The same u with a padding bit set (if the parser takes it).
        let mut groups: Vec<u8> = real[4..56]
            .bytes()
            .map(|c| {
                b"qpzry9x8gf2tvdw0s3jn54khce6mua7l"
                    .iter()
                    .position(|x| *x == c)
                    .unwrap() as u8
            })
            .collect();
        assert_eq!(bech32_of_groups(&groups), real);
        groups[51] |= 1;
        let padded = bech32_of_groups(&groups);
        assert_ne!(padded, real);
        assert_eq!(recipient_id(&padded), None);
        // u = −1 (no y), u = p + 1 (not reduced), u ≥ 2^255, not Bech32.
        let minus_one = field::to_bytes(&field::sub(&field::y_of(&[0; 32]), &field::ONE));
        let mut p_plus_one = [0xffu8; 32];
        p_plus_one[0] = 0xee;
        p_plus_one[31] = 0x7f;
        let mut top = [0u8; 32];
        top[31] = 0x80;
        for u in [minus_one, p_plus_one, top] {
            let text = encode_recipient(&u);
            assert!(parse_recipient(&text).is_ok());
            assert_eq!(recipient_id(&text), None, "{text}");
        }
        assert_eq!(recipient_id("age1short"), None);
    }

    proptest::proptest! {
        #[test]
        fn recipients_encode_as_the_bech32_crate_does(u in proptest::array::uniform32(0u8..)) {
            proptest::prop_assert_eq!(encode_recipient(&u), encode(RECIPIENT_HRP, &u, false));
        }
    }

    #[test]
    fn recipient_encoding_at_the_edges() {
        for u in [[0u8; 32], [0xff; 32], [0x80; 32], [0x01; 32]] {
            assert_eq!(encode_recipient(&u), encode(RECIPIENT_HRP, &u, false));
        }
    }

    /// What curve25519-dalek's decompression (the one-at-a-time path)
    /// refuses.
    fn dalek_check(point: &[u8; 32]) -> Result<(), KeyError> {
        recipient_from_point(point).map(|_| ())
    }

    #[test]
    fn polymod_table_is_the_generators() {
        for top in 0..32u32 {
            let mut expected = 0;
            for (i, g) in GEN.iter().enumerate() {
                if (top >> i) & 1 == 1 {
                    expected ^= g;
                }
            }
            assert_eq!(POLYMOD_TOP[top as usize], expected);
        }
    }

    #[test]
    fn d_is_the_curve_constant() {
        // d · 121666 = −121665, computed here apart from the constant.
        let small = |n: u64| {
            let mut b = [0u8; 32];
            b[..8].copy_from_slice(&n.to_le_bytes());
            field::y_of(&b)
        };
        let sum = field::add(&field::mul(&field::D, &small(121666)), &small(121665));
        assert_eq!(field::to_bytes(&sum), [0u8; 32]);
    }

    #[test]
    fn fast_check_refuses_what_decompression_refuses_at_the_edges() {
        let mut edges: Vec<[u8; 32]> = curve25519_dalek::constants::EIGHT_TORSION
            .iter()
            .map(|p| p.compress().to_bytes())
            .collect();
        // Every non-canonical y (p ≤ y < 2^255), y = 0..40, both signs.
        for low in 0xed..=0xffu8 {
            let mut y = [0xffu8; 32];
            y[0] = low;
            y[31] = 0x7f;
            edges.push(y);
        }
        for small in 0..40u8 {
            let mut y = [0u8; 32];
            y[0] = small;
            edges.push(y);
        }
        for y in edges.clone() {
            let mut signed = y;
            signed[31] |= 0x80;
            edges.push(signed);
        }
        let mut refused = 0;
        for p in &edges {
            assert_eq!(check_point(p).map(|_| ()), dalek_check(p), "{p:02x?}");
            refused += usize::from(check_point(p).is_err());
        }
        // Both kinds of refusal are among them, and acceptances too.
        assert!(edges
            .iter()
            .any(|p| check_point(p) == Err(KeyError::SmallOrder)));
        assert!(edges
            .iter()
            .any(|p| check_point(p) == Err(KeyError::InvalidPoint)));
        assert!(refused < edges.len());
    }

    proptest::proptest! {
        #[test]
        fn fast_check_refuses_what_decompression_refuses(bytes in proptest::array::uniform32(0u8..)) {
            proptest::prop_assert_eq!(check_point(&bytes).map(|_| ()), dalek_check(&bytes));
        }

        #[test]
        fn fast_check_accepts_real_keys(k in 1u64.., negate in proptest::bool::ANY) {
            let mut p = (curve25519_dalek::constants::ED25519_BASEPOINT_POINT
                * curve25519_dalek::Scalar::from(k))
            .compress()
            .to_bytes();
            if negate {
                p[31] ^= 0x80;
            }
            proptest::prop_assert_eq!(check_point(&p).map(|_| ()), Ok(()));
            proptest::prop_assert_eq!(dalek_check(&p), Ok(()));
        }
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
