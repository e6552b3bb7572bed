//! Reading the CIFAR-10 Python batches (pickles holding a numpy array) with `serde-pickle`.
//!
//! Nothing is executed: serde-pickle interprets the opcodes itself and never imports anything.
//! A numpy array pickles as `_reconstruct(ndarray, (0,), b'b')` followed by `BUILD` with the state
//! tuple `(version, shape, dtype, is_fortran, raw_bytes)`. serde-pickle keeps unknown globals as
//! opaque stand-ins and, on `BUILD`, replaces the stand-in by the state, so the array arrives as that
//! 5-tuple. The dtype arrives the same way as its own state `(3, '|', None, None, None, -1, -1, 0)`:
//! the type code ('u1') is in the REDUCE arguments, which serde-pickle drops. So we check what we
//! can see: byte order '|' (not applicable: a one-byte type), C order, and raw data whose length is
//! exactly the product of the shape (one byte per element).
//!
//! Keys may be bytes (Python 2 `str`, what the real archive holds and what `encoding='bytes'` users
//! see) or str (a pickle re-written by Python 3); both are accepted. The raw data may be a byte
//! string (Python 2), `_codecs.encode(...)` (Python 3, protocol 2) or `bytes` (protocol 3+).

use serde_pickle::{DeOptions, HashableValue, Value};

use super::DataError;

/// One decoded batch: `rows` records of `cols` bytes, and one label per row.
#[derive(Debug)]
pub(crate) struct PickledBatch {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<u8>,
    pub labels: Vec<i64>,
}

fn options() -> DeOptions {
    DeOptions::new().replace_unresolved_globals()
}

/// Parse a whole pickle (already bounded in size by the caller).
fn parse(bytes: &[u8], file: &str) -> Result<Value, DataError> {
    serde_pickle::value_from_slice(bytes, options()).map_err(|e| DataError::BadPickle {
        file: file.to_string(),
        detail: format!("cannot unpickle: {e}"),
    })
}

fn bad(file: &str, detail: impl Into<String>) -> DataError {
    DataError::BadPickle {
        file: file.to_string(),
        detail: detail.into(),
    }
}

/// Take `key` (bytes or str) out of a dict.
fn take(dict: &mut std::collections::BTreeMap<HashableValue, Value>, key: &str) -> Option<Value> {
    dict.remove(&HashableValue::Bytes(key.as_bytes().to_vec()))
        .or_else(|| dict.remove(&HashableValue::String(key.to_string())))
}

fn into_dict(
    value: Value,
    file: &str,
) -> Result<std::collections::BTreeMap<HashableValue, Value>, DataError> {
    match value {
        Value::Dict(d) => Ok(d),
        other => Err(bad(
            file,
            format!("top level is {}, expected a dict", kind(&other)),
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::None => "None",
        Value::Bool(_) => "a bool",
        Value::I64(_) | Value::Int(_) => "an int",
        Value::F64(_) => "a float",
        Value::Bytes(_) => "bytes",
        Value::String(_) => "a str",
        Value::List(_) => "a list",
        Value::Tuple(_) => "a tuple",
        Value::Set(_) | Value::FrozenSet(_) => "a set",
        Value::Dict(_) => "a dict",
    }
}

fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::I64(i) => Some(*i),
        Value::Bool(b) => Some(*b as i64),
        _ => None,
    }
}

/// The numpy state tuple `(version, shape, dtype_state, is_fortran, raw)` → (shape, raw bytes).
fn numpy_array(value: Value, file: &str) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let bad = |d: &str| bad(file, format!("b'data' is not a uint8 numpy array: {d}"));
    let mut items = match value {
        // Plain bytes are accepted as a flat array (some re-packagings store them so).
        Value::Bytes(b) => return Ok((vec![b.len()], b)),
        Value::Tuple(items) => items,
        other => return Err(bad(&format!("found {}", kind(&other)))),
    };
    if items.len() != 5 {
        return Err(bad(&format!(
            "state tuple has {} items, expected 5",
            items.len()
        )));
    }
    let raw = match items.pop() {
        Some(Value::Bytes(b)) => b,
        Some(Value::String(s)) => {
            // A latin-1 str standing for bytes (Python 2 unicode); every char must fit in a byte.
            if s.chars().any(|c| c as u32 > 255) {
                return Err(bad("raw data is a str with non-latin-1 characters"));
            }
            s.chars().map(|c| c as u32 as u8).collect()
        }
        Some(Value::List(_)) => return Err(bad("raw data is a list (an object array, not uint8)")),
        Some(other) => return Err(bad(&format!("raw data is {}", kind(&other)))),
        None => unreachable!("length checked above"),
    };
    if items.pop().as_ref().and_then(as_int).unwrap_or(0) != 0 {
        return Err(bad("array is in Fortran order"));
    }
    let dtype = items.pop();
    if let Some(Value::Tuple(d)) = &dtype {
        let order = d.get(1);
        let single_byte = matches!(order, Some(Value::Bytes(b)) if b == b"|")
            || matches!(order, Some(Value::String(s)) if s == "|");
        if !single_byte {
            return Err(bad(
                "dtype is not a single-byte type (byte order is not '|')",
            ));
        }
    }
    let shape = match items.pop() {
        Some(Value::Tuple(dims)) | Some(Value::List(dims)) => dims
            .iter()
            .map(|d| as_int(d).filter(|&x| x >= 0).map(|x| x as usize))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| bad("shape has a non-integer or negative entry"))?,
        _ => return Err(bad("shape is not a tuple")),
    };
    let elements = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if elements != Some(raw.len()) {
        return Err(bad(&format!(
            "shape {shape:?} needs {} one-byte elements but the raw data has {} bytes",
            elements.map_or("too many".to_string(), |e| e.to_string()),
            raw.len()
        )));
    }
    Ok((shape, raw))
}

