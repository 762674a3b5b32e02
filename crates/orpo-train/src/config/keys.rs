//! Every key a config may hold: the keys that act, TRL's other names for them, and the keys of
//! TRL's parser (ORPOConfig, transformers' TrainingArguments, ModelConfig, ScriptArguments, TRL
//! 1.x and 0.2x) that have no effect here. One table serves the parser, `orpo config` and the
//! key table of docs/config.md ([`markdown_table`]), so that the three cannot drift apart.
//!
//! `tests/fixtures/config/trl_keys.json` (written by `scripts/dump_trl_config_keys.py` from the
//! real packages) holds TRL's key lists; `crates/orpo-train/tests/trl_keys.rs` checks that every
//! one of them parses.

/// What a key does here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A field of [`OrpoConfig`](super::OrpoConfig).
    Acts,
    /// Another name of the key it holds (TRL's or transformers' older names).
    Alias(&'static str),
    /// Accepted and ignored; the keys of this kind that a config sets are named in one warning.
    NoEffect,
    /// Accepted at the values listed (TRL's default), which change nothing; any other value
    /// would change the result in TRL and is refused, naming the key, rather than ignored.
    DefaultOnly(&'static [&'static str]),
}

/// One key of the table.
#[derive(Debug, Clone, Copy)]
pub struct KeyDoc {
    /// The YAML key.
    pub name: &'static str,
    /// What it does here.
    pub kind: KeyKind,
    /// TRL's default for the keys that do not act (YAML); the acting keys' defaults come from
    /// `OrpoConfig::default()`.
    pub trl_default: &'static str,
    /// One line: its meaning, or why it has no effect here.
    pub meaning: &'static str,
}

const fn acts(name: &'static str, meaning: &'static str) -> KeyDoc {
    KeyDoc {
        name,
        kind: KeyKind::Acts,
        trl_default: "",
        meaning,
    }
}

const fn alias(name: &'static str, target: &'static str) -> KeyDoc {
    KeyDoc {
        name,
        kind: KeyKind::Alias(target),
        trl_default: "null",
        meaning: "",
    }
}

const fn no_effect(name: &'static str, trl_default: &'static str, meaning: &'static str) -> KeyDoc {
    KeyDoc {
        name,
        kind: KeyKind::NoEffect,
        trl_default,
        meaning,
    }
}

const fn default_only(
    name: &'static str,
    accepted: &'static [&'static str],
    meaning: &'static str,
) -> KeyDoc {
    KeyDoc {
        name,
        kind: KeyKind::DefaultOnly(accepted),
        trl_default: accepted[0],
        meaning,
    }
}

