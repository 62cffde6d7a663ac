//! Whether a number is a square modulo p = 2^255 − 19: its Jacobi symbol
//! (a/p) by the binary algorithm (halve a, subtract the smaller from the
//! larger, track the sign by the rules for (2/n) and reciprocity).
//!
//! While the numbers are longer than 128 bits, the steps run in batches
//! of [`STEPS`] halvings on two 64-bit words per number (after Pornin,
//! "Optimized Binary GCD for Modular Inversion"): the exact low word
//! decides parity and gives the residues mod 8 the sign needs, the top
//! word (a and n both shifted by the same amount) decides which is
//! smaller. The batch's 2×2 matrix then updates the full numbers once.
//! The top words are approximate, so a comparison can come out wrong; a
//! wrong comparison always leaves one of the two numbers negative to the
//! end of the batch (see [`batch`]), so a batch whose results are both
//! ≥ 0 took the same steps as the exact algorithm, and one that is not is
//! thrown away and replaced by a few exact steps. The answer is exact
//! either way; the batches take about three quarters of the time.
//!
//! Host keys are public, so none of this needs to be constant-time.

/// p = 2^255 − 19, little-endian 64-bit limbs.
const P: [u64; 4] = [
    0xffff_ffff_ffff_ffed,
    0xffff_ffff_ffff_ffff,
    0xffff_ffff_ffff_ffff,
    0x7fff_ffff_ffff_ffff,
];

/// Halvings per batch. The low word stays exact for 64 − (steps done)
/// bits, and the residue mod 8 needs 3 of them; the matrix entries stay
/// below 2^60, so a product with a 64-bit limb and the sum of two fit an
/// i128.
const STEPS: u32 = 60;

/// Whether 0 < a < p is a square mod p.
pub(super) fn is_residue(a: &[u64; 4]) -> bool {
    let (mut a, mut n) = (*a, P);
    let mut negative = false;
    while a != [0; 4] {
        if a[2] | a[3] | n[2] | n[3] == 0 {
            return residue_128(wide(&a), wide(&n), negative);
        }
        if !batch(&mut a, &mut n, &mut negative) {
            // Near-equal top words: exact steps until they differ.
            for _ in 0..4 {
                if a == [0; 4] {
                    break;
                }
                exact_step(&mut a, &mut n, &mut negative);
            }
        }
    }
    // n is now gcd(a, p) = 1: p is prime and 0 < a < p.
    !negative
}

/// [`is_residue`] by exact steps alone, to the end (what the batches and
/// [`residue_128`] must agree with).
#[cfg(test)]
pub(super) fn is_residue_exact(a: &[u64; 4]) -> bool {
    let (mut a, mut n) = (*a, P);
    let mut negative = false;
    while a != [0; 4] {
        exact_step(&mut a, &mut n, &mut negative);
    }
    !negative
}

fn wide(x: &[u64; 4]) -> u128 {
    u128::from(x[0]) | (u128::from(x[1]) << 64)
}

/// Up to [`STEPS`] halvings of a (and the subtractions between them) on
/// the numbers' low and top words; false, with nothing changed, if a
/// comparison of the top words was wrong.
///
/// Why a wrong comparison shows: it makes a − n < 0 (a < n not seen) or
/// swaps a > n into n and makes the new a − n < 0. From then on one of
/// the two stays negative: halving keeps a's sign, swapping keeps the
/// pair, and a − n is < 0 when a < 0 ≤ n, while n itself is unchanged
/// when n < 0. Parity comes from exact low bits, so every halving is
/// exact; only the comparisons can err.
fn batch(a: &mut [u64; 4], n: &mut [u64; 4], negative: &mut bool) -> bool {
    let shift = bit_length(a, n).saturating_sub(64);
    let (mut top_a, mut top_n) = (bits_at(a, shift), bits_at(n, shift));
    let (mut low_a, mut low_n) = (a[0], n[0]);
    // After the batch, a' = (fa·a + ga·n) / 2^STEPS, n' = (fn·a + gn·n) /
    // 2^STEPS: halving a doubles n's row instead, so the divisor is the
    // same for both.
    let (mut fa, mut ga, mut f_n, mut g_n) = (1i64, 0i64, 0i64, 1i64);
    let mut sign = *negative;
    let mut left = STEPS;
    // The sign's flips, in bit 0. The steps are written without branches:
    // whether to swap is a coin toss, and mispredicted branches were
    // nearly half of the time.
    let mut flips = 0u64;
    loop {
        // All the zeros at once, but no more than the halvings left (the
        // sentinel bit).
        let zeros = (low_a | (1u64 << left)).trailing_zeros();
        low_a >>= zeros;
        top_a >>= zeros;
        f_n <<= zeros;
        g_n <<= zeros;
        left -= zeros;
        // (2/n) = −1 when n ≡ 3, 5 (mod 8): bit 1 of n differs from bit 2.
        flips ^= u64::from(zeros) & ((low_n >> 1) ^ (low_n >> 2));
        if left == 0 {
            break;
        }
        // All ones when a < n: then swap them.
        let swap = u64::from(top_a < top_n).wrapping_neg();
        // Reciprocity: both ≡ 3 (mod 4) flips the sign (both are odd, so
        // bit 1 of each says it).
        flips ^= swap & ((low_a & low_n) >> 1);
        swap_if(swap, &mut low_a, &mut low_n);
        swap_if(swap, &mut top_a, &mut top_n);
        swap_if(swap as i64, &mut fa, &mut f_n);
        swap_if(swap as i64, &mut ga, &mut g_n);
        low_a = low_a.wrapping_sub(low_n);
        top_a -= top_n;
        fa -= f_n;
        ga -= g_n;
    }
    sign ^= flips & 1 == 1;
    let (Some(next_a), Some(next_n)) = (combine(a, n, fa, ga), combine(a, n, f_n, g_n)) else {
        return false;
    };
    *a = next_a;
    *n = next_n;
    *negative = sign;
    true
}

