//! Reading the CIFAR-10 Python batches: a bounded reader for the one shape their pickles have, not
//! a general unpickler.
//!
//! What it reads: a dict whose keys are byte strings (Python 2 `str`, what the real archive and
//! Keras' copy hold) or str (a Python 3 re-pickle), whose values are byte strings, str, ints, lists
//! of ints or strs, and one uint8 numpy array. A numpy array pickles as
//! `numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b')` followed by `BUILD` with the
//! state `(version, shape, numpy.dtype('u1', 0, 1), is_fortran, raw)`. The raw data is a byte string
//! (Python 2), `_codecs.encode(str, 'latin1')` (Python 3, protocol 2) or `bytes` (protocol 3+).
//! Protocol 5 writes the array as `numpy.core.numeric._frombuffer(bytearray, dtype, shape, 'C')`.
//! Opcodes of protocols 2 to 5 that such pickles use are read; any other opcode is refused.
//!
//! Nothing is executed or imported: `GLOBAL`/`STACK_GLOBAL` may only name the five callables above
//! (`numpy._core...` too, as numpy 2 writes it), which `REDUCE` and `BUILD` interpret here; any
//! other name is refused.
//!
//! Bounds: every length field is checked against the bytes left in the input (itself capped by the
//! caller) before anything is allocated; containers nest at most [`MAX_DEPTH`] deep and at most
//! [`MAX_DEPTH`] MARKs are open at once; at most [`MAX_VALUES`] values are created (copies made by
//! the memo included); latin-1 conversions may make at most as many bytes as the input holds.
//! Byte strings and strs are shared, never copied, by the memo and the stack.

use std::collections::HashMap;
use std::rc::Rc;

use super::DataError;

/// Deepest container nesting, and most MARKs open at once. A CIFAR batch needs 3.
pub const MAX_DEPTH: usize = 32;
/// Most values one pickle may create (memo copies counted). A real batch creates about 40,000.
pub const MAX_VALUES: usize = 1_000_000;

/// Most class names `batches.meta` may list.
const MAX_CLASS_NAMES: usize = 256;

/// One decoded batch: `rows` records of `cols` bytes, and one label per row.
#[derive(Debug)]
pub(crate) struct PickledBatch {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<u8>,
    pub labels: Vec<i64>,
}

/// The callables a CIFAR pickle may name; they are interpreted, never called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Global {
    Reconstruct,
    Ndarray,
    Dtype,
    CodecsEncode,
    /// `numpy.core.numeric._frombuffer(buffer, dtype, shape, order)`: protocol 5's array.
    FromBuffer,
}

impl Global {
    fn from_name(module: &str, name: &str) -> Option<Global> {
        match (module, name) {
            ("numpy.core.multiarray" | "numpy._core.multiarray", "_reconstruct") => {
                Some(Global::Reconstruct)
            }
            ("numpy", "ndarray") => Some(Global::Ndarray),
            ("numpy", "dtype") => Some(Global::Dtype),
            ("_codecs", "encode") => Some(Global::CodecsEncode),
            ("numpy.core.numeric" | "numpy._core.numeric", "_frombuffer") => {
                Some(Global::FromBuffer)
            }
            _ => None,
        }
    }
}

/// What the stack and the memo hold. Containers carry their nesting depth so that it is checked
/// in constant time when one is put into another.
#[derive(Clone, Debug)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too wide for i64 (LONG1/LONG4 of more than 8 bytes): only its width is kept.
    BigInt(usize),
    /// A float (never part of what we take from a batch; read past).
    Float,
    Bytes(Rc<Vec<u8>>),
    Str(Rc<String>),
    List(Vec<Value>, usize),
    Tuple(Vec<Value>, usize),
    Dict(Vec<(Value, Value)>, usize),
    Global(Global),
    /// `numpy.dtype(code, 0, 1)`: the type code.
    Dtype(Rc<String>),
    /// `_reconstruct(ndarray, (0,), b'b')`, waiting for its `BUILD`.
    EmptyArray,
    /// A built uint8 array: shape and raw bytes.
    Array(Vec<usize>, Rc<Vec<u8>>),
}

impl Value {
    fn depth(&self) -> usize {
        match self {
            Value::List(_, d) | Value::Tuple(_, d) | Value::Dict(_, d) => *d,
            _ => 0,
        }
    }

