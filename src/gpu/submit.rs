//! Submitting work and getting results back without stalling: the only place outside `kernel.rs`'s
//! `run_dispatches` and the profiler's timer that records command buffers.
//!
//! A submission is a list of `Op`s (copies between tensors, compute passes of dispatches, snapshots
//! for a `Readback`) recorded into one encoder in order. `submit` returns a `Submission` token; the
//! host keeps a few of them in an `InFlight` queue and waits only for the oldest, so it records the
//! next batch while the GPU runs the previous one. A `Readback` reads a small tensor (the running
//! metrics) without waiting: its snapshot is mapped asynchronously and picked up on a later batch.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::gpu::{Dispatch, Gpu, GpuError, Tensor};

/// One step of a submission, recorded in the order given.
pub enum Op<'a> {
    /// Copies `from` into `to`; both views hold the same number of words.
    Copy { from: &'a Tensor, to: &'a Tensor },
    /// One compute pass running the dispatches in order.
    Pass(&'a [Dispatch]),
    /// A snapshot of the reader's tensor as the GPU reaches this point; mapped after submission.
    Snapshot(&'a Readback),
}

/// A submitted command buffer, to wait for.
pub struct Submission(wgpu::SubmissionIndex);

impl Gpu {
    /// Records `ops` into one command buffer and submits it. Returns at once: the GPU runs it later.
    pub fn submit(&self, ops: &[Op]) -> Submission {
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("submission"),
            });
        for op in ops {
            match op {
                Op::Copy { from, to } => {
                    assert_eq!(from.len, to.len, "copy between tensors of different sizes");
                    encoder.copy_buffer_to_buffer(
                        &from.buffer,
                        from.offset,
                        &to.buffer,
                        to.offset,
                        from.bytes(),
                    );
                }
                Op::Pass(dispatches) => {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("pass"),
                        timestamp_writes: None,
                    });
                    for d in *dispatches {
                        d.record(&mut pass);
                    }
                }
                Op::Snapshot(reader) => reader.record_copy(&mut encoder),
            }
        }
        let index = self.queue.submit([encoder.finish()]);
        // The mapping may only be asked for once the copy into the staging buffer is submitted.
        for op in ops {
            if let Op::Snapshot(reader) = op {
                reader.request();
            }
        }
        Submission(index)
    }

    /// Blocks until `submission` (and everything submitted before it) has finished.
    pub fn wait_for(&self, submission: Submission) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(submission.0),
                timeout: None,
            })
            .map_err(|e| GpuError::Device(e.to_string()))?;
        self.errors.check()
    }

    /// Runs the callbacks of finished work (such as a `Readback`'s mapping) without waiting.
    pub fn poll(&self) {
        // A poll that finds nothing finished is not an error worth reporting; `wait` reports real ones.
        let _ = self.device.poll(wgpu::PollType::Poll);
    }
}

/// The submissions still on the GPU, at most `limit` of them: enough to keep the GPU fed while the
/// host records the next one, few enough that a Ctrl-C does not wait behind seconds of queued work.
pub struct InFlight {
    limit: usize,
    queue: VecDeque<Submission>,
}

impl InFlight {
    pub fn new(limit: usize) -> InFlight {
        InFlight {
            limit,
            queue: VecDeque::new(),
        }
    }

    /// Adds a submission; waits for the oldest once more than `limit` are queued, else only polls
    /// (which runs pending map callbacks, such as a `Readback`'s).
    pub fn push(&mut self, gpu: &Gpu, submission: Submission) -> Result<(), GpuError> {
        self.queue.push_back(submission);
        if self.queue.len() > self.limit {
            return gpu.wait_for(self.queue.pop_front().unwrap());
        }
        gpu.poll();
        Ok(())
    }
}

/// A non-blocking read of a small tensor: `Op::Snapshot` copies it into a mappable buffer at the end
/// of some submission, the mapping completes when the GPU gets there, and `take` picks the words up
/// on a later batch. One snapshot is outstanding at a time.
pub struct Readback {
    source: Tensor,
    staging: wgpu::Buffer,
    state: Arc<Mutex<ReadState>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ReadState {
    Idle,
    Pending,
    Ready,
}

impl Readback {
    pub fn new(gpu: &Gpu, source: &Tensor) -> Readback {
        Readback {
            source: source.clone(),
            // MAP_READ for the host, COPY_DST for the snapshot: a storage buffer cannot be mapped.
            staging: gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("readback"),
                size: source.bytes(),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            state: Arc::new(Mutex::new(ReadState::Idle)),
        }
    }

    /// Whether a new snapshot may be taken (none is pending or unread).
    pub fn idle(&self) -> bool {
        *self.state.lock().unwrap() == ReadState::Idle
    }

    fn record_copy(&self, encoder: &mut wgpu::CommandEncoder) {
        assert!(self.idle(), "a snapshot is already outstanding");
        encoder.copy_buffer_to_buffer(
            &self.source.buffer,
            self.source.offset,
            &self.staging,
            0,
            self.source.bytes(),
        );
    }

    fn request(&self) {
        *self.state.lock().unwrap() = ReadState::Pending;
        let state = self.state.clone();
        self.staging.map_async(wgpu::MapMode::Read, .., move |r| {
            *state.lock().unwrap() = if r.is_ok() {
                ReadState::Ready
            } else {
                ReadState::Idle
            };
        });
    }

    /// The snapshot's words, if its mapping has completed (after some `poll`).
    pub fn take(&self) -> Option<Vec<u32>> {
        let mut state = self.state.lock().unwrap();
        if *state != ReadState::Ready {
            return None;
        }
        let words = {
            let view = self.staging.get_mapped_range(..).ok()?;
            bytemuck::cast_slice(&view).to_vec()
        };
        self.staging.unmap();
        *state = ReadState::Idle;
        Some(words)
    }
}
