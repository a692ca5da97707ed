//! A small, safe reader for the pickles of the CIFAR "python version":
//! dictionaries of lists, strings and numpy arrays, written by Python 2
//! (protocol 2, array bytes as a latin-1 `str` in a BINSTRING) or by
//! Python 3 (any protocol 2-5; bytes as `_codecs.encode(str, 'latin1')`
//! below protocol 3).
//!
//! This is not a general unpickler: it executes no code. `GLOBAL` pushes a
//! name and `REDUCE` evaluates only the few callables the CIFAR files use:
//! `numpy.core.multiarray._reconstruct` (and `numpy._core...`) followed by
//! `BUILD` with numpy's state tuple `(version, shape, dtype, is_fortran,
//! raw bytes)`, `numpy.dtype`, `numpy.core.numeric._frombuffer` (protocol
//! 5), `_codecs.encode` and `bytearray`. Any other call yields an opaque
//! object that is kept but never interpreted. Lengths are checked against
//! the input, so truncated or hostile input is an error, never a panic.
use std::cell::RefCell;
use std::rc::Rc;

/// A numpy array as pickled: its dtype string (`u1`, `<i8`, ...), shape,
/// order and raw element bytes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Array {
    pub dtype: String,
    pub shape: Vec<usize>,
    pub fortran: bool,
    pub data: Rc<Vec<u8>>,
}

/// A pickled value. Containers are shared (memo references see later
/// appends, as in Python).
#[derive(Debug, Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Python 2 `str` and Python 3 `bytes`.
    Bytes(Rc<Vec<u8>>),
    /// Python 3 `str` (Python 2 `unicode`).
    Str(Rc<str>),
    Tuple(Rc<Vec<Value>>),
    List(Rc<RefCell<Vec<Value>>>),
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    /// A global name not called yet: (module, name).
    Global(Rc<(String, String)>),
    Array(Rc<RefCell<Array>>),
    /// A numpy dtype's type string; `BUILD` adds its byte order.
    Dtype(Rc<RefCell<String>>),
    /// Anything else a `REDUCE` or `NEWOBJ` made: the callable's name.
    Object(Rc<str>),
}

impl Value {
    /// The text of a `str` or `bytes` value (bytes as latin-1).
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.to_string()),
            Value::Bytes(b) => Some(b.iter().map(|&c| c as char).collect()),
            _ => None,
        }
    }

    /// Looks `key` up in a dict whose keys are `str` or `bytes`.
    pub fn get(&self, key: &str) -> Option<Value> {
        let Value::Dict(d) = self else { return None };
        let d = d.borrow();
        d.iter()
            .find(|(k, _)| k.as_text().as_deref() == Some(key))
            .map(|(_, v)| v.clone())
    }

    /// The keys of a dict, as text.
    pub fn keys(&self) -> Vec<String> {
        match self {
            Value::Dict(d) => d.borrow().iter().filter_map(|(k, _)| k.as_text()).collect(),
            _ => vec![],
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Bytes(_) => "bytes",
            Value::Str(_) => "str",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(_) => "global",
            Value::Array(_) => "numpy array",
            Value::Dtype(_) => "numpy dtype",
            Value::Object(_) => "object",
        }
    }

    /// Integers of a list, a tuple or an integer numpy array of 1 dimension.
    pub fn to_ints(&self) -> Result<Vec<i64>, String> {
        let items = match self {
            Value::List(l) => l.borrow().clone(),
            Value::Tuple(t) => t.as_ref().clone(),
            Value::Array(a) => return array_ints(&a.borrow()),
            other => return Err(format!("expected a list of integers, got {}", other.kind())),
        };
        items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Int(n) => Ok(*n),
                Value::Bool(b) => Ok(i64::from(*b)),
                other => Err(format!(
                    "item {i}: expected an integer, got {}",
                    other.kind()
                )),
            })
            .collect()
    }
}

fn array_ints(a: &Array) -> Result<Vec<i64>, String> {
    if a.shape.len() != 1 {
        return Err(format!("expected a 1-D array, got shape {:?}", a.shape));
    }
    let n = a.shape[0];
    let (size, signed, big) = dtype_int(&a.dtype)
        .ok_or_else(|| format!("expected an integer array, got dtype `{}`", a.dtype))?;
    if a.data.len() != n * size {
        return Err(format!(
            "array of {n} items of {size} bytes holds {} bytes",
            a.data.len()
        ));
    }
    Ok(a.data
        .chunks_exact(size)
        .map(|c| {
            let mut b = [0u8; 8];
            if big {
                for (i, &x) in c.iter().rev().enumerate() {
                    b[i] = x;
                }
            } else {
                b[..size].copy_from_slice(c);
            }
            let neg = signed && b[size - 1] & 0x80 != 0;
            if neg {
                for x in b.iter_mut().skip(size) {
                    *x = 0xff;
                }
            }
            i64::from_le_bytes(b)
        })
        .collect())
}