    /// Values a copy of this one creates.
    fn weight(&self) -> usize {
        match self {
            Value::List(v, _) | Value::Tuple(v, _) => {
                1 + v.iter().map(Value::weight).sum::<usize>()
            }
            Value::Dict(v, _) => {
                1 + v
                    .iter()
                    .map(|(k, v)| k.weight() + v.weight())
                    .sum::<usize>()
            }
            _ => 1,
        }
    }

    fn kind(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(_) => "a bool".into(),
            Value::Int(_) => "an int".into(),
            Value::BigInt(n) => format!("an integer of {n} bytes (too large)"),
            Value::Float => "a float".into(),
            Value::Bytes(_) => "bytes".into(),
            Value::Str(_) => "a str".into(),
            Value::List(..) => "a list".into(),
            Value::Tuple(..) => "a tuple".into(),
            Value::Dict(..) => "a dict".into(),
            Value::Global(g) => format!("the callable {g:?}"),
            Value::Dtype(_) => "a numpy dtype".into(),
            Value::EmptyArray => "an unbuilt numpy array".into(),
            Value::Array(..) => "a numpy array".into(),
        }
    }

    fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    fn as_text(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
}

/// The pickle machine: input, position, stack, open MARKs, memo and the value budget.
struct Machine<'a> {
    input: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    values: usize,
    /// Bytes made beyond those copied out of the input (latin-1 conversions), at most the input's
    /// length: a memoised str converted again and again cannot multiply the memory.
    made: usize,
}

/// A parse error: what went wrong, and at which byte of the pickle.
type Fallible<T> = Result<T, String>;

