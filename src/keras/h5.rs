//! Keras' two HDF5 weight layouts, through the pure-Rust `hdf5-pure` crate.
//!
//! Legacy (`model.save_weights("x.h5")` in Keras 2, `legacy_h5_format` in Keras 3; also the
//! `model_weights` group of a whole model saved by `model.save("x.h5")`):
//!
//! ```text
//! /                      attrs layer_names = [b"conv2d", b"activation", …], backend, keras_version
//! /conv2d                attrs weight_names = [b"conv2d/kernel:0", b"conv2d/bias:0"]
//! /conv2d/conv2d/kernel:0   float32 [kh, kw, in, out]
//! /conv2d/conv2d/bias:0     float32 [out]
//! /activation            attrs weight_names = [] (layers without weights)
//! ```
//!
//! Keras loads it by order: the i-th layer name with weights goes to the i-th layer of the model
//! that has weights, and a layer's tensors are read in `weight_names` order, whatever their names
//! (Keras 3 names them `sequential/conv2d/kernel`). We read it the same way.
//!
//! Keras 3 (`model.save_weights("x.weights.h5")`, and inside `.keras`): `layers/<key>/vars/0`
//! (kernel), `…/1` (bias), a `vars` group (attribute `name`: the layer's name) for every layer and
//! the model. `<key>` is NOT the layer's name: Keras 3 keys each layer by its class in snake case,
//! numbered within the model (`conv2d`, `dense`, `dense_1`, …, see `_get_unique_name` in
//! `keras/src/saving/saving_lib.py`), so a model whose layers are named `conv2d_1`, `dense_2` (the
//! second model built in a Python session) still stores `layers/conv2d`, `layers/dense`. We key
//! them the same way, and read them so.

use std::path::Path;

use hdf5_pure::{AttrValue, File, FileBuilder};

use super::{KERAS_VERSION, KerasError, SavedModel, default_class_names};
use crate::model::{ParamTensor, Sequential};

/// Keras' backend for the files we write: our layout is TensorFlow's (channels-last, kernels
/// `[kh, kw, in, out]`), the only one Keras 2 loads without converting.
const BACKEND: &str = "tensorflow";

/// Our extra root attribute (Keras ignores it): the class names, in label order.
const CLASS_NAMES_ATTR: &str = "class_names";

/// Keras 3's key for each layer of `model` inside `layers/`: the class in snake case, then `_1`,
/// `_2` … for repeats within the model.
fn keras3_keys(model: &Sequential) -> Vec<String> {
    let mut used = std::collections::HashMap::new();
    model
        .layers
        .iter()
        .map(|l| {
            let base = l.layer.keras_base_name();
            let n = used.entry(base).or_insert(0usize);
            let key = if *n == 0 {
                base.to_string()
            } else {
                format!("{base}_{n}")
            };
            *n += 1;
            key
        })
        .collect()
}

/// Parameter tensors grouped by layer, in model order, for layers that have any.
fn tensors_by_layer(model: &Sequential) -> Result<Vec<(String, Vec<ParamTensor>)>, String> {
    let tensors = model.param_tensors().map_err(|e| e.to_string())?;
    let mut out: Vec<(String, Vec<ParamTensor>)> = Vec::new();
    for l in &model.layers {
        let prefix = format!("{}/", l.name);
        let mine: Vec<ParamTensor> = tensors
            .iter()
            .filter(|t| t.name.starts_with(&prefix))
            .cloned()
            .collect();
        if !mine.is_empty() {
            out.push((l.name.clone(), mine));
        }
    }
    Ok(out)
}

fn shape_u64(shape: &[usize]) -> Vec<u64> {
    shape.iter().map(|&d| d as u64).collect()
}

