//! Text generation with a key/value cache: greedy, temperature, top-k and top-p sampling,
//! stopping on EOS.

use burn::tensor::{Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::model::{DecoderForCausalLM, KvCache};

/// How to pick each next token.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    /// Most tokens to generate.
    pub max_new_tokens: usize,
    /// Softmax temperature; 0 means greedy (argmax).
    pub temperature: f32,
    /// Keep only the `k` most likely tokens before sampling.
    pub top_k: Option<usize>,
    /// Keep the smallest set of tokens whose probability reaches `p` (nucleus sampling).
    pub top_p: Option<f32>,
    /// Generation stops after any of these tokens (which is included in the output).
    pub eos_token_ids: Vec<u32>,
    /// Seed of the sampling RNG.
    pub seed: u64,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 64,
            temperature: 0.0,
            top_k: None,
            top_p: None,
            eos_token_ids: Vec::new(),
            seed: 0,
        }
    }
}

impl DecoderForCausalLM {
    /// Generates up to `max_new_tokens` after `prompt`, reusing cached keys and values so each
    /// step runs one token through the model. Returns the new tokens only.
    pub fn generate(&self, prompt: &[u32], config: &GenerationConfig) -> Vec<u32> {
        let device = self.embed_tokens.weight.val().device();
        let mut rng = StdRng::seed_from_u64(config.seed);
        let mut cache = KvCache::default();
        let mut generated = Vec::new();
        let mut step_input = prompt.to_vec();
        for _ in 0..config.max_new_tokens {
            let total = cache.len() + step_input.len();
            let ids = ids_tensor(&step_input, &device);
            let mask = Tensor::<2>::ones([1, total], &device);
            let hidden = self.forward_with_cache(ids, mask, Some(&mut cache));
            let next = pick_next(&self.last_logits(hidden), config, &mut rng);
            generated.push(next);
            if config.eos_token_ids.contains(&next) {
                break;
            }
            step_input = vec![next];
        }
        generated
    }

    /// The same as [`generate`](Self::generate) but re-running the whole sequence at every
    /// step: slow, kept as the reference the cached path is tested against.
    pub fn generate_without_cache(&self, prompt: &[u32], config: &GenerationConfig) -> Vec<u32> {
        let device = self.embed_tokens.weight.val().device();
        let mut rng = StdRng::seed_from_u64(config.seed);
        let mut sequence = prompt.to_vec();
        for _ in 0..config.max_new_tokens {
            let ids = ids_tensor(&sequence, &device);
            let mask = Tensor::<2>::ones([1, sequence.len()], &device);
            let hidden = self.forward_hidden(ids, mask);
            let next = pick_next(&self.last_logits(hidden), config, &mut rng);
            sequence.push(next);
            if config.eos_token_ids.contains(&next) {
                break;
            }
        }
        sequence[prompt.len()..].to_vec()
    }

    /// Logits `[V]` of the last position of `hidden` `[1, T, H]`.
    fn last_logits(&self, hidden: Tensor<3>) -> Vec<f32> {
        let [_, seq, dim] = hidden.dims();
        let last = hidden.narrow(1, seq - 1, 1).reshape([1, dim]);
        let logits = last.matmul(self.head_weight());
        let logits = match self.final_logit_softcap() {
            Some(cap) => logits.div_scalar(cap).tanh().mul_scalar(cap),
            None => logits,
        };
        logits
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 logits")
    }
}

fn ids_tensor(ids: &[u32], device: &burn::tensor::Device) -> Tensor<2, Int> {
    let values: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
    Tensor::from_data(TensorData::new(values, [1, ids.len()]), device)
}

/// Picks the next token from `logits` `[V]` according to `config`.
pub fn pick_next(logits: &[f32], config: &GenerationConfig, rng: &mut impl Rng) -> u32 {
    if config.temperature <= 0.0 {
        return argmax(logits);
    }
    let mut candidates: Vec<(u32, f32)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as u32, l / config.temperature))
        .collect();
    candidates.sort_by(|a, b| b.1.total_cmp(&a.1));
    if let Some(k) = config.top_k {
        candidates.truncate(k.max(1));
    }
    let max = candidates[0].1;
    let mut probs: Vec<f32> = candidates.iter().map(|(_, l)| (l - max).exp()).collect();
    let total: f32 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if let Some(top_p) = config.top_p {
        let mut cumulative = 0.0;
        let mut keep = probs.len();
        for (i, p) in probs.iter().enumerate() {
            cumulative += p;
            if cumulative >= top_p {
                keep = i + 1;
                break;
            }
        }
        probs.truncate(keep);
        candidates.truncate(keep);
        let total: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
    }
    let mut draw: f32 = rng.random();
    for (i, p) in probs.iter().enumerate() {
        if draw < *p {
            return candidates[i].0;
        }
        draw -= p;
    }
    candidates[probs.len() - 1].0
}

fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_is_argmax() {
        let config = GenerationConfig::default();
        let mut rng = StdRng::seed_from_u64(0);
        assert_eq!(pick_next(&[0.1, 3.0, -1.0], &config, &mut rng), 1);
    }

    #[test]
    fn top_k_one_is_greedy_at_any_temperature() {
        let config = GenerationConfig {
            temperature: 5.0,
            top_k: Some(1),
            ..Default::default()
        };
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..20 {
            assert_eq!(pick_next(&[0.1, 3.0, 2.9], &config, &mut rng), 1);
        }
    }

    #[test]
    fn top_p_keeps_the_nucleus_only() {
        // probabilities ≈ [0.665, 0.245, 0.090]: top_p 0.6 keeps only the first.
        let config = GenerationConfig {
            temperature: 1.0,
            top_p: Some(0.6),
            ..Default::default()
        };
        let mut rng = StdRng::seed_from_u64(2);
        for _ in 0..50 {
            assert_eq!(pick_next(&[2.0, 1.0, 0.0], &config, &mut rng), 0);
        }
        let config = GenerationConfig {
            temperature: 1.0,
            top_p: Some(0.95),
            ..Default::default()
        };
        let picks: std::collections::HashSet<u32> = (0..200)
            .map(|_| pick_next(&[2.0, 1.0, 0.0], &config, &mut rng))
            .collect();
        assert!(picks.contains(&1) && !picks.contains(&3));
    }
}
