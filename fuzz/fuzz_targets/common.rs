//! Shared by the dataset targets: a scratch file per process and the bundled tokenizer.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use orpo_data::{PreferenceDataset, PreferenceTokenizer, TokenizeConfig, TruncationMode};

/// The bundled ChatML tokenizer (loaded once).
pub fn tokenizer() -> &'static PreferenceTokenizer {
    static TOK: OnceLock<PreferenceTokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/arith-prefs/tokenizer");
        PreferenceTokenizer::from_dir(dir).expect("bundled tokenizer loads")
    })
}

/// `bytes` written to `<scratch>/<name>` (one scratch directory per fuzzing process).
pub fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("orpo-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        dir
    });
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("scratch file");
    path
}

/// Renders and tokenizes a loaded split with short limits (so truncation paths run too).
pub fn tokenize(ds: &PreferenceDataset, flags: u8) {
    let config = TokenizeConfig {
        max_length: Some(if flags & 0x10 != 0 { 12 } else { 64 }),
        max_prompt_length: if flags & 0x10 != 0 { 6 } else { 48 },
        max_completion_length: (flags & 0x20 != 0).then_some(5),
        truncation_mode: if flags & 0x40 != 0 {
            TruncationMode::KeepStart
        } else {
            TruncationMode::KeepEnd
        },
        ..TokenizeConfig::default()
    };
    if let Ok((pairs, report)) = ds.tokenize(tokenizer(), &config) {
        let _ = orpo_data::summarize(ds, &pairs, &report).to_string();
        if !pairs.is_empty() {
            let refs: Vec<_> = pairs.iter().take(4).collect();
            let _ = orpo_data::Collator::new(tokenizer().padding_id()).collate(refs);
        }
    }
}
