//! `orpo`: ORPO fine-tuning of Llama-family models from the command line.
//!
//! Exit codes: 0 success, 2 usage or configuration error, 1 runtime error. Errors print one
//! message, never a backtrace.

mod commands;
mod device;
mod doctor;
mod hub;
mod log;

use std::process::ExitCode;

/// mimalloc for small blocks (tokenization allocates many small strings and vectors; glibc's
/// malloc/free took ~35% of data preparation) and glibc's non-trimming heap for large ones
/// (training frees and reallocates the same large buffers every step; fresh `mmap`s cost 8% of a
/// CPU step, mimalloc's decommits more). See the `orpo-alloc` crate and docs/benchmarks.md.
#[global_allocator]
static GLOBAL: orpo_alloc::TrainingAllocator = orpo_alloc::TrainingAllocator;

use clap::{Parser, Subcommand};

/// ORPO (Odds Ratio Preference Optimization) fine-tuning on burn.
#[derive(Parser, Debug)]
#[command(name = "orpo", version, about)]
struct Cli {
    /// Backend to run on: cpu, wgpu, cuda or cuda:N (among those compiled in).
    #[arg(long, global = true, default_value = "cpu")]
    device: String,
    /// Print warnings and errors only (no progress lines or bars). RUST_LOG, when set, decides
    /// instead (e.g. RUST_LOG=orpo_train=debug).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Print debug events of the orpo crates too.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train with ORPO from a YAML config.
    Train {
        /// The YAML config (keys of TRL's ORPOConfig).
        #[arg(long)]
        config: String,
        /// Override a config key: KEY=VALUE (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Continue from the latest checkpoint in output_dir.
        #[arg(long)]
        resume: bool,
        /// Data-parallel training over several devices, e.g. `cuda:0,cuda:1` (replaces
        /// --device): per_device_train_batch_size pairs on each, gradients summed on the first.
        #[arg(long, value_delimiter = ',', value_name = "DEVICE,DEVICE,...")]
        devices: Vec<String>,
        /// The training loop: `orpo` (default) or `burn-train` (burn-train's Learner and
        /// dashboard, whole epochs); the same as `--set learner=...`.
        #[arg(long, value_name = "orpo|burn-train")]
        learner: Option<String>,
    },
    /// Evaluate a model on a preference split; prints the eval_ metrics as JSON (last line).
    Eval {
        /// A Hugging Face model directory.
        #[arg(long)]
        model: String,
        /// Dataset path.
        #[arg(long)]
        dataset: String,
        /// Split name (default: test).
        #[arg(long)]
        split: Option<String>,
        /// Override a config key (max_length, beta, per_device_eval_batch_size, ...).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Generate a completion for a prompt (chat template applied).
    Generate {
        /// A Hugging Face model directory (with tokenizer files).
        #[arg(long)]
        model: String,
        /// The user message.
        #[arg(long)]
        prompt: String,
        /// Most new tokens.
        #[arg(long, default_value_t = 64)]
        max_new_tokens: usize,
        /// Sampling temperature; 0 is greedy.
        #[arg(long, default_value_t = 0.0)]
        temperature: f32,
        /// Nucleus sampling threshold.
        #[arg(long)]
        top_p: Option<f32>,
        /// Keep the k most likely tokens.
        #[arg(long)]
        top_k: Option<usize>,
        /// Sampling seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Dataset tools.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Write a Hugging Face model directory from a checkpoint (a LoRA checkpoint: its PEFT
    /// adapter directory, or with --merge the base model with the adapter merged in).
    Export {
        /// A checkpoint-<step> directory.
        #[arg(long)]
        checkpoint: String,
        /// The output directory.
        #[arg(long)]
        out: String,
        /// LoRA checkpoints: write the merged model instead of the adapter.
        #[arg(long)]
        merge: bool,
        /// LoRA checkpoints: the base model directory (default: the adapter's
        /// `base_model_name_or_path`).
        #[arg(long)]
        base: Option<String>,
        /// The type of the written weights. safetensors: f32, bf16 or f16 (default: the type
        /// the checkpoint's weights are stored in, per its config.json; f32 if it says none).
        /// gguf: f16 (default), q8_0, bf16 or f32. A checkpoint of a bf16 / f16 run is written
        /// from its f32 master weights.
        #[arg(long)]
        dtype: Option<String>,
        /// `safetensors`: a Hugging Face model directory; `gguf`: one GGUF file for llama.cpp
        /// and its loaders (--out names the .gguf file; LoRA adapters are merged; the
        /// checkpoint's tokenizer.json is needed).
        #[arg(long, default_value = "safetensors")]
        format: commands::ExportFormat,
        /// safetensors: split the weights into shards of at most this size ("5GB", "500MB",
        /// or bytes) with model.safetensors.index.json, as transformers does.
        #[arg(long, default_value = "5GB")]
        max_shard_size: String,
    },
    /// Print every config key with its default and meaning (YAML; the acting keys parse to the
    /// defaults, the keys with no effect here are commented out).
    Config {
        /// Print the Markdown table of docs/config.md instead.
        #[arg(long)]
        markdown: bool,
    },
    /// Draw the plots of a run from its metrics.jsonl into RUN_DIR/plots.
    Plot {
        /// The run's output_dir.
        run_dir: String,
    },
    /// Check what the GPU backend needs on this machine: the CUDA driver and devices (name,
    /// memory, compute capability), NVRTC, the CUDA headers and NCCL; exit 1 when the device of
    /// --device (cuda:0 by default) cannot run.
    Doctor,
}

#[derive(Subcommand, Debug)]
enum DataCommand {
    /// Summarise a dataset: counts, token length percentiles, truncation, duplicates.
    Inspect {
        /// Dataset path.
        #[arg(long)]
        dataset: String,
        /// Tokenizer directory (token statistics need one).
        #[arg(long)]
        tokenizer: Option<String>,
        /// Split name (default: every split).
        #[arg(long)]
        split: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Override tokenization keys (max_length, max_prompt_length, ...).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("unknown panic");
        eprintln!("orpo: internal error: {message}");
    }));
    let cli = Cli::parse();
    log::install(match (cli.quiet, cli.verbose) {
        (true, _) => log::Verbosity::Quiet,
        (_, true) => log::Verbosity::Verbose,
        _ => log::Verbosity::Normal,
    });
    let result = std::panic::catch_unwind(|| run(cli));
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(commands::Failure::Usage(e))) => {
            eprintln!("orpo: error: {e:#}");
            ExitCode::from(2)
        }
        Ok(Err(commands::Failure::Runtime(e))) => {
            eprintln!("orpo: error: {e:#}");
            ExitCode::from(1)
        }
        Err(_) => ExitCode::from(1),
    }
}