impl<'a> Machine<'a> {
    fn take(&mut self, n: usize) -> Fallible<&'a [u8]> {
        let left = self.input.len() - self.pos;
        if n > left {
            return Err(format!(
                "needs {n} bytes but the pickle ends {left} bytes later"
            ));
        }
        let bytes = &self.input[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    fn u8(&mut self) -> Fallible<u8> {
        Ok(self.take(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> Fallible<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    /// A length field of `width` bytes (1, 4 or 8), checked against the bytes left.
    fn len(&mut self, width: usize) -> Fallible<usize> {
        let n = match width {
            1 => self.u8()? as u64,
            4 => u32::from_le_bytes(self.le()?) as u64,
            _ => u64::from_le_bytes(self.le()?),
        };
        let left = (self.input.len() - self.pos) as u64;
        if n > left {
            return Err(format!(
                "a length field says {n} bytes but only {left} are left"
            ));
        }
        Ok(n as usize)
    }

    /// A newline-terminated line (GLOBAL's module and name), at most 256 bytes.
    fn line(&mut self) -> Fallible<&'a str> {
        let rest = &self.input[self.pos..self.input.len().min(self.pos + 257)];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("a GLOBAL name is not ended by a newline within 256 bytes")?;
        let line = std::str::from_utf8(&rest[..end]).map_err(|_| "a GLOBAL name is not UTF-8")?;
        self.pos += end + 1;
        Ok(line)
    }

    /// Charge `n` values to the budget.
    fn spend(&mut self, n: usize) -> Fallible<()> {
        self.values += n;
        if self.values > MAX_VALUES {
            return Err(format!(
                "creates more than {MAX_VALUES} values, far more than a CIFAR batch"
            ));
        }
        Ok(())
    }

    /// Charge `n` converted bytes to the budget.
    fn make(&mut self, n: usize) -> Fallible<()> {
        self.made += n;
        if self.made > self.input.len() {
            return Err("converts more bytes than the whole pickle holds".into());
        }
        Ok(())
    }

    /// A raw array's data as bytes, a latin-1 str converted (and charged).
    fn raw_bytes(&mut self, raw: &Value) -> Fallible<Value> {
        match raw {
            Value::Str(s) => {
                self.make(s.len())?;
                Ok(Value::Bytes(Rc::new(latin1(s)?)))
            }
            other => Ok(other.clone()),
        }
    }

    fn push(&mut self, v: Value) -> Fallible<()> {
        self.spend(1)?;
        self.stack.push(v);
        Ok(())
    }

    fn pop(&mut self) -> Fallible<Value> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err("pops past a MARK".into());
        }
        self.stack.pop().ok_or_else(|| "pops an empty stack".into())
    }

    fn top(&mut self) -> Fallible<&mut Value> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err("reads past a MARK".into());
        }
        self.stack
            .last_mut()
            .ok_or_else(|| "reads an empty stack".into())
    }

    /// The values above the last MARK, removing the MARK.
    fn pop_mark(&mut self) -> Fallible<Vec<Value>> {
        let m = self.marks.pop().ok_or("closes a MARK that is not open")?;
        Ok(self.stack.split_off(m))
    }

    fn string(&mut self, n: usize) -> Fallible<Value> {
        let s = std::str::from_utf8(self.take(n)?).map_err(|_| "a str is not UTF-8")?;
        Ok(Value::Str(Rc::new(s.to_string())))
    }

    fn bytes(&mut self, n: usize) -> Fallible<Value> {
        Ok(Value::Bytes(Rc::new(self.take(n)?.to_vec())))
    }

    /// A little-endian two's-complement integer of `n` bytes (LONG1, LONG4).
    fn long(&mut self, n: usize) -> Fallible<Value> {
        let b = self.take(n)?;
        if n > 8 {
            return Ok(Value::BigInt(n));
        }
        let mut w = if b.last().is_some_and(|&x| x & 0x80 != 0) {
            [0xff; 8]
        } else {
            [0; 8]
        };
        w[..n].copy_from_slice(b);
        Ok(Value::Int(i64::from_le_bytes(w)))
    }

    fn memo_put(&mut self, key: u32) -> Fallible<()> {
        let v = self.top()?.clone();
        self.spend(v.weight())?;
        self.memo.insert(key, v);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Fallible<()> {
        let v = self
            .memo
            .get(&key)
            .cloned()
            .ok_or_else(|| format!("memo entry {key} was never stored"))?;
        self.spend(v.weight())?;
        self.stack.push(v);
        Ok(())
    }

    /// A container of `items` with the depth checked.
    fn container(items: &[Value]) -> Fallible<usize> {
        let depth = 1 + items.iter().map(Value::depth).max().unwrap_or(0);
        if depth > MAX_DEPTH {
            return Err(format!("nests containers more than {MAX_DEPTH} deep"));
        }
        Ok(depth)
    }

    fn tuple(&mut self, items: Vec<Value>) -> Fallible<()> {
        let d = Self::container(&items)?;
        self.push(Value::Tuple(items, d))
    }

    /// Append `items` to the list on top of the stack.
    fn extend_list(&mut self, items: Vec<Value>) -> Fallible<()> {
        let item_depth = items.iter().map(Value::depth).max().unwrap_or(0);
        match self.top()? {
            Value::List(list, d) => {
                *d = (*d).max(item_depth + 1);
                if *d > MAX_DEPTH {
                    return Err(format!("nests containers more than {MAX_DEPTH} deep"));
                }
                list.extend(items);
                Ok(())
            }
            other => Err(format!("appends to {}, not a list", other.kind())),
        }
    }

    /// Set `items` (key, value, key, value, …) in the dict on top of the stack.
    fn set_items(&mut self, items: Vec<Value>) -> Fallible<()> {
        if !items.len().is_multiple_of(2) {
            return Err("SETITEMS with an odd number of keys and values".into());
        }
        let item_depth = items.iter().map(Value::depth).max().unwrap_or(0);
        match self.top()? {
            Value::Dict(dict, d) => {
                *d = (*d).max(item_depth + 1);
                if *d > MAX_DEPTH {
                    return Err(format!("nests containers more than {MAX_DEPTH} deep"));
                }
                let mut items = items.into_iter();
                while let (Some(k), Some(v)) = (items.next(), items.next()) {
                    dict.push((k, v));
                }
                Ok(())
            }
            other => Err(format!("sets items in {}, not a dict", other.kind())),
        }
    }

    /// `REDUCE`: one of the known callables applied to its argument tuple, interpreted.
    fn reduce(&mut self) -> Fallible<()> {
        let args = self.pop()?;
        let callable = self.pop()?;
        let Value::Tuple(args, _) = args else {
            return Err(format!("REDUCE arguments are {}, not a tuple", args.kind()));
        };
        let v = match (callable, args.as_slice()) {
            (Value::Global(Global::Reconstruct), [Value::Global(Global::Ndarray), ..]) => {
                Value::EmptyArray
            }
            (Value::Global(Global::Dtype), [code, ..]) => match code.as_text() {
                Some(c) => Value::Dtype(Rc::new(c.to_string())),
                None => return Err(format!("numpy.dtype of {}", code.kind())),
            },
            (Value::Global(Global::CodecsEncode), [Value::Str(s), encoding]) => {
                if !matches!(
                    encoding.as_text(),
                    Some("latin1" | "latin-1" | "iso-8859-1")
                ) {
                    return Err("_codecs.encode with an encoding other than latin1".into());
                }
                self.make(s.len())?;
                Value::Bytes(Rc::new(latin1(s)?))
            }
            (Value::Global(Global::FromBuffer), [raw, dtype, shape, order]) => {
                if order.as_text() != Some("C") {
                    return Err("not a uint8 numpy array: it is not in C order".into());
                }
                let raw = self.raw_bytes(raw)?;
                uint8_array(shape.clone(), dtype, raw)?
            }
            (callable, args) => {
                return Err(format!(
                    "REDUCE of {} with {} arguments is not part of a CIFAR pickle",
                    callable.kind(),
                    args.len()
                ));
            }
        };
        self.push(v)
    }

    /// `BUILD`: a dtype takes its state as is (the type code was in its arguments); an array takes
    /// `(version, shape, dtype, is_fortran, raw)`.
    fn build(&mut self) -> Fallible<()> {
        let state = self.pop()?;
        let target = self.pop()?;
        let v = match target {
            Value::Dtype(code) => Value::Dtype(code),
            Value::EmptyArray => {
                let Value::Tuple(mut items, d) = state else {
                    return Err(format!(
                        "not a uint8 numpy array: its state is {}",
                        state.kind()
                    ));
                };
                if let Some(raw) = items.last_mut() {
                    *raw = self.raw_bytes(raw)?;
                }
                numpy_array(Value::Tuple(items, d))?
            }
            other => return Err(format!("BUILD of {}", other.kind())),
        };
        self.push(v)
    }

    fn run(mut self) -> Fallible<Value> {
        loop {
            let at = self.pos;
            let op = self
                .u8()
                .map_err(|_| "ends without a STOP opcode".to_string())?;
            self.step(op)
                .map_err(|e| format!("at byte {at} (opcode 0x{op:02x}): {e}"))?;
            if op == b'.' {
                let v = self.pop()?;
                if !self.stack.is_empty() || !self.marks.is_empty() {
                    return Err("STOP leaves values on the stack".into());
                }
                return Ok(v);
            }
        }
    }

    fn step(&mut self, op: u8) -> Fallible<()> {
        match op {
            0x80 => {
                let proto = self.u8()?;
                if !(2..=5).contains(&proto) {
                    return Err(format!("protocol {proto}; protocols 2 to 5 are read"));
                }
            }
            0x95 => {
                self.take(8)?; // FRAME: a length hint only
            }
            b'.' => {}
            b'(' => {
                if self.marks.len() >= MAX_DEPTH {
                    return Err(format!("more than {MAX_DEPTH} MARKs open at once"));
                }
                self.marks.push(self.stack.len());
            }
            b'0' => {
                self.pop()?;
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'N' => self.push(Value::None)?,
            0x88 => self.push(Value::Bool(true))?,
            0x89 => self.push(Value::Bool(false))?,
            b'K' => {
                let v = self.u8()?;
                self.push(Value::Int(v as i64))?
            }
            b'M' => {
                let v = u16::from_le_bytes(self.le()?);
                self.push(Value::Int(v as i64))?
            }
            b'J' => {
                let v = i32::from_le_bytes(self.le()?);
                self.push(Value::Int(v as i64))?
            }
            0x8a => {
                let n = self.len(1)?;
                let v = self.long(n)?;
                self.push(v)?
            }
            0x8b => {
                let n = self.len(4)?;
                let v = self.long(n)?;
                self.push(v)?
            }
            b'G' => {
                self.take(8)?;
                self.push(Value::Float)?
            }
            b'U' | b'C' => {
                let n = self.len(1)?;
                let v = self.bytes(n)?;
                self.push(v)?
            }
            b'T' | b'B' => {
                let n = self.len(4)?;
                let v = self.bytes(n)?;
                self.push(v)?
            }
            0x8e | 0x96 => {
                let n = self.len(8)?;
                let v = self.bytes(n)?;
                self.push(v)?
            }
            0x8c => {
                let n = self.len(1)?;
                let v = self.string(n)?;
                self.push(v)?
            }
            b'X' => {
                let n = self.len(4)?;
                let v = self.string(n)?;
                self.push(v)?
            }
            0x8d => {
                let n = self.len(8)?;
                let v = self.string(n)?;
                self.push(v)?
            }
            b'}' => self.push(Value::Dict(Vec::new(), 1))?,
            b']' => self.push(Value::List(Vec::new(), 1))?,
            b')' => self.push(Value::Tuple(Vec::new(), 1))?,
            b't' => {
                let items = self.pop_mark()?;
                self.tuple(items)?
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                let mut items = (0..n).map(|_| self.pop()).collect::<Fallible<Vec<_>>>()?;
                items.reverse();
                self.tuple(items)?
            }
            b'l' => {
                let items = self.pop_mark()?;
                let d = Self::container(&items)?;
                self.push(Value::List(items, d))?
            }
            b'd' => {
                let items = self.pop_mark()?;
                self.push(Value::Dict(Vec::new(), 1))?;
                self.set_items(items)?
            }
            b'a' => {
                let v = self.pop()?;
                self.extend_list(vec![v])?
            }
            b'e' => {
                let items = self.pop_mark()?;
                self.extend_list(items)?
            }
            b's' => {
                let v = self.pop()?;
                let k = self.pop()?;
                self.set_items(vec![k, v])?
            }
            b'u' => {
                let items = self.pop_mark()?;
                self.set_items(items)?
            }
            b'q' => {
                let k = self.u8()? as u32;
                self.memo_put(k)?
            }
            b'r' => {
                let k = u32::from_le_bytes(self.le()?);
                self.memo_put(k)?
            }
            0x94 => {
                let k = u32::try_from(self.memo.len()).map_err(|_| "memo overflow")?;
                self.memo_put(k)?
            }
            b'h' => {
                let k = self.u8()? as u32;
                self.memo_get(k)?
            }
            b'j' => {
                let k = u32::from_le_bytes(self.le()?);
                self.memo_get(k)?
            }
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                self.global(module, name)?
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                match (module.as_text(), name.as_text()) {
                    (Some(m), Some(n)) => self.global(m, n)?,
                    _ => return Err("STACK_GLOBAL of non-strings".into()),
                }
            }
            b'R' => self.reduce()?,
            b'b' => self.build()?,
            other => {
                return Err(format!(
                    "opcode 0x{other:02x} is not one a CIFAR batch pickle uses"
                ));
            }
        }
        Ok(())
    }

    fn global(&mut self, module: &str, name: &str) -> Fallible<()> {
        let g = Global::from_name(module, name).ok_or_else(|| {
            format!(
                "refers to {module}.{name}; only numpy's array reconstruction and \
                 _codecs.encode may appear (nothing is imported or run)"
            )
        })?;
        self.push(Value::Global(g))
    }
}

