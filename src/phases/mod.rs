//! The phase engine: prepare / parent / child around the real call.
//!
//! Every interposed entry point (and the `pthread_atfork` fallback) goes
//! through [`begin`] before the real call and [`finish`] after it. The
//! actions themselves live in their own modules; this file only decides
//! when, in which order, and with what bookkeeping they run.
//!
//! What must stay true:
//! - Signals are blocked from the start of prepare to the end of the phases
//!   (the caller's mask is restored), so a signal handler that forks cannot
//!   run in the middle of forkguard's own work on this thread.
//! - A fork made while a phase runs on this thread passes straight through
//!   (the thread's `mode` is not idle), and glibc's atfork handlers for it
//!   are skipped (`skip` counts them; both in `tls`).
//! - Everything the child phase does is async-signal-safe: it reads the
//!   runtime (never changed after load), writes to the stack, and makes
//!   plain system calls. No allocation, no lock, no stdio, no formatting
//!   machinery (see `buf`), and no panic: the crate is built with
//!   `panic = "abort"`, and the child path uses no indexing, unwrap or
//!   arithmetic that could panic (`clippy::indexing_slicing` and friends are
//!   denied for the folder, in `lib.rs`). A panic can therefore never
//!   unwind into redhook's `catch_unwind`, which would call the real fork a
//!   second time.

pub mod audit;
pub mod exits;
pub mod fdlog;
pub mod handshake;
pub mod log;
pub mod openmp;
pub mod runtime;
pub mod state;
pub mod tls;

use crate::actions::Tally;
use crate::os::sys;
use forkguard_core::plan::Phase;
use libc::{c_int, pid_t};
use runtime::{LogTarget, RtKind, Runtime};
pub use state::Via;
use state::{ForkState, FALLBACK, HOOK, IDLE};
use std::sync::atomic::Ordering;

/// Is a phase (or our own fork) running on this thread? Async-signal-safe.
pub fn busy() -> bool {
    tls::state().mode.get() != IDLE
}

/// The runtime, when this call must run phases: installed, and no phase
/// (or our own fork) already running on this thread.
#[inline(always)]
fn active() -> Option<&'static Runtime> {
    runtime::get().filter(|_| !busy())
}

/// Prepare, then `real` with the caller's errno; what it returned and the
/// errno it left. The caller's errno goes into the real call untouched by
/// prepare, and what the real call leaves is what the caller sees, whatever
/// the parent or child phase did to it.
#[inline(always)]
fn prepare_and_call(
    rt: &Runtime,
    via: Via,
    st: &mut ForkState,
    real: impl FnOnce() -> c_int,
) -> (c_int, c_int) {
    let errno = sys::errno_ptr();
    st.errno = errno;
    // SAFETY: errno is this thread's errno slot (here and, after the fork,
    // in the child: the same thread at the same address).
    let entry_errno = unsafe { *errno };
    match begin(rt, via, st, HOOK) {
        // A lock with `on_timeout = "fail"` could not be taken: no process is
        // created; the parent phase releases what prepare took.
        Err(e) => (-1, e),
        Ok(()) => {
            // SAFETY: as above.
            unsafe { *errno = entry_errno };
            let r = real();
            // SAFETY: as above.
            (r, unsafe { *errno })
        }
    }
}

/// Run the phases around `real`, the real `fork`-like call.
///
/// # Safety
/// `real` must perform a process creation that returns like `fork`.
pub unsafe fn around(via: Via, real: impl FnOnce() -> pid_t) -> pid_t {
    let Some(rt) = active() else {
        return real();
    };
    let mut st = ForkState::new();
    let (pid, err) = prepare_and_call(rt, via, &mut st, real);
    finish(rt, &mut st, pid, err);
    restore_errno(&st, err);
    pid
}

/// Leave `err` in errno; written only if it changed (a write is a
/// copy-on-write fault on the page after a fork). Async-signal-safe.
fn restore_errno(st: &ForkState, err: c_int) {
    // SAFETY: st.errno is this thread's errno slot (see ForkState).
    unsafe {
        if *st.errno != err {
            *st.errno = err;
        }
    }
}

/// `daemon`: prepare, then the child phase in the surviving process. The
/// original parent exits inside the real call; if the call fails before the
/// fork, the parent phase runs instead.
///
/// # Safety
/// `real` must be the real `daemon` call.
pub unsafe fn around_daemon(real: impl FnOnce() -> c_int) -> c_int {
    let Some(rt) = active() else {
        return real();
    };
    let mut st = ForkState::new();
    let (r, err) = prepare_and_call(rt, Via::Daemon, &mut st, real);
    // daemon returns -1 both when its fork fails (in the parent) and when a
    // later step fails (in the child): the pid tells which process we are.
    let in_child = sys::getpid() != st.parent_pid;
    finish(rt, &mut st, if in_child { 0 } else { -1 }, err);
    restore_errno(&st, err);
    r
}

