//! The Hub path against a stand-in Hub: a small HTTP server on 127.0.0.1 that answers what
//! `hf-hub` asks (the repository listing at a revision, then each file's metadata and body), and
//! records every request. Checks that `HF_ENDPOINT` is where requests go, that `HF_TOKEN` (or
//! `$HF_HOME/token`) is sent as `Authorization: Bearer`, that `model_revision` pins the revision,
//! that the download lands in `$HF_HOME/hub`, and that `HF_HUB_OFFLINE=1` then reads the cache
//! with no server at all.
#![cfg(feature = "hub")]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::root;

const REPO: &str = "orpo-test/tiny-llama";
const COMMIT: &str = "5d2c7a4e9b1f03c8a6e2d4f7b9c1e3a5d7f9b2c4";

/// One request as the server saw it: the request line and the Authorization header.
#[derive(Debug, Clone)]
struct Seen {
    line: String,
    authorization: Option<String>,
}

/// A stand-in Hub serving `files` of one model repository at `revision`; stops when dropped.
struct FakeHub {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeHub {
    fn start(revision: &'static str, files: Vec<(String, Vec<u8>)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            // Bounded: the server ends by itself after a minute even if never stopped.
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => serve(stream, revision, &files, &seen2),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            port,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

/// Answers one request (one per connection: every response says `Connection: close`).
fn serve(stream: TcpStream, revision: &str, files: &[(String, Vec<u8>)], seen: &Mutex<Vec<Seen>>) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let line = line.trim_end().to_string();
    let (mut authorization, mut range) = (None, None);
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        let (name, value) = header.trim_end().split_once(':').unwrap_or(("", ""));
        match name.to_ascii_lowercase().as_str() {
            "authorization" => authorization = Some(value.trim().to_string()),
            "range" => range = Some(value.trim().to_string()),
            _ => {}
        }
    }
    seen.lock().unwrap().push(Seen {
        line: line.clone(),
        authorization,
    });
    let path = line.split(' ').nth(1).unwrap_or("").to_string();
    let mut stream = stream;
    let respond =
        |stream: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]| {
            let mut head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body);
        };
    if path == format!("/api/models/{REPO}/revision/{revision}") {
        let siblings: Vec<serde_json::Value> = files
            .iter()
            .map(|(name, _)| serde_json::json!({ "rfilename": name }))
            .chain([serde_json::json!({ "rfilename": "README.md" })])
            .collect();
        let body = serde_json::json!({ "sha": COMMIT, "siblings": siblings }).to_string();
        respond(
            &mut stream,
            "200 OK",
            &[("Content-Type", "application/json".into())],
            body.as_bytes(),
        );
        return;
    }
    let prefix = format!("/{REPO}/resolve/{revision}/");
    if let Some(name) = path.strip_prefix(&prefix)
        && let Some((_, body)) = files.iter().find(|(n, _)| n == name)
    {
        let headers = vec![
            ("ETag", format!("\"etag-{}\"", name.replace('/', "-"))),
            ("X-Repo-Commit", COMMIT.to_string()),
            (
                "Content-Range",
                format!("bytes 0-{}/{}", body.len().max(1) - 1, body.len()),
            ),
        ];
        if range.as_deref() == Some("bytes=0-0") {
            respond(
                &mut stream,
                "206 Partial Content",
                &headers,
                &body[..1.min(body.len())],
            );
        } else {
            respond(&mut stream, "200 OK", &headers, body);
        }
        return;
    }
    // The real Hub answers an unknown repository, revision or file with 404.
    respond(&mut stream, "404 Not Found", &[], b"not found");
}

/// The files of a tiny model repository: the training fixture's model and the arithmetic
/// tokenizer.
fn model_files() -> Vec<(String, Vec<u8>)> {
    let root = root();
    let model = root.join("tests/fixtures/train/model");
    let tokenizer = root.join("datasets/arith-prefs/tokenizer");
    [
        (model.join("config.json"), "config.json"),
        (model.join("model.safetensors"), "model.safetensors"),
        (tokenizer.join("tokenizer.json"), "tokenizer.json"),
        (
            tokenizer.join("tokenizer_config.json"),
            "tokenizer_config.json",
        ),
    ]
    .into_iter()
    .map(|(path, name)| (name.to_string(), std::fs::read(path).unwrap()))
    .collect()
}

