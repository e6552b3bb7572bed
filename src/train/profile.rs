//! `cifar-wgpu profile`: where a training step's time goes, kernel by kernel, with the FLOP/s and
//! bytes/s each reached (from the `Cost` each kernel wrapper states), and a Chrome trace.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::json;

use crate::gpu::timing::{GpuTimer, StepTiming, TimingMode};
use crate::gpu::{Cost, Dispatch, Gpu, GpuError};
use crate::kernels::gather::DeviceImages;
use crate::train::{Mode, Network};

/// One kernel's line in the table, per training step.
#[derive(Clone, Debug)]
pub struct KernelRow {
    pub name: &'static str,
    pub calls: usize,
    /// Mean time per step spent in this kernel, all its calls together.
    pub ms: f64,
    pub mean_us: f64,
    /// Share of the GPU time of a step.
    pub share: f64,
    pub gflops: f64,
    pub gbytes: f64,
}

#[derive(Clone, Debug)]
pub struct ProfileReport {
    pub mode: TimingMode,
    pub adapter: String,
    pub batch: usize,
    pub steps: usize,
    pub rows: Vec<KernelRow>,
    /// Mean wall time of a step (record, submit, GPU, readback).
    pub step_ms: f64,
    /// Mean sum of the dispatches' times in a step.
    pub gpu_ms: f64,
    pub images_per_s: f64,
    /// Dispatches in a step (gather, forward, loss, backward, update): the step's floor on a GPU, where
    /// each costs several microseconds whatever it computes (issue 14).
    pub dispatches: usize,
}

impl ProfileReport {
    /// The part of a step the GPU was not running our kernels: host recording and submission,
    /// gaps between dispatches, and the wait for results.
    pub fn overhead_ms(&self) -> f64 {
        (self.step_ms - self.gpu_ms).max(0.0)
    }
}

impl fmt::Display for ProfileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "profile: {} training steps of batch {} on {}\ntiming: {}",
            self.steps,
            self.batch,
            self.adapter,
            self.mode.describe()
        )?;
        writeln!(
            f,
            "{:<24} {:>5} {:>10} {:>10} {:>7} {:>9} {:>9}",
            "kernel", "calls", "ms/step", "mean µs", "share", "GFLOP/s", "GB/s"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:<24} {:>5} {:>10.3} {:>10.1} {:>6.1}% {:>9.2} {:>9.2}",
                r.name,
                r.calls,
                r.ms,
                r.mean_us,
                100.0 * r.share,
                r.gflops,
                r.gbytes
            )?;
        }
        writeln!(
            f,
            "step: {} dispatches, {:.3} ms wall, {:.3} ms in kernels ({:.1}%), {:.3} ms host overhead and gaps; {:.1} images/s",
            self.dispatches,
            self.step_ms,
            self.gpu_ms,
            100.0 * self.gpu_ms / self.step_ms.max(1e-12),
            self.overhead_ms(),
            self.images_per_s
        )
    }
}

/// Aggregates timed steps into the table.
pub fn summarize(
    timings: &[StepTiming],
    mode: TimingMode,
    adapter: &str,
    batch: usize,
) -> ProfileReport {
    struct Acc {
        calls: usize,
        ns: f64,
        cost: Cost,
        first: usize,
    }
    let steps = timings.len().max(1) as f64;
    let mut by_name: BTreeMap<&'static str, Acc> = BTreeMap::new();
    for t in timings {
        for (i, d) in t.dispatches.iter().enumerate() {
            let a = by_name.entry(d.name).or_insert(Acc {
                calls: 0,
                ns: 0.0,
                cost: Cost::default(),
                first: i,
            });
            a.calls += 1;
            a.ns += d.ns;
            a.cost.flops += d.cost.flops;
            a.cost.bytes += d.cost.bytes;
        }
    }
    let gpu_ns: f64 = by_name.values().map(|a| a.ns).sum::<f64>() / steps;
    let mut rows: Vec<(usize, KernelRow)> = by_name
        .into_iter()
        .map(|(name, a)| {
            let secs = (a.ns * 1e-9).max(1e-12);
            (
                a.first,
                KernelRow {
                    name,
                    calls: (a.calls as f64 / steps).round() as usize,
                    ms: a.ns / steps * 1e-6,
                    mean_us: a.ns / a.calls as f64 * 1e-3,
                    share: a.ns / steps / gpu_ns.max(1e-12),
                    gflops: a.cost.flops as f64 / secs * 1e-9,
                    gbytes: a.cost.bytes as f64 / secs * 1e-9,
                },
            )
        })
        .collect();
    // In the order the step first runs them, so the table reads like the step.
    rows.sort_by_key(|(first, _)| *first);
    let step_ns = timings.iter().map(|t| t.wall_ns).sum::<f64>() / steps;
    ProfileReport {
        mode,
        adapter: adapter.to_string(),
        batch,
        steps: timings.len(),
        rows: rows.into_iter().map(|(_, r)| r).collect(),
        step_ms: step_ns * 1e-6,
        gpu_ms: gpu_ns * 1e-6,
        images_per_s: batch as f64 / (step_ns * 1e-9).max(1e-12),
        dispatches: timings.first().map_or(0, |t| t.dispatches.len()),
    }
}