/// The legacy layout, with fixed-length byte-string attributes as Keras 2 wrote them.
pub fn legacy_weights(saved: &SavedModel) -> Result<Vec<u8>, String> {
    let by_layer = tensors_by_layer(&saved.model)?;
    let mut b = FileBuilder::new();
    let names: Vec<String> = saved.model.layers.iter().map(|l| l.name.clone()).collect();
    b.set_attr("layer_names", AttrValue::AsciiStringArray(names));
    b.set_attr("backend", AttrValue::AsciiString(BACKEND.into()));
    b.set_attr(
        "keras_version",
        AttrValue::AsciiString(KERAS_VERSION.into()),
    );
    b.set_attr(
        CLASS_NAMES_ATTR,
        AttrValue::StringArray(saved.class_names.clone()),
    );
    for l in &saved.model.layers {
        let mut g = b.create_group(&l.name);
        match by_layer.iter().find(|(n, _)| *n == l.name) {
            Some((_, tensors)) => {
                let suffix = |t: &ParamTensor| {
                    t.name
                        .rsplit('/')
                        .next()
                        .expect("tensor names have a layer prefix")
                        .to_string()
                };
                let weight_names = tensors
                    .iter()
                    .map(|t| format!("{}/{}:0", l.name, suffix(t)))
                    .collect();
                g.set_attr("weight_names", AttrValue::AsciiStringArray(weight_names));
                let mut inner = g.create_group(&l.name);
                for t in tensors {
                    inner
                        .create_dataset(&format!("{}:0", suffix(t)))
                        .with_f32_data(&saved.params[t.offset..t.offset + t.len])
                        .with_shape(&shape_u64(&t.shape));
                }
                g.add_group(inner.finish());
            }
            // Keras writes an empty float64 array here; loaders treat a missing attribute the same.
            None => {
                g.set_attr("weight_names", AttrValue::F64Array(Vec::new()));
            }
        }
        b.add_group(g.finish());
    }
    b.finish().map_err(|e| e.to_string())
}

/// Keras 3's `.weights.h5` layout.
pub fn keras3_weights(saved: &SavedModel) -> Result<Vec<u8>, String> {
    let by_layer = tensors_by_layer(&saved.model)?;
    let mut b = FileBuilder::new();
    b.set_attr(
        CLASS_NAMES_ATTR,
        AttrValue::StringArray(saved.class_names.clone()),
    );
    let mut layers = b.create_group("layers");
    for (l, key) in saved.model.layers.iter().zip(keras3_keys(&saved.model)) {
        let mut g = layers.create_group(&key);
        let mut vars = g.create_group("vars");
        vars.set_attr("name", AttrValue::VarLenString(l.name.clone()));
        if let Some((_, tensors)) = by_layer.iter().find(|(n, _)| *n == l.name) {
            for (i, t) in tensors.iter().enumerate() {
                vars.create_dataset(&i.to_string())
                    .with_f32_data(&saved.params[t.offset..t.offset + t.len])
                    .with_shape(&shape_u64(&t.shape));
            }
        }
        g.add_group(vars.finish());
        layers.add_group(g.finish());
    }
    b.add_group(layers.finish());
    let mut vars = b.create_group("vars");
    vars.set_attr("name", AttrValue::VarLenString(saved.model.name.clone()));
    b.add_group(vars.finish());
    b.finish().map_err(|e| e.to_string())
}

/// Parses an HDF5 file, with a clear error for anything that is not one (or is cut short).
pub fn open(path: &Path, bytes: Vec<u8>) -> Result<File, KerasError> {
    if !hdf5_pure::is_hdf5_bytes(&bytes) {
        return Err(KerasError::malformed(
            path,
            format!(
                "not an HDF5 file ({} bytes, no HDF5 signature)",
                bytes.len()
            ),
        ));
    }
    let len = bytes.len();
    let file = File::from_bytes(bytes).map_err(|e| {
        KerasError::malformed(
            path,
            format!("unreadable HDF5 file ({len} bytes; truncated or damaged?): {e}"),
        )
    })?;
    // As libhdf5 does: a file shorter than its superblock's end-of-file address was cut short,
    // even when what remains happens to parse.
    let sb = file.superblock();
    let end = sb.base_address.get().saturating_add(sb.eof_address);
    if end > len as u64 {
        return Err(KerasError::malformed(
            path,
            format!("truncated HDF5 file: {len} bytes, its superblock says {end}"),
        ));
    }
    Ok(file)
}

fn h5err(path: &Path, what: &str) -> impl Fn(hdf5_pure::Error) -> KerasError {
    let path = path.to_path_buf();
    let what = what.to_string();
    move |e| KerasError::malformed(&path, format!("{what}: {e}"))
}

