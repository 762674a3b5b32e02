//! Parity with TRL 0.25's `ORPOTrainer` on the fixtures of `scripts/make_loss_fixtures.py`, and
//! with TRL 1.x's `CPOTrainer` (`loss_type="simpo"`) on those of
//! `scripts/make_simpo_fixtures.py` (workspace root; both write `tests/fixtures/loss/`).

use burn::tensor::{Device, Int, Tensor, TensorData};
use orpo_loss::{
    HostInputsBuf, LossDenominators, METRIC_NAMES, OrpoInputs, OrpoLossConfig, orpo_loss,
    preference_loss,
};
use serde_json::Value;

fn flatten(v: &Value, out: &mut Vec<f64>, shape: &mut Vec<usize>, depth: usize) {
    match v {
        Value::Array(items) => {
            if shape.len() == depth {
                shape.push(items.len());
            }
            for it in items {
                flatten(it, out, shape, depth + 1);
            }
        }
        Value::Number(n) => out.push(n.as_f64().unwrap()),
        other => panic!("unexpected {other:?}"),
    }
}

fn array(v: &Value) -> (Vec<f64>, Vec<usize>) {
    let (mut out, mut shape) = (Vec::new(), Vec::new());
    flatten(v, &mut out, &mut shape, 0);
    (out, shape)
}

fn float<const D: usize>(v: &Value, device: &Device) -> Tensor<D> {
    let (data, shape) = array(v);
    let data: Vec<f32> = data.into_iter().map(|x| x as f32).collect();
    Tensor::from_data(TensorData::new(data, shape), device)
}

fn int(v: &Value, device: &Device) -> Tensor<2, Int> {
    let (data, shape) = array(v);
    let data: Vec<i64> = data.into_iter().map(|x| x as i64).collect();
    Tensor::from_data(TensorData::new(data, shape), device)
}

fn assert_grad_close(name: &str, got: Tensor<2>, want: &Value, tol: f64) {
    let got: Vec<f64> = got.into_data().convert::<f64>().try_to_vec().unwrap();
    let (want, _) = array(want);
    assert_eq!(got.len(), want.len(), "{name}: length");
    let scale = want.iter().fold(0f64, |m, x| m.max(x.abs())).max(1e-12);
    let worst = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs() / scale)
        .fold(0f64, f64::max);
    assert!(
        worst <= tol,
        "{name}: max |diff| / max |ref| = {worst:e} > {tol:e}"
    );
    eprintln!("{name}: max |diff| / max |ref| = {worst:e}");
}

fn run_case(file: &str, chunk_size: usize) {
    run_variant(file, chunk_size, false, 1.0);
}

