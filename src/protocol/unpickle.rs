//! A general, restricted unpickler: any pickle of plain values (protocols 0 to 5) into a
//! [`Value`] tree, and a typed refusal for everything else.
//!
//! Owns: reading what Python's `pickle.dumps` writes for `None`, `bool`, `int` (within `i64`),
//! `float`, `str`, `bytes`/`bytearray`, `list`, `tuple` and `dict`, nested and shared, from any
//! protocol. Used where a peer sends us a request as a pickle (carbonlink's cache queries,
//! written by graphite-web at its highest protocol). Leaves out: carbon's point lists (the
//! allocation-free decoder in [`super::pickle`] reads those), framing (the caller cuts frames
//! and says how long one may be), and writing pickles (`render::format::pickle`).
//!
//! Opcodes read:
//! - control and stack: `PROTO` (0 to 5), `FRAME` (checked against what is left, then
//!   ignored), `STOP`, `MARK`, `POP`, `POP_MARK`, `DUP`;
//! - scalars: `NONE`, `NEWTRUE`, `NEWFALSE`, `INT` (protocol 0's `I01`/`I00` are booleans, as
//!   in CPython), `BININT`, `BININT1`, `BININT2`, `LONG`, `LONG1`, `LONG4`, `FLOAT`,
//!   `BINFLOAT`; text: `STRING`, `BINSTRING`, `SHORT_BINSTRING` (Python 2's `str`, read as
//!   UTF-8), `UNICODE` (raw-unicode-escape), `BINUNICODE`, `SHORT_BINUNICODE`, `BINUNICODE8`;
//!   bytes: `BINBYTES`, `SHORT_BINBYTES`, `BINBYTES8`, `BYTEARRAY8`;
//! - containers: `EMPTY_TUPLE`, `TUPLE`, `TUPLE1`-`TUPLE3`, `EMPTY_LIST`, `LIST`, `APPEND`,
//!   `APPENDS`, `EMPTY_DICT`, `DICT`, `SETITEM`, `SETITEMS`;
//! - memo: `PUT`, `BINPUT`, `LONG_BINPUT`, `MEMOIZE`, `GET`, `BINGET`, `LONG_BINGET`.
//!
//! Refused with [`UnpickleError::Forbidden`]: every opcode that imports, calls or builds an
//! object (`GLOBAL`, `STACK_GLOBAL`, `REDUCE`, `BUILD`, `INST`, `OBJ`, `NEWOBJ`, `NEWOBJ_EX`,
//! `PERSID`, `BINPERSID`, `EXT1/2/4`). Refused with [`UnpickleError::UnsupportedOpcode`]: sets
//! (`EMPTY_SET`, `ADDITEMS`, `FROZENSET`), out-of-band buffers (`NEXT_BUFFER`,
//! `READONLY_BUFFER`) and bytes that are no opcode. So `bytes` pickled at protocols 0 to 2 and
//! `bytearray` below protocol 5, which Python writes as calls (`_codecs.encode`, `bytearray`),
//! are refused too.
//!
//! How it works: a stack machine over an arena. Every object is one arena entry, the stack and
//! the memo hold arena indexes, and containers hold indexes of their items, so a list or dict
//! memoized and filled later (what every pickler writes) is seen filled by every reference, as
//! in Python. Once `STOP` is read, the top object is turned into a [`Value`] tree.
//!
//! Bounds, for hostile input (every one is a typed error, nothing panics):
//! - input longer than [`UnpickleLimits::bytes_max`] is refused before it is read;
//! - a length argument larger than what is left of the input is [`UnpickleError::Truncated`]
//!   before anything is allocated;
//! - every stack push counts against [`UnpickleLimits::objects_max`] and at most one push per
//!   input byte, so the arena, the stack and the containers together never hold more entries
//!   than that; decoded text is at most twice the input's length;
//! - `MARK`s nest at most [`UnpickleLimits::depth_max`] deep, and so does the result: a deeper
//!   tree, or a container that holds itself, is [`UnpickleError::TooDeep`];
//! - shared references are copied into the result, so the result is bounded separately:
//!   [`UnpickleLimits::values_max`] values and [`UnpickleLimits::text_bytes_max`] bytes of text
//!   and bytes in all (a "billion laughs" of memo references is [`UnpickleError::TooManyValues`]);
//! - the parse does not recurse; building the result recurses at most `depth_max` deep.
//!
//! Deliberate differences from CPython 3.11's `pickle.loads`, each tested:
//! - integers must fit an `i64` ([`UnpickleError::IntOutOfRange`]);
//! - `INT` and `LONG` arguments are plain decimal (`-?[0-9]+`, `LONG` with an optional `L`):
//!   CPython also reads C's octal and hex forms, surrounding spaces and underscores, which no
//!   pickler writes;
//! - text must be UTF-8: lone surrogates (which `BINUNICODE`'s `surrogatepass` and `\ud800`
//!   escapes let through in CPython) are [`UnpickleError::BadString`], and so are 8-bit
//!   `STRING`s that are not UTF-8 (CPython's default `encoding='ASCII'` refuses every non-ASCII
//!   one; UTF-8 is what carbon asks for);
//! - a dict key set twice is kept twice, in order; [`Value::get`] returns the last value, as
//!   Python's dict would. A dict key that Python cannot hash (a list or dict, also inside a
//!   tuple) is [`UnpickleError::UnhashableKey`], as CPython's `TypeError`;
//! - `APPEND`/`APPENDS` only extend lists and `SETITEM`/`SETITEMS` only fill dicts (CPython
//!   calls any object's `append`, `extend` or `__setitem__`);
//! - a `FLOAT` whose text overflows (`1e999`) is [`UnpickleError::BadNumber`], as CPython's
//!   `OverflowError`; `inf` and `nan` are read.
//!
//! Bytes after `STOP` are ignored, as Python's `loads` ignores them.

use std::collections::HashMap;
use std::fmt;

/// Default [`UnpickleLimits::depth_max`]: far more nesting than any request needs, and shallow
/// enough that building and dropping the result cannot exhaust a thread's stack.
pub const UNPICKLE_DEPTH_MAX_DEFAULT: usize = 64;
/// The highest pickle protocol `PROTO` may announce (Python 3.8+ writes 5).
pub const UNPICKLE_PROTOCOL_MAX: u8 = 5;

/// The bounds of one [`loads`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpickleLimits {
    /// The longest input read.
    pub bytes_max: usize,
    /// The most stack pushes (new objects, memo and `DUP` references); the input's length
    /// bounds them too.
    pub objects_max: usize,
    /// The most values the result may hold (shared references count once per place).
    pub values_max: usize,
    /// The most bytes of `str` and `bytes` the result may hold in all.
    pub text_bytes_max: usize,
    /// The deepest nesting of `MARK`s, and of containers in the result.
    pub depth_max: usize,
}

impl UnpickleLimits {
    /// Limits for inputs of at most `bytes_max` bytes: as many objects and values as bytes,
    /// four times as much text, and the default depth.
    pub const fn new(bytes_max: usize) -> Self {
        Self {
            bytes_max,
            objects_max: bytes_max,
            values_max: bytes_max,
            text_bytes_max: bytes_max.saturating_mul(4),
            depth_max: UNPICKLE_DEPTH_MAX_DEFAULT,
        }
    }
}

impl Default for UnpickleLimits {
    fn default() -> Self {
        Self::new(1 << 20)
    }
}

/// An unpickled value: the plain types Python's pickle writes without naming a class.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An `int` that fits an `i64`.
    Int(i64),
    /// A `float`.
    Float(f64),
    /// A `str` (and Python 2's `str`, read as UTF-8).
    Str(String),
    /// `bytes` (protocol 3 on) or `bytearray` (protocol 5).
    Bytes(Vec<u8>),
    /// A `list`.
    List(Vec<Value>),
    /// A `tuple`.
    Tuple(Vec<Value>),
    /// A `dict`: its entries in the order the pickle set them, a key set twice kept twice.
    Dict(Vec<(Value, Value)>),
}

impl Value {
    /// The text of a `str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The items of a list or a tuple.
    pub fn as_items(&self) -> Option<&[Value]> {
        match self {
            Value::List(items) | Value::Tuple(items) => Some(items),
            _ => None,
        }
    }

