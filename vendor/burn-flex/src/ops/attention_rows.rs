//! orpo-rs patch: the per-row element-wise work of the fused attention (forward softmax,
//! backward recomputation and `∂S`), vectorised for f32.
//!
//! The generic row loop of `naive_attention_head` (scale, mask, causal, bias, max, libm `exp`,
//! normalise) stayed scalar: with the gemms halved by the causal blocks, it and `expf` were a
//! third of the attention's time. Here the common case (additive bias, no softcap or bool mask)
//! runs a branch-free `exp` (Cephes' `expf`, within 1 ulp) in loops that compile to 8-lane AVX2
//! code when the CPU has it (checked per call), else to the baseline target.

/// Defines `pub(crate) fn $name` running `$body` compiled for AVX-512 when the CPU has it, else
/// for AVX2 + FMA when it has those (orpo-rs patch 10: the AVX-512 copy).
macro_rules! dispatch {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty $body:block) => {
        $(#[$doc])*
        pub(crate) fn $name($($arg: $ty),*) -> $ret {
            #[inline(always)]
            fn body($($arg: $ty),*) -> $ret $body

            #[cfg(all(target_arch = "x86_64", feature = "std"))]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) -> $ret {
                    body($($arg),*)
                }
                if std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512vl")
                    && std::is_x86_feature_detected!("avx2")
                    && std::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has the features `avx512` was compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) -> $ret {
                    body($($arg),*)
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has the features `avx2` was compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

/// Accumulator lanes of the row reductions (two AVX2 registers).
const LANES: usize = 16;

/// `e^x` within 1 ulp for `x ≤ 88.3`, `+0.0` below ≈ −87.34 and for `−∞`, NaN for NaN: Cephes'
/// `expf` without branches or float-to-int conversions, so loops over it vectorise. (The same
/// function as orpo-rs's `orpo_kernels::exp_approx`.)
#[inline(always)]
pub(crate) fn exp_approx(x: f32) -> f32 {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const MIN_X: f32 = -87.336_55;
    const MAX_X: f32 = 88.376_26;
    // 1.5 · 2^23: adding and subtracting it rounds to the nearest integer, left in the low
    // mantissa bits of the sum.
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
    p = p * r + 5.000_000_1e-1;
    let e_r = p * r * r + r + 1.0;
    let e = e_r * f32::from_bits(n_bits.wrapping_add(127) << 23);
    if x < MIN_X {
        0.0
    } else if x.is_nan() {
        x
    } else {
        e
    }
}

dispatch! {
    /// One row of attention weights, in place: `row[..seen]` ← softmax of `row · scale + bias`
    /// (the keys the query sees), `row[seen..]` ← 0. A row whose scores are all `−∞` becomes 0.
    fn softmax_row_f32(row: &mut [f32], bias: Option<&[f32]>, scale: f32, seen: usize) -> () {
        let (row, rest) = row.split_at_mut(seen);
        rest.fill(0.0);
        match bias {
            Some(bias) => {
                for (x, &b) in row.iter_mut().zip(&bias[..seen]) {
                    *x = *x * scale + b;
                }
            }
            None => row.iter_mut().for_each(|x| *x *= scale),
        }
        let mut lanes = [f32::NEG_INFINITY; LANES];
        let mut chunks = row.chunks_exact(LANES);
        for chunk in &mut chunks {
            for (m, &x) in lanes.iter_mut().zip(chunk) {
                *m = if x > *m { x } else { *m };
            }
        }
        let tail = chunks.remainder().iter().copied();
        let max = lanes.into_iter().chain(tail).fold(f32::NEG_INFINITY, f32::max);
        if max == f32::NEG_INFINITY {
            row.fill(0.0);
            return;
        }
        let mut sums = [0f32; LANES];
        let mut chunks = row.chunks_exact_mut(LANES);
        for chunk in &mut chunks {
            for (s, x) in sums.iter_mut().zip(chunk.iter_mut()) {
                *x = exp_approx(*x - max);
                *s += *x;
            }
        }
        let mut sum: f32 = sums.iter().sum();
        for x in chunks.into_remainder() {
            *x = exp_approx(*x - max);
            sum += *x;
        }
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|x| *x *= inv);
    }
}

dispatch! {
    /// The score gradient of one row, over `dp`: `∂S = P ⊙ (∂P − Σ P ⊙ ∂P) · scale`.
    fn score_grad_row_f32(p: &[f32], dp: &mut [f32], scale: f32) -> () {
        let mut dots = [0f32; LANES];
        let mut chunks = p.chunks_exact(LANES).zip(dp.chunks_exact(LANES));
        for (a, b) in &mut chunks {
            for ((d, &x), &y) in dots.iter_mut().zip(a).zip(b) {
                *d += x * y;
            }
        }
        let full = p.len() / LANES * LANES;
        let tail: f32 = p[full..].iter().zip(&dp[full..]).map(|(a, b)| a * b).sum();
        let dot = dots.iter().sum::<f32>() + tail;
        for (x, &pv) in dp.iter_mut().zip(p) {
            *x = pv * (*x - dot) * scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_one_ulp() {
        let mut x = -90.0f32;
        while x < 88.3 {
            let (got, exact) = (f64::from(exp_approx(x)), f64::from(x).exp());
            if exact >= f64::from(f32::MIN_POSITIVE) {
                assert!(((got - exact) / exact).abs() < 1.2e-7, "exp({x}) = {got}");
            } else {
                assert!(got < f64::from(f32::MIN_POSITIVE), "exp({x}) = {got}");
            }
            x += 0.000_731;
        }
        assert!(exp_approx(f32::NAN).is_nan());
        assert_eq!(exp_approx(f32::NEG_INFINITY), 0.0);
    }
}
