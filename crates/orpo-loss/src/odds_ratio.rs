//! The odds-ratio term of ORPO and its numerically stable building blocks
//! ([`expm1`], [`log1mexp`]).
//!
//! All functions are plain tensor code: they run on any backend and are differentiable under
//! autodiff. Every branch is evaluated on a clamped input, so the branch that is *not* selected
//! never produces an infinite value whose zero gradient would turn into `0 · ∞ = NaN`.

use burn::tensor::Tensor;
use burn::tensor::activation::{log_sigmoid, sigmoid};

/// `ln 2`: the switch point of [`log1mexp`] (Mächler, 2012).
const LN_2: f64 = core::f64::consts::LN_2;
/// Below this |x|, [`expm1`] uses its Taylor polynomial; above, `exp(x) − 1` loses < 3e-7 relative.
const EXPM1_SERIES_MAX: f64 = 0.25;

/// `e^x − 1`, accurate for small |x| (burn has no `expm1` op).
///
/// For |x| < 0.25 a degree-8 Taylor polynomial in Horner form (truncation error < 1e-10
/// relative, exact gradient of the polynomial ≈ `e^x`); elsewhere `exp(x) − 1`, whose relative
/// error is below 3e-7 there. Shape-preserving: `[..] -> [..]`.
pub fn expm1<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let small = x.clone().abs().lower_elem(EXPM1_SERIES_MAX);
    let xs = x.clone().clamp(-EXPM1_SERIES_MAX, EXPM1_SERIES_MAX);
    // p = 1 + x/2 (1 + x/3 (1 + … (1 + x/8)))
    let mut p = xs.clone().mul_scalar(1.0 / 8.0).add_scalar(1.0);
    for k in (2..=7).rev() {
        p = (xs.clone() * p).mul_scalar(1.0 / k as f64).add_scalar(1.0);
    }
    let series = xs * p;
    let direct = x.exp().sub_scalar(1.0);
    direct.mask_where(small, series)
}

/// `log(1 − e^x)` for `x < 0`, computed stably; the public building block of the odds ratio.
///
/// `log1p(−exp x)` for `x < −ln 2`, `log(−expm1 x)` otherwise (Mächler's `log1mexp`, the form
/// TRL adopted in PR #4763). The naive `log(1 − exp x)` is `−inf` at `x = −1e−8` in f32; this
/// gives −18.42 there, `−e^x` for very negative `x`, and finite gradients
/// (`d/dx = −1/expm1(−x)`, e.g. −1e8 at `x = −1e−8`). `x = 0` gives `−inf`, `x > 0` NaN, as the
/// mathematical function. Shape-preserving: `[..] -> [..]`.
pub fn log1mexp<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let far = x.clone().lower_elem(-LN_2);
    let a = x.clone().clamp_max(-LN_2).exp().neg().log1p();
    let b = expm1(x.clamp_min(-LN_2)).neg().log();
    b.mask_where(far, a)
}

/// The odds-ratio part of the ORPO loss for `B` pairs, with the per-pair intermediates.
#[derive(Debug, Clone)]
pub struct OddsRatio {
    /// `[B]` `log_odds = (lc − lr) − (log1mexp(lc) − log1mexp(lr))`.
    pub log_odds: Tensor<1>,
    /// `[B]` `ratio = log σ(τ · log_odds)`.
    pub ratio: Tensor<1>,
    /// `[1]` `−λ · mean(ratio)`: the term added to the NLL (TRL: `−losses.mean()`).
    pub loss: Tensor<1>,
}

/// ORPO's odds-ratio term from per-pair mean completion log-probs (TRL's `odds_ratio_loss`).
///
/// `lc`, `lr`: `[B]` mean log-prob of the chosen / rejected completion (must be `< 0`).
/// `beta` is λ, `tau` the inverse temperature τ (1.0 for ORPO). Differentiable under autodiff;
/// compute it in f32 (or wider) as TRL does.
pub fn odds_ratio_loss(lc: Tensor<1>, lr: Tensor<1>, beta: f64, tau: f64) -> OddsRatio {
    let log_odds = (lc.clone() - lr.clone()) - (log1mexp(lc) - log1mexp(lr));
    let ratio = log_sigmoid(log_odds.clone().mul_scalar(tau));
    let loss = ratio.clone().mean().mul_scalar(-beta);
    OddsRatio {
        log_odds,
        ratio,
        loss,
    }
}

/// Closed-form gradients `(∂loss/∂lc, ∂loss/∂lr)`, each `[B]`, of [`OddsRatio::loss`].
///
/// Used by the chunked backward, which needs these coefficients before it walks the vocabulary
/// chunks. With `g = λτ/B · σ(−τ·log_odds)`: `∂/∂lc = g / expm1(lc)` and `∂/∂lr = −g / expm1(lr)`
/// (`∂log_odds/∂lc = 1/(1 − e^lc)`), finite for every `lc, lr < 0`.
pub fn odds_ratio_loss_grads(
    lc: Tensor<1>,
    lr: Tensor<1>,
    beta: f64,
    tau: f64,
) -> (Tensor<1>, Tensor<1>) {
    let [b] = lc.dims();
    let log_odds = (lc.clone() - lr.clone()) - (log1mexp(lc.clone()) - log1mexp(lr.clone()));
    let g = sigmoid(log_odds.mul_scalar(-tau)).mul_scalar(beta * tau / b as f64);
    let d_lc = g.clone() / expm1(lc);
    let d_lr = -(g / expm1(lr));
    (d_lc, d_lr)
}
