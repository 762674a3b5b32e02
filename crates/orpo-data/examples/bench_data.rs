//! Data preparation throughput: read Parquet + validate + chat template + tokenize + truncate.
//!
//! ```text
//! cargo run -p orpo-data --release --example bench_data [-- REPEAT]
//! ```
//!
//! Builds a 12,000-row Parquet file from the bundled `arith-prefs-chat` (conversational) and
//! `arith-prefs` (standard) train splits, each repeated 4 times (REPEAT), and prints rows/s for
//! the whole preparation (best of 3 runs), with TRL's defaults (max_length 1024, max_prompt_length
//! 512). `scripts/bench_trl_data.py` times TRL on the same rows.

/// The `orpo` binary's allocator (glibc's malloc/free took ~35% of this bench's time; the small
/// blocks of tokenization go to mimalloc).
#[global_allocator]
static GLOBAL: orpo_alloc::TrainingAllocator = orpo_alloc::TrainingAllocator;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use orpo_data::{DataConfig, PreferenceDataset, PreferenceTokenizer, TokenizeConfig};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn repeated(src: &Path, dst: &Path, times: usize) -> Result<(), Box<dyn std::error::Error>> {
    let batches: Vec<_> = ParquetRecordBatchReaderBuilder::try_new(File::open(src)?)?
        .build()?
        .collect::<Result<_, _>>()?;
    let mut w = ArrowWriter::try_new(File::create(dst)?, batches[0].schema(), None)?;
    for _ in 0..times {
        for b in &batches {
            w.write(b)?;
        }
    }
    w.close()?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let times: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(4);
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../datasets"));
    let tok = PreferenceTokenizer::from_dir(root.join("arith-prefs/tokenizer"))?;
    let cfg = TokenizeConfig::default();
    let dir = std::env::temp_dir().join("orpo-data-bench");
    std::fs::create_dir_all(&dir)?;
    println!("threads: {}", rayon::current_num_threads());
    for name in ["arith-prefs-chat", "arith-prefs"] {
        let src = root.join(name).join("data/train-00000-of-00001.parquet");
        let file = dir.join(format!("{name}-x{times}.parquet"));
        repeated(&src, &file, times)?;
        let mut best = f64::INFINITY;
        let (mut t_load, mut t_tok) = (0.0, 0.0);
        let mut rows = 0;
        for _ in 0..3 {
            let t0 = Instant::now();
            let ds = PreferenceDataset::load(&file, None, &DataConfig::default())?;
            let t1 = Instant::now();
            let (pairs, report) = ds.tokenize(&tok, &cfg)?;
            let t2 = Instant::now();
            rows = ds.len();
            assert_eq!(report.rows_out, pairs.len());
            let total = (t2 - t0).as_secs_f64();
            if total < best {
                best = total;
                t_load = (t1 - t0).as_secs_f64();
                t_tok = (t2 - t1).as_secs_f64();
            }
        }
        println!(
            "{name:>17}: {rows} rows in {:.3} s = {:>8.0} rows/s (read+validate {:.3} s, template+tokenize+truncate {:.3} s)",
            best,
            rows as f64 / best,
            t_load,
            t_tok
        );
    }
    Ok(())
}
