//! ORPO inside burn-train: a burn user's `SupervisedTraining` / `Learner` setup, with the ORPO
//! step, TRL's metrics, orpo-train's AdamW and schedule. A tiny Llama learns the bundled
//! arithmetic preferences for two epochs, with burn-train's dashboard on a terminal.
//!
//! ```text
//! cargo run --release -p orpo-train --features burn-train --example burn_train
//! ```
//! Writes `runs/burn-train-example/` (burn-train's logs and checkpoints, `final/`).

use std::path::Path;

use burn::data::dataloader::DataLoaderBuilder;
use burn::tensor::Device;
use burn_train::{Learner, SupervisedTraining};
use orpo_data::{DataConfig, PreferenceDataset, PreferenceTokenizer};
use orpo_model::{DecoderConfig, DecoderForCausalLM, SaveDtype};
use orpo_train::learner::{
    OrpoBatcher, OrpoLearnerModel, OrpoLrScheduler, TrlNamesFileLogger, orpo_adamw, pair_dataset,
    register_metrics,
};
use orpo_train::optim::AdamWSettings;
use orpo_train::{OrpoConfig, SchedulerType, tokenize_config};

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = root.join("runs/burn-train-example");
    let (batch, epochs) = (16, 2);
    let config = OrpoConfig {
        learning_rate: 3e-3,
        lr_scheduler_type: SchedulerType::Cosine,
        beta: 1.0,
        max_length: 64,
        max_prompt_length: 48,
        ..Default::default()
    };

    // The data: PreferenceDataset tokenizes once; burn's Dataset / Batcher / DataLoader batch it.
    let tokenizer = PreferenceTokenizer::from_dir(root.join("datasets/arith-prefs/tokenizer"))?;
    let split = |name: &str| -> anyhow::Result<_> {
        let data = PreferenceDataset::load(
            root.join("datasets/arith-small-chat"),
            Some(name),
            &DataConfig::default(),
        )?;
        Ok(pair_dataset(
            data.tokenize(&tokenizer, &tokenize_config(&config))?.0,
        ))
    };
    let (train, valid) = (split("train")?, split("test")?);
    let steps = burn::data::dataset::Dataset::len(&train).div_ceil(batch) * epochs;
    let batcher = OrpoBatcher::new(tokenizer.padding_id(), batch, config.nll_on_completion_only);
    let train = DataLoaderBuilder::new(batcher.clone())
        .batch_size(batch)
        .shuffle(config.seed)
        .build(train);
    let valid = DataLoaderBuilder::new(batcher)
        .batch_size(batch)
        .build(valid);

    // The model and the learner.
    let device = Device::flex().autodiff();
    device.seed(config.seed);
    let model_config = DecoderConfig::from_file(root.join("configs/demo-model/config.json"))?;
    let model = DecoderForCausalLM::init(&model_config, &device);
    let training = SupervisedTraining::new(&out, train, valid)
        .num_epochs(epochs)
        .with_metric_logger(TrlNamesFileLogger::new(&out))
        .summary();
    let training = register_metrics(training);
    let model = OrpoLearnerModel::new(model, &config).with_interrupter(training.interrupter());
    let optim = orpo_adamw(AdamWSettings::default());
    let schedule = OrpoLrScheduler::from_config(&config, steps);
    let result = training.launch(Learner::new(model, optim, schedule));

    if let Some(error) = result.error {
        anyhow::bail!("training failed: {error}");
    }
    let model = result.model.into_model();
    model.save_pretrained(out.join("final"), SaveDtype::F32)?;
    println!("final model: {}", out.join("final").display());
    Ok(())
}
