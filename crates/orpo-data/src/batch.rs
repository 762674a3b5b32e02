//! Padding pairs into batches, and choosing which pairs go together.
//!
//! A batch of `B` pairs has `2B` rows: the `B` chosen sequences, then the `B` rejected ones (one
//! forward pass for both, as TRL's `concatenated_forward`). Tensors are plain row-major `Vec`s of
//! shape `[2B, T]`; the trainer turns them into its own tensor type.

use serde::{Deserialize, Serialize};

use crate::tokenize::TokenizedPair;

/// A padded batch, row-major `[2B, T]`: rows `0..B` are chosen, rows `B..2B` rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Number of pairs `B` (the batch has `2B` rows).
    pub pairs: usize,
    /// Padded length `T`.
    pub seq_len: usize,
    /// Token ids, right-padded with the pad id.
    pub input_ids: Vec<i64>,
    /// 1 on real tokens, 0 on padding.
    pub attention_mask: Vec<i64>,
    /// 1 on completion tokens (EOS included), 0 on prompt and padding: the positions whose
    /// labels are not `-100` in TRL.
    pub completion_mask: Vec<i64>,
    /// Dataset indices of the pairs, in batch order.
    pub indices: Vec<usize>,
}

impl Batch {
    /// `[2B, T]`.
    pub fn shape(&self) -> [usize; 2] {
        [2 * self.pairs, self.seq_len]
    }

    /// TRL-style labels: the input ids where `completion_mask` is 1, else `-100`.
    pub fn labels(&self) -> Vec<i64> {
        self.input_ids
            .iter()
            .zip(&self.completion_mask)
            .map(|(&id, &m)| if m == 1 { id } else { -100 })
            .collect()
    }
}

/// Pads pairs into a [`Batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collator {
    /// Padding id (the tokenizer's pad token, else EOS: see
    /// [`PreferenceTokenizer::padding_id`](crate::PreferenceTokenizer::padding_id)).
    pub pad_id: u32,
    /// Round `T` up to a multiple of this (e.g. 8), if set.
    pub pad_to_multiple_of: Option<usize>,
}

impl Collator {
    /// A collator padding with `pad_id`.
    pub fn new(pad_id: u32) -> Self {
        Collator {
            pad_id,
            pad_to_multiple_of: None,
        }
    }

    /// Builds the batch of `pairs` (chosen rows, then rejected rows).
    pub fn collate<'a, I>(&self, pairs: I) -> Batch
    where
        I: IntoIterator<Item = &'a TokenizedPair>,
        I::IntoIter: Clone,
    {
        let it = pairs.into_iter();
        let b = it.clone().count();
        let mut t = it.clone().map(TokenizedPair::max_len).max().unwrap_or(0);
        if let Some(m) = self.pad_to_multiple_of.filter(|&m| m > 1) {
            t = t.div_ceil(m) * m;
        }
        let n = 2 * b * t;
        let mut input_ids = vec![self.pad_id as i64; n];
        let mut attention_mask = vec![0i64; n];
        let mut completion_mask = vec![0i64; n];
        let mut indices = Vec::with_capacity(b);
        let rows = it
            .clone()
            .map(|p| (&p.chosen_ids, p.chosen_prompt_len))
            .chain(it.clone().map(|p| (&p.rejected_ids, p.rejected_prompt_len)));
        for (r, (ids, plen)) in rows.enumerate() {
            let base = r * t;
            for (j, &id) in ids.iter().enumerate() {
                input_ids[base + j] = id as i64;
                attention_mask[base + j] = 1;
                completion_mask[base + j] = (j >= plen) as i64;
            }
        }
        indices.extend(it.map(|p| p.index));
        Batch {
            pairs: b,
            seq_len: t,
            input_ids,
            attention_mask,
            completion_mask,
            indices,
        }
    }
}

/// The order in which pairs are grouped into batches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchOrder {
    /// Dataset order.
    Sequential,
    /// Shuffled with the seed.
    #[default]
    Random,
    /// Shuffled, then within mega-batches of 50 batches sorted by length (longest first), as
    /// `transformers`' `LengthGroupedSampler`: less padding, still random across the epoch.
    /// (`group_by_length` is transformers' name for it in `train_sampling_strategy`.)
    #[serde(alias = "group_by_length")]
    LengthGrouped,
}

