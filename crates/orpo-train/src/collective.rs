//! How the replicas of data-parallel training combine their gradients: the backend's own
//! all-reduce where it has one, else a copy of every micro-batch's gradients to the first device.
//!
//! burn 0.22.1 has one collective, [`burn::tensor::distributed::all_reduce`], and only CUDA
//! implements it (NCCL, one process driving several GPUs; flex and WGPU panic in dispatch). On
//! CUDA devices the gradients stay where they were computed, each device sums its own
//! micro-batches, and one NCCL sum per parameter at the end of the step leaves the total on every
//! device: GPU-to-GPU over NVLink/PCIe instead of one `to_device` per micro-batch and replica.
//! Every other case (other backends, one GPU named twice, NCCL not loadable) keeps the copy to
//! the first device, and the trainer logs why.
//!
//! Both ways add the same terms (each micro-batch's gradient is already divided by the whole
//! step's token and pair counts), so the update is that of one batch of all the step's pairs
//! either way; only the order of the floating-point additions differs.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::distributed::{CollectiveTensor, ReduceOperation, all_reduce};
use burn::tensor::{Device, Tensor};

/// Setting this environment variable to `copy` keeps the copy to the first device on CUDA too
/// (to compare both ways on a multi-GPU machine, or to work around a broken NCCL install).
pub const EXCHANGE_ENV: &str = "ORPO_GRADIENT_EXCHANGE";

/// Which way gradients are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exchange {
    /// One device: nothing to combine.
    Single,
    /// Every micro-batch's gradients are moved to the first device and added there in
    /// micro-batch order (`GradientsParams::to_device`).
    CopyToFirst,
    /// Each device sums its own micro-batches; one all-reduce (sum) per parameter combines them.
    AllReduce,
}

/// What the choice depends on, gathered apart from the decision so that the decision can be
/// tested without a GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts {
    /// How many devices train (the model's own included).
    pub devices: usize,
    /// Whether every one of them is a CUDA device.
    pub all_cuda: bool,
    /// Whether no device appears twice (NCCL needs one rank per GPU).
    pub distinct: bool,
    /// Whether NCCL's library loads (cubecl-cuda's own test: without it the runtime refuses
    /// collectives).
    pub nccl: bool,
    /// Whether [`EXCHANGE_ENV`] asks for the copy.
    pub copy_requested: bool,
}

/// The exchange for `facts`, and the log line that says which one and why (`None` for one
/// device, where there is nothing to say).
pub fn choose(facts: Facts) -> (Exchange, Option<String>) {
    if facts.devices <= 1 {
        return (Exchange::Single, None);
    }
    let copy = |why: &str| {
        (
            Exchange::CopyToFirst,
            Some(format!(
                "data parallelism over {} devices: gradients are copied to the first device and \
                 summed there ({why})",
                facts.devices
            )),
        )
    };
    if !facts.all_cuda {
        return copy(
            "burn 0.22 has an all-reduce on CUDA only; these devices are not all CUDA devices",
        );
    }
    if !facts.distinct {
        return copy("a GPU is named twice, and NCCL needs one rank per GPU");
    }
    if facts.copy_requested {
        return copy(&format!("{EXCHANGE_ENV}=copy"));
    }
    if !facts.nccl {
        return copy(
            "NCCL could not be loaded: cudarc looks for libnccl.so on the library path; the \
             `nvidia-nccl-cu12` wheel ships libnccl.so.2 only, so link libnccl.so to it; \
             `orpo doctor` checks it",
        );
    }
    (
        Exchange::AllReduce,
        Some(format!(
            "data parallelism over {} CUDA devices: gradients are summed with NCCL's all-reduce",
            facts.devices
        )),
    )
}

