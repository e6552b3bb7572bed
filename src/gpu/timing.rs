//! Timing each dispatch of a step on the GPU, for `cifar-wgpu profile` and traces.
//!
//! Three ways, best first, chosen from what the adapter offers:
//! - `InsidePasses`: a timestamp before and after every dispatch in one compute pass
//!   (TIMESTAMP_QUERY_INSIDE_PASSES), so the step runs exactly as in training;
//! - `PassPerDispatch`: one compute pass per dispatch with pass timestamps (TIMESTAMP_QUERY);
//! - `Host`: no timestamps at all: each dispatch is submitted alone and waited for, and the host's
//!   clock measures it. That includes submission overhead, and the report says so.
//!
//! Profiling is opt-in: training never records timestamps.

use std::time::Instant;

use crate::gpu::{Cost, Dispatch, Gpu, GpuError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimingMode {
    InsidePasses,
    PassPerDispatch,
    Host,
}

impl TimingMode {
    pub fn describe(self) -> &'static str {
        match self {
            TimingMode::InsidePasses => {
                "GPU timestamps around each dispatch, inside one compute pass"
            }
            TimingMode::PassPerDispatch => "GPU timestamps of one compute pass per dispatch",
            TimingMode::Host => {
                "host timing: this adapter has no timestamp queries, so each dispatch was submitted \
                 alone and timed by the host's clock, submission overhead included"
            }
        }
    }
}

/// One dispatch's measured time, with its start relative to the step's first dispatch.
#[derive(Clone, Debug)]
pub struct DispatchTime {
    pub name: &'static str,
    pub cost: Cost,
    pub start_ns: f64,
    pub ns: f64,
}

/// One timed step.
#[derive(Clone, Debug)]
pub struct StepTiming {
    pub dispatches: Vec<DispatchTime>,
    /// Host time spent recording the command buffer.
    pub record_ns: f64,
    /// Host time spent in `queue.submit`.
    pub submit_ns: f64,
    /// Host time spent waiting for the GPU and reading the timestamps back.
    pub wait_ns: f64,
    /// Wall time of the whole step, from the start of recording to the results being read.
    pub wall_ns: f64,
    /// When the step started, for traces.
    pub started: Instant,
}

pub struct GpuTimer {
    pub mode: TimingMode,
    capacity: u32,
    query_set: Option<wgpu::QuerySet>,
    resolve: Option<wgpu::Buffer>,
    readback: Option<wgpu::Buffer>,
    period_ns: f64,
}