/// The acting keys in the order `orpo config` and the docs list them, then the others by name.
pub static KEYS: &[KeyDoc] = &[
    acts(
        "model_name_or_path",
        "a local model directory or a Hugging Face Hub id",
    ),
    acts(
        "model_revision",
        "the Hub revision (branch, tag or commit) of Hub ids; unset: main",
    ),
    acts(
        "model_config",
        "a config.json to initialise a fresh model from, instead of pretrained weights",
    ),
    acts(
        "tokenizer_name_or_path",
        "the tokenizer directory or Hub id; unset: model_name_or_path",
    ),
    acts(
        "dataset",
        "a dataset path (Parquet file or folder, Hugging Face layout, JSONL) or Hub id",
    ),
    acts("dataset_train_split", "the training split"),
    acts(
        "dataset_test_split",
        "the evaluation split (evaluation is skipped when the dataset has none)",
    ),
    acts(
        "test_size",
        "without a test split: hold out this count (or fraction in (0,1)) of train, seeded shuffle",
    ),
    acts(
        "datasets",
        "several datasets for training: [{path, split, fraction, columns}] (TRL's mixture)",
    ),
    acts(
        "chat_template",
        "replaces the tokenizer's template: a template, a file, or chatml/llama3/zephyr/gemma/phi3",
    ),
    acts(
        "prompt_column",
        "the column holding the prompt (absent column: implicit prompt)",
    ),
    acts(
        "chosen_column",
        "the column holding the preferred completion",
    ),
    acts(
        "rejected_column",
        "the column holding the rejected completion",
    ),
    acts(
        "skip_bad_rows",
        "skip and count bad rows instead of stopping with an error",
    ),
    acts(
        "output_dir",
        "where checkpoints, metrics, plots and final/ go",
    ),
    acts(
        "overwrite_output_dir",
        "start over in an output_dir that already holds a run",
    ),
    acts(
        "resume_from_checkpoint",
        "`true`: continue from the latest checkpoint in output_dir; a path: from that checkpoint",
    ),
    acts("seed", "seed of initialisation, shuffling and sampling"),
    acts(
        "train_sampling_strategy",
        "`random` (shuffled each epoch), `sequential`, or `group_by_length` (batches of similar lengths)",
    ),
    acts("learning_rate", "the peak learning rate"),
    acts(
        "optim",
        "the optimizer: PyTorch's AdamW (`adamw_torch`, `adamw_torch_fused`, ...); others are refused",
    ),
    acts(
        "per_device_train_batch_size",
        "pairs per micro-batch and device",
    ),
    acts("per_device_eval_batch_size", "pairs per evaluation batch"),
    acts(
        "gradient_accumulation_steps",
        "micro-batches per optimizer step",
    ),
    acts(
        "num_train_epochs",
        "epochs (fractional allowed) when max_steps is not positive",
    ),
    acts(
        "max_steps",
        "total optimizer steps; wins over num_train_epochs when positive",
    ),
    acts("warmup_ratio", "warm-up as a fraction of the total steps"),
    acts(
        "warmup_steps",
        "warm-up steps (below 1: a fraction of the total steps); wins over warmup_ratio",
    ),
    acts(
        "lr_scheduler_type",
        "`linear`, `cosine`, `constant` or `constant_with_warmup`",
    ),
    acts(
        "weight_decay",
        "decoupled weight decay (not on biases and norm weights)",
    ),
    acts("adam_beta1", "AdamW β1"),
    acts("adam_beta2", "AdamW β2"),
    acts("adam_epsilon", "AdamW ε"),
    acts(
        "max_grad_norm",
        "clip the global gradient norm to this (0: no clipping)",
    ),
    acts(
        "skip_nonfinite_steps",
        "skip a step whose loss or gradient norm is not finite (else stop with an error)",
    ),
    acts(
        "gradient_checkpointing",
        "recompute memory-bound activations in the backward pass (burn's op-level checkpointing)",
    ),
    acts("bf16", "compute in bfloat16 (f32 master weights)"),
    acts(
        "fp16",
        "compute in float16 with dynamic loss scaling (f32 master weights)",
    ),
    acts(
        "max_shard_size",
        "the largest safetensors file of final/ (\"5GB\", \"500MB\" or bytes); larger models are sharded with model.safetensors.index.json",
    ),
    acts(
        "save_dtype",
        "the float type of the weights in checkpoints and final/: `f32`, `bf16` or `f16`; unset: the loaded model's",
    ),
    acts(
        "dtype",
        "the model's dtype (TRL's ModelConfig): `bfloat16` sets bf16, `float16` sets fp16, `auto`/`float32` change nothing",
    ),
    acts("beta", "λ, the weight of the odds-ratio term"),
    alias("orpo_alpha", "beta"),
    acts(
        "orpo_beta",
        "τ, an inverse temperature on the log odds (1.0: the paper and TRL)",
    ),
    acts(
        "nll_on_completion_only",
        "mask the prompt out of the NLL term (TRL includes it)",
    ),
    acts("max_length", "longest prompt + completion in tokens"),
    acts(
        "max_prompt_length",
        "longest prompt once a pair is truncated; unset: min(512, max_length / 2)",
    ),
    acts(
        "max_completion_length",
        "longest completion in tokens (unset: no own limit)",
    ),
    acts(
        "truncation_mode",
        "which end of an over-long prompt is kept: `keep_end` or `keep_start`",
    ),
    acts(
        "logits_chunk_size",
        "positions per chunk of the output head in the loss (memory against speed)",
    ),
    acts(
        "logging_steps",
        "log metrics every this many steps (below 1: a fraction of the total steps)",
    ),
    acts(
        "eval_strategy",
        "`no`, `steps` (every eval_steps) or `epoch`; unset: every eval_steps when set, and at the end",
    ),
    acts(
        "eval_steps",
        "evaluate every this many steps (below 1: a fraction of the total steps; unset with `steps`: logging_steps)",
    ),
    acts(
        "save_strategy",
        "`no` (no checkpoints), `steps` (every save_steps and at the end) or `epoch`",
    ),
    acts(
        "save_steps",
        "write a checkpoint every this many steps (below 1: a fraction of the total steps; 0: only at the end)",
    ),
    acts(
        "save_total_limit",
        "keep at most this many checkpoints (oldest deleted first)",
    ),
    acts(
        "max_eval_samples",
        "the most evaluation pairs used (unset: all)",
    ),
    acts("use_peft", "train LoRA adapters on frozen weights"),
    acts("lora_r", "LoRA rank"),
    acts(
        "lora_alpha",
        "LoRA alpha: updates are scaled by lora_alpha / lora_r",
    ),
    acts(
        "lora_dropout",
        "dropout on the adapters' input while training",
    ),
    acts(
        "lora_target_modules",
        "projections with adapters: names among q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, or `all-linear`; unset: q_proj, v_proj",
    ),
    acts(
        "use_rslora",
        "rank-stabilised LoRA: scale by lora_alpha / √lora_r",
    ),
    acts(
        "learner",
        "the training loop: `orpo` (step checkpoints, exact resume) or `burn-train` (burn-train's Learner, whole epochs)",
    ),
    acts(
        "lora_export",
        "what final/ of a LoRA run holds: `adapter`, `merged` or `both`",
    ),
    acts(
        "report_to",
        "where metrics also go: `none`, `tensorboard` (event files in logging_dir), `all` (= tensorboard here) or a list; other trackers are named in a warning",
    ),
    acts(
        "logging_dir",
        "TensorBoard's directory; unset: $TENSORBOARD_LOGGING_DIR, else output_dir/runs/<Mon DD_HH-MM-SS>_<host> (new per run)",
    ),
    acts(
        "generate_during_eval",
        "after each evaluation, greedy completions of the first per_device_eval_batch_size eval prompts go to output_dir/samples.jsonl",
    ),
    alias("revision", "model_revision"),
    no_effect(
        "accelerator_config",
        "null",
        "distributed launch (torch.distributed, DeepSpeed, FSDP, TPU); use --devices here",
    ),
    no_effect(
        "activation_checkpointing",
        "null",
        "a PyTorch speed or memory option",
    ),
    no_effect(
        "activation_checkpointing_kwargs",
        "null",
        "a PyTorch speed or memory option",
    ),
    default_only(
        "adafactor",
        &["false"],
        "Adafactor instead of AdamW; only AdamW runs here",
    ),
    no_effect(
        "attn_implementation",
        "null",
        "a PyTorch speed or memory option",
    ),
    no_effect(
        "auto_find_batch_size",
        "false",
        "a PyTorch speed or memory option",
    ),
    no_effect(
        "average_tokens_across_devices",
        "true",
        "distributed launch (torch.distributed, DeepSpeed, FSDP, TPU); use --devices here",
    ),
    no_effect(
        "batch_eval_metrics",
        "false",
        "Trainer evaluation loop; ORPO's eval metrics are computed in one pass here",
    ),
    no_effect(
        "bf16_full_eval",
        "false",
        "a PyTorch speed or memory option",
    ),
    no_effect(
        "bnb_4bit_quant_storage",
        "null",
        "a PyTorch speed or memory option",
    ),
    no_effect(
        "bnb_4bit_quant_type",
        "nf4",
        "a PyTorch speed or memory option",
    ),
    no_effect(
        "data_seed",
        "null",
        "the Trainer's sampler seed; `seed` orders the data here",
    ),
    no_effect(
        "dataloader_drop_last",
        "false",
        "PyTorch DataLoader; batches are built in-process here",
    ),
    no_effect(
        "dataloader_in_order",
        "true",
        "PyTorch DataLoader; batches are built in-process here",
    ),
    no_effect(
        "dataloader_multiprocessing_context",
        "null",
        "PyTorch DataLoader; batches are built in-process here",
    ),
    no_effect(
        "dataloader_num_workers",
        "0",
        "PyTorch DataLoader; batches are built in-process here",
    ),
    no_effect(
        "dataloader_persistent_workers",
        "false",
        "PyTorch DataLoader; batches are built in-process here",
    ),
    no_effect(
        "dataloader_pin_memory",
        "true",
        "PyTorch DataLoader; batches are built in-process here",
    ),
    no_effect(
        "dataloader_prefetch_factor",
        "null",
        "PyTorch DataLoader; batches are built in-process here",
    ),
    default_only(
        "dataset_config",
        &["null"],
        "a Hub dataset's configuration name; give the files' path instead",
    ),
    alias("dataset_name", "dataset"),
    alias("test_split_size", "test_size"),
    alias("val_set_size", "test_size"),
    no_effect(
        "dataset_num_proc",
        "null",
        "tokenization processes; data preparation here runs on every core (rayon)",
    ),
    no_effect(
        "dataset_streaming",
        "false",
        "streamed datasets; datasets are read whole here",
    ),
    no_effect(
        "ddp_backend",
        "null",
        "distributed launch (torch.distributed, DeepSpeed, FSDP, TPU); use --devices here",
    ),
    no_effect(
        "ddp_broadcast_buffers",
        "null",
        "distributed launch (torch.distributed, DeepSpeed, FSDP, TPU); use --devices here",
    ),
    no_effect(
        "ddp_bucket_cap_mb",
        "null",
        "distributed launch (torch.distributed, DeepSpeed, FSDP, TPU); use --devices here",
    ),
    no_effect(
        "ddp_find_unused_parameters",
        "null",
        "distributed launch (torch.distributed, DeepSpeed, FSDP, TPU); use --devices here",
    ),
    no_effect(
        "ddp_static_graph",
        "null",
        "distributed launch (torch.distributed, DeepSpeed, FSDP, TPU); use --devices here",
    ),
    no_effect(
        "ddp_timeout",
        "1800",
        "distributed launch (torch.distributed, DeepSpeed, FSDP, TPU); use --devices here",
    ),
    no_effect("debug", "''", "Trainer logging option"),
    no_effect(
        "deepspeed",
        "null",
        "distributed launch (torch.distributed, DeepSpeed, FSDP, TPU); use --devices here",
    ),
    no_effect(
        "disable_dropout",
        "true",
        "the models here run without dropout in training",
    ),
    no_effect("disable_tqdm", "null", "Trainer logging option"),
    no_effect(
        "do_eval",
        "false",
        "Trainer evaluation loop; ORPO's eval metrics are computed in one pass here",
    ),
    no_effect(
        "do_predict",
        "false",
        "Trainer evaluation loop; ORPO's eval metrics are computed in one pass here",
    ),
    no_effect(
        "do_train",
        "false",
        "Trainer evaluation loop; ORPO's eval metrics are computed in one pass here",
    ),
    no_effect(
        "enable_jit_checkpoint",
        "false",
        "a PyTorch speed or memory option",
    ),
    no_effect(
        "eval_accumulation_steps",
        "null",
        "Trainer evaluation loop; ORPO's eval metrics are computed in one pass here",
    ),
    no_effect(
        "eval_delay",
        "0",
        "Trainer evaluation loop; ORPO's eval metrics are computed in one pass here",
    ),
    no_effect(
        "eval_do_concat_batches",
        "true",
        "Trainer evaluation loop; ORPO's eval metrics are computed in one pass here",
    ),
    no_effect(
        "eval_on_start",
        "false",
        "Trainer evaluation loop; ORPO's eval metrics are computed in one pass here",
    ),
    no_effect(
        "eval_use_gather_object",
        "false",
        "Trainer evaluation loop; ORPO's eval metrics are computed in one pass here",
    ),
    no_effect("fp16_backend", "auto", "a PyTorch speed or memory option"),
    no_effect(
        "fp16_full_eval",
        "false",
        "a PyTorch speed or memory option",
    ),
    no_effect("fp16_opt_level", "O1", "a PyTorch speed or memory option"),
    no_effect(
        "fsdp",
        "null",
        "distributed launch (torch.distributed, DeepSpeed, FSDP, TPU); use --devices here",
    ),
    no_effect(
        "fsdp_config",
        "null",
        "distributed launch (torch.distributed, DeepSpeed, FSDP, TPU); use --devices here",
    ),
    no_effect(
        "fsdp_min_num_params",
        "0",
        "distributed launch (torch.distributed, DeepSpeed, FSDP, TPU); use --devices here",
    ),
    no_effect(
        "fsdp_transformer_layer_cls_to_wrap",
        "null",
        "distributed launch (torch.distributed, DeepSpeed, FSDP, TPU); use --devices here",
    ),
    no_effect(
        "full_determinism",
        "false",
        "PyTorch deterministic algorithms; runs here are deterministic already",
    ),
    no_effect(
        "gradient_checkpointing_kwargs",
        "null",
        "a PyTorch speed or memory option",
    ),
    no_effect(
        "gradient_checkpointing_use_reentrant",
        "false",
        "a PyTorch speed or memory option",
    ),
    no_effect(
        "greater_is_better",
        "null",
        "Trainer evaluation loop; ORPO's eval metrics are computed in one pass here",
    ),
    no_effect(
        "group_by_length",
        "false",
        "PyTorch DataLoader; batches are built in-process here",
    ),
    no_effect(
        "half_precision_backend",
        "auto",
        "a PyTorch speed or memory option",
    ),
    no_effect(
        "hub_always_push",
        "false",
        "Hub upload; upload final/ yourself (`hf upload`)",
    ),
    no_effect(
        "hub_model_id",
        "null",
        "Hub upload; upload final/ yourself (`hf upload`)",
    ),
    no_effect(
        "hub_private_repo",
        "null",
        "Hub upload; upload final/ yourself (`hf upload`)",
    ),
    no_effect(
        "hub_revision",
        "null",
        "Hub upload; upload final/ yourself (`hf upload`)",
    ),
    no_effect(
        "hub_strategy",
        "every_save",
        "Hub upload; upload final/ yourself (`hf upload`)",
    ),
    no_effect(
        "hub_token",
        "null",
        "Hub upload; upload final/ yourself (`hf upload`)",
    ),
    no_effect(
        "ignore_bias_buffers",
        "false",
        "DDP bias buffers; no DDP here",
    ),
    no_effect(
        "ignore_data_skip",
        "false",
        "resume without skipping seen batches; a resumed run here always continues the same order",
    ),
    no_effect(
        "include_for_metrics",
        "[]",
        "Trainer evaluation loop; ORPO's eval metrics are computed in one pass here",
    ),
    no_effect(
        "include_inputs_for_metrics",
        "false",
        "Trainer evaluation loop; ORPO's eval metrics are computed in one pass here",
    ),
    no_effect(
        "include_num_input_tokens_seen",
        "no",
        "Trainer logging option",
    ),
    no_effect(
        "include_tokens_per_second",
        "false",
        "Trainer logging option",
    ),
    no_effect(
        "is_encoder_decoder",
        "null",
        "encoder-decoder models; decoder-only models here",
    ),
    no_effect("jit_mode_eval", "false", "a PyTorch speed or memory option"),
    no_effect(
        "label_names",
        "null",
        "PyTorch DataLoader; batches are built in-process here",
    ),
    no_effect(
        "label_pad_token_id",
        "-100",
        "label padding; padded positions are masked here",
    ),
    no_effect(
        "label_smoothing_factor",
        "0.0",
        "Trainer's default loss; ORPO computes its own loss (no effect in TRL's ORPOTrainer either)",
    ),
    no_effect(
        "length_column_name",
        "length",
        "PyTorch DataLoader; batches are built in-process here",
    ),
    no_effect(
        "liger_kernel_config",
        "null",
        "a PyTorch speed or memory option",
    ),
    default_only(
        "load_best_model_at_end",
        &["false"],
        "final/ is the last step's model here",
    ),
    default_only(
        "load_in_4bit",
        &["false"],
        "bitsandbytes 4-bit weights (QLoRA); not implemented here",
    ),
    default_only(
        "load_in_8bit",
        &["false"],
        "bitsandbytes 8-bit weights; not implemented here",
    ),
    no_effect(
        "local_rank",
        "-1",
        "distributed launch (torch.distributed, DeepSpeed, FSDP, TPU); use --devices here",
    ),
    no_effect("log_level", "passive", "Trainer logging option"),
    no_effect(
        "log_level_replica",
        "warning",
        "distributed launch (torch.distributed, DeepSpeed, FSDP, TPU); use --devices here",
    ),
    no_effect(
        "log_on_each_node",
        "true",
        "distributed launch (torch.distributed, DeepSpeed, FSDP, TPU); use --devices here",
    ),
    no_effect("logging_first_step", "false", "Trainer logging option"),
    no_effect("logging_nan_inf_filter", "true", "Trainer logging option"),
    no_effect("logging_strategy", "steps", "Trainer logging option"),
    default_only(
        "lora_modules_to_save",
        &["null", "[]"],
        "extra trained modules beside LoRA; not implemented here",
    ),
    default_only(
        "lora_target_parameters",
        &["null", "[]"],
        "LoRA on parameters (MoE experts); not implemented here",
    ),
    default_only(
        "lora_task_type",
        &["CAUSAL_LM"],
        "PEFT task type; causal LMs only here",
    ),
    default_only(
        "lr_scheduler_kwargs",
        &["null", "{}"],
        "extra scheduler arguments; the schedules here take none",
    ),
    no_effect(
        "metric_for_best_model",
        "null",
        "Trainer evaluation loop; ORPO's eval metrics are computed in one pass here",
    ),
    no_effect(
        "model_init_kwargs",
        "null",
        "from_pretrained kwargs; models load from safetensors as they are",
    ),
    no_effect(
        "mp_parameters",
        "''",
        "distributed launch (torch.distributed, DeepSpeed, FSDP, TPU); use --devices here",
    ),
    default_only(
        "neftune_noise_alpha",
        &["null"],
        "NEFTune embedding noise; not implemented here",
    ),
    no_effect("no_cuda", "false", "a PyTorch speed or memory option"),
    default_only(
        "optim_args",
        &["null", "''"],
        "extra optimizer arguments; AdamW runs with adam_beta1/2, adam_epsilon, weight_decay",
    ),
    no_effect(
        "optim_target_modules",
        "null",
        "GaLore/APOLLO target modules; only AdamW runs here",
    ),
    no_effect(
        "padding_value",
        "null",
        "input padding; padded positions are masked here",
    ),
    no_effect(
        "parallelism_config",
        "null",
        "distributed launch (torch.distributed, DeepSpeed, FSDP, TPU); use --devices here",
    ),
    no_effect(
        "past_index",
        "-1",
        "Trainer evaluation loop; ORPO's eval metrics are computed in one pass here",
    ),
    alias("per_gpu_eval_batch_size", "per_device_eval_batch_size"),
    alias("per_gpu_train_batch_size", "per_device_train_batch_size"),
    no_effect(
        "prediction_loss_only",
        "false",
        "Trainer evaluation loop; ORPO's eval metrics are computed in one pass here",
    ),
    no_effect(
        "project",
        "huggingface",
        "experiment tracker; metrics go to metrics.jsonl, metrics.csv and plots/",
    ),
    default_only(
        "push_to_hub",
        &["false"],
        "Hub upload; upload final/ yourself (`hf upload`)",
    ),
    no_effect(
        "push_to_hub_model_id",
        "null",
        "Hub upload; upload final/ yourself (`hf upload`)",
    ),
    no_effect(
        "push_to_hub_organization",
        "null",
        "Hub upload; upload final/ yourself (`hf upload`)",
    ),
    no_effect(
        "push_to_hub_token",
        "null",
        "Hub upload; upload final/ yourself (`hf upload`)",
    ),
    no_effect(
        "ray_scope",
        "last",
        "distributed launch (torch.distributed, DeepSpeed, FSDP, TPU); use --devices here",
    ),
    no_effect(
        "remove_unused_columns",
        "true",
        "PyTorch DataLoader; batches are built in-process here",
    ),
    no_effect(
        "restore_callback_states_from_checkpoint",
        "false",
        "Trainer callback states; none here",
    ),
    no_effect(
        "run_name",
        "null",
        "experiment tracker; metrics go to metrics.jsonl, metrics.csv and plots/",
    ),
    no_effect(
        "save_on_each_node",
        "false",
        "distributed launch (torch.distributed, DeepSpeed, FSDP, TPU); use --devices here",
    ),
    no_effect(
        "save_only_model",
        "false",
        "checkpoints here always hold the optimizer state (for exact resume)",
    ),
    no_effect(
        "save_safetensors",
        "true",
        "weights are always written as safetensors here",
    ),
    no_effect(
        "skip_memory_metrics",
        "true",
        "a PyTorch speed or memory option",
    ),
    no_effect("tf32", "null", "a PyTorch speed or memory option"),
    no_effect("torch_compile", "false", "a PyTorch speed or memory option"),
    no_effect(
        "torch_compile_backend",
        "null",
        "a PyTorch speed or memory option",
    ),
    no_effect(
        "torch_compile_mode",
        "null",
        "a PyTorch speed or memory option",
    ),
    alias("torch_dtype", "dtype"),
    no_effect(
        "torch_empty_cache_steps",
        "null",
        "a PyTorch speed or memory option",
    ),
    no_effect("torchdynamo", "null", "a PyTorch speed or memory option"),
    no_effect(
        "tpu_metrics_debug",
        "false",
        "distributed launch (torch.distributed, DeepSpeed, FSDP, TPU); use --devices here",
    ),
    no_effect(
        "tpu_num_cores",
        "null",
        "distributed launch (torch.distributed, DeepSpeed, FSDP, TPU); use --devices here",
    ),
    no_effect(
        "trackio_bucket_id",
        "null",
        "experiment tracker; metrics go to metrics.jsonl, metrics.csv and plots/",
    ),
    no_effect(
        "trackio_space_id",
        "null",
        "experiment tracker; metrics go to metrics.jsonl, metrics.csv and plots/",
    ),
    no_effect(
        "trackio_static_space_id",
        "null",
        "experiment tracker; metrics go to metrics.jsonl, metrics.csv and plots/",
    ),
    no_effect(
        "trust_remote_code",
        "false",
        "remote model code; only built-in Llama-family code runs here",
    ),
    no_effect(
        "use_bnb_nested_quant",
        "false",
        "a PyTorch speed or memory option",
    ),
    no_effect("use_cache", "false", "a PyTorch speed or memory option"),
    no_effect("use_cpu", "false", "a PyTorch speed or memory option"),
    default_only("use_dora", &["false"], "DoRA adapters; plain LoRA here"),
    no_effect(
        "use_legacy_prediction_loop",
        "false",
        "Trainer evaluation loop; ORPO's eval metrics are computed in one pass here",
    ),
    no_effect(
        "use_liger_kernel",
        "false",
        "a PyTorch speed or memory option",
    ),
    no_effect(
        "use_mps_device",
        "false",
        "a PyTorch speed or memory option",
    ),
];