/// A str whose characters all fit in a byte (latin-1), as bytes.
fn latin1(s: &str) -> Fallible<Vec<u8>> {
    s.chars()
        .map(|c| u8::try_from(c as u32).ok())
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| "latin-1 data with a character above 255".into())
}

/// The numpy state `(version, shape, dtype, is_fortran, raw)` of a uint8 array, checked.
fn numpy_array(state: Value) -> Fallible<Value> {
    let Value::Tuple(items, _) = state else {
        return Err(format!(
            "not a uint8 numpy array: its state is {}",
            state.kind()
        ));
    };
    let [_version, shape, dtype, fortran, raw] = <[Value; 5]>::try_from(items).map_err(|i| {
        format!(
            "not a uint8 numpy array: its state has {} items, expected 5",
            i.len()
        )
    })?;
    if fortran.as_int() != Some(0) {
        return Err("not a uint8 numpy array: it is in Fortran order".into());
    }
    uint8_array(shape, &dtype, raw)
}

/// A C-order array of `shape` and `dtype` over `raw`: the dtype must be 'u1' and the raw data
/// exactly one byte per element.
fn uint8_array(shape: Value, dtype: &Value, raw: Value) -> Fallible<Value> {
    let bad = |d: String| format!("not a uint8 numpy array: {d}");
    match dtype {
        Value::Dtype(code) if code.as_str() == "u1" => {}
        Value::Dtype(code) => return Err(bad(format!("its dtype is '{code}'"))),
        other => return Err(bad(format!("its dtype is {}", other.kind()))),
    }
    // A latin-1 str standing for bytes (Python 2 unicode) was converted by the caller.
    let raw = match raw {
        Value::Bytes(b) => b,
        other => return Err(bad(format!("its raw data is {}", other.kind()))),
    };
    let shape = match shape {
        Value::Tuple(dims, _) | Value::List(dims, _) => dims
            .iter()
            .map(|d| d.as_int().and_then(|x| usize::try_from(x).ok()))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| bad("its shape has a non-integer or negative entry".into()))?,
        other => return Err(bad(format!("its shape is {}", other.kind()))),
    };
    let elements = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if elements != Some(raw.len()) {
        return Err(bad(format!(
            "shape {shape:?} needs {} one-byte elements but the raw data has {} bytes",
            elements.map_or("too many".to_string(), |e| e.to_string()),
            raw.len()
        )));
    }
    Ok(Value::Array(shape, raw))
}

