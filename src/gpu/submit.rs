//! Submitting work and getting results back without stalling: the only place outside `kernel.rs`'s
//! `run_dispatches` and the profiler's timer that records command buffers.
//!
//! A submission is a list of `Op`s (copies between tensors, compute passes of dispatches, snapshots
//! for a `Readback`) recorded into one encoder in order. `submit` returns a `Submission` token; the
//! host keeps a few of them in an `InFlight` queue and waits only for the oldest, so it records the
//! next batch while the GPU runs the previous one. A `Readback` reads a small tensor (the running
//! metrics) without waiting: its snapshot is mapped asynchronously and picked up on a later batch.
//!
//! A submission may hold several training steps (`StepsPerSubmission`): the host then wakes once per
//! group of steps instead of once per step. `Pacer` chooses how many from the measured time per step.

use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// A submitted command buffer, to wait for, and what it cost the host.
pub struct Submission {
    index: wgpu::SubmissionIndex,
    /// Host time recording the command buffer, from the encoder's creation to `finish`.
    pub recording: Duration,
    /// Host time inside `queue.submit`. A software adapter may run the work right there (lavapipe
    /// does), so this can hold the GPU's time too.
    pub submitting: Duration,
}

impl Gpu {
    /// Records `ops` into one command buffer and submits it. Returns at once: the GPU runs it later.
    pub fn submit(&self, ops: &[Op]) -> Submission {
        let start = Instant::now();
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
        let commands = encoder.finish();
        let recorded = Instant::now();
        let index = self.queue.submit([commands]);
        let submitted = Instant::now();
        // The mapping may only be asked for once the copy into the staging buffer is submitted.
        for op in ops {
            if let Op::Snapshot(reader) = op {
                reader.request();
            }
        }
        Submission {
            index,
            recording: recorded - start,
            submitting: submitted - recorded,
        }
    }

    /// Blocks until `submission` (and everything submitted before it) has finished.
    pub fn wait_for(&self, submission: Submission) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(submission.index),
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
/// Each is kept with the number of steps it holds, so a wait says how many steps it saw finish.
pub struct InFlight {
    limit: usize,
    queue: VecDeque<(Submission, usize)>,
}

impl InFlight {
    pub fn new(limit: usize) -> InFlight {
        InFlight {
            limit,
            queue: VecDeque::new(),
        }
    }

    /// Adds a submission of `steps` steps; waits for the oldest once more than `limit` are queued,
    /// returning how many steps that one held, else only polls (which runs pending map callbacks,
    /// such as a `Readback`'s) and returns `None`.
    pub fn push(
        &mut self,
        gpu: &Gpu,
        submission: Submission,
        steps: usize,
    ) -> Result<Option<usize>, GpuError> {
        self.queue.push_back((submission, steps));
        if self.queue.len() > self.limit {
            let (oldest, steps) = self.queue.pop_front().unwrap();
            gpu.wait_for(oldest)?;
            return Ok(Some(steps));
        }
        gpu.poll();
        Ok(None)
    }
}

/// The most steps one submission holds: the size of the ring of step states the host writes up front
/// (16 bytes a slot), and the cap of `StepsPerSubmission::Auto`.
pub const MAX_STEPS_PER_SUBMISSION: usize = 256;

/// How many training steps go into one submission (`--steps-per-submission`). Results do not depend
/// on it: each step runs the same dispatches on the same state, whatever submission carries it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StepsPerSubmission {
    /// As many as take about `Pacer::TARGET` on this device, measured as training runs (one on
    /// lavapipe, where a step takes hundreds of milliseconds; dozens on a fast GPU).
    #[default]
    Auto,
    /// Exactly this many (at most `MAX_STEPS_PER_SUBMISSION`), except in an epoch's last group.
    Fixed(NonZeroUsize),
}

impl StepsPerSubmission {
    /// `auto` or a count in 1..=`MAX_STEPS_PER_SUBMISSION`, with an error that says which.
    pub fn parse(s: &str) -> Result<StepsPerSubmission, String> {
        if s == "auto" {
            return Ok(StepsPerSubmission::Auto);
        }
        match s.parse::<usize>() {
            Ok(k @ 1..=MAX_STEPS_PER_SUBMISSION) => {
                Ok(StepsPerSubmission::Fixed(NonZeroUsize::new(k).unwrap()))
            }
            _ => Err(format!(
                "expected `auto` or a number of steps from 1 to {MAX_STEPS_PER_SUBMISSION}, not `{s}`"
            )),
        }
    }
}

impl std::fmt::Display for StepsPerSubmission {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            StepsPerSubmission::Auto => write!(f, "auto"),
            StepsPerSubmission::Fixed(k) => write!(f, "{k}"),
        }
    }
}

/// Chooses the size of each group of steps. With `Auto` it starts at one step and, from the waits
/// of `InFlight` (which, once the queue is full, return as fast as the GPU, or the host, finishes
/// work), estimates the time per step and aims at `TARGET` per submission: long enough that the
/// host's per-submission cost vanishes, short enough that progress stays live and a Ctrl-C waits
/// at most a few tenths of a second. It grows at most twofold per group, so a slow device is never
/// handed a long group on a guess.
#[derive(Clone, Debug)]
pub struct Pacer {
    choice: StepsPerSubmission,
    steps: usize,
    /// When the first wait of this stretch returned, and the steps finished since.
    since: Option<(Instant, usize)>,
}

