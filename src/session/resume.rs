//! `train --resume DIR`: the run its checkpoint records, and which flags of the command line may go
//! with it. Only flags that change nothing trained may differ from the record; the others may be
//! repeated with the recorded value, except a larger `--epochs`, which extends the run, and `--out`
//! naming the folder that holds the checkpoint when it was moved or copied. Anything else is refused
//! by name, in the words the CLI prints.

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use serde_json::Value;

use super::{SessionError, SessionOptions, Start, checkpoint_holder, flag_value, flavour_choice};
use crate::data::DataOptions;
use crate::gpu::{FlavourChoice, GpuOptions};
use crate::train::FitConfig;
use crate::train::checkpoint::Checkpoint;

/// The flags that change nothing trained: a resume takes them from the command line.
const FREE: [&str; 11] = [
    "resume",
    "quiet",
    "log_json",
    "profile",
    "cache_dir",
    "offline",
    "backend",
    "adapter",
    "limits",
    "shader_bounds_checks",
    "steps_per_submission",
];

/// The options of the run the checkpoint in `dir` records, given a command line: `given`, the ids
/// of the flags it gave (clap's: `batch_size`), `resume` among them; `new_run`, the options the same
/// flags would start a new run with (defaults where not given, `start` the preset or the model);
/// `optimizer`, the optimizer flags as JSON (`optimizer`, the kind's name, and each setting by its
/// flag's id; null or false where not given). A flag given with another value than the recorded one
/// is refused by name; a larger `--epochs` extends the run (each epoch's order depends only on the
/// seed and its number, so the result is that of an uninterrupted longer run).
pub fn resume_options(
    dir: &Path,
    given: &[String],
    new_run: &SessionOptions,
    optimizer: &Value,
) -> Result<SessionOptions, SessionError> {
    let ckpt = Checkpoint::load(dir)?;
    let st = &ckpt.state;
    let run = &st.run;
    let same_path = super::same_folder;
    // The folder holding the checkpoint, when that is not the recorded --out: moved or copied since.
    let holder = checkpoint_holder(dir)?;
    let moved = (!same_path(&holder, &run.out)).then_some(&holder);
    if let Some(holder) = moved
        && !given.iter().any(|g| g == "out")
    {
        return Err(format!(
            "--resume {}: the checkpoint of a run that wrote to {}; its folder was moved or \
             copied since. Add --out {} to continue the run there",
            dir.display(),
            run.out.display(),
            shell_quote(&holder.display().to_string())
        )
        .into());
    }
    let recorded = serde_json::to_value(&st.optimizer)?;
    let recorded_kind = recorded["kind"].as_str().unwrap_or_default();
    let fit = &new_run.fit;
    let path_text = |p: Option<&PathBuf>| p.map_or("none".to_string(), |p| p.display().to_string());
    let mut refused = Vec::new();
    for id in given.iter().filter(|id| !FREE.contains(&id.as_str())) {
        // (what was given, what the run recorded), when they differ.
        let differs: Option<(String, String)> = match id.as_str() {
            "epochs" => (fit.epochs < st.fit.epochs).then(|| {
                (
                    fit.epochs.to_string(),
                    format!(
                        "{}; only a larger value, which extends it, may be given",
                        st.fit.epochs
                    ),
                )
            }),
            "batch_size" => (fit.batch_size != st.fit.batch_size)
                .then(|| (fit.batch_size.to_string(), st.fit.batch_size.to_string())),
            "seed" => {
                (fit.seed != st.fit.seed).then(|| (fit.seed.to_string(), st.fit.seed.to_string()))
            }
            "no_shuffle" => st
                .fit
                .shuffle
                .then(|| ("given".into(), "not given (the run shuffles)".into())),
            "validation_split" => (new_run.validation_split != st.validation_split).then(|| {
                (
                    new_run.validation_split.to_string(),
                    st.validation_split.to_string(),
                )
            }),
            "out" => {
                let out = &new_run.out;
                let moved_there = moved.is_some_and(|h| same_path(out, h));
                (!same_path(out, &run.out) && !moved_there)
                    .then(|| (out.display().to_string(), run.out.display().to_string()))
            }
            "data" => {
                let want = new_run.data.data.as_ref();
                let same = match (want, &run.data) {
                    (Some(a), Some(b)) => same_path(a, b),
                    _ => false,
                };
                (!same).then(|| (path_text(want), path_text(run.data.as_ref())))
            }
            "image_size" => (new_run.data.image_size != run.image_size).then(|| {
                let show = |s: Option<(usize, usize)>| {
                    s.map_or("none".into(), |(h, w)| format!("{h}x{w}"))
                };
                (show(new_run.data.image_size), show(run.image_size))
            }),
            "preset" => {
                let name = match &new_run.start {
                    Start::Preset(p) => flag_value(p),
                    _ => String::new(),
                };
                (run.preset.as_deref() != Some(name.as_str())).then(|| {
                    let was = run.preset.clone().unwrap_or_else(|| match &run.model {
                        Some(m) => format!("none (the run started from --model {})", m.display()),
                        None => "none (the run started from --config)".into(),
                    });
                    (name, was)
                })
            }
            "model" => {
                let want = match &new_run.start {
                    Start::Model(path) => Some(path),
                    _ => None,
                };
                let same = match (want, &run.model) {
                    (Some(a), Some(b)) => same_path(a, b),
                    _ => false,
                };
                (!same).then(|| (path_text(want), path_text(run.model.as_ref())))
            }
            "tiling" => {
                let name = flag_value(&flavour_choice(&new_run.gpu));
                (name != run.tiling).then(|| (name, run.tiling.clone()))
            }
            "augment" | "rotation_range" | "width_shift_range" | "height_shift_range"
            | "zoom_range" | "horizontal_flip" | "no_horizontal_flip" | "fill_mode" => {
                let show = |a: &Option<_>| match a {
                    Some(a) => serde_json::to_string(a).unwrap_or_default(),
                    None => "no augmentation".into(),
                };
                (fit.augment != st.fit.augment).then(|| (show(&fit.augment), show(&st.fit.augment)))
            }
            "optimizer" => {
                let name = optimizer["optimizer"].as_str().unwrap_or_default();
                (name != recorded_kind).then(|| (name.to_string(), recorded_kind.to_string()))
            }
            field => {
                let value = match optimizer.get(field) {
                    // A switch given turns its option on.
                    Some(Value::Bool(_)) => true.into(),
                    Some(v) if !v.is_null() => v.clone(),
                    // A flag this list does not know yet: refused rather than silently ignored.
                    _ => Value::String("given".into()),
                };
                // Optimizer settings are f32: shown as such, not as the f64 JSON holds.
                let show = |v: &Value| match v.as_f64() {
                    Some(x) => (x as f32).to_string(),
                    None => v.to_string(),
                };
                match recorded.get(field) {
                    Some(was) if *was == value => None,
                    Some(was) => Some((show(&value), show(was))),
                    None => Some((
                        show(&value),
                        format!("none: its optimizer, {recorded_kind}, has no such setting"),
                    )),
                }
            }
        };
        if let Some((given, was)) = differs {
            refused.push(format!(
                "--{} {given} (the run's: {was})",
                id.replace('_', "-")
            ));
        }
    }
    if !refused.is_empty() {
        return Err(format!(
            "--resume {} continues the run its checkpoint records, and these flags contradict \
             it: {}. Drop them to continue that run, or start a new run with another --out",
            dir.display(),
            refused.join("; ")
        )
        .into());
    }
    // The session takes the data, --out and tiling from the checkpoint too; they are set here so
    // that these options say what will run.
    let tiling = FlavourChoice::from_str(&run.tiling, false).unwrap_or_default();
    let gpu = GpuOptions {
        tiling: tiling.forced(),
        matmul_subgroups: tiling.subgroups(),
        ..new_run.gpu.clone()
    };
    let extends = given.iter().any(|g| g == "epochs");
    Ok(SessionOptions {
        data: DataOptions {
            data: run.data.clone(),
            image_size: run.image_size,
            ..new_run.data.clone()
        },
        gpu,
        start: Start::Resume(dir.to_path_buf()),
        fit: FitConfig {
            epochs: if extends { fit.epochs } else { st.fit.epochs },
            ..st.fit.clone()
        },
        optimizer: st.optimizer.clone(),
        validation_split: st.validation_split,
        out: moved.unwrap_or(&run.out).clone(),
        profile: new_run.profile,
    })
}