impl GpuTimer {
    /// A timer for steps of at most `max_dispatches` dispatches. `allow_timestamps = false` forces the
    /// host fallback.
    pub fn new(gpu: &Gpu, max_dispatches: usize, allow_timestamps: bool) -> GpuTimer {
        let mode = if !allow_timestamps || !gpu.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            TimingMode::Host
        } else if gpu
            .features
            .contains(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES)
        {
            TimingMode::InsidePasses
        } else {
            TimingMode::PassPerDispatch
        };
        let capacity = (2 * max_dispatches.max(1)) as u32;
        let (query_set, resolve, readback) = if mode == TimingMode::Host {
            (None, None, None)
        } else {
            let bytes = capacity as u64 * 8;
            (
                Some(gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("dispatch timestamps"),
                    ty: wgpu::QueryType::Timestamp,
                    count: capacity,
                })),
                Some(gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("timestamp resolve"),
                    size: bytes,
                    usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                })),
                Some(gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("timestamp readback"),
                    size: bytes,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })),
            )
        };
        GpuTimer {
            mode,
            capacity,
            query_set,
            resolve,
            readback,
            period_ns: gpu.queue.get_timestamp_period() as f64,
        }
    }

    /// Records `dispatches`, submits, waits, and returns each dispatch's time.
    pub fn time_step(&self, gpu: &Gpu, dispatches: &[&Dispatch]) -> Result<StepTiming, GpuError> {
        assert!(
            2 * dispatches.len() as u32 <= self.capacity,
            "more dispatches than the timer holds"
        );
        let started = Instant::now();
        let mut encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("profiled step"),
            });
        if self.mode == TimingMode::Host {
            return self.time_on_host(gpu, encoder, dispatches, started);
        }
        let qs = self.query_set.as_ref().unwrap();
        match self.mode {
            TimingMode::InsidePasses => {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("profiled step"),
                    timestamp_writes: None,
                });
                for (i, d) in dispatches.iter().enumerate() {
                    pass.write_timestamp(qs, 2 * i as u32);
                    d.record(&mut pass);
                    pass.write_timestamp(qs, 2 * i as u32 + 1);
                }
            }
            _ => {
                for (i, d) in dispatches.iter().enumerate() {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(d.name),
                        timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                            query_set: qs,
                            beginning_of_pass_write_index: Some(2 * i as u32),
                            end_of_pass_write_index: Some(2 * i as u32 + 1),
                        }),
                    });
                    d.record(&mut pass);
                }
            }
        }
        let n = 2 * dispatches.len() as u32;
        let (resolve, readback) = (
            self.resolve.as_ref().unwrap(),
            self.readback.as_ref().unwrap(),
        );
        encoder.resolve_query_set(qs, 0..n, resolve, 0);
        encoder.copy_buffer_to_buffer(resolve, 0, readback, 0, n as u64 * 8);
        let recorded = Instant::now();
        gpu.queue.submit([encoder.finish()]);
        let submitted = Instant::now();
        let (tx, rx) = std::sync::mpsc::channel();
        readback.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        gpu.wait()?;
        rx.recv()
            .map_err(|e| GpuError::Readback(e.to_string()))?
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        let ticks: Vec<u64> = {
            let view = readback
                .get_mapped_range(..)
                .map_err(|e| GpuError::Readback(e.to_string()))?;
            bytemuck::cast_slice::<u8, u64>(&view)[..n as usize].to_vec()
        };
        readback.unmap();
        let done = Instant::now();
        let t0 = ticks[0];
        let times = dispatches
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let (a, b) = (ticks[2 * i], ticks[2 * i + 1]);
                DispatchTime {
                    name: d.name,
                    cost: d.cost,
                    start_ns: a.saturating_sub(t0) as f64 * self.period_ns,
                    ns: b.saturating_sub(a) as f64 * self.period_ns,
                }
            })
            .collect();
        Ok(StepTiming {
            dispatches: times,
            record_ns: (recorded - started).as_nanos() as f64,
            submit_ns: (submitted - recorded).as_nanos() as f64,
            wait_ns: (done - submitted).as_nanos() as f64,
            wall_ns: (done - started).as_nanos() as f64,
            started,
        })
    }

    fn time_on_host(
        &self,
        gpu: &Gpu,
        encoder: wgpu::CommandEncoder,
        dispatches: &[&Dispatch],
        started: Instant,
    ) -> Result<StepTiming, GpuError> {
        // Queued writes (the step state) go first, on their own, so no dispatch's time includes them.
        gpu.queue.submit([encoder.finish()]);
        gpu.wait()?;
        let mut times = Vec::with_capacity(dispatches.len());
        let mut submit_ns = 0.0;
        for d in dispatches {
            let t = Instant::now();
            let mut encoder = gpu
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some(d.name),
                });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(d.name),
                    timestamp_writes: None,
                });
                d.record(&mut pass);
            }
            let s = Instant::now();
            gpu.queue.submit([encoder.finish()]);
            submit_ns += s.elapsed().as_nanos() as f64;
            gpu.wait()?;
            times.push(DispatchTime {
                name: d.name,
                cost: d.cost,
                start_ns: (t - started).as_nanos() as f64,
                ns: t.elapsed().as_nanos() as f64,
            });
        }
        let wall_ns = started.elapsed().as_nanos() as f64;
        Ok(StepTiming {
            dispatches: times,
            record_ns: 0.0,
            submit_ns,
            wait_ns: 0.0,
            wall_ns,
            started,
        })
    }
}