/// (item size, signed, big-endian) of an integer dtype string.
fn dtype_int(dt: &str) -> Option<(usize, bool, bool)> {
    let (big, rest) = match dt.as_bytes().first()? {
        b'<' | b'=' | b'|' => (false, &dt[1..]),
        b'>' => (true, &dt[1..]),
        _ => (false, dt),
    };
    let signed = match rest.as_bytes().first()? {
        b'i' => true,
        b'u' => false,
        _ => return None,
    };
    let size: usize = rest[1..].parse().ok()?;
    matches!(size, 1 | 2 | 4 | 8).then_some((size, signed, big && size > 1))
}

/// Reads one pickle. Errors say what was wrong and at which byte.
pub fn load(data: &[u8]) -> Result<Value, String> {
    Machine {
        data,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: Vec::new(),
    }
    .run()
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: Vec<Option<Value>>,
}

/// Memo indices beyond this are refused (the CIFAR files use a few dozen).
const MEMO_LIMIT: usize = 1 << 24;

impl<'a> Machine<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.data.len() - self.pos {
            return Err(format!(
                "truncated: needs {n} bytes at byte {}, only {} left",
                self.pos,
                self.data.len() - self.pos
            ));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<usize, String> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_le_bytes([b[0], b[1]])))
    }

    fn u32(&mut self) -> Result<usize, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn u64(&mut self) -> Result<usize, String> {
        let b = self.take(8)?;
        usize::try_from(u64::from_le_bytes(b.try_into().unwrap()))
            .map_err(|_| "length too large".to_string())
    }

    fn line(&mut self) -> Result<&'a str, String> {
        let rest = &self.data[self.pos..];
        let Some(n) = rest.iter().position(|&c| c == b'\n') else {
            return Err(format!("truncated: unterminated line at byte {}", self.pos));
        };
        let s = std::str::from_utf8(&rest[..n])
            .map_err(|_| format!("non-UTF-8 text at byte {}", self.pos))?;
        self.pos += n + 1;
        Ok(s)
    }

    fn pop(&mut self) -> Result<Value, String> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(format!("stack underflow (at a mark) at byte {}", self.pos));
        }
        self.stack
            .pop()
            .ok_or_else(|| format!("stack underflow at byte {}", self.pos))
    }

    fn top(&mut self) -> Result<&mut Value, String> {
        let pos = self.pos;
        self.stack
            .last_mut()
            .ok_or_else(|| format!("stack underflow at byte {pos}"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let m = self
            .marks
            .pop()
            .ok_or_else(|| format!("no mark on the stack at byte {}", self.pos))?;
        Ok(self.stack.split_off(m))
    }

    fn put(&mut self, i: usize) -> Result<(), String> {
        if i >= MEMO_LIMIT {
            return Err(format!("memo index {i} too large"));
        }
        let v = self.top()?.clone();
        if self.memo.len() <= i {
            self.memo.resize(i + 1, None);
        }
        self.memo[i] = Some(v);
        Ok(())
    }

    fn get(&mut self, i: usize) -> Result<(), String> {
        let v = self
            .memo
            .get(i)
            .cloned()
            .flatten()
            .ok_or_else(|| format!("memo index {i} was never set (byte {})", self.pos))?;
        self.stack.push(v);
        Ok(())
    }

    fn bytes(&mut self, n: usize) -> Result<Value, String> {
        Ok(Value::Bytes(Rc::new(self.take(n)?.to_vec())))
    }

    fn unicode(&mut self, n: usize) -> Result<Value, String> {
        let at = self.pos;
        let b = self.take(n)?;
        let s = std::str::from_utf8(b).map_err(|_| format!("invalid UTF-8 string at byte {at}"))?;
        Ok(Value::Str(Rc::from(s)))
    }

    fn run(mut self) -> Result<Value, String> {
        loop {
            let at = self.pos;
            let op = self
                .u8()
                .map_err(|_| format!("truncated: no STOP opcode (ended at byte {at})"))?;
            match op {
                0x80 => {
                    let p = self.u8()?;
                    if p > 5 {
                        return Err(format!("unsupported pickle protocol {p}"));
                    }
                }
                0x95 => {
                    self.u64()?; // FRAME: a length hint only
                }
                b'.' => return self.pop(),
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.stack.push(v);
                }
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'J' => {
                    let b = self.take(4)?;
                    self.stack.push(Value::Int(i64::from(i32::from_le_bytes([
                        b[0], b[1], b[2], b[3],
                    ]))));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(i64::from(v)));
                }
                b'M' => {
                    let v = self.u16()?;
                    self.stack.push(Value::Int(v as i64));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        usize::from(self.u8()?)
                    } else {
                        self.u32()?
                    };
                    let b = self.take(n)?;
                    if n > 8 {
                        return Err(format!(
                            "integer of {n} bytes at byte {at} does not fit 64 bits"
                        ));
                    }
                    let mut w = [if b.last().is_some_and(|&x| x & 0x80 != 0) {
                        0xff
                    } else {
                        0
                    }; 8];
                    w[..n].copy_from_slice(b);
                    self.stack.push(Value::Int(i64::from_le_bytes(w)));
                }
                b'I' | b'L' => {
                    let s = self.line()?.trim_end_matches('L');
                    let v = match s {
                        "01" => Value::Bool(true),
                        "00" => Value::Bool(false),
                        _ => Value::Int(
                            s.parse()
                                .map_err(|_| format!("bad integer `{s}` at byte {at}"))?,
                        ),
                    };
                    self.stack.push(v);
                }
                b'G' => {
                    let b = self.take(8)?;
                    self.stack
                        .push(Value::Float(f64::from_be_bytes(b.try_into().unwrap())));
                }
                b'F' => {
                    let s = self.line()?;
                    self.stack.push(Value::Float(
                        s.parse()
                            .map_err(|_| format!("bad float `{s}` at byte {at}"))?,
                    ));
                }
                b'T' => {
                    let n = self.u32()?;
                    let v = self.bytes(n)?;
                    self.stack.push(v);
                }
                b'U' | b'C' => {
                    let n = usize::from(self.u8()?);
                    let v = self.bytes(n)?;
                    self.stack.push(v);
                }
                b'B' => {
                    let n = self.u32()?;
                    let v = self.bytes(n)?;
                    self.stack.push(v);
                }
                0x8e | 0x96 => {
                    let n = self.u64()?;
                    let v = self.bytes(n)?;
                    self.stack.push(v);
                }
                b'X' => {
                    let n = self.u32()?;
                    let v = self.unicode(n)?;
                    self.stack.push(v);
                }
                0x8c => {
                    let n = usize::from(self.u8()?);
                    let v = self.unicode(n)?;
                    self.stack.push(v);
                }
                0x8d => {
                    let n = self.u64()?;
                    let v = self.unicode(n)?;
                    self.stack.push(v);
                }
                b'}' => self.stack.push(Value::Dict(Rc::default())),
                b']' => self.stack.push(Value::List(Rc::default())),
                b')' => self.stack.push(Value::Tuple(Rc::default())),
                0x8f => self.stack.push(Value::List(Rc::default())), // EMPTY_SET, as a list
                b'd' => {
                    let items = self.pop_mark()?;
                    let d = pairs(items, at)?;
                    self.stack.push(Value::Dict(Rc::new(RefCell::new(d))));
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::List(Rc::new(RefCell::new(items))));
                }
                b't' | 0x91 => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(Rc::new(items)));
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < n
                        || self.marks.last().is_some_and(|&m| m + n > self.stack.len())
                    {
                        return Err(format!("stack underflow at byte {at}"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(Rc::new(items)));
                }
                b'a' => {
                    let v = self.pop()?;
                    match self.top()? {
                        Value::List(l) => l.borrow_mut().push(v),
                        other => return Err(format!("APPEND to a {} at byte {at}", other.kind())),
                    }
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    match self.top()? {
                        Value::List(l) => l.borrow_mut().extend(items),
                        other => return Err(format!("APPENDS to a {} at byte {at}", other.kind())),
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    match self.top()? {
                        Value::Dict(d) => d.borrow_mut().push((k, v)),
                        other => return Err(format!("SETITEM on a {} at byte {at}", other.kind())),
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let kv = pairs(items, at)?;
                    match self.top()? {
                        Value::Dict(d) => d.borrow_mut().extend(kv),
                        other => {
                            return Err(format!("SETITEMS on a {} at byte {at}", other.kind()))
                        }
                    }
                }
                b'c' => {
                    let module = self.line()?.to_string();
                    let name = self.line()?.to_string();
                    self.stack.push(Value::Global(Rc::new((module, name))));
                }
                0x93 => {
                    let name = self
                        .pop()?
                        .as_text()
                        .ok_or_else(|| format!("STACK_GLOBAL without a name at byte {at}"))?;
                    let module = self
                        .pop()?
                        .as_text()
                        .ok_or_else(|| format!("STACK_GLOBAL without a module at byte {at}"))?;
                    self.stack.push(Value::Global(Rc::new((module, name))));
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let v = call(&f, &args).map_err(|e| format!("{e} (REDUCE at byte {at})"))?;
                    self.stack.push(v);
                }
                0x81 => {
                    let _args = self.pop()?;
                    let cls = self.pop()?;
                    self.stack
                        .push(Value::Object(Rc::from(global_name(&cls).as_str())));
                }
                0x92 => {
                    let _kwargs = self.pop()?;
                    let _args = self.pop()?;
                    let cls = self.pop()?;
                    self.stack
                        .push(Value::Object(Rc::from(global_name(&cls).as_str())));
                }
                b'b' => {
                    let state = self.pop()?;
                    let obj = self.top()?.clone();
                    build(&obj, &state).map_err(|e| format!("{e} (BUILD at byte {at})"))?;
                }
                b'p' => {
                    let i: usize = self
                        .line()?
                        .parse()
                        .map_err(|_| format!("bad PUT index at byte {at}"))?;
                    self.put(i)?;
                }
                b'q' => {
                    let i = usize::from(self.u8()?);
                    self.put(i)?;
                }
                b'r' => {
                    let i = self.u32()?;
                    self.put(i)?;
                }
                0x94 => {
                    let i = self.memo.len();
                    self.put(i)?;
                }
                b'g' => {
                    let i: usize = self
                        .line()?
                        .parse()
                        .map_err(|_| format!("bad GET index at byte {at}"))?;
                    self.get(i)?;
                }
                b'h' => {
                    let i = usize::from(self.u8()?);
                    self.get(i)?;
                }
                b'j' => {
                    let i = self.u32()?;
                    self.get(i)?;
                }
                other => {
                    return Err(format!(
                        "unsupported pickle opcode 0x{other:02x} at byte {at}"
                    ));
                }
            }
        }
    }
}