/// The facts for `devices` on this machine. Asking whether a device is a CUDA device opens the
/// CUDA driver (burn's device enumeration), which training on it does anyway.
pub fn facts(devices: &[Device]) -> Facts {
    let distinct = devices
        .iter()
        .enumerate()
        .all(|(i, d)| devices[..i].iter().all(|e| e != d));
    let copy_requested = std::env::var(EXCHANGE_ENV).is_ok_and(|v| v.eq_ignore_ascii_case("copy"));
    #[cfg(feature = "cuda")]
    let (all_cuda, nccl) = {
        let all_cuda = devices.len() > 1 && {
            let cuda = Device::enumerate(burn::tensor::DeviceType::Cuda).into_vec();
            devices.iter().all(|d| cuda.contains(d))
        };
        // SAFETY: only tries to `dlopen` each candidate name of NCCL's library.
        let nccl = all_cuda && unsafe { cudarc::nccl::sys::is_culib_present() };
        (all_cuda, nccl)
    };
    #[cfg(not(feature = "cuda"))]
    let (all_cuda, nccl) = (false, false);
    Facts {
        devices: devices.len(),
        all_cuda,
        distinct,
        nccl,
        copy_requested,
    }
}

/// The gradient exchange of one training run: chosen once, used every step.
#[derive(Clone, Debug)]
pub struct GradientExchange {
    exchange: Exchange,
    /// The training devices, the model's own first.
    devices: Vec<Device>,
}

impl GradientExchange {
    /// Chooses the exchange for `devices` (the model's own first) and returns the log line
    /// saying which one and why.
    pub fn new(devices: &[Device]) -> (Self, Option<String>) {
        let (exchange, line) = choose(facts(devices));
        (
            Self {
                exchange,
                devices: devices.to_vec(),
            },
            line,
        )
    }

    /// Which way this run combines gradients.
    pub fn exchange(&self) -> Exchange {
        self.exchange
    }

    /// Where the gradients of a micro-batch computed on device `d` (an index into the devices)
    /// go right after its backward pass: `main` for the copy, their own device for the
    /// all-reduce.
    pub fn destination<'a>(&'a self, d: usize, main: &'a Device) -> &'a Device {
        match self.exchange {
            Exchange::AllReduce => &self.devices[d],
            Exchange::Single | Exchange::CopyToFirst => main,
        }
    }

    /// One empty gradient sum per slot (see [`slot`](Self::slot)).
    pub fn accumulators(&self) -> Vec<GradientsParams> {
        let slots = match self.exchange {
            Exchange::AllReduce => self.devices.len(),
            Exchange::Single | Exchange::CopyToFirst => 1,
        };
        (0..slots).map(|_| GradientsParams::new()).collect()
    }

    /// The accumulator that micro-batch `k` of a step adds to: its device's own for the
    /// all-reduce (micro-batch `k` runs on device `k mod devices`), else the one sum on the first
    /// device, added in micro-batch order as before.
    pub fn slot(&self, k: usize) -> usize {
        match self.exchange {
            Exchange::AllReduce => k % self.devices.len(),
            Exchange::Single | Exchange::CopyToFirst => 0,
        }
    }

    /// The step's gradient sum on the first device, from the [`accumulators`](Self::accumulators).
    pub fn combine<M: Module>(&self, model: &M, mut sums: Vec<GradientsParams>) -> GradientsParams {
        if self.exchange != Exchange::AllReduce {
            return sums.swap_remove(0);
        }
        let devices: Vec<Device> = self.devices.iter().map(|d| d.clone().inner()).collect();
        let mut reducer = Reducer {
            sums: &mut sums,
            devices,
            main: self.devices[0].clone(),
            out: GradientsParams::new(),
            pending: Vec::new(),
        };
        model.visit(&mut reducer);
        let Reducer {
            mut out, pending, ..
        } = reducer;
        // Every device's reduces were issued before any is waited on: NCCL's sum on one device
        // completes only once every rank has launched its part.
        for finish in pending {
            finish(&mut out);
        }
        out
    }
}

type Pending = Box<dyn FnOnce(&mut GradientsParams)>;

/// Issues one all-reduce per parameter on every device, in the model's parameter order (the same
/// on every device, as NCCL requires).
struct Reducer<'a> {
    sums: &'a mut [GradientsParams],
    /// The devices without autodiff: the ids NCCL's ranks are found by.
    devices: Vec<Device>,
    main: Device,
    out: GradientsParams,
    pending: Vec<Pending>,
}