/// `orpo eval --model REPO` on the local arithmetic test split, with `env` and `--set`s.
fn eval(env: &[(&str, &str)], set: &[&str]) -> (i32, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_orpo"));
    command
        .args([
            "eval",
            "--model",
            REPO,
            "--dataset",
            "datasets/arith-small-chat",
        ])
        .args(["--split", "test", "--set", "max_eval_samples=4"])
        .current_dir(root());
    for s in set {
        command.args(["--set", s]);
    }
    // Nothing of the caller's Hub settings or proxies reaches the child.
    for name in [
        "HF_HOME",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_TOKEN_PATH",
        "HF_ENDPOINT",
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    let out = command.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn snapshot(home: &Path) -> std::path::PathBuf {
    home.join("hub/models--orpo-test--tiny-llama/snapshots")
        .join(COMMIT)
}

#[test]
fn token_endpoint_and_revision_reach_the_hub_and_offline_reads_the_cache() {
    let home = tempfile::tempdir().unwrap();
    let home_str = home.path().to_str().unwrap();
    let hub = FakeHub::start("v1.0", model_files());
    let endpoint = hub.endpoint();
    let (code, stderr) = eval(
        &[
            ("HF_HOME", home_str),
            ("HF_ENDPOINT", &endpoint),
            ("HF_TOKEN", "hf_test_token"),
        ],
        &["model_revision=v1.0"],
    );
    assert_eq!(code, 0, "{stderr}");
    let seen = hub.seen();
    assert!(
        seen.iter()
            .any(|s| s.line == format!("GET /api/models/{REPO}/revision/v1.0 HTTP/1.1")),
        "the listing at the pinned revision: {seen:#?}"
    );
    for file in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(
            seen.iter()
                .any(|s| s.line.contains(&format!("/{REPO}/resolve/v1.0/{file} "))),
            "{file} at v1.0: {seen:#?}"
        );
    }
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() == Some("Bearer hf_test_token")),
        "every request carries the token: {seen:#?}"
    );
    assert!(snapshot(home.path()).join("model.safetensors").is_file());
    assert_eq!(
        std::fs::read_to_string(
            home.path()
                .join("hub/models--orpo-test--tiny-llama/refs/v1.0")
        )
        .unwrap()
        .trim(),
        COMMIT
    );

    // Another revision is another download; the token now comes from $HF_HOME/token, as
    // `hf auth login` leaves it.
    std::fs::write(home.path().join("token"), "hf_file_token\n").unwrap();
    drop(hub);
    let hub = FakeHub::start("main", model_files());
    let endpoint = hub.endpoint();
    let (code, stderr) = eval(&[("HF_HOME", home_str), ("HF_ENDPOINT", &endpoint)], &[]);
    assert_eq!(code, 0, "{stderr}");
    let seen = hub.seen();
    assert!(
        seen.iter()
            .any(|s| s.line == format!("GET /api/models/{REPO}/revision/main HTTP/1.1")),
        "{seen:#?}"
    );
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() == Some("Bearer hf_file_token")),
        "{seen:#?}"
    );
    // A revision the Hub does not have is an error naming it.
    let (code, stderr) = eval(
        &[("HF_HOME", home_str), ("HF_ENDPOINT", &endpoint)],
        &["revision=v9"],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("v9") && stderr.contains(REPO), "{stderr}");
    drop(hub);

    // Offline, with no server: the cached revisions, by branch name or by commit, and nothing
    // else.
    let by_commit = format!("revision={COMMIT}");
    for revision in [
        "model_revision=v1.0",
        "model_revision=main",
        by_commit.as_str(),
    ] {
        let (code, stderr) = eval(
            &[
                ("HF_HOME", home_str),
                ("HF_ENDPOINT", "http://127.0.0.1:9"),
                ("HF_HUB_OFFLINE", "1"),
            ],
            &[revision],
        );
        assert_eq!(code, 0, "{revision}: {stderr}");
    }
    let (code, stderr) = eval(
        &[("HF_HOME", home_str), ("HF_HUB_OFFLINE", "1")],
        &["model_revision=v2.0"],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("v2.0") && stderr.contains("HF_HUB_OFFLINE"),
        "{stderr}"
    );
}