impl Pacer {
    /// GPU work per submission that `Auto` aims at.
    pub const TARGET: Duration = Duration::from_millis(25);

    pub fn new(choice: StepsPerSubmission) -> Pacer {
        let steps = match choice {
            StepsPerSubmission::Auto => 1,
            StepsPerSubmission::Fixed(k) => k.get().min(MAX_STEPS_PER_SUBMISSION),
        };
        Pacer {
            choice,
            steps,
            since: None,
        }
    }

    /// Steps for the next submission.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Forgets the timing (after a pause such as validation, which would count as slow steps) but
    /// keeps the group size reached.
    pub fn restart(&mut self) {
        self.since = None;
    }

    /// Told after each `InFlight::push` what its wait saw finish (`None`: it did not wait).
    pub fn finished(&mut self, steps: Option<usize>) {
        self.finished_at(steps, Instant::now());
    }

    fn finished_at(&mut self, steps: Option<usize>, now: Instant) {
        let (StepsPerSubmission::Auto, Some(steps)) = (self.choice, steps) else {
            return;
        };
        let Some((start, done)) = self.since.as_mut() else {
            self.since = Some((now, 0));
            return;
        };
        *done += steps;
        let per_step = now.duration_since(*start).as_secs_f64() / *done as f64;
        let fit = (Self::TARGET.as_secs_f64() / per_step.max(1e-9)) as usize;
        self.steps = fit.clamp(1, (2 * self.steps).min(MAX_STEPS_PER_SUBMISSION));
    }
}

/// Host-side cost of one epoch's training submissions: what `bench` reports per step.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SubmitStats {
    pub steps: usize,
    pub submissions: usize,
    /// Wall time the host spent writing step states and recording command buffers.
    pub recording: Duration,
    /// Wall time inside `queue.submit` (`Submission::submitting`: on lavapipe, the work itself).
    pub submitting: Duration,
}

impl SubmitStats {
    /// Adds `other`'s steps, submissions and times to these.
    pub fn add(&mut self, other: &SubmitStats) {
        self.steps += other.steps;
        self.submissions += other.submissions;
        self.recording += other.recording;
        self.submitting += other.submitting;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `pacer` waits that each saw one group of its current size finish after `per_step` per
    /// step, and returns the sizes it chose.
    fn paced(pacer: &mut Pacer, per_step: Duration, waits: usize) -> Vec<usize> {
        let mut now = Instant::now();
        let mut sizes = Vec::new();
        for _ in 0..waits {
            let k = pacer.steps();
            now += per_step * k as u32;
            pacer.finished_at(Some(k), now);
            sizes.push(pacer.steps());
        }
        sizes
    }

    #[test]
    fn auto_grows_at_most_twofold_up_to_the_target_and_stays_at_one_for_slow_steps() {
        let mut fast = Pacer::new(StepsPerSubmission::Auto);
        assert_eq!(fast.steps(), 1);
        // 1 ms a step: 25 steps make the 25 ms target. The first wait only starts the clock.
        let sizes = paced(&mut fast, Duration::from_millis(1), 8);
        assert_eq!(sizes, [1, 2, 4, 8, 16, 25, 25, 25]);
        // A restart forgets the timing, not the size.
        fast.restart();
        assert_eq!(fast.steps(), 25);
        // lavapipe-like steps of 400 ms: one step per submission.
        let sizes = paced(&mut fast, Duration::from_millis(400), 3);
        assert_eq!(sizes, [25, 1, 1]);
        // Steps too short to time are capped by the ring of step states.
        let mut tiny = Pacer::new(StepsPerSubmission::Auto);
        let sizes = paced(&mut tiny, Duration::from_nanos(10), 12);
        assert_eq!(*sizes.last().unwrap(), MAX_STEPS_PER_SUBMISSION);
    }

    #[test]
    fn a_fixed_count_ignores_the_timing_and_a_poll_without_a_wait_changes_nothing() {
        let mut fixed = Pacer::new(StepsPerSubmission::Fixed(NonZeroUsize::new(7).unwrap()));
        assert_eq!(paced(&mut fixed, Duration::from_secs(1), 3), [7, 7, 7]);
        let mut auto = Pacer::new(StepsPerSubmission::Auto);
        paced(&mut auto, Duration::from_millis(1), 3);
        let before = auto.steps();
        auto.finished_at(None, Instant::now() + Duration::from_secs(60));
        assert_eq!(auto.steps(), before);
    }

    #[test]
    fn the_flag_takes_auto_or_a_count_that_fits_the_ring() {
        assert_eq!(
            StepsPerSubmission::parse("auto"),
            Ok(StepsPerSubmission::Auto)
        );
        assert_eq!(
            StepsPerSubmission::parse("4").map(|s| s.to_string()),
            Ok("4".to_string())
        );
        for bad in ["0", "257", "-1", "x", ""] {
            let err = StepsPerSubmission::parse(bad).unwrap_err();
            assert!(err.contains("from 1 to 256"), "{bad}: {err}");
        }
    }
}