/// Swaps `x` and `y` when `mask` is all ones, leaves them when it is zero,
/// without a branch (see [`batch`]).
#[inline(always)]
fn swap_if<T>(mask: T, x: &mut T, y: &mut T)
where
    T: Copy + std::ops::BitXor<Output = T> + std::ops::BitAnd<Output = T>,
{
    let t = (*x ^ *y) & mask;
    *x = *x ^ t;
    *y = *y ^ t;
}

/// The number of bits of the larger of a and n.
fn bit_length(a: &[u64; 4], n: &[u64; 4]) -> u32 {
    (0..4)
        .rev()
        .find(|&i| a[i] | n[i] != 0)
        .map_or(0, |i| 64 * i as u32 + 64 - (a[i] | n[i]).leading_zeros())
}

/// The 64 bits of `a` from bit `shift` up.
fn bits_at(a: &[u64; 4], shift: u32) -> u64 {
    let (word, bit) = ((shift / 64) as usize, shift % 64);
    let low = a[word] >> bit;
    match a.get(word + 1) {
        Some(next) if bit > 0 => low | (next << (64 - bit)),
        _ => low,
    }
}

/// (f·a + g·n) / 2^STEPS, or None if it is negative. The division is
/// exact (the batch's halvings were), and the result is no larger than
/// the larger of a and n, so it fits 256 bits.
fn combine(a: &[u64; 4], n: &[u64; 4], f: i64, g: i64) -> Option<[u64; 4]> {
    let mut wide = [0u64; 5];
    let mut carry: i128 = 0;
    for i in 0..4 {
        let t = i128::from(f) * i128::from(a[i]) + i128::from(g) * i128::from(n[i]) + carry;
        wide[i] = t as u64;
        carry = t >> 64;
    }
    if carry < 0 {
        return None;
    }
    wide[4] = carry as u64;
    debug_assert_eq!(wide[0] & ((1 << STEPS) - 1), 0);
    let mut out = [0u64; 4];
    for (i, limb) in out.iter_mut().enumerate() {
        *limb = (wide[i] >> STEPS) | (wide[i + 1] << (64 - STEPS));
    }
    Some(out)
}

/// One exact step on full numbers: a halved to odd, then a − n (or, when
/// a < n, the two swapped and a = n − a).
fn exact_step(a: &mut [u64; 4], n: &mut [u64; 4], negative: &mut bool) {
    let zeros = trailing_zeros(a);
    shift_right(a, zeros);
    if zeros % 2 == 1 && matches!(n[0] & 7, 3 | 5) {
        *negative = !*negative;
    }
    // a − n, and whether a < n from the same pass.
    let (difference, below) = subtract(a, n);
    if below {
        if a[0] & n[0] & 3 == 3 {
            *negative = !*negative;
        }
        *n = *a;
        *a = subtract(&[0; 4], &difference).0;
    } else {
        *a = difference;
    }
}

