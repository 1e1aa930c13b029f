//! `[[python]]` (SPEC 8.7): Python code around the fork, registered with
//! `os.register_at_fork` in processes that run CPython.
//!
//! Nothing here runs at load or in the child phase. At a fork's prepare
//! (parent side), until the hooks are registered:
//! 1. CPython is looked for with `dlsym` (`Py_IsInitialized`), again only
//!    when the loader's set of objects changed: a program without CPython
//!    pays one failed look-up at its first fork and one loader-generation
//!    check per fork after that.
//! 2. If the interpreter is initialised and the forking thread holds the
//!    GIL, `python_hooks.py` runs in a private namespace through CPython's
//!    stable C API, resolved at run time (no build-time Python): it
//!    registers one `before`, `after_in_parent` and `after_in_child` hook
//!    for the entries of each phase, in declared order, and, when this fork
//!    is CPython's own (its import lock is held: `os.fork`), runs the
//!    `prepare` entries at once, since CPython has run its `before` hooks
//!    already. A hook registered here runs in this very fork's child and
//!    parent: CPython reads its lists after the real fork returns.
//! 3. Otherwise the fork goes on; a `prepare` entry that missed a fork is
//!    said once in the log.
//!
//! The hooks report through a function of this module (`_fg_log`), called
//! by CPython with the GIL held, after the fork: one `python` log line per
//! phase that ran, with the failures (exception type and message).

use crate::os::buf::Buf;
use crate::os::sys;
use core::ffi::{c_char, c_int, c_void};
use forkguard_core::plan::{Phase, PyWhat, PythonEntry};
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

/// Where the hooks' lines go: the phases' log, handed over at load (an
/// action does not reach into the phases).
#[derive(Clone, Copy)]
pub struct Sink {
    /// False when the log is off: nothing is formatted.
    pub on: bool,
    pub json: bool,
    /// `{"ts":T,"pid":P,"event":"E"`: the one JSON header.
    pub head: fn(&mut Line, i64, &str),
    /// Finish the line and write it to the log.
    pub emit: fn(&mut Line),
}

pub type Line = Buf<1024>;

/// `[[python]]` entries for this program, and where registration stands.
pub struct PyPlan {
    sink: Sink,
    entries: Vec<PythonEntry>,
    has_prepare: bool,
    state: AtomicU8,
    /// The loader generation in which CPython was last looked for.
    seen: AtomicU64,
    missed_said: AtomicBool,
}

const UNKNOWN: u8 = 0;
const REGISTERED: u8 = 1;

impl PyPlan {
    /// The entries `program` keeps, or None. Copies them only: no look-up,
    /// nothing formatted (a process that never forks pays nothing more).
    pub fn new(entries: Vec<PythonEntry>, sink: Sink) -> Option<PyPlan> {
        if entries.is_empty() {
            return None;
        }
        Some(PyPlan {
            sink,
            has_prepare: entries.iter().any(|e| e.phase == Phase::Prepare),
            entries,
            state: AtomicU8::new(UNKNOWN),
            seen: AtomicU64::new(u64::MAX),
            missed_said: AtomicBool::new(false),
        })
    }