/// The entry of `name`, if any.
pub fn lookup(name: &str) -> Option<&'static KeyDoc> {
    KEYS.iter().find(|k| k.name == name)
}

/// Acting keys whose default is "unset" (derived from other keys) rather than the field's value.
const DERIVED_DEFAULT: [&str; 1] = ["max_prompt_length"];

/// One row of `orpo config` and of docs/config.md.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    /// The YAML key.
    pub name: &'static str,
    /// Its default, as YAML (`null`: unset).
    pub default: String,
    /// What it does here, one line.
    pub meaning: String,
    /// Whether it acts here (otherwise it is accepted for TRL's sake).
    pub acts: bool,
}

fn inline_yaml(value: &serde_yaml::Value) -> String {
    match value {
        serde_yaml::Value::String(s) if s.is_empty() => "''".into(),
        _ => serde_yaml::to_string(value)
            .expect("YAML values serialise")
            .trim()
            .replace('\n', " "),
    }
}

/// Every key with its default and meaning: the acting keys first (defaults from
/// `OrpoConfig::default()`), then the others by name (TRL's default).
pub fn rows() -> Vec<KeyRow> {
    let defaults = serde_yaml::to_value(super::OrpoConfig::default()).expect("config serialises");
    KEYS.iter()
        .map(|k| match k.kind {
            KeyKind::Acts => KeyRow {
                name: k.name,
                default: match defaults.get(k.name) {
                    Some(v) if !DERIVED_DEFAULT.contains(&k.name) => inline_yaml(v),
                    _ => "null".into(),
                },
                meaning: k.meaning.into(),
                acts: true,
            },
            KeyKind::Alias(target) => KeyRow {
                name: k.name,
                default: "null".into(),
                meaning: format!("another name of `{target}`"),
                acts: true,
            },
            KeyKind::NoEffect => KeyRow {
                name: k.name,
                default: k.trl_default.into(),
                meaning: format!("no effect here: {}", k.meaning),
                acts: false,
            },
            KeyKind::DefaultOnly(accepted) => KeyRow {
                name: k.name,
                default: k.trl_default.into(),
                meaning: format!("only {} (no effect): {}", accepted.join(" or "), k.meaning),
                acts: false,
            },
        })
        .collect()
}

