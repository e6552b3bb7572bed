// Optimizer updates over flat buffers: every parameter of the model in one tensor, the gradients in
// another, the optimizer's per-parameter state in others, so one dispatch updates the whole model.
// Each rule is Keras 3's `update_step`, operation for operation in f32
// (keras/src/optimizers/{sgd,rmsprop,adam}.py). CPU twin: src/reference/optimizer.rs.
//
// Run constants (momentum, rho, 1 - rho, ... computed on the host as Keras does) are in the uniform
// `p`; per-step values (learning rate, Adam's bias-corrected step size) in the StepState buffer `st`.
// The rule itself is the override RULE (one of the rule constants), so each pipeline holds one rule
// and the compiler folds the choice away.
//
// Bindings: 1 params (read_write), 2 grads, 3 step state, 4.. state tensors in Optimizer::state_buffers
// order. Automatic layouts must use every binding, so the entry points go by the number of state
// tensors: `updateN` binds N. Each has a `_vec4` twin (four parameters per invocation, used when the
// length is a multiple of 4, which the padded flat buffer always is). The arithmetic is written once
// on vec4<f32>; scalar entry points splat and keep lane x, so both round identically.
// Timings: docs/PERFORMANCE.md.

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

//!include common/step_state.wgsl

alias v4 = vec4<f32>;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> st: StepState;
@group(0) @binding(4) var<storage, read_write> s0: array<f32>;
@group(0) @binding(5) var<storage, read_write> s1: array<f32>;
@group(0) @binding(6) var<storage, read_write> s2: array<f32>;
// The same bindings seen four words at a time, for the `_vec4` entry points (length / 4 elements).
@group(0) @binding(1) var<storage, read_write> w4: array<v4>;
@group(0) @binding(2) var<storage, read> g4: array<v4>;
@group(0) @binding(4) var<storage, read_write> s0_4: array<v4>;
@group(0) @binding(5) var<storage, read_write> s1_4: array<v4>;
@group(0) @binding(6) var<storage, read_write> s2_4: array<v4>;

override WG: u32;
// The rule, one of the numbers below; set from Rust (`kernels::optimizer`, which numbers them
// alike: tests/shaders.rs checks both).
override RULE: u32;
const SGD: u32 = 0u;
const SGD_MOMENTUM: u32 = 1u;
const RMSPROP: u32 = 2u;
const RMSPROP_MOMENTUM: u32 = 3u;
const RMSPROP_CENTERED: u32 = 4u;
const RMSPROP_CENTERED_MOMENTUM: u32 = 5u;
const ADAM: u32 = 6u;
const ADAM_AMSGRAD: u32 = 7u;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

fn splat(x: f32) -> v4 {
    return v4(x);
}

// ---- SGD --------------------------------------------------------------------------------------------

// No momentum: `assign_sub(variable, gradient * learning_rate)`.
fn sgd_rule(w: v4, grad: v4) -> v4 {
    return w - grad * st.lr;
}

// Momentum:
//   m = m * momentum - gradient * learning_rate
//   nesterov: variable += m * momentum - gradient * learning_rate;  else: variable += m
// Returns (new m, new variable) as two columns.
fn sgd_momentum_rule(w: v4, grad: v4, m_old: v4) -> mat2x4<f32> {
    let step = grad * st.lr;
    let m = m_old * p.momentum - step;
    if p.nesterov != 0u {
        return mat2x4<f32>(m, w + (m * p.momentum - step));
    }
    return mat2x4<f32>(m, w + m);
}

// ---- RMSprop ----------------------------------------------------------------------------------------

// velocity = rho * velocity + (1 - rho) * square(gradient)
fn rms_velocity(v: v4, grad: v4) -> v4 {
    return p.decay * v + p.one_minus_decay * (grad * grad);
}

// average_grad = rho * average_grad + (1 - rho) * gradient   (centered only)
fn rms_average(a: v4, grad: v4) -> v4 {
    return p.decay * a + p.one_minus_decay * grad;
}

// increment = lr * gradient / sqrt(denominator), denominator = velocity (- square(average_grad)) + epsilon.
// Keras 2.3 (legacy_epsilon): lr * g / (sqrt(velocity) + epsilon).
fn rms_increment(grad: v4, second_moment: v4) -> v4 {
    if p.legacy_epsilon != 0u {
        return (st.lr * grad) / (sqrt(second_moment) + p.epsilon);
    }
    return (st.lr * grad) / sqrt(second_moment + p.epsilon);
}

// state [velocity]. Returns (velocity, variable).
fn rmsprop_rule(w: v4, grad: v4, v_old: v4) -> mat2x4<f32> {
    let v = rms_velocity(v_old, grad);
    return mat2x4<f32>(v, w - rms_increment(grad, v));
}

// state [velocity, momentum]: momentum = momentum * m + increment; variable -= m.
// Returns (velocity, momentum, variable).
fn rmsprop_momentum_rule(w: v4, grad: v4, v_old: v4, m_old: v4) -> mat3x4<f32> {
    let v = rms_velocity(v_old, grad);
    let m = p.momentum * m_old + rms_increment(grad, v);
    return mat3x4<f32>(v, m, w - m);
}

// state [velocity, average_grad]. Returns (velocity, average_grad, variable).
fn rmsprop_centered_rule(w: v4, grad: v4, v_old: v4, a_old: v4) -> mat3x4<f32> {
    let v = rms_velocity(v_old, grad);
    let a = rms_average(a_old, grad);
    return mat3x4<f32>(v, a, w - rms_increment(grad, v - a * a));
}

