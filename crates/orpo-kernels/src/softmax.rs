//! The row passes of a softmax or log-sum-exp: maximum, and sums of shifted exponentials.

use crate::{dispatch, exp_approx};

/// Lanes of the accumulators: two AVX2 registers of f32, so each lane's dependency chain is
/// short enough for the adds to pipeline.
const LANES: usize = 16;

dispatch! {
    /// Largest element of `row`, ignoring NaN as `f32::max` does; `−∞` for an empty row.
    pub fn row_max(row: &[f32]) -> f32 {
        let mut acc = [f32::NEG_INFINITY; LANES];
        let mut chunks = row.chunks_exact(LANES);
        for chunk in &mut chunks {
            for (a, &x) in acc.iter_mut().zip(chunk) {
                *a = if x > *a { x } else { *a };
            }
        }
        let tail = chunks.remainder().iter().copied();
        acc.into_iter().chain(tail).fold(f32::NEG_INFINITY, f32::max)
    }
}

dispatch! {
    /// `Σ exp(x − shift)` over `row`, accumulated in f64 (NaN propagates).
    pub fn exp_shifted_sum(row: &[f32], shift: f32) -> f64 {
        let mut acc = [0f64; LANES];
        let mut chunks = row.chunks_exact(LANES);
        for chunk in &mut chunks {
            for (a, &x) in acc.iter_mut().zip(chunk) {
                *a += f64::from(exp_approx(x - shift));
            }
        }
        let tail: f64 = chunks.remainder().iter().map(|&x| f64::from(exp_approx(x - shift))).sum();
        acc.iter().sum::<f64>() + tail
    }
}

dispatch! {
    /// `x ← exp(x − shift)` over `row`; returns the new row's sum, accumulated in f64.
    pub fn exp_shifted_in_place(row: &mut [f32], shift: f32) -> f64 {
        let mut acc = [0f64; LANES];
        let mut chunks = row.chunks_exact_mut(LANES);
        for chunk in &mut chunks {
            for (a, x) in acc.iter_mut().zip(chunk.iter_mut()) {
                *x = exp_approx(*x - shift);
                *a += f64::from(*x);
            }
        }
        let mut tail = 0f64;
        for x in chunks.into_remainder() {
            *x = exp_approx(*x - shift);
            tail += f64::from(*x);
        }
        acc.iter().sum::<f64>() + tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919) % 1013) as f32 / 37.0 - 20.0)
            .collect()
    }

    #[test]
    fn row_max_is_the_maximum_and_skips_nan() {
        for n in [0, 1, 15, 16, 17, 100, 1000] {
            let mut r = row(n);
            let expected = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(row_max(&r), expected, "n = {n}");
            if n > 3 {
                r[2] = f32::NAN;
                r[n - 1] = 1e6;
                assert_eq!(row_max(&r), 1e6);
            }
        }
    }

    #[test]
    fn shifted_sums_match_f64_exp() {
        for n in [1, 15, 16, 17, 1000, 49_152] {
            let r = row(n);
            let shift = row_max(&r);
            let exact: f64 = r.iter().map(|&x| f64::from(x - shift).exp()).sum();
            let sum = exp_shifted_sum(&r, shift);
            assert!(
                (sum - exact).abs() <= 2e-7 * exact,
                "n = {n}: {sum} vs {exact}"
            );
            let mut in_place = r.clone();
            assert_eq!(exp_shifted_in_place(&mut in_place, shift), sum);
            for (&e, &x) in in_place.iter().zip(&r) {
                assert_eq!(e, exp_approx(x - shift));
            }
        }
        assert!(exp_shifted_sum(&[1.0, f32::NAN], 0.0).is_nan());
    }
}
