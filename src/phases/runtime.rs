//! The runtime: a validated config turned, once at load (by `load::build`),
//! into what the
//! phases need: resolved addresses, prepared labels and paths, the log
//! target. After it is built it is never changed, except for symbol
//! addresses re-resolved in the parent (atomics, see `symbols`).

use crate::os::symbols::Sym;
use forkguard_core::plan::Phase;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

/// The active runtime, or null: every hook passes straight through.
static RUNTIME: AtomicPtr<Runtime> = AtomicPtr::new(std::ptr::null_mut());

/// The installed runtime, if any. Async-signal-safe (one atomic load).
pub fn get() -> Option<&'static Runtime> {
    let p = RUNTIME.load(Ordering::Acquire);
    // SAFETY: a non-null pointer comes from `install`, which leaks the Box:
    // the Runtime lives (unchanged) until the process ends.
    unsafe { p.as_ref() }
}

/// Make `rt` the runtime for the rest of the process (called once, at load).
pub fn install(rt: Runtime) -> &'static Runtime {
    let rt: &'static mut Runtime = Box::leak(Box::new(rt));
    RUNTIME.store(rt, Ordering::Release);
    rt
}

/// Where log lines go.
pub enum LogTarget {
    Off,
    Stderr,
    /// A NUL-terminated path, opened for each line (see `sys::append_to`).
    File(Vec<u8>),
}

pub struct Runtime {
    pub log: LogTarget,
    pub json: bool,
    pub vfork_as_fork: bool,
    pub handshake_ms: u32,
    /// `[settings] held_locks`, and its wait (`lock_timeout_ms`).
    pub held_locks: forkguard_core::plan::HeldLocks,
    pub lock_timeout_ms: u32,
    /// `log_exits`: each forked child's exit is logged (see `exits`).
    pub log_exits: bool,
    /// Lock, call, zero and fd actions in declaration order.
    pub actions: Vec<RtAction>,
    pub child: Option<crate::actions::child::ChildPlan>,
    /// `[[python]]` entries for this program (SPEC 8.7).
    pub python: Option<crate::actions::python::PyPlan>,
    /// Report hazards at each fork and change nothing (`forkguard audit`).
    pub audit: bool,
    /// The `config` event (after its pid), written once, before the first
    /// fork's line.
    pub banner: Vec<u8>,
    pub banner_done: AtomicBool,
    /// Some symbol was missing at load: watch for objects loaded or unloaded
    /// at each prepare (see `build`).
    pub has_symbols: bool,
    /// Some action is an fd action (the child phase's largest stack user,
    /// called only then).
    pub has_fd: bool,
    /// Some action needs the forking process's pid after the fork
    /// (`parent_death_signal`, a `reopen` template's `%P`, audit).
    pub needs_parent_pid: bool,
    /// The loader generation every symbol was last resolved in.
    pub symbols_generation: AtomicU64,
}

/// One action, with a label for messages (`call foo`, `lock g_lock`).
pub struct RtAction {
    pub label: Vec<u8>,
    /// The config line of its table (audit and fd reports name it so).
    pub line: u32,
    pub kind: RtKind,
}

pub enum RtKind {
    Call {
        phase: Phase,
        sym: Sym,
        /// `args`, padded with zeros (SPEC 8.8).
        args: [i64; 6],
    },
    Lock(crate::actions::lock::LockAction),
    Zero(crate::actions::zero::ZeroAction),
    Fd(crate::actions::fd::FdAction),
}

impl RtKind {
    /// The symbol this action needs resolved, if any.
    pub fn sym(&self) -> Option<&Sym> {
        match self {
            RtKind::Call { sym, .. } => Some(sym),
            RtKind::Lock(l) => Some(&l.sym),
            RtKind::Zero(z) => Some(&z.sym),
            RtKind::Fd(_) => None,
        }
    }
}