// state [velocity, momentum, average_grad]. Returns (velocity, momentum, average_grad, variable).
fn rmsprop_centered_momentum_rule(w: v4, grad: v4, v_old: v4, m_old: v4, a_old: v4) -> mat4x4<f32> {
    let v = rms_velocity(v_old, grad);
    let a = rms_average(a_old, grad);
    let m = p.momentum * m_old + rms_increment(grad, v - a * a);
    return mat4x4<f32>(v, m, a, w - m);
}

// ---- Adam -------------------------------------------------------------------------------------------

// m += (gradient - m) * (1 - beta_1); v += (square(gradient) - v) * (1 - beta_2); returns (m, v).
fn adam_moments(grad: v4, m: v4, v: v4) -> mat2x4<f32> {
    return mat2x4<f32>(m + (grad - m) * p.one_minus_decay, v + (grad * grad - v) * p.one_minus_decay2);
}

// variable -= (m * alpha) / (sqrt(v) + epsilon)
fn adam_increment(m: v4, v: v4) -> v4 {
    return (m * st.adam_alpha) / (sqrt(v) + p.epsilon);
}

// state [m, v]. Returns (m, v, variable).
fn adam_rule(w: v4, grad: v4, m_old: v4, v_old: v4) -> mat3x4<f32> {
    let mv = adam_moments(grad, m_old, v_old);
    return mat3x4<f32>(mv[0], mv[1], w - adam_increment(mv[0], mv[1]));
}

// state [m, v, v_hat]: v_hat = maximum(v_hat, v), used in place of v. Returns (m, v, v_hat, variable).
fn adam_amsgrad_rule(w: v4, grad: v4, m_old: v4, v_old: v4, v_hat_old: v4) -> mat4x4<f32> {
    let mv = adam_moments(grad, m_old, v_old);
    let v_hat = max(v_hat_old, mv[1]);
    return mat4x4<f32>(mv[0], mv[1], v_hat, w - adam_increment(mv[0], v_hat));
}

// ---- Entry points -----------------------------------------------------------------------------------

// RULE on four parameters. `s` holds the rule's state tensors in Optimizer::state_buffers order
// (columns past their number are zero, unread); returns them updated in the same columns, and the
// variable in column 3.
fn apply(w: v4, grad: v4, s: mat3x4<f32>) -> mat4x4<f32> {
    let z = v4();
    switch RULE {
        case SGD: {
            return mat4x4<f32>(z, z, z, sgd_rule(w, grad));
        }
        case SGD_MOMENTUM: {
            let r = sgd_momentum_rule(w, grad, s[0]);
            return mat4x4<f32>(r[0], z, z, r[1]);
        }
        case RMSPROP: {
            let r = rmsprop_rule(w, grad, s[0]);
            return mat4x4<f32>(r[0], z, z, r[1]);
        }
        case RMSPROP_MOMENTUM: {
            let r = rmsprop_momentum_rule(w, grad, s[0], s[1]);
            return mat4x4<f32>(r[0], r[1], z, r[2]);
        }
        case RMSPROP_CENTERED: {
            let r = rmsprop_centered_rule(w, grad, s[0], s[1]);
            return mat4x4<f32>(r[0], r[1], z, r[2]);
        }
        case RMSPROP_CENTERED_MOMENTUM: {
            return rmsprop_centered_momentum_rule(w, grad, s[0], s[1], s[2]);
        }
        case ADAM: {
            let r = adam_rule(w, grad, s[0], s[1]);
            return mat4x4<f32>(r[0], r[1], z, r[2]);
        }
        case ADAM_AMSGRAD, default: {
            return adam_amsgrad_rule(w, grad, s[0], s[1], s[2]);
        }
    }
}

@compute @workgroup_size(WG)
fn update0(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i < p.len {
        w[i] = apply(splat(w[i]), splat(g[i]), mat3x4<f32>())[3].x;
    }
}

@compute @workgroup_size(WG)
fn update0_vec4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i < p.len / 4u {
        w4[i] = apply(w4[i], g4[i], mat3x4<f32>())[3];
    }
}

@compute @workgroup_size(WG)
fn update1(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i < p.len {
        let r = apply(splat(w[i]), splat(g[i]), mat3x4<f32>(splat(s0[i]), v4(), v4()));
        s0[i] = r[0].x;
        w[i] = r[3].x;
    }
}

@compute @workgroup_size(WG)
fn update1_vec4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i < p.len / 4u {
        let r = apply(w4[i], g4[i], mat3x4<f32>(s0_4[i], v4(), v4()));
        s0_4[i] = r[0];
        w4[i] = r[3];
    }
}

@compute @workgroup_size(WG)
fn update2(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i < p.len {
        let r = apply(splat(w[i]), splat(g[i]), mat3x4<f32>(splat(s0[i]), splat(s1[i]), v4()));
        s0[i] = r[0].x;
        s1[i] = r[1].x;
        w[i] = r[3].x;
    }
}

@compute @workgroup_size(WG)
fn update2_vec4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i < p.len / 4u {
        let r = apply(w4[i], g4[i], mat3x4<f32>(s0_4[i], s1_4[i], v4()));
        s0_4[i] = r[0];
        s1_4[i] = r[1];
        w4[i] = r[3];
    }
}

@compute @workgroup_size(WG)
fn update3(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i < p.len {
        let r = apply(splat(w[i]), splat(g[i]), mat3x4<f32>(splat(s0[i]), splat(s1[i]), splat(s2[i])));
        s0[i] = r[0].x;
        s1[i] = r[1].x;
        s2[i] = r[2].x;
        w[i] = r[3].x;
    }
}

@compute @workgroup_size(WG)
fn update3_vec4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i < p.len / 4u {
        let r = apply(w4[i], g4[i], mat3x4<f32>(s0_4[i], s1_4[i], s2_4[i]));
        s0_4[i] = r[0];
        s1_4[i] = r[1];
        s2_4[i] = r[2];
        w4[i] = r[3];
    }
}