/// Prepare: block signals, claim the thread, run prepare actions.
/// `Err(errno)` when the fork must not happen (a lock's `on_timeout = "fail"`).
#[link_section = ".text.fg_hot"]
fn begin(rt: &Runtime, via: Via, st: &mut ForkState, mode: u8) -> Result<(), c_int> {
    st.old_mask = sys::block_all();
    let cell = &tls::state().mode;
    cell.set(mode);
    st.mode = cell;
    if st.errno.is_null() {
        st.errno = sys::errno_ptr();
    }
    st.via = via;
    st.timing = !matches!(rt.log, LogTarget::Off);
    // The forking process's pid is a system call: asked only when
    // something uses it (the log, parent_death_signal, a reopen's `%P`,
    // daemon's "which process am I").
    if rt.needs_parent_pid || st.timing || via == Via::Daemon {
        st.parent_pid = sys::getpid();
    }
    if st.timing {
        if !rt.audit {
            log::banner(rt);
        }
        st.t0 = sys::now_ns();
    }
    if rt.has_symbols {
        let generation = crate::os::symbols::generation();
        // Stored only once every symbol is refreshed: a thread forking
        // meanwhile still sees the old value and refreshes too.
        if rt.symbols_generation.load(Ordering::Acquire) != generation {
            for a in &rt.actions {
                if let Some(sym) = a.kind.sym() {
                    if sym.refresh(generation) && st.timing {
                        log::unloaded(rt, a);
                    }
                }
            }
            rt.symbols_generation.store(generation, Ordering::Release);
        }
    }
    let mut verdict = Ok(());
    if let Some(py) = rt.python.as_ref().filter(|_| !rt.audit) {
        // CPython ran its `before` hooks before this fork reached
        // forkguard: registering them (first fork only) and the prepare
        // entries come first.
        crate::actions::python::prepare(py);
    }
    if rt.audit {
        crate::phases::audit::report(rt, via);
    } else {
        // Declaration order; locks nest like a stack (undone in reverse).
        for (i, a) in rt.actions.iter().enumerate() {
            match &a.kind {
                RtKind::Call {
                    phase: Phase::Prepare,
                    sym,
                    args,
                } => crate::actions::call::call(sym, args, i, &mut st.prepare),
                RtKind::Lock(l) => {
                    let r = crate::actions::lock::prepare(l, i, &mut st.scratch, &mut st.prepare);
                    if let Err(e) = r {
                        verdict = Err(e);
                        break;
                    }
                }
                RtKind::Call { .. } | RtKind::Zero(_) | RtKind::Fd(_) => {}
            }
        }
        if verdict.is_ok() {
            crate::actions::held::prepare(&mut st.held, st.timing);
        }
        if rt.handshake_ms > 0 && verdict.is_ok() {
            st.handshake = handshake::page();
        }
    }
    if st.timing {
        st.prepare_ns = sys::now_ns().saturating_sub(st.t0);
    }
    verdict
}

/// Parent or child phase, by `pid`; restores the signal mask, frees the thread.
///
/// The thread is freed *before* the mask is restored: a signal that arrived
/// during the phases is delivered by that restore, and a handler that forks
/// must find the thread idle, or its fork would pass through unguarded.
///
/// Everything from here on runs after the fork, in both processes, where
/// each page written for the first time is a copy-on-write fault and each
/// page of code run for the first time in the child is a fault too: the
/// common path stays small (the rare, stack-hungry work, logging and fd
/// actions, is out of line) and reaches thread-local state through
/// pointers taken before the fork.
#[link_section = ".text.fg_hot"]
fn finish(rt: &Runtime, st: &mut ForkState, pid: pid_t, err: c_int) {
    let mask = if pid == 0 {
        child_phase(rt, st)
    } else {
        parent_phase(rt, st, pid, err);
        st.old_mask
    };
    // SAFETY: st.mode points to this thread's MODE cell (set in begin).
    unsafe { (*st.mode).set(IDLE) };
    sys::set_mask(mask);
}

fn parent_phase(rt: &Runtime, st: &mut ForkState, pid: pid_t, err: c_int) {
    let t1 = if st.timing { sys::now_ns() } else { 0 };
    let mut tally = Tally::new();
    crate::actions::held::parent(&mut st.held);
    if !rt.audit {
        for (i, a) in rt.actions.iter().enumerate().rev() {
            match &a.kind {
                RtKind::Call {
                    phase: Phase::Parent,
                    sym,
                    args,
                } => crate::actions::call::call(sym, args, i, &mut tally),
                RtKind::Lock(l) => crate::actions::lock::parent(l, i, &st.scratch, &mut tally),
                RtKind::Call { .. } | RtKind::Zero(_) | RtKind::Fd(_) => {}
            }
        }
    }
    if !st.handshake.is_null() {
        if pid > 0 {
            handshake::wait(st.handshake, rt.handshake_ms);
        }
        handshake::release(st.handshake);
        st.handshake = core::ptr::null_mut();
    }
    if st.timing && !rt.audit {
        let parent_ns = sys::now_ns().saturating_sub(t1);
        log::log_parent(rt, st, pid, err, &tally, parent_ns);
        // Only with a log: an exit line needs one (no cost otherwise).
        if rt.log_exits {
            exits::forked(pid);
        }
    }
}