/// Strings of an attribute, joined over Keras' chunks (`name0`, `name1`, … when one attribute
/// would be too large); `None` when absent. An empty numeric array counts as no strings.
fn string_attr(
    path: &Path,
    attrs: &std::collections::HashMap<String, AttrValue>,
    name: &str,
) -> Result<Option<Vec<String>>, KerasError> {
    let strings = |v: &AttrValue| -> Result<Vec<String>, KerasError> {
        if let Some(s) = v.as_strings() {
            return Ok(s.to_vec());
        }
        match v {
            AttrValue::F64Array(a) if a.is_empty() => Ok(Vec::new()),
            AttrValue::F32Array(a) if a.is_empty() => Ok(Vec::new()),
            other => Err(KerasError::malformed(
                path,
                format!(
                    "attribute '{name}' is not a list of strings ({})",
                    other.type_name()
                ),
            )),
        }
    };
    if let Some(v) = attrs.get(name) {
        return strings(v).map(Some);
    }
    let mut out = Vec::new();
    let mut chunk = 0;
    while let Some(v) = attrs.get(&format!("{name}{chunk}")) {
        out.extend(strings(v)?);
        chunk += 1;
    }
    Ok((chunk > 0).then_some(out))
}

/// The architecture JSON of a whole model saved by `model.save("x.h5")`, if this is one.
pub fn model_config(path: &Path, file: &File) -> Result<Option<String>, KerasError> {
    let attrs = file
        .root()
        .attrs()
        .map_err(h5err(path, "root attributes"))?;
    match attrs.get("model_config") {
        None => Ok(None),
        Some(v) => v
            .as_str()
            .map(|s| Some(s.to_string()))
            .ok_or_else(|| KerasError::malformed(path, "attribute 'model_config' is not a string")),
    }
}

fn class_names(path: &Path, file: &File, model: &Sequential) -> Result<Vec<String>, KerasError> {
    let classes = model
        .classes()
        .map_err(|e| KerasError::malformed(path, e.to_string()))?;
    let attrs = file
        .root()
        .attrs()
        .map_err(h5err(path, "root attributes"))?;
    Ok(match string_attr(path, &attrs, CLASS_NAMES_ATTR)? {
        Some(names) if names.len() == classes => names,
        _ => default_class_names(classes),
    })
}

/// Reads one float tensor and checks its shape against the architecture's.
fn read_tensor(
    path: &Path,
    file: &File,
    dataset: &str,
    layer: &str,
    t: &ParamTensor,
    params: &mut [f32],
) -> Result<(), KerasError> {
    let ds = file.dataset(dataset).map_err(|e| {
        KerasError::mismatch(
            path,
            format!("layer '{layer}': weight '{dataset}' is missing ({e})"),
        )
    })?;
    let shape = ds.shape().map_err(h5err(path, dataset))?;
    if shape != shape_u64(&t.shape) {
        return Err(KerasError::mismatch(
            path,
            format!(
                "layer '{layer}': '{dataset}' has shape {shape:?}, the architecture needs {:?} \
                 ({})",
                t.shape, t.name
            ),
        ));
    }
    match ds.dtype().map_err(h5err(path, dataset))? {
        hdf5_pure::DType::F32 | hdf5_pure::DType::F64 => {}
        other => {
            // Display, not Debug: a type without a short name (float16) shows as `other(f16…)`.
            let name = other.to_string();
            let name = name
                .strip_prefix("other(")
                .and_then(|n| n.strip_suffix(')'))
                .unwrap_or(&name);
            return Err(KerasError::Unsupported {
                path: path.to_path_buf(),
                message: format!(
                    "layer '{layer}': '{dataset}' holds {name} values; weights are read as \
                     float32 or float64 only (save the model in float32)"
                ),
            });
        }
    }
    let values = ds.read_f32().map_err(h5err(path, dataset))?;
    if values.len() != t.len {
        return Err(KerasError::malformed(
            path,
            format!("'{dataset}': {} values for shape {shape:?}", values.len()),
        ));
    }
    params[t.offset..t.offset + t.len].copy_from_slice(&values);
    Ok(())
}

/// Reads either layout into `model`'s flat parameter vector.
pub fn load_weights(path: &Path, file: &File, model: Sequential) -> Result<SavedModel, KerasError> {
    let root = file.root();
    let attrs = root.attrs().map_err(h5err(path, "root attributes"))?;
    let groups = root.groups().map_err(h5err(path, "root groups"))?;
    let by_layer =
        tensors_by_layer(&model).map_err(|e| KerasError::malformed(path, e.to_string()))?;
    let mut params = vec![
        0.0f32;
        model
            .param_words()
            .map_err(|e| KerasError::malformed(path, e.to_string()))?
    ];
    if attrs.contains_key("layer_names") || attrs.contains_key("layer_names0") {
        load_legacy(path, file, "", &by_layer, &mut params)?;
    } else if groups.iter().any(|g| g == "model_weights") {
        load_legacy(path, file, "model_weights/", &by_layer, &mut params)?;
    } else if groups.iter().any(|g| g == "layers") {
        load_keras3(path, file, &model, &by_layer, &mut params)?;
    } else {
        return Err(KerasError::malformed(
            path,
            "not a Keras weights file: no 'layer_names' attribute (legacy .h5), \
             'model_weights' group (model.save) or 'layers' group (.weights.h5)",
        ));
    }
    let class_names = class_names(path, file, &model)?;
    Ok(SavedModel {
        model,
        class_names,
        params,
    })
}

