//! The learning-rate schedules of [`crate::schedule`] as burn's `LrScheduler`.

use burn::lr_scheduler::{LrScheduler, LrSchedulerRecord};
use burn::optim::LearningRate;

use crate::config::OrpoConfig;
use crate::schedule::LrSchedule;

/// transformers' schedule (warm-up, then constant, linear or cosine) stepped by burn-train.
///
/// burn-train calls `step` once before each optimizer update and uses the rate it returns for
/// that update, so the `k`-th call (0-based) returns `lr_at(k)`: the rate `OrpoTrainer` uses for
/// its `k`-th step. A warm-up starts at 0, which burn's own schedulers refuse and ours allows.
#[derive(Debug, Clone)]
pub struct OrpoLrScheduler {
    schedule: LrSchedule,
    step: usize,
}

impl OrpoLrScheduler {
    /// A scheduler at its first step.
    pub fn new(schedule: LrSchedule) -> Self {
        Self { schedule, step: 0 }
    }

    /// The schedule of `config` for a run of `total_steps` optimizer steps: `warmup_steps`, else
    /// `ceil(warmup_ratio · total_steps)` steps of warm-up, then `lr_scheduler_type`.
    pub fn from_config(config: &OrpoConfig, total_steps: usize) -> Self {
        Self::new(LrSchedule::from_config(config, total_steps))
    }
}

impl LrScheduler for OrpoLrScheduler {
    fn step(&mut self) -> LearningRate {
        let lr = self.schedule.lr_at(self.step);
        self.step += 1;
        lr
    }

    fn to_record(&self) -> LrSchedulerRecord {
        LrSchedulerRecord::new().with_scalar("step", self.step as u64)
    }

    fn load_record(&mut self, record: LrSchedulerRecord) {
        if let Some(step) = record.scalar::<u64>("step") {
            self.step = step as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SchedulerType;

    #[test]
    fn steps_follow_lr_at_and_survive_a_record() {
        let schedule = LrSchedule {
            peak: 1e-3,
            warmup_steps: 2,
            total_steps: 6,
            kind: SchedulerType::Cosine,
        };
        let mut s = OrpoLrScheduler::new(schedule.clone());
        for k in 0..3 {
            assert_eq!(s.step(), schedule.lr_at(k));
        }
        let mut restored = OrpoLrScheduler::new(schedule.clone());
        restored.load_record(s.to_record());
        assert_eq!(restored.step(), schedule.lr_at(3));
        assert_eq!(s.step(), schedule.lr_at(3));
    }
}