fn bad(file: &str, detail: impl Into<String>) -> DataError {
    DataError::BadPickle {
        file: file.to_string(),
        detail: detail.into(),
    }
}

/// Parse a whole pickle (already bounded in size by the caller) into its top-level dict.
fn parse_dict(bytes: &[u8], file: &str) -> Result<Vec<(Value, Value)>, DataError> {
    let machine = Machine {
        input: bytes,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        values: 0,
        made: 0,
    };
    match machine.run().map_err(|e| bad(file, e))? {
        Value::Dict(d, _) => Ok(d),
        other => Err(bad(
            file,
            format!("top level is {}, expected a dict", other.kind()),
        )),
    }
}

/// Take `key` (bytes or str) out of a dict; the last one wins, as in Python.
fn take(dict: &mut Vec<(Value, Value)>, key: &str) -> Option<Value> {
    let i = dict.iter().rposition(|(k, _)| match k {
        Value::Bytes(b) => b.as_slice() == key.as_bytes(),
        Value::Str(s) => s.as_str() == key,
        _ => false,
    })?;
    Some(dict.swap_remove(i).1)
}

/// Owned bytes out of a shared buffer (no copy when nothing else holds it).
fn unshare(b: Rc<Vec<u8>>) -> Vec<u8> {
    Rc::try_unwrap(b).unwrap_or_else(|b| b.as_ref().clone())
}