/// A `data_batch_N` / `test_batch` pickle: dict with b'data' (N×3072 uint8) and b'labels' (N ints).
/// Takes the bytes by value to free them as soon as they are parsed.
pub(crate) fn read_batch(bytes: Vec<u8>, file: &str) -> Result<PickledBatch, DataError> {
    let value = parse(&bytes, file)?;
    drop(bytes);
    let mut dict = into_dict(value, file)?;
    let data = take(&mut dict, "data").ok_or_else(|| bad(file, "no b'data' key"))?;
    let (shape, data) = numpy_array(data, file)?;
    let (rows, cols) = match shape[..] {
        [rows, cols] => (rows, cols),
        [flat] => (1, flat),
        _ => {
            return Err(bad(
                file,
                format!("b'data' has shape {shape:?}, expected (records, 3072)"),
            ));
        }
    };
    let labels = match take(&mut dict, "labels") {
        Some(Value::List(l)) | Some(Value::Tuple(l)) => l,
        Some(other) => {
            return Err(bad(
                file,
                format!("b'labels' is {}, expected a list", kind(&other)),
            ));
        }
        None => return Err(bad(file, "no b'labels' key")),
    };
    let labels = labels
        .iter()
        .enumerate()
        .map(|(i, v)| {
            as_int(v).ok_or_else(|| bad(file, format!("label {i} is {}, not an int", kind(v))))
        })
        .collect::<Result<Vec<i64>, _>>()?;
    Ok(PickledBatch {
        rows,
        cols,
        data,
        labels,
    })
}

/// `batches.meta`: dict with b'label_names' (list of bytes or str).
pub(crate) fn read_meta(bytes: &[u8], file: &str) -> Result<Vec<String>, DataError> {
    let meta_err = |d: String| DataError::BadMeta {
        file: file.to_string(),
        detail: d,
    };
    let mut dict = into_dict(parse(bytes, file)?, file)?;
    let names = match take(&mut dict, "label_names") {
        Some(Value::List(l)) | Some(Value::Tuple(l)) => l,
        Some(other) => {
            return Err(meta_err(format!(
                "b'label_names' is {}, expected a list",
                kind(&other)
            )));
        }
        None => return Err(meta_err("no b'label_names' key".into())),
    };
    names
        .into_iter()
        .map(|v| match v {
            Value::Bytes(b) => {
                String::from_utf8(b).map_err(|_| meta_err("a class name is not UTF-8".into()))
            }
            Value::String(s) => Ok(s),
            other => Err(meta_err(format!("a class name is {}", kind(&other)))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by CPython 3 `pickle.dumps(d, protocol=2)` where `d = {'data': A, 'labels': [3, 7]}` and
    /// `A` is an object whose `__reduce__` returns exactly what numpy's `ndarray.__reduce__` returns for
    /// `np.arange(6, dtype=np.uint8).reshape(2, 3)` (numpy is not installed here). Python 3 writes the
    /// raw bytes as `_codecs.encode('\x00\x01...', 'latin1')`, keys as str.
    const PY3_PROTOCOL2: &[u8] = b"\x80\x02}q\x00(X\x04\x00\x00\x00dataq\x01cnumpy.core.multiarray\n_reconstruct\nq\x02cnumpy\nndarray\nq\x03K\x00\x85q\x04c_codecs\nencode\nq\x05X\x01\x00\x00\x00bq\x06X\x06\x00\x00\x00latin1q\x07\x86q\x08Rq\t\x87q\nRq\x0b(K\x01K\x02K\x03\x86q\x0ccnumpy\ndtype\nq\rX\x02\x00\x00\x00u1q\x0eK\x00K\x01\x87q\x0fRq\x10(K\x03X\x01\x00\x00\x00|q\x11NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tq\x12b\x89h\x05X\x06\x00\x00\x00\x00\x01\x02\x03\x04\x05q\x13h\x07\x86q\x14Rq\x15tq\x16bX\x06\x00\x00\x00labelsq\x17]q\x18(K\x03K\x07eu.";

    /// The same object written with `protocol=4` (FRAME, STACK_GLOBAL, MEMOIZE, SHORT_BINBYTES).
    const PY3_PROTOCOL4: &[u8] = b"\x80\x04\x95\xae\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x04data\x94\x8c\x15numpy.core.multiarray\x94\x8c\x0c_reconstruct\x94\x93\x94\x8c\x05numpy\x94\x8c\x07ndarray\x94\x93\x94K\x00\x85\x94C\x01b\x94\x87\x94R\x94(K\x01K\x02K\x03\x86\x94h\x05\x8c\x05dtype\x94\x93\x94\x8c\x02u1\x94K\x00K\x01\x87\x94R\x94(K\x03\x8c\x01|\x94NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t\x94b\x89C\x06\x00\x01\x02\x03\x04\x05\x94t\x94b\x8c\x06labels\x94]\x94(K\x03K\x07eu.";

    #[test]
    fn python3_numpy_pickles_protocol_2_and_4() {
        for bytes in [PY3_PROTOCOL2, PY3_PROTOCOL4] {
            let b = read_batch(bytes.to_vec(), "t").unwrap();
            assert_eq!((b.rows, b.cols), (2, 3));
            assert_eq!(b.data, vec![0, 1, 2, 3, 4, 5]);
            assert_eq!(b.labels, vec![3, 7]);
        }
    }

    #[test]
    fn rejects_non_dict_and_missing_keys() {
        let e = read_batch(b"\x80\x02K\x01.".to_vec(), "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected a dict"), "{e}");
        let e = read_batch(b"\x80\x02}q\x00.".to_vec(), "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no b'data' key"), "{e}");
    }
}