fn load_legacy(
    path: &Path,
    file: &File,
    base: &str,
    by_layer: &[(String, Vec<ParamTensor>)],
    params: &mut [f32],
) -> Result<(), KerasError> {
    let group = if base.is_empty() {
        file.root()
    } else {
        file.group(base.trim_end_matches('/'))
            .map_err(h5err(path, base))?
    };
    let attrs = group.attrs().map_err(h5err(path, "attributes"))?;
    let layer_names = string_attr(path, &attrs, "layer_names")?
        .ok_or_else(|| KerasError::malformed(path, "no 'layer_names' attribute"))?;
    // Layers with weights, in file order, with their weight names.
    let mut saved = Vec::new();
    for name in &layer_names {
        let g = file.group(&format!("{base}{name}")).map_err(|e| {
            KerasError::mismatch(
                path,
                format!("layer '{name}' is listed in layer_names but has no group ({e})"),
            )
        })?;
        let gattrs = g.attrs().map_err(h5err(path, name))?;
        let weight_names = string_attr(path, &gattrs, "weight_names")?.unwrap_or_default();
        if !weight_names.is_empty() {
            saved.push((name.clone(), weight_names));
        }
    }
    if saved.len() != by_layer.len() {
        let list = |v: Vec<&String>| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
        return Err(KerasError::mismatch(
            path,
            format!(
                "the file has weights for {} layers ({}), the architecture has {} layers with \
                 weights ({})",
                saved.len(),
                list(saved.iter().map(|(n, _)| n).collect()),
                by_layer.len(),
                list(by_layer.iter().map(|(n, _)| n).collect()),
            ),
        ));
    }
    for ((file_layer, weight_names), (layer, tensors)) in saved.iter().zip(by_layer) {
        if weight_names.len() != tensors.len() {
            return Err(KerasError::mismatch(
                path,
                format!(
                    "layer '{layer}' needs {} weights (kernel, bias); '{file_layer}' in the file \
                     has {}: {weight_names:?}",
                    tensors.len(),
                    weight_names.len()
                ),
            ));
        }
        for (w, t) in weight_names.iter().zip(tensors) {
            read_tensor(
                path,
                file,
                &format!("{base}{file_layer}/{w}"),
                layer,
                t,
                params,
            )?;
        }
    }
    Ok(())
}

fn load_keras3(
    path: &Path,
    file: &File,
    model: &Sequential,
    by_layer: &[(String, Vec<ParamTensor>)],
    params: &mut [f32],
) -> Result<(), KerasError> {
    let present = file
        .group("layers")
        .and_then(|g| g.groups())
        .map_err(h5err(path, "layers"))?;
    let keys = keras3_keys(model);
    for (layer, tensors) in by_layer {
        let key = model
            .layers
            .iter()
            .zip(&keys)
            .find(|(l, _)| l.name == *layer)
            .map(|(_, k)| k.clone())
            .expect("every layer has a key");
        if !present.contains(&key) {
            let mut present = present.clone();
            present.sort();
            return Err(KerasError::mismatch(
                path,
                format!(
                    "no weights for layer '{layer}' (no group layers/{key}; the file has {})",
                    present.join(", ")
                ),
            ));
        }
        let vars = format!("layers/{key}/vars");
        let stored = file
            .group(&vars)
            .and_then(|g| g.datasets())
            .map_err(h5err(path, &vars))?;
        if stored.len() != tensors.len() {
            return Err(KerasError::mismatch(
                path,
                format!(
                    "layer '{layer}' needs {} weights (kernel, bias); {vars} has {}",
                    tensors.len(),
                    stored.len()
                ),
            ));
        }
        for (i, t) in tensors.iter().enumerate() {
            read_tensor(path, file, &format!("{vars}/{i}"), layer, t, params)?;
        }
    }
    Ok(())
}
