//! Any bytes as a Parquet dataset file: the reader must return errors, never panic; what loads
//! is tokenized too. Seeded with the bundled Parquet shards.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use orpo_data::{DataConfig, PreferenceDataset};

fuzz_target!(|data: &[u8]| {
    let path = common::scratch_file("d.parquet", data);
    let config = DataConfig {
        skip_bad_rows: true,
        ..DataConfig::default()
    };
    if let Ok(ds) = PreferenceDataset::load(&path, None, &config) {
        common::tokenize(&ds, data.len() as u8);
    }
});