fn run(cli: Cli) -> Result<(), commands::Failure> {
    let device = device::parse_device(&cli.device).map_err(commands::Failure::Usage)?;
    // CUDA's driver, devices, NVRTC and headers are checked before burn opens a device, whose
    // own failures are panics on its device thread (src/doctor.rs).
    let cuda_specs: Vec<&str> = match &cli.command {
        Command::Train { devices, .. } if !devices.is_empty() => {
            devices.iter().map(String::as_str).collect()
        }
        Command::Data { .. } | Command::Plot { .. } | Command::Config { .. } | Command::Doctor => {
            Vec::new()
        }
        _ => vec![cli.device.as_str()],
    };
    doctor::preflight(&cuda_specs).map_err(commands::Failure::Runtime)?;
    match cli.command {
        Command::Train {
            config,
            mut set,
            resume,
            devices,
            learner,
        } => {
            if let Some(learner) = learner {
                set.push(format!("learner={learner}"));
            }
            let devices = if devices.is_empty() {
                vec![device]
            } else {
                devices
                    .iter()
                    .map(|d| device::parse_device(d).map_err(commands::Failure::Usage))
                    .collect::<Result<_, _>>()?
            };
            commands::train(&config, &set, resume, devices)
        }
        Command::Eval {
            model,
            dataset,
            split,
            set,
        } => commands::eval(&model, &dataset, split.as_deref(), &set, device),
        Command::Generate {
            model,
            prompt,
            max_new_tokens,
            temperature,
            top_p,
            top_k,
            seed,
        } => {
            let config = orpo_model::GenerationConfig {
                max_new_tokens,
                temperature,
                top_k,
                top_p,
                seed,
                eos_token_ids: Vec::new(),
            };
            commands::generate(&model, &prompt, config, device)
        }
        Command::Data {
            command:
                DataCommand::Inspect {
                    dataset,
                    tokenizer,
                    split,
                    json,
                    set,
                },
        } => commands::inspect(&dataset, tokenizer.as_deref(), split.as_deref(), json, &set),
        Command::Export {
            checkpoint,
            out,
            merge,
            base,
            dtype,
            format,
            max_shard_size,
        } => commands::export(
            &checkpoint,
            &out,
            merge,
            base.as_deref(),
            commands::ExportOptions {
                dtype: dtype.as_deref(),
                format,
                max_shard_size: &max_shard_size,
            },
            device,
        ),
        Command::Plot { run_dir } => commands::plot(&run_dir),
        Command::Config { markdown } => commands::config(markdown),
        Command::Doctor => doctor::doctor(&cli.device).map_err(commands::Failure::Runtime),
    }
}
