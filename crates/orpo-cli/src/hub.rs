//! Model and dataset names that are Hugging Face Hub ids (`owner/name`), resolved to a local
//! snapshot directory the way `transformers` and `datasets` do: the local Hub cache first
//! (`HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`), then a download with
//! the `hf-hub` crate unless `HF_HUB_OFFLINE=1`.
//!
//! Only the files a run needs are fetched: for a model, `config.json`, the tokenizer files and
//! the safetensors weights (never pickle files); for a dataset, its Parquet and JSONL files.

#[cfg(feature = "hub")]
use std::path::{Path, PathBuf};

#[cfg(feature = "hub")]
use anyhow::{Context, anyhow, bail};
#[cfg(feature = "hub")]
use hf_hub::api::sync::ApiBuilder;
#[cfg(feature = "hub")]
use hf_hub::{Cache, Repo};

/// What a Hub id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubKind {
    /// A model repository: weights, config and tokenizer.
    Model,
    /// A dataset repository: Parquet or JSONL files.
    Dataset,
}

#[cfg(feature = "hub")]
/// Model files fetched besides the weights; the optional ones are skipped when absent.
const MODEL_FILES: [(&str, bool); 6] = [
    ("config.json", true),
    ("tokenizer.json", true),
    ("tokenizer_config.json", false),
    ("special_tokens_map.json", false),
    ("generation_config.json", false),
    ("chat_template.jinja", false),
];

/// True when `name` has the shape of a Hub id (`owner/name`, no path syntax).
pub fn looks_like_hub_id(name: &str) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    parts.len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
}

#[cfg(feature = "hub")]
/// The Hub cache this process reads and writes.
fn cache() -> Cache {
    match std::env::var_os("HF_HUB_CACHE") {
        Some(dir) => Cache::new(PathBuf::from(dir)),
        None => Cache::from_env(),
    }
}

#[cfg(feature = "hub")]
fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}

#[cfg(feature = "hub")]
fn repo(id: &str, kind: HubKind) -> Repo {
    match kind {
        HubKind::Model => Repo::model(id.to_string()),
        HubKind::Dataset => Repo::dataset(id.to_string()),
    }
}

#[cfg(feature = "hub")]
/// The cached snapshot of `id` at `refs/main`, when it holds what a run needs.
pub fn cached_snapshot(cache: &Cache, id: &str, kind: HubKind) -> Option<PathBuf> {
    let repo_dir = cache.path().join(repo(id, kind).folder_name());
    let commit = std::fs::read_to_string(repo_dir.join("refs").join("main")).ok()?;
    let snapshot = repo_dir.join("snapshots").join(commit.trim());
    is_complete(&snapshot, kind).then_some(snapshot)
}

#[cfg(feature = "hub")]
fn is_complete(dir: &Path, kind: HubKind) -> bool {
    match kind {
        HubKind::Model => {
            dir.join("config.json").is_file()
                && (dir.join("model.safetensors").is_file()
                    || dir.join("model.safetensors.index.json").is_file())
        }
        HubKind::Dataset => dir.is_dir(),
    }
}

#[cfg(feature = "hub")]
/// Resolves a Hub id to a local snapshot directory: from the cache, else by download.
pub fn resolve(id: &str, kind: HubKind) -> anyhow::Result<PathBuf> {
    let cache = cache();
    if let Some(snapshot) = cached_snapshot(&cache, id, kind) {
        return Ok(snapshot);
    }
    if offline() {
        bail!(
            "`{id}` is not in the Hugging Face cache ({}) and HF_HUB_OFFLINE is set",
            cache.path().display()
        );
    }
    download(cache, id, kind)
        .with_context(|| format!("downloading `{id}` from the Hugging Face Hub"))
}

#[cfg(feature = "hub")]
fn download(cache: Cache, id: &str, kind: HubKind) -> anyhow::Result<PathBuf> {
    let api = ApiBuilder::from_cache(cache)
        .with_progress(true)
        .build()
        .context("starting the Hub client")?;
    let remote = api.repo(repo(id, kind));
    let info = remote.info().context("listing the repository")?;
    let files: Vec<&str> = info.siblings.iter().map(|s| s.rfilename.as_str()).collect();
    let wanted: Vec<&str> = match kind {
        HubKind::Model => model_files(&files, id)?,
        HubKind::Dataset => dataset_files(&files, id)?,
    };
    let mut snapshot = None;
    for file in wanted {
        let local = remote
            .get(file)
            .with_context(|| format!("fetching {file}"))?;
        // `get` returns `snapshots/<commit>/<file>`; the snapshot is that prefix.
        let depth = Path::new(file).components().count();
        snapshot = local.ancestors().nth(depth).map(Path::to_path_buf);
    }
    snapshot.ok_or_else(|| anyhow!("`{id}`: nothing to fetch"))
}

