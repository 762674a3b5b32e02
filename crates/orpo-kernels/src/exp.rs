//! A branch-free f32 `exp` that loops vectorise.

/// `e^x` within 1 ulp of the exact value for `x ≤ 88.3` (the exact result's largest finite
/// range), `+0.0` below `ln(f32::MIN_POSITIVE)` ≈ −87.34 (where libm returns subnormals), NaN
/// for NaN, `+0.0` for `−∞`.
///
/// Cephes' `expf`: `x = n·ln 2 + r` with `|r| ≤ ln 2 / 2` (ln 2 split in two for exactness), a
/// degree-6 polynomial for `e^r`, and `2^n` built from the exponent bits. No float-to-int
/// conversion and no branches that survive as jumps, so loops over it vectorise.
#[inline(always)]
pub fn exp_approx(x: f32) -> f32 {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const MIN_X: f32 = -87.336_55;
    const MAX_X: f32 = 88.376_26;
    // 1.5 · 2^23: adding and subtracting it rounds to the nearest integer, which is left in the
    // low mantissa bits of the sum.
    const ROUND: f32 = 12_582_912.0;
    let xc = x.clamp(MIN_X, MAX_X);
    let t = xc * LOG2E + ROUND;
    let n = t - ROUND;
    let n_bits = t.to_bits().wrapping_sub(ROUND.to_bits());
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5; // Cephes: 5.0000001201e-1, which rounds to 0.5 in f32
    let e_r = p * r * r + r + 1.0;
    let two_n = f32::from_bits(n_bits.wrapping_add(127) << 23);
    let e = e_r * two_n;
    if x < MIN_X {
        0.0
    } else if x.is_nan() {
        x
    } else {
        e
    }
}

/// `1 / (1 + e^−x)` from [`exp_approx`] of `−|x|` (never overflows).
#[inline(always)]
pub fn sigmoid_approx(x: f32) -> f32 {
    let e = exp_approx(-x.abs());
    let s = 1.0 / (1.0 + e);
    if x >= 0.0 { s } else { e * s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_one_ulp_of_the_exact_value() {
        let mut worst = 0f64;
        let mut x = -90.0f32;
        while x < 88.3 {
            let got = f64::from(exp_approx(x));
            let exact = f64::from(x).exp();
            if exact >= f64::from(f32::MIN_POSITIVE) {
                // One ulp of an f32 is at most 2^-23 of its value.
                worst = worst.max(((got - exact) / exact).abs());
            } else {
                assert!(got < f64::from(f32::MIN_POSITIVE), "exp({x}) = {got}");
            }
            x += 0.000_731;
        }
        assert!(worst < 1.2e-7, "largest relative error {worst:e}");
    }

    #[test]
    fn exp_edge_cases() {
        assert_eq!(exp_approx(0.0), 1.0);
        assert_eq!(exp_approx(-1e9), 0.0);
        assert_eq!(exp_approx(f32::NEG_INFINITY), 0.0);
        assert!(exp_approx(f32::NAN).is_nan());
        assert!((exp_approx(1.0) - core::f32::consts::E).abs() <= f32::EPSILON * 3.0);
    }

    #[test]
    fn sigmoid_matches_the_exact_logistic() {
        for i in -2000..2000 {
            let x = i as f32 / 40.0;
            let exact = 1.0 / (1.0 + (-f64::from(x)).exp());
            let got = f64::from(sigmoid_approx(x));
            assert!(
                (got - exact).abs() <= 2.5e-7 * exact,
                "σ({x}) = {got}, not {exact}"
            );
        }
    }
}