    /// `self[key]` for a dict and a `str` key: the value set last, as Python's dict keeps it.
    /// None when `self` is not a dict or has no such key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(entries) => entries.iter().rev().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Python's name of the value's type (`str`, `dict`, ...), for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::None => "NoneType",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Dict(_) => "dict",
        }
    }

    /// Whether Python could use the value as a dict key (lists and dicts cannot be hashed,
    /// nor can a tuple holding one).
    fn is_hashable(&self) -> bool {
        match self {
            Value::List(_) | Value::Dict(_) => false,
            Value::Tuple(items) => items.iter().all(Value::is_hashable),
            _ => true,
        }
    }
}

/// Why an input was refused. `Copy`: one counter per reason ([`UnpickleError::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnpickleError {
    /// The input ended inside an opcode's argument or before `STOP`, or a length (of a string,
    /// an integer, a `FRAME`) is longer than what is left.
    Truncated,
    /// An opcode that imports, calls or builds an object (the byte is kept for the log).
    Forbidden(u8),
    /// An opcode outside the supported set that is not a call: sets, out-of-band buffers, or
    /// a byte that is no opcode.
    UnsupportedOpcode(u8),
    /// `PROTO` announced a protocol above 5.
    UnsupportedProtocol(u8),
    /// The input is longer than [`UnpickleLimits::bytes_max`].
    TooLarge,
    /// More stack pushes than [`UnpickleLimits::objects_max`] or than the input has bytes.
    TooManyObjects,
    /// The result would hold more than [`UnpickleLimits::values_max`] values or
    /// [`UnpickleLimits::text_bytes_max`] bytes of text.
    TooManyValues,
    /// `MARK`s or containers nested deeper than [`UnpickleLimits::depth_max`] (a container
    /// that holds itself is infinitely deep).
    TooDeep,
    /// An opcode needed more items than the stack holds above the last `MARK`, or a `MARK`
    /// that is not there.
    StackUnderflow,
    /// A memo `GET` of an index never `PUT`, or a malformed memo index.
    BadMemo,
    /// A malformed `INT`, `LONG` or `FLOAT` argument, a float that overflows, or a negative
    /// `LONG4` length.
    BadNumber,
    /// An integer that does not fit an `i64`.
    IntOutOfRange,
    /// Text that is badly quoted or escaped, not UTF-8, or has a negative length.
    BadString,
    /// `APPEND`/`APPENDS` on something that is not a list.
    BadAppend,
    /// `SETITEM`/`SETITEMS` on something that is not a dict, or `DICT`/`SETITEMS` with an odd
    /// number of items.
    BadSetItem,
    /// A dict key Python cannot hash (a list or a dict, also inside a tuple).
    UnhashableKey,
}

impl UnpickleError {
    /// Every reason [`UnpickleError::as_str`] can return, for registering counters up front.
    pub const REASONS: [&'static str; 16] = [
        "truncated",
        "forbidden_opcode",
        "unsupported_opcode",
        "unsupported_protocol",
        "too_large",
        "too_many_objects",
        "too_many_values",
        "too_deep",
        "stack_underflow",
        "bad_memo",
        "bad_number",
        "int_out_of_range",
        "bad_string",
        "bad_append",
        "bad_setitem",
        "unhashable_key",
    ];

    /// The reason's name for counters and logs: one of [`UnpickleError::REASONS`].
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::Forbidden(_) => "forbidden_opcode",
            Self::UnsupportedOpcode(_) => "unsupported_opcode",
            Self::UnsupportedProtocol(_) => "unsupported_protocol",
            Self::TooLarge => "too_large",
            Self::TooManyObjects => "too_many_objects",
            Self::TooManyValues => "too_many_values",
            Self::TooDeep => "too_deep",
            Self::StackUnderflow => "stack_underflow",
            Self::BadMemo => "bad_memo",
            Self::BadNumber => "bad_number",
            Self::IntOutOfRange => "int_out_of_range",
            Self::BadString => "bad_string",
            Self::BadAppend => "bad_append",
            Self::BadSetItem => "bad_setitem",
            Self::UnhashableKey => "unhashable_key",
        }
    }
}

impl fmt::Display for UnpickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Forbidden(byte) => write!(f, "forbidden_opcode: 0x{byte:02x} ({}) is not allowed", opcode_name(byte)),
            Self::UnsupportedOpcode(byte) => {
                write!(f, "unsupported_opcode: 0x{byte:02x} ({}) is not supported", opcode_name(byte))
            }
            Self::UnsupportedProtocol(v) => write!(f, "unsupported_protocol: pickle protocol {v}"),
            other => f.write_str(other.as_str()),
        }
    }
}

impl std::error::Error for UnpickleError {}

use super::opcodes as op;

/// The name of a refused byte as an opcode, for error messages ("?" when it is none).
fn opcode_name(byte: u8) -> &'static str {
    op::FORBIDDEN.iter().chain(&op::UNSUPPORTED).find(|(b, _)| *b == byte).map_or("?", |(_, name)| name)
}

/// Unpickles `data` within `limits`. Bytes after `STOP` are ignored.
pub fn loads(data: &[u8], limits: &UnpickleLimits) -> Result<Value, UnpickleError> {
    if data.len() > limits.bytes_max {
        return Err(UnpickleError::TooLarge);
    }
    let mut machine = Machine::new(limits, data.len());
    let mut reader = Reader { data, pos: 0 };
    loop {
        let opcode = reader.byte()?;
        if opcode == op::STOP {
            break;
        }
        machine.step(&mut reader, opcode)?;
    }
    let top = machine.top()?;
    let mut budget = Budget { values_left: limits.values_max, text_left: limits.text_bytes_max };
    machine.value(top, 0, &mut budget)
}

/// The input, read front to back.
struct Reader<'a> {
    data: &'a [u8],
    /// Invariant: `pos <= data.len()`.
    pos: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.data.len() - self.pos
    }

    fn byte(&mut self) -> Result<u8, UnpickleError> {
        let b = *self.data.get(self.pos).ok_or(UnpickleError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    /// The next `n` bytes; a length beyond the input is refused before anything is allocated.
    fn take(&mut self, n: u64) -> Result<&'a [u8], UnpickleError> {
        let n = usize::try_from(n).map_err(|_| UnpickleError::Truncated)?;
        if n > self.left() {
            return Err(UnpickleError::Truncated);
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], UnpickleError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64)?);
        Ok(out)
    }

    fn u32_le(&mut self) -> Result<u32, UnpickleError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn i32_le(&mut self) -> Result<i32, UnpickleError> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    fn u64_le(&mut self) -> Result<u64, UnpickleError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A text argument: the bytes up to the next `\n`, which is consumed.
    fn line(&mut self) -> Result<&'a [u8], UnpickleError> {
        let rest = &self.data[self.pos..];
        let end = rest.iter().position(|&b| b == b'\n').ok_or(UnpickleError::Truncated)?;
        self.pos += end + 1;
        Ok(&rest[..end])
    }
}

/// One object of the arena. Containers hold arena indexes, so that an object filled after it
/// was memoized is seen filled through every reference.
#[derive(Debug)]
enum Obj {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<u32>),
    Tuple(Vec<u32>),
    Dict(Vec<(u32, u32)>),
}

/// What building the result may still spend.
struct Budget {
    values_left: usize,
    text_left: usize,
}

/// The stack machine.
struct Machine<'l> {
    limits: &'l UnpickleLimits,
    /// Every object made so far. Invariant: `objs.len() <= pushes made`.
    objs: Vec<Obj>,
    /// Arena indexes. Invariant: every index is below `objs.len()`.
    stack: Vec<u32>,
    /// Stack lengths at each open `MARK`, innermost last. Invariant: non-decreasing, each at
    /// most `stack.len()` (nothing pops below the innermost mark).
    marks: Vec<usize>,
    /// Memo index to arena index.
    memo: HashMap<u64, u32>,
    /// Pushes left before [`UnpickleError::TooManyObjects`].
    pushes_left: usize,
}

impl<'l> Machine<'l> {
    fn new(limits: &'l UnpickleLimits, input_len: usize) -> Self {
        Machine {
            limits,
            objs: Vec::new(),
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            pushes_left: limits.objects_max.min(input_len),
        }
    }