    /// How many entries (each counts as an action in the `config` line).
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

type Obj = *mut c_void;

/// The part of CPython's stable C API used here, found with `dlsym`.
struct Api {
    is_initialized: unsafe extern "C" fn() -> c_int,
    gil_check: unsafe extern "C" fn() -> c_int,
    this_thread_state: unsafe extern "C" fn() -> Obj,
    version: unsafe extern "C" fn() -> *const c_char,
    dict_new: unsafe extern "C" fn() -> Obj,
    builtins: unsafe extern "C" fn() -> Obj,
    dict_set: unsafe extern "C" fn(Obj, *const c_char, Obj) -> c_int,
    dict_get: unsafe extern "C" fn(Obj, *const c_char) -> Obj,
    compile: unsafe extern "C" fn(*const c_char, *const c_char, c_int) -> Obj,
    eval: unsafe extern "C" fn(Obj, Obj, Obj) -> Obj,
    err_clear: unsafe extern "C" fn(),
    decref: unsafe extern "C" fn(Obj),
    cfunction_new: unsafe extern "C" fn(*mut MethodDef, Obj, Obj) -> Obj,
    tuple_get: unsafe extern "C" fn(Obj, isize) -> Obj,
    long_as: unsafe extern "C" fn(Obj) -> i64, // C long: 64-bit on LP64 Linux
    long_from: unsafe extern "C" fn(i64) -> Obj,
    utf8: unsafe extern "C" fn(Obj, *mut isize) -> *const c_char,
}

fn sym(name: &[u8]) -> usize {
    crate::os::symbols::default_scope(name)
}

/// A function pointer of type `T` from its address.
///
/// # Safety
/// `T` is a function pointer type matching the function at `addr`.
unsafe fn as_fn<T: Copy>(addr: usize) -> T {
    const { assert!(core::mem::size_of::<T>() == core::mem::size_of::<usize>()) };
    // SAFETY: same size (checked at compile time); the caller vouches for
    // the type.
    unsafe { core::mem::transmute_copy::<usize, T>(&addr) }
}

impl Api {
    /// Every function, or None (not CPython, or an interpreter too old).
    fn find() -> Option<Api> {
        macro_rules! f {
            ($name:literal) => {{
                let a = sym(concat!($name, "\0").as_bytes());
                if a == 0 {
                    return None;
                }
                // SAFETY: a is the address of the CPython function of that
                // name, whose C signature is the field's type (stable ABI).
                unsafe { as_fn(a) }
            }};
        }
        Some(Api {
            is_initialized: f!("Py_IsInitialized"),
            gil_check: f!("PyGILState_Check"),
            this_thread_state: f!("PyGILState_GetThisThreadState"),
            version: f!("Py_GetVersion"),
            dict_new: f!("PyDict_New"),
            builtins: f!("PyEval_GetBuiltins"),
            dict_set: f!("PyDict_SetItemString"),
            dict_get: f!("PyDict_GetItemString"),
            compile: f!("Py_CompileString"),
            eval: f!("PyEval_EvalCode"),
            err_clear: f!("PyErr_Clear"),
            decref: f!("Py_DecRef"),
            cfunction_new: f!("PyCFunction_NewEx"),
            tuple_get: f!("PyTuple_GetItem"),
            long_as: f!("PyLong_AsLong"),
            long_from: f!("PyLong_FromLong"),
            utf8: f!("PyUnicode_AsUTF8AndSize"),
        })
    }
}

/// `forkguard check --program`: whether this process runs CPython, by the
/// rule the hooks use (every function of the API they call is found with
/// `dlsym`): its version (`3.11.7`) and the address of `Py_IsInitialized`
/// (to name the object holding it). Registers nothing.
pub fn cpython_here() -> Option<(String, usize)> {
    let api = Api::find()?;
    // SAFETY: Py_GetVersion returns a static NUL-terminated string and may
    // be called before the interpreter is initialised.
    let v = unsafe { std::ffi::CStr::from_ptr((api.version)()) }.to_string_lossy();
    let v = v.split_whitespace().next().unwrap_or("?").to_string();
    Some((v, api.is_initialized as usize))
}

/// Found once, in the parent, by the thread holding the GIL; read after
/// the fork by `_fg_log`, which CPython calls with the GIL held.
static API: std::sync::OnceLock<Api> = std::sync::OnceLock::new();
/// The log, for `_fg_log` (set when the hooks are registered).
static SINK: std::sync::OnceLock<Sink> = std::sync::OnceLock::new();

/// CPython's `PyMethodDef`.
#[repr(C)]
struct MethodDef {
    name: *const c_char,
    meth: unsafe extern "C" fn(Obj, Obj) -> Obj,
    flags: c_int,
    doc: *const c_char,
}

struct Def(MethodDef);
// SAFETY: the definition is immutable and CPython only reads it.
unsafe impl Sync for Def {}

const METH_VARARGS: c_int = 1;
const PY_FILE_INPUT: c_int = 257;

static LOG_DEF: Def = Def(MethodDef {
    name: c"_fg_log".as_ptr(),
    meth: fg_log,
    flags: METH_VARARGS,
    doc: core::ptr::null(),
});

/// Prepare, parent side, before forkguard's own prepare actions: register
/// the hooks if this is the first fork that can. One atomic load once they
/// are registered.
pub fn prepare(py: &PyPlan) {
    if py.state.load(Ordering::Acquire) == REGISTERED {
        return;
    }
    prepare_slow(py);
}

#[cold]
#[inline(never)]
fn prepare_slow(py: &PyPlan) {
    let rt = &py.sink;
    let api = match API.get() {
        Some(a) => a,
        None => {
            let generation = crate::os::symbols::generation();
            if py.seen.swap(generation, Ordering::AcqRel) == generation {
                return; // no CPython, and nothing was loaded since
            }
            match Api::find() {
                Some(a) => API.get_or_init(|| a),
                None => return,
            }
        }
    };
    // SAFETY: plain CPython queries, callable from any thread at any time
    // once the library is loaded.
    let (init, gil) = unsafe {
        (
            (api.is_initialized)() == 1,
            (api.gil_check)() == 1 && !(api.this_thread_state)().is_null(),
        )
    };
    if !init || !gil {
        let why = if init {
            "the forking thread does not hold the GIL (uWSGI: add --py-call-uwsgi-fork-hooks)"
        } else {
            "CPython is not initialised yet"
        };
        say_once(
            rt,
            py,
            "python: [[python]] entries not registered at this fork: ",
            why,
        );
        return;
    }
    SINK.get_or_init(|| py.sink);
    // SAFETY: this thread holds the GIL (checked above).
    let (registered, ran_prepare) = unsafe { register(api, py) };
    py.state.store(REGISTERED, Ordering::Release);
    if py.has_prepare && !ran_prepare {
        say_once(
            rt,
            py,
            "python: prepare entries missed this fork: ",
            "it was not CPython's own fork (os.fork)",
        );
    }
    if rt.on {
        let mut line = Line::new();
        let me = i64::from(sys::getpid());
        if rt.json {
            (rt.head)(&mut line, me, "python");
            line.str(",\"registered\":").u64(registered as u64);
            line.str(",\"entries\":")
                .u64(py.entries.len() as u64)
                .byte(b'}');
        } else {
            line.str("forkguard[").i64(me).str("] python: ");
            line.u64(py.entries.len() as u64)
                .str(" [[python]] entries registered with os.register_at_fork");
        }
        (rt.emit)(&mut line);
    }
}

/// Say once per process that the hooks could not be registered, or that
/// `prepare` entries missed a fork, and why.
fn say_once(rt: &Sink, py: &PyPlan, msg: &str, why: &str) {
    if py.missed_said.swap(true, Ordering::AcqRel) || !rt.on {
        return;
    }
    let mut line = Line::new();
    let me = i64::from(sys::getpid());
    if rt.json {
        (rt.head)(&mut line, me, "error");
        line.str(",\"errors\":[\"")
            .str(msg)
            .json_str(why.as_bytes())
            .str("\"]}");
    } else {
        line.str("forkguard[").i64(me).str("] ").str(msg).str(why);
        line.str(" (said once)");
    }
    (rt.emit)(&mut line);
}

/// Run `python_hooks.py` with the entries. Returns (phases registered,
/// prepare entries run at this fork).
///
/// # Safety
/// The calling thread holds the GIL.
unsafe fn register(api: &Api, py: &PyPlan) -> (i64, bool) {
    let Ok(src) = CString::new(source(&py.entries, allowed_now(api))) else {
        return (0, false);
    };
    let mut out = (0, false);
    // SAFETY: the GIL is held; every new reference is released below, and
    // a failed call (null) leaves a Python error that is cleared.
    unsafe {
        let globals = (api.dict_new)();
        if globals.is_null() {
            (api.err_clear)();
            return out;
        }
        let log = (api.cfunction_new)(
            &LOG_DEF.0 as *const MethodDef as *mut MethodDef,
            core::ptr::null_mut(),
            core::ptr::null_mut(),
        );
        let ok = !log.is_null()
            && (api.dict_set)(globals, c"__builtins__".as_ptr(), (api.builtins)()) == 0
            && (api.dict_set)(globals, c"_fg_log".as_ptr(), log) == 0;
        if !log.is_null() {
            (api.decref)(log);
        }
        let code = if ok {
            (api.compile)(
                src.as_ptr(),
                c"<forkguard python_hooks.py>".as_ptr(),
                PY_FILE_INPUT,
            )
        } else {
            core::ptr::null_mut()
        };
        if !code.is_null() {
            let r = (api.eval)(code, globals, globals);
            if !r.is_null() {
                (api.decref)(r);
                let n = (api.dict_get)(globals, c"_fg_registered".as_ptr());
                let ran = (api.dict_get)(globals, c"_fg_ran_prepare".as_ptr());
                out = (
                    if n.is_null() {
                        0
                    } else {
                        (api.long_as)(n)
                    },
                    !ran.is_null() && (api.long_as)(ran) == 1,
                );
            }
            (api.decref)(code);
        }
        (api.err_clear)();
        (api.decref)(globals);
    }
    out
}

/// Whether the prepare entries may run inside this fork's prepare: not on
/// CPython 3.13 and later, whose `PyOS_BeforeFork` holds the runtime's
/// head lock and stops the world until the fork.
fn allowed_now(api: &Api) -> bool {
    // SAFETY: Py_GetVersion returns a static NUL-terminated string.
    let v = unsafe { std::ffi::CStr::from_ptr((api.version)()) }.to_bytes();
    let num = |s: &[u8]| -> u32 {
        s.iter()
            .take_while(|b| b.is_ascii_digit())
            .fold(0u32, |n, b| {
                n.saturating_mul(10).saturating_add(u32::from(b - b'0'))
            })
    };
    let major = num(v);
    let minor = v
        .iter()
        .position(|&b| b == b'.')
        .map_or(0, |i| num(v.get(i + 1..).unwrap_or(&[])));
    (major, minor) < (3, 13)
}

/// The registration code: `python_hooks.py` after the entries.
fn source(entries: &[PythonEntry], now: bool) -> String {
    let mut s = String::from("_fg_entries = [\n");
    for e in entries {
        let (kind, value, label) = match &e.what {
            PyWhat::Call { module, attrs } => (
                "call",
                format!("({}, {})", py_str(module), py_str(attrs)),
                format!("python call {module}:{attrs}"),
            ),
            PyWhat::Code(c) => (
                "code",
                py_str(c),
                format!("python code (line {})", e.loc.line),
            ),
        };
        s.push_str(&format!(
            "    ({}, \"{kind}\", {value}, {}, {}),\n",
            py_str(e.phase.name()),
            if e.optional { "True" } else { "False" },
            py_str(&label)
        ));
    }
    s.push_str(&format!("]\n_fg_now = {}\n", u8::from(now)));
    s.push_str(include_str!("python_hooks.py"));
    s
}

/// A Python string literal for any text: printable ASCII as is, the rest
/// as `\U` escapes.
fn py_str(t: &str) -> String {
    let mut s = String::from("'");
    for c in t.chars() {
        if (' '..='~').contains(&c) && c != '\\' && c != '\'' {
            s.push(c);
        } else {
            s.push_str(&format!("\\U{:08x}", c as u32));
        }
    }
    s.push('\'');
    s
}

/// `_fg_log(phase, ok, failed, errors)`: the hooks' report, one line.
/// Called by CPython with the GIL held, after the fork (in the child after
/// CPython's own after-fork work): an ordinary context. Never raises.
unsafe extern "C" fn fg_log(_self: Obj, args: Obj) -> Obj {
    let Some(api) = API.get() else {
        return core::ptr::null_mut();
    };
    // SAFETY: CPython passes the argument tuple; every item read is checked
    // for null (a missing item leaves an error, cleared below).
    unsafe {
        let text = |i: isize| -> &[u8] {
            let o = (api.tuple_get)(args, i);
            if o.is_null() {
                return b"";
            }
            let mut n: isize = 0;
            let p = (api.utf8)(o, &mut n);
            if p.is_null() || n < 0 {
                return b"";
            }
            core::slice::from_raw_parts(p.cast::<u8>(), n as usize)
        };
        let num = |i: isize| -> i64 {
            let o = (api.tuple_get)(args, i);
            if o.is_null() {
                0
            } else {
                (api.long_as)(o)
            }
        };
        if let Some(sink) = SINK.get() {
            report(sink, text(0), num(1), num(2), text(3));
        }
        (api.err_clear)();
        (api.long_from)(0)
    }
}

/// `forkguard[PID] python child of PPID: 1 ok, 1 failed (python call m:f:
/// RuntimeError: boom)`, or its JSON form (event `python`, with `phase`).
fn report(rt: &Sink, phase: &[u8], ok: i64, failed: i64, errors: &[u8]) {
    if !rt.on {
        return;
    }
    let me = i64::from(sys::getpid());
    let mut line = Line::new();
    let errs = errors.split(|&b| b == b'\n').filter(|e| !e.is_empty());
    if rt.json {
        (rt.head)(&mut line, me, "python");
        line.str(",\"phase\":\"").json_str(phase).byte(b'"');
        if phase == b"child" {
            line.str(",\"parent\":").i64(i64::from(sys::getppid()));
        }
        line.str(",\"actions_ok\":").i64(ok);
        line.str(",\"actions_failed\":").i64(failed);
        line.str(",\"errors\":[");
        for (k, e) in errs.enumerate() {
            if k > 0 {
                line.byte(b',');
            }
            line.byte(b'"').json_str(e).byte(b'"');
        }
        line.str("]}");
    } else {
        line.str("forkguard[").i64(me).str("] python ").push(phase);
        if phase == b"child" {
            line.str(" of ").i64(i64::from(sys::getppid()));
        }
        line.str(": ").i64(ok).str(" ok");
        if failed > 0 {
            line.str(", ").i64(failed).str(" failed (");
            for (k, e) in errs.enumerate() {
                if k > 0 {
                    line.str("; ");
                }
                line.push(e);
            }
            line.byte(b')');
        }
    }
    (rt.emit)(&mut line);
}
