// Optimizer updates over flat buffers: every parameter of the model in one tensor, the gradients in
// another of the same length, and the optimizer's per-parameter state in others, so one dispatch updates
// the whole model. Each rule is Keras 3's `update_step`, operation for operation in f32
// (keras/src/optimizers/{sgd,rmsprop,adam}.py); the comments quote the Keras lines.
//
// Constants of the run (momentum, rho, 1 - rho, ... computed on the host as Keras does, with Python
// floats) are in the uniform `p`. Per-step values are in the StepState buffer `st` that the host rewrites
// before each step: the learning rate (so a schedule needs no new dispatch) and Adam's bias-corrected
// step size alpha = lr * sqrt(1 - beta2^t) / (1 - beta1^t), computed on the host in f32 as Keras does.
//
// Bindings: 1 params (read_write), 2 grads, 3 step state, 4.. state tensors in Optimizer::state_buffers
// order. WGSL pipelines with automatic layout must use every binding they are given, and the number of
// state tensors depends on the options (momentum, centered, amsgrad), so each combination has its own
// entry point that touches exactly its tensors; the arithmetic is shared in functions.

struct Params {
    len: u32,
    // SGD, RMSprop: momentum.
    momentum: f32,
    // RMSprop: rho and 1 - rho. Adam: 1 - beta1 and 1 - beta2.
    decay: f32,
    one_minus_decay: f32,
    one_minus_decay2: f32,
    epsilon: f32,
    // SGD: nesterov. RMSprop: epsilon outside the root (Keras 2.3). 0 or 1.
    nesterov: u32,
    legacy_epsilon: u32,
}

struct StepState {
    step: u32,
    lr: f32,
    adam_alpha: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> st: StepState;
@group(0) @binding(4) var<storage, read_write> s0: array<f32>;
@group(0) @binding(5) var<storage, read_write> s1: array<f32>;
@group(0) @binding(6) var<storage, read_write> s2: array<f32>;

const WG: u32 = 256u;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// ---- SGD --------------------------------------------------------------------------------------------

// No momentum: state []. `assign_sub(variable, gradient * learning_rate)`.
@compute @workgroup_size(WG)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i < p.len {
        w[i] = w[i] - g[i] * st.lr;
    }
}

// Momentum: state [m].
//   m = m * momentum - gradient * learning_rate
//   nesterov: variable += m * momentum - gradient * learning_rate;  else: variable += m
@compute @workgroup_size(WG)
fn sgd_momentum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i >= p.len {
        return;
    }
    let step = g[i] * st.lr;
    let m = s0[i] * p.momentum - step;
    s0[i] = m;
    if p.nesterov != 0u {
        w[i] = w[i] + (m * p.momentum - step);
    } else {
        w[i] = w[i] + m;
    }
}

// ---- RMSprop ----------------------------------------------------------------------------------------

// velocity = rho * velocity + (1 - rho) * square(gradient)
fn rms_velocity(v: f32, grad: f32) -> f32 {
    return p.decay * v + p.one_minus_decay * (grad * grad);
}

// average_grad = rho * average_grad + (1 - rho) * gradient   (centered only)
fn rms_average(a: f32, grad: f32) -> f32 {
    return p.decay * a + p.one_minus_decay * grad;
}

// increment = lr * gradient / sqrt(denominator), denominator = velocity (- square(average_grad)) + epsilon.
// Keras 2.3 (legacy_epsilon): lr * g / (sqrt(velocity) + epsilon).
fn rms_increment(grad: f32, second_moment: f32) -> f32 {
    if p.legacy_epsilon != 0u {
        return (st.lr * grad) / (sqrt(second_moment) + p.epsilon);
    }
    return (st.lr * grad) / sqrt(second_moment + p.epsilon);
}

// state [velocity]
@compute @workgroup_size(WG)
fn rmsprop(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i >= p.len {
        return;
    }
    let grad = g[i];
    let v = rms_velocity(s0[i], grad);
    s0[i] = v;
    w[i] = w[i] - rms_increment(grad, v);
}

// state [velocity, momentum]: momentum = momentum * m + increment; variable -= m
@compute @workgroup_size(WG)
fn rmsprop_momentum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i >= p.len {
        return;
    }
    let grad = g[i];
    let v = rms_velocity(s0[i], grad);
    s0[i] = v;
    let m = p.momentum * s1[i] + rms_increment(grad, v);
    s1[i] = m;
    w[i] = w[i] - m;
}

// state [velocity, average_grad]
@compute @workgroup_size(WG)
fn rmsprop_centered(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i >= p.len {
        return;
    }
    let grad = g[i];
    let v = rms_velocity(s0[i], grad);
    let a = rms_average(s1[i], grad);
    s0[i] = v;
    s1[i] = a;
    w[i] = w[i] - rms_increment(grad, v - a * a);
}

// state [velocity, momentum, average_grad]
@compute @workgroup_size(WG)
fn rmsprop_centered_momentum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i >= p.len {
        return;
    }
    let grad = g[i];
    let v = rms_velocity(s0[i], grad);
    let a = rms_average(s2[i], grad);
    s0[i] = v;
    s2[i] = a;
    let m = p.momentum * s1[i] + rms_increment(grad, v - a * a);
    s1[i] = m;
    w[i] = w[i] - m;
}

// ---- Adam -------------------------------------------------------------------------------------------

// m += (gradient - m) * (1 - beta_1); v += (square(gradient) - v) * (1 - beta_2); returns (m, v).
fn adam_moments(grad: f32, m: f32, v: f32) -> vec2<f32> {
    return vec2<f32>(m + (grad - m) * p.one_minus_decay, v + (grad * grad - v) * p.one_minus_decay2);
}

// variable -= (m * alpha) / (sqrt(v) + epsilon)
fn adam_increment(m: f32, v: f32) -> f32 {
    return (m * st.adam_alpha) / (sqrt(v) + p.epsilon);
}

// state [m, v]
@compute @workgroup_size(WG)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i >= p.len {
        return;
    }
    let mv = adam_moments(g[i], s0[i], s1[i]);
    s0[i] = mv.x;
    s1[i] = mv.y;
    w[i] = w[i] - adam_increment(mv.x, mv.y);
}

// state [m, v, v_hat]: v_hat = maximum(v_hat, v), used in place of v.
@compute @workgroup_size(WG)
fn adam_amsgrad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i >= p.len {
        return;
    }
    let mv = adam_moments(g[i], s0[i], s1[i]);
    let v_hat = max(s2[i], mv.y);
    s0[i] = mv.x;
    s1[i] = mv.y;
    s2[i] = v_hat;
    w[i] = w[i] - adam_increment(mv.x, v_hat);
}