fn pairs(items: Vec<Value>, at: usize) -> Result<Vec<(Value, Value)>, String> {
    if items.len() % 2 != 0 {
        return Err(format!("odd number of dict items at byte {at}"));
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

fn global_name(v: &Value) -> String {
    match v {
        Value::Global(g) => format!("{}.{}", g.0, g.1),
        other => other.kind().to_string(),
    }
}

fn is_numpy(module: &str, sub: &str) -> bool {
    module == format!("numpy.core.{sub}") || module == format!("numpy._core.{sub}")
}

fn tuple_items(args: &Value) -> Result<Vec<Value>, String> {
    match args {
        Value::Tuple(t) => Ok(t.as_ref().clone()),
        other => Err(format!(
            "call arguments are a {}, not a tuple",
            other.kind()
        )),
    }
}

fn shape_of(v: &Value) -> Result<Vec<usize>, String> {
    let dims = match v {
        Value::Tuple(t) => t.as_ref().clone(),
        Value::List(l) => l.borrow().clone(),
        Value::Int(_) => vec![v.clone()],
        other => return Err(format!("array shape is a {}", other.kind())),
    };
    dims.iter()
        .map(|d| match d {
            Value::Int(n) if *n >= 0 => Ok(*n as usize),
            other => Err(format!("bad array dimension {other:?}")),
        })
        .collect()
}

fn dtype_of(v: &Value) -> Result<String, String> {
    match v {
        Value::Dtype(d) => Ok(d.borrow().clone()),
        other => other
            .as_text()
            .ok_or_else(|| format!("array dtype is a {}", other.kind())),
    }
}

/// Evaluates the few callables the CIFAR pickles use.
fn call(f: &Value, args: &Value) -> Result<Value, String> {
    let Value::Global(g) = f else {
        return Ok(Value::Object(Rc::from(f.kind())));
    };
    let (module, name) = (g.0.as_str(), g.1.as_str());
    let a = tuple_items(args)?;
    match (module, name) {
        ("_codecs", "encode") => {
            // bytes pickled by Python 3 below protocol 3: encode(str, 'latin1').
            let s = a
                .first()
                .and_then(Value::as_text)
                .ok_or("_codecs.encode without a string")?;
            let enc = a
                .get(1)
                .and_then(Value::as_text)
                .unwrap_or_else(|| "utf-8".into())
                .to_ascii_lowercase()
                .replace(['-', '_'], "");
            let bytes = match enc.as_str() {
                "latin1" | "iso88591" => s
                    .chars()
                    .map(|c| {
                        u8::try_from(u32::from(c))
                            .map_err(|_| format!("character {c:?} is not latin-1"))
                    })
                    .collect::<Result<Vec<u8>, String>>()?,
                "utf8" => s.into_bytes(),
                other => {
                    return Err(format!(
                        "_codecs.encode with unsupported encoding `{other}`"
                    ))
                }
            };
            Ok(Value::Bytes(Rc::new(bytes)))
        }
        ("__builtin__" | "builtins", "bytearray" | "bytes") => match a.first() {
            None => Ok(Value::Bytes(Rc::default())),
            Some(Value::Bytes(b)) => Ok(Value::Bytes(b.clone())),
            Some(v) => call(
                &Value::Global(Rc::new(("_codecs".into(), "encode".into()))),
                &Value::Tuple(Rc::new(vec![
                    v.clone(),
                    a.get(1).cloned().unwrap_or(Value::None),
                ])),
            ),
        },
        (m, "_reconstruct") if is_numpy(m, "multiarray") => {
            // _reconstruct(ndarray, (0,), b'b'): an empty array that BUILD fills.
            Ok(Value::Array(Rc::new(RefCell::new(Array::default()))))
        }
        ("numpy", "dtype") => {
            let d = a
                .first()
                .and_then(Value::as_text)
                .ok_or("numpy.dtype without a type string")?;
            Ok(Value::Dtype(Rc::new(RefCell::new(d))))
        }
        (m, "_frombuffer") if is_numpy(m, "numeric") => {
            // Protocol 5: _frombuffer(buffer, dtype, shape, order).
            let Some(Value::Bytes(b)) = a.first() else {
                return Err("_frombuffer without an in-band buffer".into());
            };
            let dtype = dtype_of(a.get(1).ok_or("_frombuffer without a dtype")?)?;
            let shape = shape_of(a.get(2).ok_or("_frombuffer without a shape")?)?;
            let fortran = a.get(3).and_then(Value::as_text).is_some_and(|o| o == "F");
            Ok(Value::Array(Rc::new(RefCell::new(Array {
                dtype,
                shape,
                fortran,
                data: b.clone(),
            }))))
        }
        _ => Ok(Value::Object(Rc::from(format!("{module}.{name}").as_str()))),
    }
}

/// `BUILD`: numpy arrays take their state; dtypes keep their byte order
/// from the state; other objects ignore it.
fn build(obj: &Value, state: &Value) -> Result<(), String> {
    match obj {
        Value::Array(arr) => {
            let s = tuple_items(state).map_err(|_| format!("array state is a {}", state.kind()))?;
            if s.len() != 5 {
                return Err(format!("array state has {} items, expected 5 (version, shape, dtype, is_fortran, data)", s.len()));
            }
            let shape = shape_of(&s[1])?;
            let dtype = dtype_of(&s[2])?;
            let fortran = matches!(s[3], Value::Bool(true) | Value::Int(1));
            let data = match &s[4] {
                Value::Bytes(b) => b.clone(),
                Value::Str(t) => {
                    // A Python 2 str decoded as text: its chars are the bytes.
                    Rc::new(t.chars().map(|c| u32::from(c) as u8).collect())
                }
                other => {
                    return Err(format!(
                        "array data is a {} (object arrays are not supported)",
                        other.kind()
                    ))
                }
            };
            let mut a = arr.borrow_mut();
            a.shape = shape;
            a.dtype = dtype;
            a.fortran = fortran;
            a.data = data;
            Ok(())
        }
        Value::Dtype(d) => {
            // numpy pickles dtype('<i8') as dtype('i8', False, True) with
            // the state (3, '<', ...): keep the byte order.
            if let Value::Tuple(t) = state {
                if let Some(order) = t.get(1).and_then(Value::as_text) {
                    let mut d = d.borrow_mut();
                    if matches!(order.as_str(), "<" | ">" | "=")
                        && !d.starts_with(['<', '>', '=', '|'])
                    {
                        *d = format!("{order}{d}");
                    }
                }
            }
            Ok(())
        }
        Value::Dict(d) => {
            if let Value::Dict(s) = state {
                let items = s.borrow().clone();
                d.borrow_mut().extend(items);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Python 2 cPickle (protocol 2) of {'data': uint8 array (2, 3),
    /// 'labels': [1, 300, 70000], 'batch_label': 'b'} built opcode by opcode,
    /// as the CIFAR-10 python files are written.
    fn py2_pickle() -> Vec<u8> {
        let mut p = vec![0x80, 2, b'}', b'q', 1, b'('];
        p.extend(b"U\x04data");
        p.extend(b"q\x02cnumpy.core.multiarray\n_reconstruct\nq\x03cnumpy\nndarray\nq\x04K\x00\x85U\x01b\x87Rq\x05");
        // state: (1, (2, 3), dtype('uint8'), False, '<6 bytes>')
        p.extend(b"(K\x01K\x02K\x03\x86cnumpy\ndtype\nq\x06U\x02u1K\x00K\x01\x87Rq\x07");
        p.extend(b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb");
        p.extend(b"\x89T\x06\x00\x00\x00\x00\x01\x02\xfd\xfe\xfftb");
        p.extend(
            b"U\x06labelsq\x08]q\x09(K\x01M\x2c\x01J\x70\x11\x01\x00eU\x0bbatch_labelq\x0aU\x01bu.",
        );
        p
    }

    #[test]
    fn reads_a_python2_cifar_style_pickle() {
        let v = load(&py2_pickle()).unwrap();
        let Some(Value::Array(a)) = v.get("data") else {
            panic!("no array: {v:?}")
        };
        let a = a.borrow();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.dtype, "u1");
        assert_eq!(a.data.as_slice(), &[0, 1, 2, 0xfd, 0xfe, 0xff]);
        assert_eq!(
            v.get("labels").unwrap().to_ints().unwrap(),
            vec![1, 300, 70000]
        );
        assert_eq!(v.get("batch_label").unwrap().as_text().unwrap(), "b");
        assert_eq!(v.keys(), vec!["data", "labels", "batch_label"]);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let p = py2_pickle();
        for n in 0..p.len() {
            assert!(load(&p[..n]).is_err(), "prefix of {n} bytes accepted");
        }
    }

    #[test]
    fn python3_bytes_below_protocol_3_and_memo_sharing() {
        // A memoised list fetched again, appended to through the copy, the
        // copy popped: the original sees the item (shared, as in Python).
        let mut p = vec![0x80, 2, b']', b'q', 0, b'h', 0];
        p.extend(
            b"c_codecs\nencode\nq\x01X\x03\x00\x00\x00\xc3\xbf\x00X\x06\x00\x00\x00latin1\x86R",
        );
        p.extend(b"a0.");
        let v = load(&p).unwrap();
        let Value::List(l) = &v else { panic!() };
        let l = l.borrow();
        assert_eq!(l.len(), 1);
        match &l[0] {
            Value::Bytes(b) => assert_eq!(b.as_slice(), &[0xff, 0x00]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn integer_arrays_and_long_ints() {
        let a = Array {
            dtype: "<i8".into(),
            shape: vec![2],
            fortran: false,
            data: Rc::new([5i64.to_le_bytes(), (-2i64).to_le_bytes()].concat()),
        };
        assert_eq!(array_ints(&a).unwrap(), vec![5, -2]);
        let b = Array {
            dtype: ">i2".into(),
            shape: vec![1],
            fortran: false,
            data: Rc::new(vec![0x01, 0x02]),
        };
        assert_eq!(array_ints(&b).unwrap(), vec![0x0102]);
        // LONG1 of -1 and of 2^40.
        let v = load(&[
            0x80, 2, b'(', 0x8a, 1, 0xff, 0x8a, 6, 0, 0, 0, 0, 0, 1, b'l', b'.',
        ])
        .unwrap();
        assert_eq!(v.to_ints().unwrap(), vec![-1, 1 << 40]);
    }

    #[test]
    fn refuses_unknown_opcodes_and_bad_memo() {
        assert!(load(b"\x80\x02h\x05.")
            .unwrap_err()
            .contains("memo index 5"));
        assert!(load(b"\x80\x02\xff.")
            .unwrap_err()
            .contains("unsupported pickle opcode 0xff"));
        assert!(load(b"\x80\x02a.").is_err());
    }
}