/// A `data_batch_N` / `test_batch` pickle: dict with b'data' (N×3072 uint8) and b'labels' (N ints).
/// Takes the bytes by value to free them as soon as they are parsed.
pub(crate) fn read_batch(bytes: Vec<u8>, file: &str) -> Result<PickledBatch, DataError> {
    let mut dict = parse_dict(&bytes, file)?;
    drop(bytes);
    let data = take(&mut dict, "data").ok_or_else(|| bad(file, "no b'data' key"))?;
    let labels = take(&mut dict, "labels");
    // The rest (file names) may share the data's buffer through the memo; free it first.
    drop(dict);
    let (shape, data) = match data {
        Value::Array(shape, raw) => (shape, unshare(raw)),
        // Plain bytes are accepted as a flat array (some re-packagings store them so).
        Value::Bytes(b) => (vec![b.len()], unshare(b)),
        other => {
            return Err(bad(
                file,
                format!("b'data' is {}, expected a uint8 numpy array", other.kind()),
            ));
        }
    };
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
    let labels = match labels {
        Some(Value::List(l, _)) | Some(Value::Tuple(l, _)) => l,
        Some(other) => {
            return Err(bad(
                file,
                format!("b'labels' is {}, expected a list", other.kind()),
            ));
        }
        None => return Err(bad(file, "no b'labels' key")),
    };
    let labels = labels
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_int().ok_or_else(|| {
                bad(
                    file,
                    format!("b'labels'[{i}] is {}, expected a class number", v.kind()),
                )
            })
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
    let mut dict = parse_dict(bytes, file)?;
    let names = match take(&mut dict, "label_names") {
        Some(Value::List(l, _)) | Some(Value::Tuple(l, _)) => l,
        Some(other) => {
            return Err(meta_err(format!(
                "b'label_names' is {}, expected a list",
                other.kind()
            )));
        }
        None => return Err(meta_err("no b'label_names' key".into())),
    };
    // Names may share one buffer through the memo: cap their number before copying any.
    if names.len() > MAX_CLASS_NAMES {
        return Err(meta_err(format!(
            "{} class names; at most {MAX_CLASS_NAMES} (labels are bytes)",
            names.len()
        )));
    }
    names
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Bytes(b) => String::from_utf8(unshare(b))
                .map_err(|_| meta_err(format!("class name {i} is not UTF-8"))),
            Value::Str(s) => Ok(s.as_ref().clone()),
            other => Err(meta_err(format!("class name {i} is {}", other.kind()))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by CPython 3.11 with numpy 1.24: `pickle.dumps(d, protocol=P)` for P = 2 to 5, where
    /// `d = {'data': np.arange(6, dtype=np.uint8).reshape(2, 3), 'labels': [3, 7]}`. Protocol 2
    /// writes the raw bytes as `_codecs.encode(str, 'latin1')`, 3 and 4 as bytes (4 with FRAME,
    /// STACK_GLOBAL, MEMOIZE), 5 as `_frombuffer(bytearray, dtype, shape, 'C')`.
    const PROTOCOL_2: &[u8] = b"\x80\x02}q\x00(X\x04\x00\x00\x00dataq\x01cnumpy.core.multiarray\n_reconstruct\nq\x02cnumpy\nndarray\nq\x03K\x00\x85q\x04c_codecs\nencode\nq\x05X\x01\x00\x00\x00bq\x06X\x06\x00\x00\x00latin1q\x07\x86q\x08Rq\t\x87q\nRq\x0b(K\x01K\x02K\x03\x86q\x0ccnumpy\ndtype\nq\x0dX\x02\x00\x00\x00u1q\x0e\x89\x88\x87q\x0fRq\x10(K\x03X\x01\x00\x00\x00|q\x11NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tq\x12b\x89h\x05X\x06\x00\x00\x00\x00\x01\x02\x03\x04\x05q\x13h\x07\x86q\x14Rq\x15tq\x16bX\x06\x00\x00\x00labelsq\x17]q\x18(K\x03K\x07eu.";
    const PROTOCOL_3: &[u8] = b"\x80\x03}q\x00(X\x04\x00\x00\x00dataq\x01cnumpy.core.multiarray\n_reconstruct\nq\x02cnumpy\nndarray\nq\x03K\x00\x85q\x04C\x01bq\x05\x87q\x06Rq\x07(K\x01K\x02K\x03\x86q\x08cnumpy\ndtype\nq\tX\x02\x00\x00\x00u1q\n\x89\x88\x87q\x0bRq\x0c(K\x03X\x01\x00\x00\x00|q\x0dNNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tq\x0eb\x89C\x06\x00\x01\x02\x03\x04\x05q\x0ftq\x10bX\x06\x00\x00\x00labelsq\x11]q\x12(K\x03K\x07eu.";
    const PROTOCOL_4: &[u8] = b"\x80\x04\x95\xac\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x04data\x94\x8c\x15numpy.core.multiarray\x94\x8c\x0c_reconstruct\x94\x93\x94\x8c\x05numpy\x94\x8c\x07ndarray\x94\x93\x94K\x00\x85\x94C\x01b\x94\x87\x94R\x94(K\x01K\x02K\x03\x86\x94h\x05\x8c\x05dtype\x94\x93\x94\x8c\x02u1\x94\x89\x88\x87\x94R\x94(K\x03\x8c\x01|\x94NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t\x94b\x89C\x06\x00\x01\x02\x03\x04\x05\x94t\x94b\x8c\x06labels\x94]\x94(K\x03K\x07eu.";
    const PROTOCOL_5: &[u8] = b"\x80\x05\x95\x97\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x04data\x94\x8c\x12numpy.core.numeric\x94\x8c\x0b_frombuffer\x94\x93\x94(\x96\x06\x00\x00\x00\x00\x00\x00\x00\x00\x01\x02\x03\x04\x05\x94\x8c\x05numpy\x94\x8c\x05dtype\x94\x93\x94\x8c\x02u1\x94\x89\x88\x87\x94R\x94(K\x03\x8c\x01|\x94NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t\x94bK\x02K\x03\x86\x94\x8c\x01C\x94t\x94R\x94\x8c\x06labels\x94]\x94(K\x03K\x07eu.";

    #[test]
    fn python3_numpy_pickles_protocols_2_to_5() {
        for bytes in [PROTOCOL_2, PROTOCOL_3, PROTOCOL_4, PROTOCOL_5] {
            let b = read_batch(bytes.to_vec(), "t").unwrap();
            assert_eq!((b.rows, b.cols), (2, 3));
            assert_eq!(b.data, vec![0, 1, 2, 3, 4, 5]);
            assert_eq!(b.labels, vec![3, 7]);
        }
    }

    fn batch_err(bytes: &[u8]) -> String {
        read_batch(bytes.to_vec(), "f").unwrap_err().to_string()
    }

    #[test]
    fn rejects_non_dict_and_missing_keys() {
        let e = batch_err(b"\x80\x02K\x01.");
        assert!(e.contains("expected a dict"), "{e}");
        let e = batch_err(b"\x80\x02}q\x00.");
        assert!(e.contains("no b'data' key"), "{e}");
    }

    #[test]
    fn refuses_other_globals_without_running_them() {
        let e = batch_err(b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85R.");
        assert!(e.contains("os.system") && e.contains("at byte 2"), "{e}");
    }

    #[test]
    fn bounds_nesting_marks_and_values() {
        let mut deep = b"\x80\x02".to_vec();
        deep.extend(std::iter::repeat_n(b']', 40));
        deep.extend(std::iter::repeat_n(b'a', 39));
        deep.push(b'.');
        let e = batch_err(&deep);
        assert!(e.contains("more than 32 deep"), "{e}");

        let mut marks = b"\x80\x02".to_vec();
        marks.extend(std::iter::repeat_n(b'(', 1000));
        let e = batch_err(&marks);
        assert!(e.contains("MARKs open"), "{e}");

        // A list memoised and fetched again and again: copies count against the budget.
        let mut copies = b"\x80\x02](".to_vec();
        copies.extend(std::iter::repeat_n(b"K\x01".as_slice(), 1000).flatten());
        copies.extend(b"eq\x00");
        copies.extend(std::iter::repeat_n(b"h\x00".as_slice(), 2000).flatten());
        let e = batch_err(&copies);
        assert!(e.contains("more than 1000000 values"), "{e}");
    }

    #[test]
    fn conversions_cannot_multiply_a_memoised_str() {
        // A 1000-char str memoised, then `_codecs.encode(s, 'latin1')` again and again.
        let mut p = b"\x80\x02c_codecs\nencode\nq\x00X\xe8\x03\x00\x00".to_vec();
        p.extend(std::iter::repeat_n(b'a', 1000));
        p.extend(b"q\x01X\x06\x00\x00\x00latin1q\x02");
        p.extend(std::iter::repeat_n(b"h\x00h\x01h\x02\x86R0".as_slice(), 1000).flatten());
        let e = batch_err(&p);
        assert!(
            e.contains("converts more bytes than the whole pickle"),
            "{e}"
        );
    }

    #[test]
    fn length_fields_are_checked_against_the_input() {
        let e = batch_err(b"\x80\x02T\xff\xff\xff\x7fab");
        assert!(e.contains("only 2 are left"), "{e}");
        let e = batch_err(b"\x80\x02\x8e\xff\xff\xff\xff\xff\xff\xff\xff");
        assert!(e.contains("only 0 are left"), "{e}");
    }

    #[test]
    fn big_integer_label_is_named() {
        // {'data': b'\x00', 'labels': [2**80]}
        let e = batch_err(
            b"\x80\x02}(X\x04\x00\x00\x00dataC\x01\x00X\x06\x00\x00\x00labels]\x8a\x0b\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01au.",
        );
        assert!(
            e.contains("b'labels'[0] is an integer of 11 bytes (too large)"),
            "{e}"
        );
    }
}