    /// Runs one opcode (not `STOP`).
    fn step(&mut self, r: &mut Reader<'_>, opcode: u8) -> Result<(), UnpickleError> {
        match opcode {
            op::PROTO => match r.byte()? {
                v if v <= UNPICKLE_PROTOCOL_MAX => Ok(()),
                v => Err(UnpickleError::UnsupportedProtocol(v)),
            },
            op::FRAME => {
                // Frames only group opcodes for buffered readers; the whole input is here.
                let len = r.u64_le()?;
                if len > r.left() as u64 {
                    return Err(UnpickleError::Truncated);
                }
                Ok(())
            }
            op::MARK => self.mark(),
            op::POP => self.pop_item_or_mark(),
            op::POP_MARK => {
                let at = self.pop_mark()?;
                self.stack.truncate(at);
                Ok(())
            }
            op::DUP => {
                let top = self.top()?;
                self.push_ref(top)
            }
            op::EMPTY_TUPLE => self.push(Obj::Tuple(Vec::new())),
            op::TUPLE => {
                let at = self.pop_mark()?;
                let items = self.stack.split_off(at);
                self.push(Obj::Tuple(items))
            }
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let at = self.items_above_fence(usize::from(opcode - op::TUPLE1 + 1))?;
                let items = self.stack.split_off(at);
                self.push(Obj::Tuple(items))
            }
            op::EMPTY_LIST => self.push(Obj::List(Vec::new())),
            op::LIST => {
                let at = self.pop_mark()?;
                let items = self.stack.split_off(at);
                self.push(Obj::List(items))
            }
            op::APPEND => {
                let at = self.items_above_fence(2)? + 1;
                self.extend_list(at)
            }
            op::APPENDS => {
                let at = self.pop_mark()?;
                self.extend_list(at)
            }
            op::EMPTY_DICT => self.push(Obj::Dict(Vec::new())),
            op::DICT => {
                let at = self.pop_mark()?;
                let pairs = pairs_of(&self.stack[at..])?;
                self.stack.truncate(at);
                self.push(Obj::Dict(pairs))
            }
            op::SETITEM => {
                let at = self.items_above_fence(3)? + 1;
                self.fill_dict(at)
            }
            op::SETITEMS => {
                let at = self.pop_mark()?;
                self.fill_dict(at)
            }
            op::PUT => {
                let idx = parse_memo_index(r.line()?)?;
                self.memo_put(idx)
            }
            op::BINPUT => {
                let idx = r.byte()?;
                self.memo_put(u64::from(idx))
            }
            op::LONG_BINPUT => {
                let idx = r.u32_le()?;
                self.memo_put(u64::from(idx))
            }
            op::MEMOIZE => self.memo_put(self.memo.len() as u64),
            op::GET => {
                let idx = parse_memo_index(r.line()?)?;
                self.memo_get(idx)
            }
            op::BINGET => {
                let idx = r.byte()?;
                self.memo_get(u64::from(idx))
            }
            op::LONG_BINGET => {
                let idx = r.u32_le()?;
                self.memo_get(u64::from(idx))
            }
            _ => {
                let obj = scalar(r, opcode)?;
                self.push(obj)
            }
        }
    }

    /// The innermost mark's stack length (0 without one): nothing below it may be consumed.
    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    /// The top of the stack, which must be above the fence.
    fn top(&self) -> Result<u32, UnpickleError> {
        if self.stack.len() <= self.fence() {
            return Err(UnpickleError::StackUnderflow);
        }
        self.stack.last().copied().ok_or(UnpickleError::StackUnderflow)
    }

    /// Where the top `n` items start, when all `n` are above the fence.
    fn items_above_fence(&self, n: usize) -> Result<usize, UnpickleError> {
        match self.stack.len().checked_sub(n) {
            Some(at) if at >= self.fence() => Ok(at),
            _ => Err(UnpickleError::StackUnderflow),
        }
    }

    fn spend_push(&mut self) -> Result<(), UnpickleError> {
        self.pushes_left = self.pushes_left.checked_sub(1).ok_or(UnpickleError::TooManyObjects)?;
        Ok(())
    }

    fn push(&mut self, obj: Obj) -> Result<(), UnpickleError> {
        self.spend_push()?;
        let idx = u32::try_from(self.objs.len()).map_err(|_| UnpickleError::TooManyObjects)?;
        self.objs.push(obj);
        self.stack.push(idx);
        Ok(())
    }

    fn push_ref(&mut self, idx: u32) -> Result<(), UnpickleError> {
        self.spend_push()?;
        self.stack.push(idx);
        Ok(())
    }

    fn mark(&mut self) -> Result<(), UnpickleError> {
        if self.marks.len() >= self.limits.depth_max {
            return Err(UnpickleError::TooDeep);
        }
        self.marks.push(self.stack.len());
        Ok(())
    }

    fn pop_mark(&mut self) -> Result<usize, UnpickleError> {
        let at = self.marks.pop().ok_or(UnpickleError::StackUnderflow)?;
        debug_assert!(at <= self.stack.len() && at >= self.fence());
        Ok(at)
    }

    /// `POP`: the top item, or the innermost mark when nothing is above it (as CPython does).
    fn pop_item_or_mark(&mut self) -> Result<(), UnpickleError> {
        if self.stack.len() > self.fence() {
            self.stack.pop();
            Ok(())
        } else {
            self.pop_mark().map(|_| ())
        }
    }

    /// Moves the items from `at` up into the list just below them (CPython's `do_append`).
    fn extend_list(&mut self, at: usize) -> Result<(), UnpickleError> {
        if at > self.stack.len() || at <= self.fence() {
            return Err(UnpickleError::StackUnderflow);
        }
        if at == self.stack.len() {
            return Ok(());
        }
        let target = self.stack[at - 1] as usize;
        let items = self.stack.split_off(at);
        match &mut self.objs[target] {
            Obj::List(list) => {
                list.extend(items);
                Ok(())
            }
            _ => Err(UnpickleError::BadAppend),
        }
    }

    /// Sets the key/value pairs from `at` up into the dict just below them (CPython's
    /// `do_setitems`).
    fn fill_dict(&mut self, at: usize) -> Result<(), UnpickleError> {
        if at > self.stack.len() || at <= self.fence() {
            return Err(UnpickleError::StackUnderflow);
        }
        if at == self.stack.len() {
            return Ok(());
        }
        let pairs = pairs_of(&self.stack[at..])?;
        let target = self.stack[at - 1] as usize;
        self.stack.truncate(at);
        match &mut self.objs[target] {
            Obj::Dict(dict) => {
                dict.extend(pairs);
                Ok(())
            }
            _ => Err(UnpickleError::BadSetItem),
        }
    }

    fn memo_put(&mut self, idx: u64) -> Result<(), UnpickleError> {
        let top = self.top()?;
        self.memo.insert(idx, top);
        Ok(())
    }

    fn memo_get(&mut self, idx: u64) -> Result<(), UnpickleError> {
        let obj = *self.memo.get(&idx).ok_or(UnpickleError::BadMemo)?;
        self.push_ref(obj)
    }

    /// The object at `idx` as a value tree, `depth` containers down.
    fn value(&self, idx: u32, depth: usize, budget: &mut Budget) -> Result<Value, UnpickleError> {
        if depth > self.limits.depth_max {
            return Err(UnpickleError::TooDeep);
        }
        budget.values_left = budget.values_left.checked_sub(1).ok_or(UnpickleError::TooManyValues)?;
        let mut text = |len: usize| -> Result<(), UnpickleError> {
            budget.text_left = budget.text_left.checked_sub(len).ok_or(UnpickleError::TooManyValues)?;
            Ok(())
        };
        Ok(match &self.objs[idx as usize] {
            Obj::None => Value::None,
            Obj::Bool(b) => Value::Bool(*b),
            Obj::Int(i) => Value::Int(*i),
            Obj::Float(f) => Value::Float(*f),
            Obj::Str(s) => {
                text(s.len())?;
                Value::Str(s.clone())
            }
            Obj::Bytes(b) => {
                text(b.len())?;
                Value::Bytes(b.clone())
            }
            Obj::List(items) => Value::List(self.values(items, depth, budget)?),
            Obj::Tuple(items) => Value::Tuple(self.values(items, depth, budget)?),
            Obj::Dict(pairs) => {
                let mut out = Vec::with_capacity(pairs.len());
                for &(k, v) in pairs {
                    let key = self.value(k, depth + 1, budget)?;
                    if !key.is_hashable() {
                        return Err(UnpickleError::UnhashableKey);
                    }
                    out.push((key, self.value(v, depth + 1, budget)?));
                }
                Value::Dict(out)
            }
        })
    }

    fn values(&self, items: &[u32], depth: usize, budget: &mut Budget) -> Result<Vec<Value>, UnpickleError> {
        items.iter().map(|&i| self.value(i, depth + 1, budget)).collect()
    }
}

