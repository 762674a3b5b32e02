//! Model and dataset names that are Hugging Face Hub ids (`owner/name`), resolved to a local
//! snapshot directory the way `transformers` and `datasets` do: the local Hub cache first, then a
//! download with the `hf-hub` crate unless offline.
//!
//! The environment is read as `huggingface_hub` reads it ([`HubEnv`]): `HF_HOME` (default
//! `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`), `HF_HUB_CACHE` (default
//! `$HF_HOME/hub`), `HF_TOKEN` (else the file `HF_TOKEN_PATH`, default `$HF_HOME/token`, which
//! `hf auth login` writes), sent as `Authorization: Bearer`, `HF_ENDPOINT` (a mirror), and
//! `HF_HUB_OFFLINE` (`1`, `ON`, `YES`, `TRUE`: only the cache is read). A revision (a branch,
//! tag or commit; `model_revision`) pins what is read, in the cache and on the Hub.
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

/// The Hub's address when `HF_ENDPOINT` is unset.
#[cfg(feature = "hub")]
const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// The Hub settings of the environment, read as `huggingface_hub` (`constants.py`) reads them.
#[cfg(feature = "hub")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubEnv {
    /// `HF_ENDPOINT` without a trailing `/`, else the Hub.
    pub endpoint: String,
    /// `HF_HUB_CACHE` (or the older `HUGGINGFACE_HUB_CACHE`), else `$HF_HOME/hub`.
    pub cache: PathBuf,
    /// `HF_TOKEN` (or the older `HUGGING_FACE_HUB_TOKEN`), else the token file.
    pub token: Option<String>,
    /// `HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`) is true.
    pub offline: bool,
}

#[cfg(feature = "hub")]
impl HubEnv {
    /// From this process's environment.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// From `var`, which looks a variable up (empty values count as unset).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        let home = var("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_else(|| PathBuf::from(".cache"))
                .join("huggingface")
        });
        let cache = var("HF_HUB_CACHE")
            .or_else(|| var("HUGGINGFACE_HUB_CACHE"))
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join("hub"));
        let token_file = var("HF_TOKEN_PATH")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join("token"));
        let token = var("HF_TOKEN")
            .or_else(|| var("HUGGING_FACE_HUB_TOKEN"))
            .or_else(|| {
                std::fs::read_to_string(token_file)
                    .ok()
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
            });
        let endpoint = var("HF_ENDPOINT")
            .map(|e| e.trim_end_matches('/').to_string())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.into());
        // huggingface_hub's `_is_true`.
        let is_true = |v: String| matches!(v.to_uppercase().as_str(), "1" | "ON" | "YES" | "TRUE");
        let offline = var("HF_HUB_OFFLINE")
            .or_else(|| var("TRANSFORMERS_OFFLINE"))
            .is_some_and(is_true);
        Self {
            endpoint,
            cache,
            token,
            offline,
        }
    }
}

#[cfg(feature = "hub")]
fn repo(id: &str, kind: HubKind, revision: &str) -> Repo {
    let kind = match kind {
        HubKind::Model => hf_hub::RepoType::Model,
        HubKind::Dataset => hf_hub::RepoType::Dataset,
    };
    Repo::with_revision(id.to_string(), kind, revision.to_string())
}

#[cfg(feature = "hub")]
/// Whether `revision` is a full commit hash (then the snapshot is named by it, no ref is read).
fn is_commit(revision: &str) -> bool {
    revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(feature = "hub")]