/// The child phase; returns the signal mask the child must end with.
/// Async-signal-safe (see the module comment).
fn child_phase(rt: &Runtime, st: &mut ForkState) -> sys::SigMask {
    let t0 = if st.timing { sys::now_ns() } else { 0 };
    let mut tally = Tally::new();
    let mut mask = st.old_mask;
    // Usually done already, by the fork handler (before other libraries').
    crate::actions::held::child(&mut st.held);
    if !rt.audit {
        // Order of SPEC §4: locks, zero, fd actions, child settings, calls.
        for (i, a) in rt.actions.iter().enumerate().rev() {
            if let RtKind::Lock(l) = &a.kind {
                crate::actions::lock::child(l, i, &st.scratch, &mut tally);
            }
        }
        for (i, a) in rt.actions.iter().enumerate() {
            if let RtKind::Zero(z) = &a.kind {
                crate::actions::zero::child(z, i, &mut tally);
            }
        }
        if rt.has_fd {
            fd_actions(rt, st.parent_pid, &mut tally);
        }
        if let Some(c) = &rt.child {
            crate::actions::child::apply(c, st.via == Via::Daemon, st.parent_pid, &mut tally);
            if c.reset_signal_mask {
                mask = 0;
            }
        }
        for (i, a) in rt.actions.iter().enumerate().rev() {
            if let RtKind::Call {
                phase: Phase::Child,
                sym,
                args,
            } = &a.kind
            {
                crate::actions::call::call(sym, args, i, &mut tally);
            }
        }
    }
    if st.timing && !rt.audit {
        log::log_child(rt, st, &tally, sys::now_ns().saturating_sub(t0));
    }
    if !st.handshake.is_null() {
        handshake::signal(st.handshake);
        handshake::release(st.handshake);
        st.handshake = core::ptr::null_mut();
    }
    mask
}

/// The child's fd actions, in declaration order. Out of line: the child
/// phase's largest stack user, called only when there are some.
/// Async-signal-safe.
#[inline(never)]
#[link_section = ".text.fg_hot"]
fn fd_actions(rt: &Runtime, parent_pid: pid_t, tally: &mut Tally) {
    // Descriptors each action acted on, for the log (`fdlog`).
    let mut counts = fdlog::Counts::new();
    for (i, a) in rt.actions.iter().enumerate() {
        if let RtKind::Fd(f) = &a.kind {
            counts.push(i, crate::actions::fd::child(f, i, parent_pid, tally));
        }
    }
    if !matches!(rt.log, LogTarget::Off) {
        fdlog::child(rt, &counts);
    }
}

// ---- pthread_atfork fallback -------------------------------------------

/// The fallback's prepare handler (`entry::atfork`): glibc's fork handlers
/// reached without an interposed entry point.
pub fn fallback_prepare() {
    if busy() {
        let skip = &tls::state().skip;
        skip.set(skip.get().saturating_add(1));
        return;
    }
    let Some(rt) = runtime::get() else { return };
    let err = sys::errno();
    // SAFETY: only this thread touches its own fallback state, and never
    // re-entrantly: signals are blocked while its mode is not idle.
    let st = unsafe { &mut *tls::state().fallback.get() };
    *st = ForkState::new();
    // glibc forks whatever prepare says: a lock that cannot be taken is
    // reported, and the fork goes on.
    let _ = begin(rt, Via::Atfork, st, FALLBACK);
    if st.timing {
        st.prev_child = crate::os::fdinfo::newest_child();
    }
    sys::set_errno(err);
}

/// The fallback's parent and child handlers (`entry::atfork`).
pub fn fallback_after(pid_is_child: bool) {
    let ts = tls::state();
    let n = ts.skip.get();
    if n > 0 {
        ts.skip.set(n - 1);
        return;
    }
    if ts.mode.get() != FALLBACK {
        return;
    }
    let Some(rt) = runtime::get() else { return };
    let err = sys::errno();
    // SAFETY: as in fallback_prepare.
    let st = unsafe { &mut *ts.fallback.get() };
    // Fork handlers are not told the child's pid (or whether the clone
    // failed): the parent finds its newest child in /proc. No new child
    // since prepare means the fork failed, and then glibc has left the
    // clone's errno in place. 0 in the log when /proc cannot tell.
    let (pid, fork_err) = if pid_is_child {
        (0, 0)
    } else if !st.timing {
        // Nothing reports it: the parent phase needs no pid.
        (i32::MAX, 0)
    } else {
        match (crate::os::fdinfo::newest_child(), st.prev_child) {
            (Ok(Some(now)), before) if before != Ok(Some(now)) => (now, 0),
            (Ok(now), Ok(before)) if now == before => (-1, err),
            _ => (i32::MAX, 0),
        }
    };
    finish(rt, st, pid, fork_err);
    sys::set_errno(err);
}