/// Times `steps` training steps of `net` on the first `batch` records of `data` (after `warmup`
/// untimed ones). The steps train: the network's weights change.
pub fn profile_steps(
    gpu: &Gpu,
    net: &Network,
    data: &DeviceImages,
    batch: usize,
    warmup: usize,
    steps: usize,
    allow_timestamps: bool,
) -> Result<(ProfileReport, Vec<StepTiming>), GpuError> {
    let batch = batch.min(data.len).min(net.max_batch);
    let order: Vec<u32> = (0..batch as u32).collect();
    gpu.write(&net.batch_indices.slice(0, batch), &order);
    let mut program: Vec<Dispatch> = net.gather_training(gpu, data, batch);
    program.extend(net.step(gpu, batch, Mode::Train));
    let refs: Vec<&Dispatch> = program.iter().collect();
    let timer = GpuTimer::new(gpu, refs.len(), allow_timestamps);
    let mut timings = Vec::with_capacity(steps);
    for s in 0..warmup + steps {
        net.set_step(gpu, s as u32);
        let t = timer.time_step(gpu, &refs)?;
        if s >= warmup {
            timings.push(t);
        }
    }
    Ok((
        summarize(&timings, timer.mode, &gpu.info.name, batch),
        timings,
    ))
}

/// The Chrome trace event format (chrome://tracing, Perfetto): one track for GPU kernels, one for
/// the host. GPU timestamps run on the GPU's clock; each step's kernels are placed from the moment
/// its submission started, so the two tracks line up to within the submission latency.
pub fn chrome_trace(timings: &[StepTiming]) -> serde_json::Value {
    let Some(origin) = timings.first().map(|t| t.started) else {
        return json!({ "traceEvents": [] });
    };
    let mut events = vec![
        json!({"name": "process_name", "ph": "M", "pid": 1, "args": {"name": "cifar-wgpu"}}),
        json!({"name": "thread_name", "ph": "M", "pid": 1, "tid": 1, "args": {"name": "GPU kernels"}}),
        json!({"name": "thread_name", "ph": "M", "pid": 1, "tid": 2, "args": {"name": "host"}}),
    ];
    for (step, t) in timings.iter().enumerate() {
        let base_us = (t.started - origin).as_nanos() as f64 * 1e-3;
        let host = [
            ("record", 0.0, t.record_ns),
            ("submit", t.record_ns, t.submit_ns),
            ("wait + readback", t.record_ns + t.submit_ns, t.wait_ns),
        ];
        for (name, start, dur) in host {
            if dur > 0.0 {
                events.push(json!({
                    "name": name, "cat": "host", "ph": "X", "pid": 1, "tid": 2,
                    "ts": base_us + start * 1e-3, "dur": dur * 1e-3, "args": {"step": step}
                }));
            }
        }
        let gpu_base = base_us + (t.record_ns + t.submit_ns) * 1e-3;
        for d in &t.dispatches {
            events.push(json!({
                "name": d.name, "cat": "gpu", "ph": "X", "pid": 1, "tid": 1,
                "ts": gpu_base + d.start_ns * 1e-3, "dur": d.ns * 1e-3,
                "args": {"step": step, "flops": d.cost.flops, "bytes": d.cost.bytes}
            }));
        }
    }
    json!({ "traceEvents": events, "displayTimeUnit": "ms" })
}