/// `tied`: the head weight is the transposed view of a `[V, H]` table (tied embeddings), whose
/// gradient is checked. `loss_scale`: backward runs from `loss · loss_scale` (as gradient
/// accumulation does) and the gradients are divided by it before the comparison.
fn run_variant(file: &str, chunk_size: usize, tied: bool, loss_scale: f64) {
    let path = format!(
        "{}/../../tests/fixtures/loss/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let device = Device::flex().autodiff();
    let hidden = float::<3>(&doc["hidden"], &device).require_grad();
    let head_weight = float::<2>(&doc["head_weight"], &device);
    let table = tied.then(|| {
        let values = head_weight.clone().transpose().into_data();
        Tensor::<2>::from_data(values, &device).require_grad()
    });
    let weight = match &table {
        Some(table) => table.clone().transpose(),
        None => head_weight.require_grad(),
    };
    let bias = doc
        .get("head_bias")
        .map(|b| float::<1>(b, &device).require_grad());
    let inputs = OrpoInputs {
        input_ids: int(&doc["input_ids"], &device),
        attention_mask: int(&doc["attention_mask"], &device),
        completion_mask: int(&doc["completion_mask"], &device),
    };
    let c = &doc["config"];
    let f = |key: &str| c[key].as_f64().unwrap();
    let simpo = c["loss_type"].as_str() == Some("simpo");
    let (loss, metrics) = if simpo {
        // SimPO: through the general entry point, the tokens from host memory.
        let config = OrpoLossConfig {
            chunk_size,
            ..OrpoLossConfig::simpo(f("beta"), f("simpo_gamma"), f("cpo_alpha"))
        };
        let host = HostInputsBuf::read(&inputs);
        let out = preference_loss(
            hidden.clone(),
            weight.clone(),
            bias.clone(),
            host.view(),
            &config,
            LossDenominators::default(),
        );
        (out.loss, out.metrics.to_named())
    } else {
        let config = OrpoLossConfig {
            beta: f("beta"),
            orpo_beta: f("orpo_beta"),
            nll_on_completion_only: c["nll_on_completion_only"].as_bool().unwrap(),
            chunk_size,
            ..OrpoLossConfig::default()
        };
        let out = orpo_loss(
            hidden.clone(),
            weight.clone(),
            bias.clone(),
            &inputs,
            &config,
        );
        (out.loss, out.metrics.to_metrics().to_named())
    };

    // Metrics and loss: 1e-5 relative (relative to max(|ref|, 1) for values near 0, e.g. the
    // logit means, whose summation order differs from torch's). Every metric TRL logs is
    // checked, and no other is produced.
    let check = |name: &str, got: f64, want: f64| {
        let err = (got - want).abs() / want.abs().max(1.0);
        assert!(
            err <= 1e-5,
            "{file}: {name}: got {got}, want {want} (rel err {err:e})"
        );
    };
    let want_metrics = doc["metrics"].as_object().unwrap();
    assert_eq!(metrics.len(), want_metrics.len(), "{file}: metric count");
    if !simpo {
        assert_eq!(metrics.len(), METRIC_NAMES.len());
    }
    for (name, got) in &metrics {
        let want = want_metrics
            .get(*name)
            .and_then(Value::as_f64)
            .unwrap_or_else(|| panic!("{file}: TRL logs no `{name}`"));
        check(name, *got, want);
    }
    let value: f64 = loss.clone().into_scalar::<f32>() as f64;
    check("loss", value, doc["loss"].as_f64().unwrap());

    let grads = loss.mul_scalar(loss_scale).backward();
    let unscale = 1.0 / loss_scale;
    let gh = hidden
        .grad(&grads)
        .expect("hidden grad")
        .mul_scalar(unscale);
    let [r, t, h] = gh.dims();
    assert_grad_close(
        &format!("{file} grad_hidden"),
        gh.reshape([r * t, h]),
        &doc["grad_hidden"],
        1e-4,
    );
    let gw = match &table {
        Some(table) => table.grad(&grads).expect("table grad").transpose(),
        None => weight.grad(&grads).expect("weight grad"),
    };
    assert_grad_close(
        &format!("{file} grad_head_weight (tied: {tied})"),
        gw.mul_scalar(unscale),
        &doc["grad_head_weight"],
        1e-4,
    );
    if let Some(b) = bias {
        let gb = b.grad(&grads).expect("bias grad").mul_scalar(unscale);
        let [v] = gb.dims();
        assert_grad_close(
            &format!("{file} grad_head_bias"),
            gb.reshape([1, v]),
            &doc["grad_head_bias"],
            1e-4,
        );
    }
}

#[test]
fn trl_beta_0_1() {
    run_case("trl_beta0.1.json", 1024);
}

#[test]
fn trl_beta_0_1_small_chunks() {
    run_case("trl_beta0.1.json", 5);
}

#[test]
fn nll_on_completion_only() {
    run_case("completion_nll_beta0.1.json", 7);
}

#[test]
fn tau_and_bias() {
    run_case("tau2_bias_beta0.5.json", 3);
}

#[test]
fn tied_head_weight() {
    run_variant("trl_beta0.1.json", 1024, true, 1.0);
    run_variant("tau2_bias_beta0.5.json", 3, true, 1.0);
}

#[test]
fn scaled_loss_scales_every_gradient() {
    run_variant("trl_beta0.1.json", 1024, false, 0.25);
    run_variant("tau2_bias_beta0.5.json", 3, true, 0.25);
}

#[test]
fn simpo_matches_trl_cpo() {
    // SimPO itself (no NLL, β 2, γ 1) and TRL's CPO-SimPO defaults (β 0.1, γ 0.5, NLL weight 1),
    // on the single-pass path (large chunks) and the chunked one.
    for chunk_size in [1024, 3] {
        run_case("simpo_beta2_gamma1.json", chunk_size);
        run_case("simpo_beta0.1_cpo_alpha1.json", chunk_size);
    }
    run_variant("simpo_beta0.1_cpo_alpha1.json", 1024, true, 0.25);
}