/// Stack items taken two by two as (key, value) pairs; an odd count is refused.
fn pairs_of(items: &[u32]) -> Result<Vec<(u32, u32)>, UnpickleError> {
    if items.len() % 2 != 0 {
        return Err(UnpickleError::BadSetItem);
    }
    Ok(items.chunks_exact(2).map(|pair| (pair[0], pair[1])).collect())
}

/// The scalar opcodes: their argument read and their object made; any other byte is refused.
fn scalar(r: &mut Reader<'_>, opcode: u8) -> Result<Obj, UnpickleError> {
    Ok(match opcode {
        op::NONE => Obj::None,
        op::NEWTRUE => Obj::Bool(true),
        op::NEWFALSE => Obj::Bool(false),
        op::INT => parse_int_line(r.line()?)?,
        op::BININT => Obj::Int(i64::from(r.i32_le()?)),
        op::BININT1 => Obj::Int(i64::from(r.byte()?)),
        op::BININT2 => Obj::Int(i64::from(u16::from_le_bytes(r.array()?))),
        op::LONG => Obj::Int(parse_long_line(r.line()?)?),
        op::LONG1 => {
            let len = r.byte()?;
            Obj::Int(int_from_le(r.take(u64::from(len))?)?)
        }
        op::LONG4 => {
            let len = u64::try_from(r.i32_le()?).map_err(|_| UnpickleError::BadNumber)?;
            Obj::Int(int_from_le(r.take(len)?)?)
        }
        op::FLOAT => Obj::Float(parse_float_line(r.line()?)?),
        op::BINFLOAT => Obj::Float(f64::from_be_bytes(r.array()?)),
        op::STRING => Obj::Str(utf8(unquote_escaped(r.line()?)?)?),
        op::BINSTRING => {
            let len = u64::try_from(r.i32_le()?).map_err(|_| UnpickleError::BadString)?;
            Obj::Str(utf8(r.take(len)?.to_vec())?)
        }
        op::SHORT_BINSTRING => {
            let len = r.byte()?;
            Obj::Str(utf8(r.take(u64::from(len))?.to_vec())?)
        }
        op::UNICODE => Obj::Str(raw_unicode_unescape(r.line()?)?),
        op::BINUNICODE => {
            let len = r.u32_le()?;
            Obj::Str(utf8(r.take(u64::from(len))?.to_vec())?)
        }
        op::SHORT_BINUNICODE => {
            let len = r.byte()?;
            Obj::Str(utf8(r.take(u64::from(len))?.to_vec())?)
        }
        op::BINUNICODE8 => {
            let len = r.u64_le()?;
            Obj::Str(utf8(r.take(len)?.to_vec())?)
        }
        op::BINBYTES => {
            let len = r.u32_le()?;
            Obj::Bytes(r.take(u64::from(len))?.to_vec())
        }
        op::SHORT_BINBYTES => {
            let len = r.byte()?;
            Obj::Bytes(r.take(u64::from(len))?.to_vec())
        }
        op::BINBYTES8 | op::BYTEARRAY8 => {
            let len = r.u64_le()?;
            Obj::Bytes(r.take(len)?.to_vec())
        }
        other if op::FORBIDDEN.iter().any(|(b, _)| *b == other) => return Err(UnpickleError::Forbidden(other)),
        other => return Err(UnpickleError::UnsupportedOpcode(other)),
    })
}

fn utf8(bytes: Vec<u8>) -> Result<String, UnpickleError> {
    String::from_utf8(bytes).map_err(|_| UnpickleError::BadString)
}

/// `-?[0-9]+` without superfluous leading zeros, as an `i64`.
fn parse_decimal(text: &[u8]) -> Result<i64, UnpickleError> {
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || (digits.len() > 1 && digits[0] == b'0') {
        return Err(UnpickleError::BadNumber);
    }
    // ASCII digits are UTF-8; the parse fails only on overflow, the sign included.
    let text = std::str::from_utf8(text).map_err(|_| UnpickleError::BadNumber)?;
    text.parse::<i64>().map_err(|_| UnpickleError::IntOutOfRange)
}

/// `INT`'s argument: protocol 0 writes `True` as `01` and `False` as `00`.
fn parse_int_line(line: &[u8]) -> Result<Obj, UnpickleError> {
    match line {
        b"01" => Ok(Obj::Bool(true)),
        b"00" => Ok(Obj::Bool(false)),
        _ => parse_decimal(line).map(Obj::Int),
    }
}

/// `LONG`'s argument: a decimal with Python 2's trailing `L`, or without it.
fn parse_long_line(line: &[u8]) -> Result<i64, UnpickleError> {
    parse_decimal(line.strip_suffix(b"L").unwrap_or(line))
}

/// A memo index in text (`PUT`, `GET`): decimal digits.
fn parse_memo_index(line: &[u8]) -> Result<u64, UnpickleError> {
    if line.is_empty() || !line.iter().all(u8::is_ascii_digit) {
        return Err(UnpickleError::BadMemo);
    }
    let text = std::str::from_utf8(line).map_err(|_| UnpickleError::BadMemo)?;
    text.parse().map_err(|_| UnpickleError::BadMemo)
}

/// `FLOAT`'s argument, read as Python's `float()` of a `repr` (no spaces, no underscores); a
/// finite text that overflows is refused, as CPython raises `OverflowError`.
fn parse_float_line(line: &[u8]) -> Result<f64, UnpickleError> {
    let text = std::str::from_utf8(line).map_err(|_| UnpickleError::BadNumber)?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.');
    if text.is_empty() || !text.chars().all(allowed) {
        return Err(UnpickleError::BadNumber);
    }
    let value: f64 = text.parse().map_err(|_| UnpickleError::BadNumber)?;
    let unsigned = text.trim_start_matches(['+', '-']);
    if value.is_infinite() && !unsigned.get(..3).is_some_and(|s| s.eq_ignore_ascii_case("inf")) {
        return Err(UnpickleError::BadNumber);
    }
    Ok(value)
}

/// A little-endian two's complement integer (`LONG1`, `LONG4`) that must fit an `i64`.
fn int_from_le(bytes: &[u8]) -> Result<i64, UnpickleError> {
    let Some(&last) = bytes.last() else { return Ok(0) };
    let fill = if last & 0x80 != 0 { 0xff } else { 0x00 };
    let (low, high) = bytes.split_at(bytes.len().min(8));
    let mut buf = [fill; 8];
    buf[..low.len()].copy_from_slice(low);
    let value = i64::from_le_bytes(buf);
    // Bytes past the eighth must only extend the sign, and that sign must be the i64's.
    if high.iter().any(|&b| b != fill) || (value < 0) != (fill == 0xff) {
        return Err(UnpickleError::IntOutOfRange);
    }
    Ok(value)
}

