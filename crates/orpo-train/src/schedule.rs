//! Learning-rate schedules as transformers defines them (`get_scheduler`): a linear warm-up from
//! 0, then constant, linear decay to 0, or half a cosine to 0.

use crate::config::SchedulerType;

/// The learning rate of optimizer step `step` (0-based: the rate used by the first update is
/// `lr_at(0)`), as transformers' `LambdaLR` gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct LrSchedule {
    /// Peak learning rate.
    pub peak: f64,
    /// Steps of linear warm-up.
    pub warmup_steps: usize,
    /// Total optimizer steps of the run.
    pub total_steps: usize,
    /// Shape after warm-up.
    pub kind: SchedulerType,
}

impl LrSchedule {
    /// The schedule of `config` for a run of `total_steps` optimizer steps: `warmup_steps`, else
    /// `ceil(warmup_ratio · total_steps)` steps of warm-up, then `lr_scheduler_type`.
    pub fn from_config(config: &crate::OrpoConfig, total_steps: usize) -> Self {
        Self {
            peak: config.learning_rate,
            warmup_steps: if config.warmup_steps > 0 {
                config.warmup_steps
            } else {
                (config.warmup_ratio * total_steps as f64).ceil() as usize
            },
            total_steps,
            kind: config.lr_scheduler_type,
        }
    }

    /// The factor transformers' lambda gives at `step`, times the peak.
    pub fn lr_at(&self, step: usize) -> f64 {
        let warmup = self.warmup_steps;
        if step < warmup {
            return self.peak * step as f64 / warmup.max(1) as f64;
        }
        let factor = match self.kind {
            SchedulerType::Constant | SchedulerType::ConstantWithWarmup => 1.0,
            SchedulerType::Linear => {
                let remaining = self.total_steps.saturating_sub(step) as f64;
                let span = self.total_steps.saturating_sub(warmup).max(1) as f64;
                (remaining / span).max(0.0)
            }
            SchedulerType::Cosine => {
                let span = self.total_steps.saturating_sub(warmup).max(1) as f64;
                let progress = (step - warmup) as f64 / span;
                (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0)
            }
        };
        self.peak * factor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(kind: SchedulerType) -> LrSchedule {
        LrSchedule {
            peak: 1.0,
            warmup_steps: 2,
            total_steps: 10,
            kind,
        }
    }

    #[test]
    fn warmup_is_linear_from_zero() {
        let s = schedule(SchedulerType::Linear);
        assert_eq!((s.lr_at(0), s.lr_at(1), s.lr_at(2)), (0.0, 0.5, 1.0));
    }

    #[test]
    fn linear_reaches_zero_at_the_end() {
        let s = schedule(SchedulerType::Linear);
        assert!((s.lr_at(6) - 0.5).abs() < 1e-12);
        assert_eq!(s.lr_at(10), 0.0);
    }

    #[test]
    fn cosine_is_half_at_midpoint() {
        let s = schedule(SchedulerType::Cosine);
        assert!((s.lr_at(6) - 0.5).abs() < 1e-12);
        assert!(s.lr_at(10).abs() < 1e-12);
    }

    #[test]
    fn constant_stays_after_warmup() {
        let s = schedule(SchedulerType::Constant);
        assert_eq!(s.lr_at(9), 1.0);
    }
}