impl ModuleVisitor for Reducer<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let grads: Vec<Option<Tensor<D>>> = self
            .sums
            .iter_mut()
            .map(|sum| sum.remove::<D>(param.id))
            .collect();
        let id = param.id;
        if grads.iter().all(Option::is_some) {
            let collective: Vec<CollectiveTensor<D>> = grads
                .into_iter()
                .flatten()
                .map(|g| all_reduce(g, ReduceOperation::Sum, self.devices.clone()))
                .collect();
            self.pending
                .push(Box::new(move |out: &mut GradientsParams| {
                    let mut results = collective.into_iter();
                    let first = results.next().expect("one result per device").resolve();
                    // The other devices' copies of the sum are not needed; waiting for them keeps
                    // their buffers alive until NCCL has read and written them.
                    for other in results {
                        let _ = other.resolve();
                    }
                    out.register(id, first);
                }));
        } else {
            // A parameter with a gradient on some devices only (no micro-batch reached it on
            // the others): too rare to need NCCL, and a collective needs every rank.
            let sum = grads
                .into_iter()
                .flatten()
                .map(|g| g.to_device(&self.main))
                .reduce(|a, b| a + b);
            if let Some(sum) = sum {
                self.out.register(id, sum);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            devices: 2,
            all_cuda: true,
            distinct: true,
            nccl: true,
            copy_requested: false,
        }
    }

    #[test]
    fn cuda_devices_with_nccl_all_reduce() {
        let (exchange, line) = choose(facts());
        assert_eq!(exchange, Exchange::AllReduce);
        assert!(line.unwrap().contains("NCCL's all-reduce"));
    }

    #[test]
    fn one_device_exchanges_nothing_and_logs_nothing() {
        assert_eq!(
            choose(Facts {
                devices: 1,
                ..facts()
            }),
            (Exchange::Single, None)
        );
    }

    /// Each reason to keep the copy is named in the log line.
    #[test]
    fn every_fallback_says_why() {
        for (f, why) in [
            (
                Facts {
                    all_cuda: false,
                    ..facts()
                },
                "not all CUDA",
            ),
            (
                Facts {
                    distinct: false,
                    ..facts()
                },
                "named twice",
            ),
            (
                Facts {
                    nccl: false,
                    ..facts()
                },
                "libnccl.so",
            ),
            (
                Facts {
                    copy_requested: true,
                    ..facts()
                },
                "ORPO_GRADIENT_EXCHANGE=copy",
            ),
        ] {
            let (exchange, line) = choose(f);
            assert_eq!(exchange, Exchange::CopyToFirst, "{f:?}");
            let line = line.unwrap();
            assert!(line.contains(why), "{f:?}: {line}");
            assert!(line.contains("copied to the first device"), "{line}");
        }
    }

    /// The CPU devices of the tests take the copy, whose slots and destinations are today's:
    /// one sum, every micro-batch's gradients on the first device.
    #[test]
    fn cpu_devices_keep_the_copy_to_the_first_device() {
        let cpu = Device::flex().autodiff();
        let devices = [cpu.clone(), cpu.clone()];
        let (exchange, line) = GradientExchange::new(&devices);
        assert_eq!(exchange.exchange(), Exchange::CopyToFirst);
        assert!(line.unwrap().contains("not all CUDA"));
        assert_eq!(exchange.accumulators().len(), 1);
        assert_eq!((0..4).map(|k| exchange.slot(k)).collect::<Vec<_>>(), [0; 4]);
        assert!(std::ptr::eq(exchange.destination(1, &cpu), &cpu));
    }

    /// The all-reduce's bookkeeping: micro-batch `k` runs on, and is summed on, device
    /// `k mod devices`.
    #[test]
    fn all_reduce_slots_follow_the_rounds() {
        let cpu = Device::flex().autodiff();
        let exchange = GradientExchange {
            exchange: Exchange::AllReduce,
            devices: vec![cpu.clone(), cpu.clone(), cpu.clone()],
        };
        assert_eq!(exchange.accumulators().len(), 3);
        assert_eq!(
            (0..6).map(|k| exchange.slot(k)).collect::<Vec<_>>(),
            [0, 1, 2, 0, 1, 2]
        );
        assert!(std::ptr::eq(
            exchange.destination(2, &cpu),
            &exchange.devices[2]
        ));
    }
}