/// `STRING`'s argument: quoted with `'` or `"` at both ends, then Python's bytes escapes
/// (`PyBytes_DecodeEscape`).
fn unquote_escaped(line: &[u8]) -> Result<Vec<u8>, UnpickleError> {
    let quoted = line.len() >= 2 && line[0] == line[line.len() - 1] && matches!(line[0], b'\'' | b'"');
    if !quoted {
        return Err(UnpickleError::BadString);
    }
    let s = &line[1..line.len() - 1];
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let Some(&e) = s.get(i) else { return Err(UnpickleError::BadString) };
        i += 1;
        match e {
            b'\n' => {}
            b'\\' | b'\'' | b'"' => out.push(e),
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'0'..=b'7' => {
                // Up to three octal digits; CPython 3.11 keeps the low byte of larger values.
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match s.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            b'x' => {
                let hi = s.get(i).and_then(|&b| hex_value(b));
                let lo = s.get(i + 1).and_then(|&b| hex_value(b));
                let (Some(hi), Some(lo)) = (hi, lo) else { return Err(UnpickleError::BadString) };
                out.push(hi * 16 + lo);
                i += 2;
            }
            // Unknown escapes stay as they are, backslash included.
            other => out.extend_from_slice(&[b'\\', other]),
        }
    }
    Ok(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `UNICODE`'s argument, decoded as CPython 3.11's `raw_unicode_escape`: bytes are Latin-1
/// code points, `\uXXXX` and `\UXXXXXXXX` are escapes; a backslash before anything else stays,
/// and so does the character after it (so `\\u0041` is not an escape).
fn raw_unicode_unescape(s: &[u8]) -> Result<String, UnpickleError> {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        i += 1;
        if c != b'\\' || i == s.len() {
            out.push(char::from(c));
            continue;
        }
        let e = s[i];
        i += 1;
        let digits = match e {
            b'u' => 4,
            b'U' => 8,
            _ => {
                out.push('\\');
                out.push(char::from(e));
                continue;
            }
        };
        let hex = s.get(i..i + digits).ok_or(UnpickleError::BadString)?;
        let mut code = 0u32;
        for &h in hex {
            code = code * 16 + u32::from(hex_value(h).ok_or(UnpickleError::BadString)?);
        }
        i += digits;
        // Lone surrogates and values past U+10FFFF are no `char`.
        out.push(char::from_u32(code).ok_or(UnpickleError::BadString)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    //! Vectors marked "CPython" are `pickle.dumps(...)` output of CPython 3.11.2 (Debian 12's
    //! `/usr/bin/python3`), generated once with the expression shown above each and pasted here;
    //! the others are written by hand, with what CPython 3.11's `pickle.loads` reads in the
    //! comment. `reference_unpickle_against_cpython` checks random values against CPython at
    //! test time.

    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        let s: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        assert!(s.len() % 2 == 0, "odd hex length");
        s.chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).expect("ascii"), 16).expect("hex digit"))
            .collect()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A value as text that tells every value apart (floats by their bits, so `-0.0` and NaNs
    /// too); the same encoding as the Python side of the reference test.
    fn describe(v: &Value) -> String {
        let join = |items: &[Value]| items.iter().map(describe).collect::<Vec<_>>().join(",");
        match v {
            Value::None => "N".into(),
            Value::Bool(true) => "T".into(),
            Value::Bool(false) => "F".into(),
            Value::Int(i) => format!("i{i}"),
            Value::Float(f) => format!("f{}", f.to_bits() as i64),
            Value::Str(s) => format!("s{};", hex(s.as_bytes())),
            Value::Bytes(b) => format!("b{};", hex(b)),
            Value::List(items) => format!("[{}]", join(items)),
            Value::Tuple(items) => format!("({})", join(items)),
            Value::Dict(entries) => {
                let entries: Vec<String> =
                    entries.iter().map(|(k, v)| format!("{}:{}", describe(k), describe(v))).collect();
                format!("{{{}}}", entries.join(","))
            }
        }
    }

    fn load(input: &[u8]) -> Result<Value, UnpickleError> {
        loads(input, &UnpickleLimits::default())
    }

    /// The one check every well-formed vector goes through: the value (bit for bit); every
    /// strict prefix refused as truncated; bytes after `STOP` ignored.
    fn check(input: &[u8], want: &Value) {
        let got = load(input).unwrap_or_else(|e| panic!("{}: {e}", hex(input)));
        assert_eq!(describe(&got), describe(want), "{got:?}");
        for end in 0..input.len() {
            assert_eq!(load(&input[..end]), Err(UnpickleError::Truncated), "prefix of {end} bytes");
        }
        let mut longer = input.to_vec();
        longer.extend_from_slice(b"\xff\x00c garbage");
        assert_eq!(describe(&load(&longer).expect("trailing bytes ignored")), describe(want));
    }

    fn s(text: &str) -> Value {
        Value::Str(text.into())
    }

    fn dict(entries: Vec<(Value, Value)>) -> Value {
        Value::Dict(entries)
    }

    // ---- CPython's own pickles, every protocol ----

    /// CPython: `pickle.dumps({'type': 'cache-query', 'metric': 'a.b.c'}, protocol=p)`.
    const REQUEST_BY_PROTOCOL: [&str; 6] = [
        "286470300a56747970650a70310a5663616368652d71756572790a70320a73566d65747269630a70330a56612e622e630a70340a\
         732e",
        "7d7100285804000000747970657101580b00000063616368652d7175657279710258060000006d657472696371035805000000612e\
         622e637104752e",
        "80027d7100285804000000747970657101580b00000063616368652d7175657279710258060000006d65747269637103580500000\
         0612e622e637104752e",
        "80037d7100285804000000747970657101580b00000063616368652d7175657279710258060000006d65747269637103580500000\
         0612e622e637104752e",
        "8004952b000000000000007d94288c0474797065948c0b63616368652d7175657279948c066d6574726963948c05612e622e639475\
         2e",
        "8005952b000000000000007d94288c0474797065948c0b63616368652d7175657279948c066d6574726963948c05612e622e639475\
         2e",
    ];

    #[test]
    fn a_carbonlink_request_from_every_protocol() {
        let want = dict(vec![(s("type"), s("cache-query")), (s("metric"), s("a.b.c"))]);
        for (protocol, hex) in REQUEST_BY_PROTOCOL.iter().enumerate() {
            let input = unhex(hex);
            assert_eq!(input.first() == Some(&op::PROTO), protocol >= 2);
            assert_eq!(input.get(2) == Some(&op::FRAME), protocol >= 4);
            check(&input, &want);
            let got = load(&input).unwrap();
            assert_eq!(got.get("type").and_then(Value::as_str), Some("cache-query"));
            assert_eq!(got.get("nope"), None);
        }
    }

    /// CPython: `shared = ['x']; pickle.dumps({'none': None, 't': True, 'f': False, 'small': 7,
    /// 'neg': -300, 'i32': 2**31 - 1, 'big': 2**40, 'min': -2**63, 'float': 1.5, 'negzero':
    /// -0.0, 'inf': float('inf'), 'str': 'ü\n\\x\u20ac', 'empty': '', 'tuple': (1, (2, 3), ()),
    /// 'list': [[], [1]], 'shared': (shared, shared), 'nested': {'k': {1: 'one', (1, 2):
    /// 'pair'}}}, protocol=p)`.
    const EVERY_TYPE_BY_PROTOCOL: [&str; 6] = [
        "286470300a566e6f6e650a70310a4e7356740a70320a4930310a7356660a70330a4930300a7356736d616c6c0a70340a49370a7356\
         6e65670a70350a492d3330300a73566933320a70360a49323134373438333634370a73566269670a70370a4c313039393531313632\
         373737364c0a73566d696e0a70380a4c2d393232333337323033363835343737353830384c0a7356666c6f61740a70390a46312e35\
         0a73566e65677a65726f0a7031300a462d302e300a7356696e660a7031310a46696e660a73567374720a7031320a56fc5c75303030\
         615c7530303563785c75323061630a7031330a7356656d7074790a7031340a560a7031350a73567475706c650a7031360a2849310a\
         2849320a49330a747031370a2874747031380a73566c6973740a7031390a286c7032300a286c7032310a61286c7032320a49310a61\
         6173567368617265640a7032330a28286c7032340a56780a7032350a616732340a747032360a73566e65737465640a7032370a2864\
         7032380a566b0a7032390a28647033300a49310a566f6e650a7033310a732849310a49320a747033320a56706169720a7033330a73\
         73732e",
        "7d71002858040000006e6f6e6571014e58010000007471024930310a58010000006671034930300a5805000000736d616c6c71044b\
         0758030000006e656771054ad4feffff580300000069333271064affffff7f580300000062696771074c313039393531313632373737\
         364c0a58030000006d696e71084c2d393232333337323033363835343737353830384c0a5805000000666c6f61747109473ff80000\
         0000000058070000006e65677a65726f710a4780000000000000005803000000696e66710b477ff000000000000058030000007374\
         72710c5808000000c3bc0a5c78e282ac710d5805000000656d707479710e5800000000710f58050000007475706c657110284b0128\
         4b024b037471112974711258040000006c69737471135d7114285d71155d71164b01616558060000007368617265647117285d7118\
         580100000078711961681874711a58060000006e6573746564711b7d711c58010000006b711d7d711e284b0158030000006f6e6571\
         1f284b014b0274712058040000007061697271217573752e",
        "80027d71002858040000006e6f6e6571014e5801000000747102885801000000667103895805000000736d616c6c71044b07580300\
         00006e656771054ad4feffff580300000069333271064affffff7f580300000062696771078a060000000000015803000000\
         6d696e71088a0800000000000000805805000000666c6f61747109473ff800000000000058070000006e65677a65726f710a478000\
         0000000000005803000000696e66710b477ff00000000000005803000000737472710c5808000000c3bc0a5c78e282ac710d580500\
         0000656d707479710e5800000000710f58050000007475706c6571104b014b024b038671112987711258040000006c69737471135d\
         7114285d71155d71164b016165580600000073686172656471175d7118580100000078711961681886711a58060000006e65737465\
         64711b7d711c58010000006b711d7d711e284b0158030000006f6e65711f4b014b0286712058040000007061697271217573752e",
        "80037d71002858040000006e6f6e6571014e5801000000747102885801000000667103895805000000736d616c6c71044b07580300\
         00006e656771054ad4feffff580300000069333271064affffff7f580300000062696771078a060000000000015803000000\
         6d696e71088a0800000000000000805805000000666c6f61747109473ff800000000000058070000006e65677a65726f710a478000\
         0000000000005803000000696e66710b477ff00000000000005803000000737472710c5808000000c3bc0a5c78e282ac710d580500\
         0000656d707479710e5800000000710f58050000007475706c6571104b014b024b038671112987711258040000006c69737471135d\
         7114285d71155d71164b016165580600000073686172656471175d7118580100000078711961681886711a58060000006e65737465\
         64711b7d711c58010000006b711d7d711e284b0158030000006f6e65711f4b014b0286712058040000007061697271217573752e",
        "80049506010000000000007d94288c046e6f6e65944e8c017494888c016694898c05736d616c6c944b078c036e6567944ad4feffff\
         8c03693332944affffff7f8c03626967948a060000000000018c036d696e948a0800000000000000808c05666c6f617494473ff800\
         00000000008c076e65677a65726f944780000000000000008c03696e6694477ff00000000000008c03737472948c08c3bc0a5c78e2\
         82ac948c05656d707479948c00948c057475706c65944b014b024b0386942987948c046c697374945d94285d945d944b0161658c06\
         736861726564945d948c01789461681886948c066e6573746564947d948c016b947d94284b018c036f6e65944b014b0286948c0470\
         616972947573752e",
        "80059506010000000000007d94288c046e6f6e65944e8c017494888c016694898c05736d616c6c944b078c036e6567944ad4feffff\
         8c03693332944affffff7f8c03626967948a060000000000018c036d696e948a0800000000000000808c05666c6f617494473ff800\
         00000000008c076e65677a65726f944780000000000000008c03696e6694477ff00000000000008c03737472948c08c3bc0a5c78e2\
         82ac948c05656d707479948c00948c057475706c65944b014b024b0386942987948c046c697374945d94285d945d944b0161658c06\
         736861726564945d948c01789461681886948c066e6573746564947d948c016b947d94284b018c036f6e65944b014b0286948c0470\
         616972947573752e",
    ];

    fn every_type() -> Value {
        use Value::{Bool, Float, Int, List, Tuple};
        let shared = List(vec![s("x")]);
        dict(vec![
            (s("none"), Value::None),
            (s("t"), Bool(true)),
            (s("f"), Bool(false)),
            (s("small"), Int(7)),
            (s("neg"), Int(-300)),
            (s("i32"), Int(i64::from(i32::MAX))),
            (s("big"), Int(1 << 40)),
            (s("min"), Int(i64::MIN)),
            (s("float"), Float(1.5)),
            (s("negzero"), Float(-0.0)),
            (s("inf"), Float(f64::INFINITY)),
            (s("str"), s("ü\n\\x\u{20ac}")),
            (s("empty"), s("")),
            (s("tuple"), Tuple(vec![Int(1), Tuple(vec![Int(2), Int(3)]), Tuple(vec![])])),
            (s("list"), List(vec![List(vec![]), List(vec![Int(1)])])),
            (s("shared"), Tuple(vec![shared.clone(), shared])),
            (
                s("nested"),
                dict(vec![(s("k"), dict(vec![(Int(1), s("one")), (Tuple(vec![Int(1), Int(2)]), s("pair"))]))]),
            ),
        ])
    }

    #[test]
    fn every_type_from_every_protocol() {
        for hex in EVERY_TYPE_BY_PROTOCOL {
            check(&unhex(hex), &every_type());
        }
    }

    #[test]
    fn bytes_and_bytearray_where_python_writes_them_as_data() {
        let want = Value::List(vec![Value::Bytes(vec![0, 0xff]), Value::Bytes(vec![])]);
        // CPython: pickle.dumps([b'\x00\xff', b''], protocol=p) for p = 3, 4, 5.
        for hex in [
            "80035d710028430200ff710143007102652e",
            "8004950d000000000000005d9428430200ff94430094652e",
            "8005950d000000000000005d9428430200ff94430094652e",
        ] {
            check(&unhex(hex), &want);
        }
        // CPython: pickle.dumps([bytearray(b'ab')], protocol=5): BYTEARRAY8.
        check(
            &unhex("80059510000000000000005d94960200000000000000616294612e"),
            &Value::List(vec![Value::Bytes(b"ab".to_vec())]),
        );
    }

    #[test]
    fn bytes_below_protocol_3_and_bytearray_below_5_are_calls_and_refused() {
        // CPython: pickle.dumps(b'\x00', protocol=p) for p = 0, 1, 2: _codecs.encode(...).
        for hex in [
            "635f636f646563730a656e636f64650a70300a28565c75303030300a70310a566c6174696e310a70320a7470330a5270340a2e",
            "635f636f646563730a656e636f64650a710028580100000000710158060000006c6174696e3171027471035271042e",
            "8002635f636f646563730a656e636f64650a7100580100000000710158060000006c6174696e3171028671035271042e",
        ] {
            assert_eq!(load(&unhex(hex)), Err(UnpickleError::Forbidden(b'c')));
        }
        // CPython: pickle.dumps(bytearray(b'ab'), protocol=4): STACK_GLOBAL then REDUCE.
        let p4 = "80049523000000000000008c086275696c74696e73948c096279746561727261799493944302616294859452942e";
        assert_eq!(load(&unhex(p4)), Err(UnpickleError::Forbidden(0x93)));
    }

    #[test]
    fn protocol_0_text_escapes() {
        // CPython: pickle.dumps(['a\\u0041\r\x00\x1a\U0001F600'], protocol=0): the pickler
        // writes a backslash as \u005c, so `\u0041` in the text stays text.
        let input = b"(lp0\nVa\\u005cu0041\\u000d\\u0000\\u001a\\U0001f600\np1\na.";
        check(input, &Value::List(vec![s("a\\u0041\r\0\x1a\u{1F600}")]));
        // Hand-written, CPython reads 'A\\u0041\\q\\' and 'é' (Latin-1 bytes are code points).
        check(b"V\\u0041\\\\u0041\\q\\\n.", &s("A\\\\u0041\\q\\"));
        check(b"V\xe9\n.", &s("é"));
        assert_eq!(load(b"V\\u00\n."), Err(UnpickleError::BadString), "truncated \\uXXXX");
        assert_eq!(load(b"V\\ud800\n."), Err(UnpickleError::BadString), "a lone surrogate is no UTF-8");
        assert_eq!(load(b"V\\U00110000\n."), Err(UnpickleError::BadString), "past U+10FFFF");
        // Python 2's STRING: quoted, bytes escapes (CPython with encoding='utf-8').
        check(b"S'a\\'b\\n\\x41\\101\\\\\\q'\n.", &s("a'b\nAA\\\\q"));
        check(b"S\"\xc3\xa9\"\n.", &s("é"));
        for bad in [&b"S'abc\n."[..], b"Sabc\n.", b"S'\n.", b"S'a\\x4'\n.", b"S'a\\'\n.", b"S'\xe9'\n."] {
            assert_eq!(load(bad), Err(UnpickleError::BadString), "{}", String::from_utf8_lossy(bad));
        }
        // Python 2's binary strings, and a negative length.
        check(b"T\x02\x00\x00\x00ab.", &s("ab"));
        check(b"U\x01z.", &s("z"));
        assert_eq!(load(b"T\xff\xff\xff\xffab."), Err(UnpickleError::BadString));
    }

    #[test]
    fn numbers_in_every_form() {
        use Value::{Bool, Float, Int};
        check(b"I01\n.", &Bool(true));
        check(b"I00\n.", &Bool(false));
        check(b"I0\n.", &Int(0));
        check(b"I1\n.", &Int(1));
        check(b"I-42\n.", &Int(-42));
        check(b"I9223372036854775807\n.", &Int(i64::MAX));
        check(b"L-9223372036854775808L\n.", &Int(i64::MIN));
        check(b"L12\n.", &Int(12));
        check(b"J\xff\xff\xff\xff.", &Int(-1));
        check(b"K\xff.", &Int(255));
        check(b"M\xff\xff.", &Int(65535));
        check(b"\x8a\x00.", &Int(0));
        check(b"\x8a\x01\xff.", &Int(-1));
        check(b"\x8a\x02\xff\x00.", &Int(255));
        check(b"\x8a\x09\xff\xff\xff\xff\xff\xff\xff\x7f\x00.", &Int(i64::MAX));
        check(b"\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\xff.", &Int(i64::MIN));
        check(b"\x8b\x01\x00\x00\x00\x05.", &Int(5));
        check(b"F1.5\n.", &Float(1.5));
        check(b"F-0.0\n.", &Float(-0.0));
        check(b"F1e-320\n.", &Float(1e-320));
        check(b"F-inf\n.", &Float(f64::NEG_INFINITY));
        check(b"G\x7f\xf0\x00\x00\x00\x00\x00\x00.", &Float(f64::INFINITY));
        assert!(matches!(load(b"Fnan\n."), Ok(Float(f)) if f.is_nan()));
        let out_of_range: [&[u8]; 5] = [
            b"I9223372036854775808\n.",
            b"L-9223372036854775809\n.",
            b"\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\x00.",
            b"\x8a\x09\xff\xff\xff\xff\xff\xff\xff\x7f\xff.",
            b"\x8a\x0a\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00.",
        ];
        for bad in out_of_range {
            assert_eq!(load(bad), Err(UnpickleError::IntOutOfRange), "{}", hex(bad));
        }
        let malformed: [&[u8]; 9] =
            [b"I\n.", b"I1.5\n.", b"I007\n.", b"I 1\n.", b"L0x10\n.", b"F\n.", b"F1e999\n.", b"F1_0\n.", b"F 1\n."];
        for bad in malformed {
            assert_eq!(load(bad), Err(UnpickleError::BadNumber), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(load(b"\x8b\xff\xff\xff\xff."), Err(UnpickleError::BadNumber), "negative LONG4 length");
    }

    #[test]
    fn memo_references_see_what_is_appended_later() {
        use Value::{Int, List, Tuple};
        // Hand-written: l = []; memo it; t = (l, l); append 1 to l afterwards; CPython reads
        // ([1], [1]) because both are the same list.
        check(b"]q\x00h\x00h\x00\x86q\x01h\x00K\x01a0h\x01.", &Tuple(vec![List(vec![Int(1)]), List(vec![Int(1)])]));
        // Text memo (protocol 0), MEMOIZE (protocol 4), DUP and LONG_BINGET.
        check(b"(lp7\nI5\naI6\nag7\n\x86.", &Tuple(vec![List(vec![Int(5), Int(6)]), List(vec![Int(5), Int(6)])]));
        check(b"\x80\x04K\x07\x94h\x00\x86.", &Tuple(vec![Int(7), Int(7)]));
        check(b"K\x072\x86.", &Tuple(vec![Int(7), Int(7)]));
        check(b"K\x09r\x01\x00\x00\x00j\x01\x00\x00\x00\x86.", &Tuple(vec![Int(9), Int(9)]));
        assert_eq!(load(b"h\x03."), Err(UnpickleError::BadMemo));
        assert_eq!(load(b"K\x01p-1\n."), Err(UnpickleError::BadMemo));
        assert_eq!(load(b"K\x01pzz\n."), Err(UnpickleError::BadMemo));
    }

    #[test]
    fn stack_operations_follow_cpython() {
        use Value::{Int, List, Tuple};
        // POP drops the top; POP with nothing above the mark drops the mark (CPython does).
        check(b"K\x01K\x020.", &Int(1));
        check(b"K\x01(0K\x02\x86.", &Tuple(vec![Int(1), Int(2)]));
        // POP_MARK drops everything down to the mark.
        check(b"K\x01(K\x02K\x031.", &Int(1));
        check(b"(K\x01K\x02l.", &List(vec![Int(1), Int(2)]));
        check(b"(K\x01K\x02t.", &Tuple(vec![Int(1), Int(2)]));
        check(b"(K\x01K\x02d.", &dict(vec![(Int(1), Int(2))]));
        check(b"}K\x01K\x02s.", &dict(vec![(Int(1), Int(2))]));
        // An empty APPENDS or SETITEMS is a no-op on anything (CPython returns early).
        check(b"N(e.", &Value::None);
        check(b"N(u.", &Value::None);
        check(b")\x85.", &Tuple(vec![Tuple(vec![])]));
        let underflows: [&[u8]; 10] =
            [b".", b"(.", b"0.", b"t.", b"K\x01(\x85.", b"a.", b"]a.", b"(e.", b"2.", b"q\x00."];
        for bad in underflows {
            assert_eq!(load(bad), Err(UnpickleError::StackUnderflow), "{}", hex(bad));
        }
        assert_eq!(load(b"K\x01K\x02a."), Err(UnpickleError::BadAppend));
        assert_eq!(load(b"]K\x01K\x02s."), Err(UnpickleError::BadSetItem));
        assert_eq!(load(b"}(K\x01u."), Err(UnpickleError::BadSetItem), "odd SETITEMS");
        assert_eq!(load(b"(K\x01d."), Err(UnpickleError::BadSetItem), "odd DICT");
    }

    #[test]
    fn dict_keys_behave_as_python_keys() {
        use Value::{Int, List, Tuple};
        // A key set twice: both kept, `get` gives the last (what Python's dict holds).
        let twice = load(b"}(X\x01\x00\x00\x00aK\x01X\x01\x00\x00\x00aK\x02u.").unwrap();
        assert_eq!(twice.get("a"), Some(&Int(2)));
        // Unhashable keys: a list, a dict, a tuple holding a list.
        for bad in [&b"}]K\x01s."[..], b"}}K\x01s.", b"}]\x85K\x01s."] {
            assert_eq!(load(bad), Err(UnpickleError::UnhashableKey), "{}", hex(bad));
        }
        check(b"}K\x01\x85K\x02s.", &dict(vec![(Tuple(vec![Int(1)]), Int(2))]));
        assert_eq!(Value::List(vec![]).get("a"), None);
        assert_eq!(List(vec![Int(1)]).as_items(), Some(&[Int(1)][..]));
    }

    #[test]
    fn every_byte_that_is_not_a_supported_opcode_is_refused_by_kind() {
        let supported: Vec<u8> = b"(.012FIJKLMNSTUVXaedg}hjl]pqrstu)GBC"
            .iter()
            .copied()
            .chain(0x85..=0x8e)
            .chain([0x80, 0x94, 0x95, 0x96])
            .collect();
        for byte in 0..=255u8 {
            let input = [0x80, 2, byte, b'.'];
            let got = load(&input);
            if op::FORBIDDEN.iter().any(|(b, _)| *b == byte) {
                assert_eq!(got, Err(UnpickleError::Forbidden(byte)));
                assert!(got.unwrap_err().to_string().contains(opcode_name(byte)));
            } else if !supported.contains(&byte) {
                assert_eq!(got, Err(UnpickleError::UnsupportedOpcode(byte)), "0x{byte:02x}");
            } else {
                assert!(!matches!(got, Err(UnpickleError::Forbidden(_) | UnpickleError::UnsupportedOpcode(_))));
            }
        }
        // CPython: pickle.dumps({1}, protocol=4).
        let set = unhex("80049507000000000000008f94284b01902e");
        assert_eq!(load(&set), Err(UnpickleError::UnsupportedOpcode(0x8f)));
    }

    #[test]
    fn code_execution_payloads_are_refused() {
        // The classic: os.system('id') via GLOBAL and REDUCE, at protocol 0 and with
        // STACK_GLOBAL at protocol 4.
        assert_eq!(load(b"cos\nsystem\n(S'id'\ntR."), Err(UnpickleError::Forbidden(b'c')));
        let p4 = b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x02id\x85R.";
        assert_eq!(load(p4), Err(UnpickleError::Forbidden(0x93)));
        for byte in [b'R', b'b', b'i', b'o', 0x81, 0x92, b'P', b'Q', 0x82, 0x83, 0x84] {
            assert_eq!(load(&[b'N', byte, b'.']), Err(UnpickleError::Forbidden(byte)));
        }
    }

    #[test]
    fn protocols_above_5_are_refused() {
        assert_eq!(load(b"\x80\x06N."), Err(UnpickleError::UnsupportedProtocol(6)));
        assert_eq!(load(b"\x80\x05N."), Ok(Value::None));
    }

    #[test]
    fn lying_lengths_are_truncations_before_any_allocation() {
        let huge = u64::MAX / 2;
        for opcode in [0x8d, 0x8e, 0x96, 0x95] {
            let mut input = vec![opcode];
            input.extend_from_slice(&huge.to_le_bytes());
            input.extend_from_slice(b"abc.");
            assert_eq!(load(&input), Err(UnpickleError::Truncated), "0x{opcode:02x}");
        }
        assert_eq!(load(b"X\xff\xff\xff\xffab."), Err(UnpickleError::Truncated));
        assert_eq!(load(b"\x8b\xff\xff\xff\x7f\x00."), Err(UnpickleError::Truncated));
        // A FRAME that fits is ignored whatever it claims to group.
        check(b"\x95\x01\x00\x00\x00\x00\x00\x00\x00N.", &Value::None);
    }

    #[test]
    fn limits_hold_against_bombs() {
        let limits = UnpickleLimits::new(1 << 16);
        assert_eq!(loads(&vec![b'N'; (1 << 16) + 1], &limits), Err(UnpickleError::TooLarge));
        // More pushes than objects_max.
        let small = UnpickleLimits { objects_max: 10, ..limits };
        assert_eq!(loads(b"(NNNNNNNNNNNl.", &small), Err(UnpickleError::TooManyObjects));
        assert!(loads(b"(NNNNNNNNNl.", &small).is_ok());
        // A billion laughs: each level a pair of references to the level below (2**41 values).
        let mut laughs = b"X\x03\x00\x00\x00lol".to_vec();
        for _ in 0..40 {
            laughs.extend_from_slice(b"2\x86");
        }
        laughs.push(b'.');
        assert_eq!(loads(&laughs, &limits), Err(UnpickleError::TooManyValues));
        // Shared text counts once per place: five references to 1000 bytes are 5000 bytes.
        let mut text = b"(X".to_vec();
        text.extend_from_slice(&1000u32.to_le_bytes());
        text.extend(std::iter::repeat_n(b'a', 1000));
        text.extend_from_slice(b"2222t.");
        assert_eq!(loads(&text, &UnpickleLimits { text_bytes_max: 4999, ..limits }), Err(UnpickleError::TooManyValues));
        let five = loads(&text, &UnpickleLimits { text_bytes_max: 5000, ..limits }).unwrap();
        assert_eq!(five.as_items().map(<[Value]>::len), Some(5));
    }

    #[test]
    fn self_reference_and_deep_nesting_are_too_deep_without_recursing_the_parse() {
        // CPython: l = []; l.append(l); pickle.dumps(l, protocol=2).
        assert_eq!(load(&unhex("80025d71006800612e")), Err(UnpickleError::TooDeep));
        // 100 000 nested lists with no MARK: the parse loops, only the result is refused.
        let mut deep = vec![b']'; 100_000];
        deep.extend(std::iter::repeat_n(b'a', 99_999));
        deep.push(b'.');
        assert_eq!(loads(&deep, &UnpickleLimits::new(1 << 20)), Err(UnpickleError::TooDeep));
        // Exactly depth_max levels below the top are fine, one more is not.
        let nested = |levels: usize| {
            let mut v = vec![b']'; levels + 1];
            v.extend(std::iter::repeat_n(b'a', levels));
            v.push(b'.');
            v
        };
        assert!(load(&nested(UNPICKLE_DEPTH_MAX_DEFAULT)).is_ok());
        assert_eq!(load(&nested(UNPICKLE_DEPTH_MAX_DEFAULT + 1)), Err(UnpickleError::TooDeep));
        let marks = vec![b'('; UNPICKLE_DEPTH_MAX_DEFAULT + 1];
        assert_eq!(load(&marks), Err(UnpickleError::TooDeep));
    }

    /// Deterministic mutations of the CPython vectors: every byte xored with several masks,
    /// and truncations of those. Nothing may panic; what decodes must stay within bounds.
    #[test]
    fn mutated_vectors_never_panic() {
        let limits = UnpickleLimits::new(4096);
        let mut inputs: Vec<Vec<u8>> =
            REQUEST_BY_PROTOCOL.iter().chain(&EVERY_TYPE_BY_PROTOCOL).map(|h| unhex(h)).collect();
        inputs.push(b"(lp0\nVa\\u005cu0041\\u000d\\u0000\\u001a\\U0001f600\np1\na.".to_vec());
        for input in &inputs {
            for i in 0..input.len() {
                for mask in [0x01, 0x02, 0x10, 0x40, 0x80, 0xff] {
                    let mut m = input.clone();
                    m[i] ^= mask;
                    let _ = loads(&m, &limits);
                    let _ = loads(&m[..i.max(1)], &limits);
                }
            }
        }
    }

    /// Differential test: CPython pickles random nested values (every type, shared references,
    /// lists long enough to batch APPENDS, text long enough for several FRAMEs) at every
    /// protocol, and describes what its own `pickle.loads` reads back; we must read the same.
    /// Needs `/usr/bin/python3`: `cargo test --lib reference_unpickle -- --ignored`.
    #[test]
    #[ignore = "needs python3"]
    fn reference_unpickle_against_cpython() {
        let script = r#"
import pickle, random, struct
CHARS = ['a', 'Z', '.', ';', '=', ' ', '\\', '\n', '\r', '\x00', '\x1a', "'", '"', '\xe9', '\xfc',
         '\u20ac', '\u2028', '\U0001F600']
def rstr(r, n=None):
    return ''.join(r.choice(CHARS) for _ in range(r.randrange(0, 12) if n is None else n))
def rint(r):
    return r.choice([0, 1, -1, 255, 256, 65535, 65536, 2**31 - 1, -2**31, 2**31, 2**32, 2**63 - 1,
                     -2**63, r.randrange(-2**63, 2**63)])
def rfloat(r):
    return r.choice([0.0, -0.0, 1.5, -2.25, 1e300, 5e-324, float('inf'), -float('inf'), float('nan'),
                     r.random() * 1e9])
def rkey(r):
    return r.choice([rstr(r), rint(r), (rint(r), rstr(r)), None, True, rfloat(r)])
def rval(r, depth, p, pool):
    k = r.randrange(13 if depth < 4 else 7)
    if k == 0: return None
    if k == 1: return r.random() < 0.5
    if k == 2: return rint(r)
    if k == 3: return rfloat(r)
    if k == 4: return rstr(r)
    if k == 5:
        if p < 3: return rstr(r)
        b = bytes(r.randrange(256) for _ in range(r.randrange(6)))
        return bytearray(b) if p == 5 and r.random() < 0.3 else b
    if k == 6: return r.choice(pool) if pool else None
    if k == 7:
        v = [rval(r, depth + 1, p, pool) for _ in range(r.randrange(5))]
        pool.append(v)
        return v
    if k == 8: return tuple(rval(r, depth + 1, p, pool) for _ in range(r.randrange(5)))
    if k == 9:
        v = {rkey(r): rval(r, depth + 1, p, pool) for _ in range(r.randrange(5))}
        pool.append(v)
        return v
    if k == 10: return [rint(r) for _ in range(r.randrange(900, 2100))]
    if k == 11: return rstr(r, r.randrange(20000, 40000)) if r.random() < 0.2 else rstr(r)
    return {'type': 'cache-query', 'metric': rstr(r)}
def d(v):
    if v is None: return 'N'
    if v is True: return 'T'
    if v is False: return 'F'
    if isinstance(v, int): return 'i%d' % v
    if isinstance(v, float): return 'f%d' % struct.unpack('<q', struct.pack('<d', v))[0]
    if isinstance(v, str): return 's%s;' % v.encode('utf-8').hex()
    if isinstance(v, (bytes, bytearray)): return 'b%s;' % bytes(v).hex()
    if isinstance(v, list): return '[%s]' % ','.join(d(x) for x in v)
    if isinstance(v, tuple): return '(%s)' % ','.join(d(x) for x in v)
    if isinstance(v, dict): return '{%s}' % ','.join('%s:%s' % (d(k), d(x)) for k, x in v.items())
    raise TypeError(type(v))
for p in range(6):
    for seed in range(150):
        r = random.Random(seed * 10 + p)
        value = rval(r, 0, p, [])
        data = pickle.dumps(value, protocol=p)
        print(p, data.hex(), d(pickle.loads(data)))
"#;
        let out = std::process::Command::new("/usr/bin/python3").args(["-c", script]).output().expect("python3 runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).expect("utf-8");
        let limits = UnpickleLimits::new(16 << 20);
        let (mut cases, mut framed) = (0, 0);
        for line in text.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let input = unhex(fields[1]);
            let got = loads(&input, &limits).unwrap_or_else(|e| panic!("protocol {}: {e}: {}", fields[0], fields[1]));
            assert_eq!(describe(&got), fields[2], "protocol {}: {}", fields[0], fields[1]);
            framed += usize::from(input.iter().filter(|&&b| b == op::FRAME).count() > 1);
            cases += 1;
        }
        assert_eq!(cases, 900);
        assert!(framed > 0, "some values span several FRAMEs");
    }
}