/// The cached snapshot of `id` at `revision` (a commit, or a branch or tag read from `refs/`),
/// when it holds what a run needs.
pub fn cached_snapshot(cache: &Cache, id: &str, kind: HubKind, revision: &str) -> Option<PathBuf> {
    let repo_dir = cache.path().join(repo(id, kind, revision).folder_name());
    let commit = if is_commit(revision) {
        revision.to_string()
    } else {
        std::fs::read_to_string(repo_dir.join("refs").join(revision)).ok()?
    };
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
/// Resolves a Hub id at `revision` (unset: `main`) to a local snapshot directory: from the
/// cache, else by download, with the settings of `env`.
pub fn resolve(
    id: &str,
    kind: HubKind,
    revision: Option<&str>,
    env: &HubEnv,
) -> anyhow::Result<PathBuf> {
    let revision = revision.unwrap_or("main");
    let cache = Cache::new(env.cache.clone());
    if let Some(snapshot) = cached_snapshot(&cache, id, kind, revision) {
        return Ok(snapshot);
    }
    if env.offline {
        bail!(
            "`{id}` (revision {revision}) is not in the Hugging Face cache ({}) and \
             HF_HUB_OFFLINE is set",
            cache.path().display()
        );
    }
    download(cache, id, kind, revision, env).with_context(|| {
        format!(
            "downloading `{id}` (revision {revision}) from {}",
            env.endpoint
        )
    })
}

#[cfg(feature = "hub")]
fn download(
    cache: Cache,
    id: &str,
    kind: HubKind,
    revision: &str,
    env: &HubEnv,
) -> anyhow::Result<PathBuf> {
    let api = ApiBuilder::from_cache(cache)
        .with_endpoint(env.endpoint.clone())
        .with_token(env.token.clone())
        .with_progress(true)
        .build()
        .context("starting the Hub client")?;
    let remote = api.repo(repo(id, kind, revision));
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
        assert_eq!(
            cached_snapshot(&cache, "owner/tiny", HubKind::Model, "main"),
            None
        );
        std::fs::write(snapshot.join("model.safetensors"), "").unwrap();
        assert_eq!(
            cached_snapshot(&cache, "owner/tiny", HubKind::Model, "main"),
            Some(snapshot.clone())
        );
        assert_eq!(
            cached_snapshot(&cache, "owner/tiny", HubKind::Dataset, "main"),
            None
        );
        // Another branch has no ref; a full commit hash names its snapshot directly.
        assert_eq!(
            cached_snapshot(&cache, "owner/tiny", HubKind::Model, "v2"),
            None
        );
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let pinned = repo_dir.join("snapshots").join(commit);
        std::fs::create_dir_all(&pinned).unwrap();
        std::fs::write(pinned.join("config.json"), "{}").unwrap();
        std::fs::write(pinned.join("model.safetensors"), "").unwrap();
        assert_eq!(
            cached_snapshot(&cache, "owner/tiny", HubKind::Model, commit),
            Some(pinned)
        );
    }

    #[cfg(feature = "hub")]
    #[test]
    fn the_environment_is_read_as_huggingface_hub_reads_it() {
        let env = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            HubEnv::from_vars(move |name| {
                vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
            })
        };
        let home = tempfile::tempdir().unwrap();
        let hf_home = home.path().join("hf");
        let defaults = env(&[("HOME", home.path().to_str().unwrap())]);
        assert_eq!(defaults.endpoint, "https://huggingface.co");
        assert_eq!(defaults.cache, home.path().join(".cache/huggingface/hub"));
        assert_eq!((defaults.token.as_deref(), defaults.offline), (None, false));

        std::fs::create_dir_all(&hf_home).unwrap();
        std::fs::write(hf_home.join("token"), "hf_from_file\n").unwrap();
        let hf_home_str = hf_home.to_str().unwrap();
        let from_home = env(&[("HF_HOME", hf_home_str), ("HF_ENDPOINT", "http://mirror/")]);
        assert_eq!(from_home.cache, hf_home.join("hub"));
        assert_eq!(from_home.token.as_deref(), Some("hf_from_file"));
        assert_eq!(from_home.endpoint, "http://mirror");

        let explicit = env(&[
            ("HF_HOME", hf_home_str),
            ("HF_TOKEN", "hf_env"),
            ("HF_HUB_CACHE", "/c"),
            ("HF_HUB_OFFLINE", "yes"),
        ]);
        assert_eq!(explicit.token.as_deref(), Some("hf_env"));
        assert_eq!(explicit.cache, PathBuf::from("/c"));
        assert!(explicit.offline);
        for (value, offline) in [
            ("1", true),
            ("ON", true),
            ("true", true),
            ("0", false),
            ("no", false),
            ("", false),
        ] {
            assert_eq!(
                env(&[("HF_HUB_OFFLINE", value)]).offline,
                offline,
                "{value}"
            );
        }
    }
}