/// `s` as one word for a POSIX shell: as is when it holds only safe characters, else in single
/// quotes (a quote inside becomes `'\''`).
pub fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{Activation, Dense, Flatten};
    use crate::model::io::SavedModel;
    use crate::model::{Preset, Sequential};
    use crate::optimizer::Optimizer;
    use crate::train::Progress;
    use crate::train::checkpoint::{RunRecord, RunState};

    /// The checkpoint of a run into `dir/run` (2 epochs, batch 4, seed 1, Adam) after its first
    /// epoch; its folder.
    fn checkpoint(dir: &Path) -> PathBuf {
        let model = Sequential::from_layers(
            "tiny",
            [2, 2, 1],
            vec![
                Flatten.into(),
                Dense::new(2).activation(Activation::Softmax).into(),
            ],
        );
        let params = model.init_params(1).unwrap();
        let optimizer = Optimizer::adam_default();
        let state = RunState {
            progress: Progress {
                epoch: 1,
                batch: 0,
                step: 5,
            },
            fit: FitConfig {
                epochs: 2,
                batch_size: 4,
                seed: 1,
                ..FitConfig::default()
            },
            optimizer: optimizer.clone(),
            validation_split: 0.2,
            run: RunRecord {
                run_id: "0".repeat(32),
                out: dir.join("run"),
                preset: Some("notebook".into()),
                tiling: "auto".into(),
                ..RunRecord::default()
            },
            history: Vec::new(),
            partial_metrics: [0; 4],
        };
        let ckpt = Checkpoint {
            optimizer_state: vec![vec![0.0; params.len()]; optimizer.state_buffers()],
            model: SavedModel {
                model,
                class_names: vec!["a".into(), "b".into()],
                params,
            },
            state,
        };
        let folder = dir.join("run/checkpoint");
        ckpt.save(&folder).unwrap();
        folder
    }

    /// `resume_options` of `ckpt` for a command line that gave `given`, with the new run's
    /// options as `edit` leaves the defaults and the optimizer flags `optimizer`.
    fn resume(
        ckpt: &Path,
        given: &[&str],
        edit: impl FnOnce(&mut SessionOptions),
        optimizer: Value,
    ) -> Result<SessionOptions, String> {
        let mut new_run = SessionOptions {
            data: DataOptions::default(),
            gpu: GpuOptions::default(),
            start: Start::Preset(Preset::Notebook),
            fit: FitConfig::default(),
            optimizer: Optimizer::rmsprop_default(),
            validation_split: 0.2,
            out: PathBuf::from("cifar10-model"),
            profile: false,
        };
        edit(&mut new_run);
        let given: Vec<String> = given.iter().map(|g| g.to_string()).collect();
        resume_options(ckpt, &given, &new_run, &optimizer).map_err(|e| e.to_string())
    }

    #[test]
    fn alone_or_with_free_or_repeated_flags_it_continues_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let ckpt = checkpoint(dir.path());
        let opts = resume(
            &ckpt,
            &["resume", "quiet", "batch_size", "seed", "lr"],
            |o| {
                o.fit.batch_size = 4;
                o.fit.seed = 1;
            },
            serde_json::json!({"lr": 0.001f32}),
        )
        .unwrap();
        assert_eq!((opts.fit.epochs, opts.fit.batch_size), (2, 4));
        assert_eq!(opts.optimizer, Optimizer::adam_default());
        assert_eq!(opts.out, dir.path().join("run"));
        assert!(matches!(opts.start, Start::Resume(ref d) if *d == ckpt));
        // A larger --epochs extends it.
        let opts = resume(&ckpt, &["epochs"], |o| o.fit.epochs = 5, Value::Null).unwrap();
        assert_eq!(opts.fit.epochs, 5);
    }

    #[test]
    fn contradicting_flags_are_refused_by_name_with_the_runs_values() {
        let dir = tempfile::tempdir().unwrap();
        let ckpt = checkpoint(dir.path());
        let err = resume(
            &ckpt,
            &[
                "epochs",
                "seed",
                "no_shuffle",
                "rho",
                "optimizer",
                "future_flag",
            ],
            |o| {
                o.fit.epochs = 1;
                o.fit.seed = 7;
            },
            serde_json::json!({"optimizer": "sgd", "rho": 0.5}),
        )
        .unwrap_err();
        for part in [
            "--epochs 1 (the run's: 2; only a larger value",
            "--seed 7 (the run's: 1)",
            "--no-shuffle given (the run's: not given (the run shuffles))",
            "--rho 0.5 (the run's: none: its optimizer, adam, has no such setting)",
            "--optimizer sgd (the run's: adam)",
            "--future-flag \"given\"",
            "Drop them to continue that run",
        ] {
            assert!(err.contains(part), "{part}: {err}");
        }
    }

    #[test]
    fn a_moved_folder_is_continued_only_with_its_new_out() {
        let dir = tempfile::tempdir().unwrap();
        checkpoint(dir.path());
        let moved = dir.path().join("moved folder");
        std::fs::rename(dir.path().join("run"), &moved).unwrap();
        let ckpt = moved.join("checkpoint");
        let err = resume(&ckpt, &["resume"], |_| {}, Value::Null).unwrap_err();
        let quoted = shell_quote(&moved.display().to_string());
        assert!(err.contains(&format!("Add --out {quoted}")), "{err}");
        let opts = resume(&ckpt, &["out"], |o| o.out = moved.clone(), Value::Null).unwrap();
        assert_eq!(opts.out, moved);
    }

    #[test]
    fn shell_quote_leaves_safe_words_and_quotes_the_rest() {
        assert_eq!(shell_quote("a/b-c.d"), "a/b-c.d");
        assert_eq!(shell_quote("it's here"), r"'it'\''s here'");
        assert_eq!(shell_quote(""), "''");
    }
}
