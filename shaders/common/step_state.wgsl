// Values that change from one training step to the next, rewritten by the host before each step's
// submission (`kernels::StepState` in Rust; tests/shaders.rs checks that both lay it out alike).
struct StepState {
    // Training step, counted from 0 over the whole run.
    step: u32,
    // Learning rate for this step.
    lr: f32,
    // Adam's step size with bias correction, computed on the host in f32 as Keras does.
    adam_alpha: f32,
    _pad: u32,
}