/// SplitMix64: a small deterministic generator (no `rand` dependency).
pub(crate) struct SplitMix(pub(crate) u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(crate) fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// Groups positions `0..pairs.len()` (positions in `pairs`, not dataset indices) into batches of
/// `batch_size` (the last one may be smaller unless `drop_last`).
pub fn batch_indices(
    pairs: &[TokenizedPair],
    batch_size: usize,
    order: BatchOrder,
    seed: u64,
    drop_last: bool,
) -> Vec<Vec<usize>> {
    assert!(batch_size > 0, "batch_size must be positive");
    let mut idx: Vec<usize> = (0..pairs.len()).collect();
    let mut rng = SplitMix(seed);
    match order {
        BatchOrder::Sequential => {}
        BatchOrder::Random => rng.shuffle(&mut idx),
        BatchOrder::LengthGrouped => {
            rng.shuffle(&mut idx);
            for mega in idx.chunks_mut(batch_size * 50) {
                mega.sort_by_key(|&i| std::cmp::Reverse(pairs[i].max_len()));
            }
        }
    }
    idx.chunks(batch_size)
        .filter(|c| !drop_last || c.len() == batch_size)
        .map(<[usize]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(i: usize, c: &[u32], cp: usize, r: &[u32], rp: usize) -> TokenizedPair {
        TokenizedPair {
            index: i,
            chosen_ids: c.to_vec(),
            chosen_prompt_len: cp,
            rejected_ids: r.to_vec(),
            rejected_prompt_len: rp,
        }
    }

    #[test]
    fn collate_layout() {
        let a = pair(0, &[1, 5, 6, 2], 2, &[1, 5, 7, 8, 2], 2);
        let b = pair(1, &[1, 9, 2], 2, &[1, 9, 3], 2);
        let batch = Collator::new(0).collate([&a, &b]);
        assert_eq!(batch.shape(), [4, 5]);
        #[rustfmt::skip]
        assert_eq!(batch.input_ids, vec![
            1, 5, 6, 2, 0,
            1, 9, 2, 0, 0,
            1, 5, 7, 8, 2,
            1, 9, 3, 0, 0,
        ]);
        #[rustfmt::skip]
        assert_eq!(batch.attention_mask, vec![
            1, 1, 1, 1, 0,
            1, 1, 1, 0, 0,
            1, 1, 1, 1, 1,
            1, 1, 1, 0, 0,
        ]);
        #[rustfmt::skip]
        assert_eq!(batch.completion_mask, vec![
            0, 0, 1, 1, 0,
            0, 0, 1, 0, 0,
            0, 0, 1, 1, 1,
            0, 0, 1, 0, 0,
        ]);
        assert_eq!(batch.labels()[..5], [-100, -100, 6, 2, -100]);
        let padded = Collator {
            pad_id: 0,
            pad_to_multiple_of: Some(8),
        }
        .collate([&a]);
        assert_eq!(padded.shape(), [2, 8]);
    }

    #[test]
    fn batching_orders() {
        let pairs: Vec<_> = (0..103)
            .map(|i| pair(i, &vec![1; 3 + i % 17], 1, &[1, 2], 1))
            .collect();
        for order in [
            BatchOrder::Sequential,
            BatchOrder::Random,
            BatchOrder::LengthGrouped,
        ] {
            let b = batch_indices(&pairs, 8, order, 42, false);
            assert_eq!(b.len(), 13);
            let mut all: Vec<usize> = b.concat();
            all.sort();
            assert_eq!(all, (0..103).collect::<Vec<_>>());
            assert_eq!(batch_indices(&pairs, 8, order, 42, true).len(), 12);
        }
        // grouping by length reduces padding
        let pad = |b: &Vec<Vec<usize>>| -> usize {
            b.iter()
                .map(|c| {
                    let m = c.iter().map(|&i| pairs[i].max_len()).max().unwrap();
                    c.iter().map(|&i| m - pairs[i].max_len()).sum::<usize>()
                })
                .sum()
        };
        let g = batch_indices(&pairs, 8, BatchOrder::LengthGrouped, 1, false);
        let r = batch_indices(&pairs, 8, BatchOrder::Random, 1, false);
        assert!(pad(&g) < pad(&r));
    }
}