/// The same steps on numbers below 2^128, from the sign found so far,
/// without branches as in [`batch`].
fn residue_128(mut a: u128, mut n: u128, negative: bool) -> bool {
    let mut flips = u128::from(negative);
    while a != 0 {
        let zeros = a.trailing_zeros();
        a >>= zeros;
        flips ^= u128::from(zeros) & ((n >> 1) ^ (n >> 2));
        let swap = u128::from(a < n).wrapping_neg();
        flips ^= swap & ((a & n) >> 1);
        swap_if(swap, &mut a, &mut n);
        a -= n;
    }
    flips & 1 == 0
}

fn trailing_zeros(a: &[u64; 4]) -> u32 {
    let mut zeros = 0;
    for limb in a {
        if *limb != 0 {
            return zeros + limb.trailing_zeros();
        }
        zeros += 64;
    }
    zeros
}

fn shift_right(a: &mut [u64; 4], mut bits: u32) {
    // Whole words first (rare: 64 zero bits in a row), then the rest.
    while bits >= 64 {
        *a = [a[1], a[2], a[3], 0];
        bits -= 64;
    }
    if bits > 0 {
        a[0] = (a[0] >> bits) | (a[1] << (64 - bits));
        a[1] = (a[1] >> bits) | (a[2] << (64 - bits));
        a[2] = (a[2] >> bits) | (a[3] << (64 - bits));
        a[3] >>= bits;
    }
}

/// a − b modulo 2^256, and whether it borrowed (a < b).
fn subtract(a: &[u64; 4], b: &[u64; 4]) -> ([u64; 4], bool) {
    let mut out = [0u64; 4];
    let mut borrow = false;
    for i in 0..4 {
        let (d, b1) = a[i].overflowing_sub(b[i]);
        let (d, b2) = d.overflowing_sub(u64::from(borrow));
        out[i] = d;
        borrow = b1 || b2;
    }
    (out, borrow)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn same_answer(a: [u64; 4]) -> Result<(), proptest::test_runner::TestCaseError> {
        proptest::prop_assert_eq!(is_residue(&a), is_residue_exact(&a), "{:x?}", a);
        Ok(())
    }

    fn below_p(a: [u64; 4]) -> bool {
        a != [0; 4] && (a[3], a[2], a[1], a[0]) < (P[3], P[2], P[1], P[0])
    }

    proptest::proptest! {
        #[test]
        fn batches_answer_as_exact_steps(a in proptest::array::uniform4(0u64..)) {
            let a = [a[0], a[1], a[2], a[3] >> 1];
            proptest::prop_assume!(below_p(a));
            same_answer(a)?;
        }

        #[test]
        fn batches_answer_as_exact_steps_for_short_numbers(
            a in proptest::array::uniform4(0u64..),
            bits in 1u32..255,
        ) {
            // Numbers of every length, where the top words start short.
            let mut a = [a[0], a[1], a[2], a[3] >> 1];
            shift_right(&mut a, 255 - bits);
            proptest::prop_assume!(below_p(a));
            same_answer(a)?;
        }
    }

    #[test]
    fn batches_answer_as_exact_steps_at_the_edges() {
        let mut edges = Vec::new();
        for k in 1..=300u64 {
            // Small numbers, their negatives (p − k), and numbers whose
            // top words nearly equal p's (the comparisons that go wrong).
            edges.push([k, 0, 0, 0]);
            edges.push([P[0] - k, P[1], P[2], P[3]]);
            edges.push([k, 0, P[2], P[3]]);
            edges.push([k, k, k, k >> 1]);
            edges.push([P[0] - k, P[1], P[2], P[3] >> 1]);
        }
        for bit in 0..255 {
            let mut a = [0u64; 4];
            a[bit / 64] = 1 << (bit % 64);
            edges.push(a);
        }
        let mut squares = 0;
        for a in edges.into_iter().filter(|a| below_p(*a)) {
            same_answer(a).unwrap();
            squares += usize::from(is_residue_exact(&a));
        }
        // Both answers occur: −1 is a square mod p, 2 is not.
        assert!(is_residue(&[P[0] - 1, P[1], P[2], P[3]]));
        assert!(!is_residue(&[2, 0, 0, 0]));
        assert!(squares > 100);
    }

    #[test]
    fn a_wrong_comparison_is_caught() {
        // a and p agree in their top 64 bits: the first batch's first
        // comparison cannot tell them apart, the answer must still come
        // out as the exact steps give it.
        let a = [0x1234_5679, 0, P[2], P[3]];
        let (mut x, mut n, mut negative) = (a, P, false);
        assert!(!batch(&mut x, &mut n, &mut negative));
        assert_eq!((x, n, negative), (a, P, false));
        assert_eq!(is_residue(&a), is_residue_exact(&a));
    }
}