#[cfg(feature = "hub")]
/// The model files to fetch out of the repository listing `files`.
fn model_files<'a>(files: &[&'a str], id: &str) -> anyhow::Result<Vec<&'a str>> {
    let has = |name: &str| files.contains(&name);
    let mut wanted = Vec::new();
    for (name, required) in MODEL_FILES {
        match files.iter().find(|f| **f == name) {
            Some(f) => wanted.push(*f),
            None if required => bail!("`{id}` has no {name}"),
            None => {}
        }
    }
    if has("model.safetensors") {
        wanted.extend(files.iter().filter(|f| **f == "model.safetensors"));
    } else if has("model.safetensors.index.json") {
        wanted.extend(files.iter().filter(|f| {
            **f == "model.safetensors.index.json"
                || (f.starts_with("model-") && f.ends_with(".safetensors"))
        }));
    } else {
        bail!(
            "`{id}` has no safetensors weights (model.safetensors or model.safetensors.index.json); \
             pickle checkpoints (*.bin) are never loaded"
        );
    }
    Ok(wanted)
}

#[cfg(feature = "hub")]
/// The data files to fetch out of the repository listing `files`.
fn dataset_files<'a>(files: &[&'a str], id: &str) -> anyhow::Result<Vec<&'a str>> {
    let wanted: Vec<&str> = files
        .iter()
        .copied()
        .filter(|f| f.ends_with(".parquet") || f.ends_with(".jsonl"))
        .collect();
    if wanted.is_empty() {
        bail!("`{id}` has no Parquet or JSONL files");
    }
    Ok(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_are_told_from_paths() {
        assert!(looks_like_hub_id("HuggingFaceTB/SmolLM2-135M"));
        assert!(looks_like_hub_id("trl-lib/ultrafeedback_binarized"));
        assert!(!looks_like_hub_id("./models/x"));
        assert!(!looks_like_hub_id("/abs/path"));
        assert!(!looks_like_hub_id("runs/demo/final"));
        assert!(!looks_like_hub_id("single"));
        assert!(!looks_like_hub_id("../x"));
    }

    #[cfg(feature = "hub")]
    #[test]
    fn model_files_prefer_single_safetensors_and_refuse_pickle() {
        let files = [
            "config.json",
            "tokenizer.json",
            "model.safetensors",
            "pytorch_model.bin",
            "README.md",
        ];
        let wanted = model_files(&files, "a/b").unwrap();
        assert_eq!(
            wanted,
            ["config.json", "tokenizer.json", "model.safetensors"]
        );

        let sharded = [
            "config.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "model.safetensors.index.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
        ];
        assert_eq!(model_files(&sharded, "a/b").unwrap().len(), 6);

        let pickle_only = ["config.json", "tokenizer.json", "pytorch_model.bin"];
        let err = model_files(&pickle_only, "a/b").unwrap_err().to_string();
        assert!(err.contains("no safetensors"), "{err}");
        assert!(err.contains("never loaded"), "{err}");
    }

    #[cfg(feature = "hub")]
    #[test]
    fn dataset_files_are_the_data_files() {
        let files = [
            "README.md",
            "data/train_prefs-00000-of-00001.parquet",
            "data/test_prefs-00000-of-00001.parquet",
            ".gitattributes",
        ];
        assert_eq!(dataset_files(&files, "a/b").unwrap().len(), 2);
        assert!(dataset_files(&["README.md"], "a/b").is_err());
    }

    #[cfg(feature = "hub")]
    #[test]
    fn the_cached_snapshot_is_found_at_refs_main() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_path_buf());
        let repo_dir = dir.path().join("models--owner--tiny");
        let snapshot = repo_dir.join("snapshots").join("0123abcd");
        std::fs::create_dir_all(&snapshot).unwrap();
        std::fs::create_dir_all(repo_dir.join("refs")).unwrap();
        std::fs::write(repo_dir.join("refs").join("main"), "0123abcd").unwrap();
        // Without weights the snapshot is incomplete and not used.
        std::fs::write(snapshot.join("config.json"), "{}").unwrap();
        assert_eq!(cached_snapshot(&cache, "owner/tiny", HubKind::Model), None);
        std::fs::write(snapshot.join("model.safetensors"), "").unwrap();
        assert_eq!(
            cached_snapshot(&cache, "owner/tiny", HubKind::Model),
            Some(snapshot)
        );
        assert_eq!(
            cached_snapshot(&cache, "owner/tiny", HubKind::Dataset),
            None
        );
    }
}