/// `orpo config`: every key as a line of YAML with its meaning as a comment. The acting keys
/// are live lines (the text parses to the defaults); the others are commented out.
pub fn yaml_listing() -> String {
    let rows = rows();
    let width = rows
        .iter()
        .map(|r| r.name.len() + r.default.len() + 2)
        .max()
        .unwrap_or(0);
    let mut out = String::from(
        "# Every config key, its default and what it does (orpo config; docs/config.md).\n\
         # Keys that act here:\n",
    );
    let mut others = false;
    for row in &rows {
        if !row.acts && !others {
            out.push_str(
                "# Keys TRL's parser accepts that have no effect here (named in a warning):\n",
            );
            others = true;
        }
        let line = format!("{}: {}", row.name, row.default);
        let prefix = if row.acts { "" } else { "# " };
        out.push_str(&format!("{prefix}{line:<width$}  # {}\n", row.meaning));
    }
    out
}

/// The key table of docs/config.md.
pub fn markdown_table() -> String {
    let mut out = String::from("| key | default | what it does here |\n|---|---|---|\n");
    for row in rows() {
        out.push_str(&format!(
            "| `{}` | `{}` | {} |\n",
            row.name,
            row.default,
            row.meaning.replace('|', "\\|")
        ));
    }
    out
}
