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
//!   denied below). A panic can therefore never unwind into redhook's
//!   `catch_unwind`, which would call the real fork a second time.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

pub mod audit;
pub mod runtime;
pub mod state;
pub mod tls;

use crate::actions::{Failure, Tally, CHILD_SETTING, ERR_TIMEOUT, ERR_UNRESOLVED, MAX_ERRS};
use crate::os::buf::Buf;
use crate::os::sys;
use forkguard_core::plan::Phase;
use libc::{c_int, pid_t};
use runtime::{LogTarget, RtKind, Runtime};
pub use state::Via;
use state::{ForkState, FALLBACK, HOOK, IDLE};
use std::sync::atomic::{AtomicU32, Ordering};

/// Is a phase (or our own fork) running on this thread? Async-signal-safe.
pub fn busy() -> bool {
    tls::state().mode.get() != IDLE
}

/// Run the phases around `real`, the real `fork`-like call.
///
/// # Safety
/// `real` must perform a process creation that returns like `fork`.
pub unsafe fn around(via: Via, real: impl FnOnce() -> pid_t) -> pid_t {
    let rt = match runtime::get() {
        Some(rt) if !busy() => rt,
        _ => return real(),
    };
    // The caller's errno goes into the real call untouched by prepare, and
    // what the real call leaves is what the caller sees, whatever the
    // parent or child phase did to it.
    let mut st = ForkState::new();
    let errno = sys::errno_ptr();
    st.errno = errno;
    // SAFETY: errno is this thread's errno slot (here and, after the fork,
    // in the child: the same thread at the same address).
    let entry_errno = unsafe { *errno };
    let (pid, err) = match begin(rt, via, &mut st, HOOK) {
        // A lock with `on_timeout = "fail"` could not be taken: no process is
        // created; the parent phase releases what prepare took.
        Err(e) => (-1, e),
        Ok(()) => {
            // SAFETY: as above.
            unsafe { *errno = entry_errno };
            let pid = real();
            // SAFETY: as above.
            (pid, unsafe { *errno })
        }
    };
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
    let rt = match runtime::get() {
        Some(rt) if !busy() => rt,
        _ => return real(),
    };
    let mut st = ForkState::new();
    let errno = sys::errno_ptr();
    st.errno = errno;
    // SAFETY: errno is this thread's errno slot (see `around`).
    let entry_errno = unsafe { *errno };
    let (r, err) = match begin(rt, Via::Daemon, &mut st, HOOK) {
        Err(e) => (-1, e),
        Ok(()) => {
            // SAFETY: as above.
            unsafe { *errno = entry_errno };
            let r = real();
            // SAFETY: as above.
            (r, unsafe { *errno })
        }
    };
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
            banner(rt);
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
                        unloaded(rt, a);
                    }
                }
            }
            rt.symbols_generation.store(generation, Ordering::Release);
        }
    }
    let mut verdict = Ok(());
    if rt.audit {
        crate::phases::audit::report(rt, via);
    } else {
        // Declaration order; locks nest like a stack (undone in reverse).
        for (i, a) in rt.actions.iter().enumerate() {
            match &a.kind {
                RtKind::Call {
                    phase: Phase::Prepare,
                    sym,
                } => call(sym, i, &mut st.prepare),
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
        if rt.handshake_ms > 0 && verdict.is_ok() {
            st.handshake = handshake_page();
        }
    }
    if st.timing {
        st.prepare_ns = sys::now_ns().saturating_sub(st.t0);
    }
    verdict
}

/// Say once that an action's symbol went away with its object (`dlclose`):
/// from now on the action is skipped and reported as not resolved.
#[cold]
#[inline(never)]
fn unloaded(rt: &Runtime, a: &crate::phases::runtime::RtAction) {
    let mut line = Line::new();
    let me = i64::from(sys::getpid());
    if rt.json {
        json_head(&mut line, me, "error");
        line.str(",\"errors\":[\"");
        line.json_str(&a.label).str(": its object was unloaded\"]}");
    } else {
        line.str("forkguard[").i64(me).str("] ").push(&a.label);
        line.str(": its object was unloaded; skipped until it is loaded again");
    }
    emit(rt, &mut line);
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

/// Run a `void f(void)`; an unresolved symbol is a failure, not a crash.
/// Async-signal-safe as far as forkguard is concerned (the called function
/// is the config author's responsibility).
/// An `optional` symbol that is missing is skipped without a word: the
/// config said it may be absent.
fn call(sym: &crate::os::symbols::Sym, i: usize, t: &mut Tally) {
    let addr = sym.addr();
    if addr == 0 {
        if !sym.spec.optional {
            t.fail(i as u16, -1, ERR_UNRESOLVED);
        }
        return;
    }
    // SAFETY: addr was returned by dlsym for a symbol the config declares as
    // `void f(void)`; refresh() drops addresses of unloaded objects.
    let f: extern "C" fn() = unsafe { core::mem::transmute::<usize, extern "C" fn()>(addr) };
    f();
    t.ok();
}

fn parent_phase(rt: &Runtime, st: &mut ForkState, pid: pid_t, err: c_int) {
    let t1 = if st.timing { sys::now_ns() } else { 0 };
    let mut tally = Tally::new();
    if !rt.audit {
        for (i, a) in rt.actions.iter().enumerate().rev() {
            match &a.kind {
                RtKind::Call {
                    phase: Phase::Parent,
                    sym,
                } => call(sym, i, &mut tally),
                RtKind::Lock(l) => crate::actions::lock::parent(l, i, &st.scratch, &mut tally),
                RtKind::Call { .. } | RtKind::Zero(_) | RtKind::Fd(_) => {}
            }
        }
    }
    if !st.handshake.is_null() {
        if pid > 0 {
            handshake_wait(st.handshake, rt.handshake_ms);
        }
        handshake_release(st.handshake);
        st.handshake = core::ptr::null_mut();
    }
    if st.timing && !rt.audit {
        let parent_ns = sys::now_ns().saturating_sub(t1);
        log_parent(rt, st, pid, err, &tally, parent_ns);
    }
}

/// The child phase; returns the signal mask the child must end with.
/// Async-signal-safe (see the module comment).
fn child_phase(rt: &Runtime, st: &mut ForkState) -> sys::SigMask {
    let t0 = if st.timing { sys::now_ns() } else { 0 };
    let mut tally = Tally::new();
    let mut mask = st.old_mask;
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
            } = &a.kind
            {
                call(sym, i, &mut tally);
            }
        }
    }
    if st.timing && !rt.audit {
        log_child(rt, st, &tally, sys::now_ns().saturating_sub(t0));
    }
    if !st.handshake.is_null() {
        handshake_signal(st.handshake);
        handshake_release(st.handshake);
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
    for (i, a) in rt.actions.iter().enumerate() {
        if let RtKind::Fd(f) = &a.kind {
            crate::actions::fd::child(f, i, parent_pid, tally);
        }
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

// ---- handshake ----------------------------------------------------------

/// A shared anonymous page: no descriptor exists, so none can leak into
/// either process (or into a sibling forked by another thread meanwhile).
fn handshake_page() -> *mut AtomicU32 {
    sys::map_shared(4096).cast()
}

/// Child: say "child phase done" and wake the parent. Async-signal-safe.
fn handshake_signal(word: *mut AtomicU32) {
    // SAFETY: word points into the live shared page.
    unsafe {
        (*word).store(1, Ordering::Release);
        sys::futex(word.cast(), libc::FUTEX_WAKE, 1, core::ptr::null());
    }
}

/// Parent: wait until the child said so, or `ms` passed.
fn handshake_wait(word: *mut AtomicU32, ms: u32) {
    let deadline = sys::now_ns().saturating_add(u64::from(ms) * 1_000_000);
    loop {
        // SAFETY: word points into the live shared page.
        if unsafe { (*word).load(Ordering::Acquire) } != 0 {
            return;
        }
        let now = sys::now_ns();
        if now >= deadline {
            return;
        }
        let left = deadline - now;
        let ts = libc::timespec {
            tv_sec: (left / 1_000_000_000) as libc::time_t,
            tv_nsec: (left % 1_000_000_000) as libc::c_long,
        };
        // SAFETY: a shared (not private) futex wait on the page, with a timeout.
        unsafe { sys::futex(word.cast(), libc::FUTEX_WAIT, 0, &ts) };
    }
}

fn handshake_release(word: *mut AtomicU32) {
    // SAFETY: the page was mapped by handshake_page and is no longer used.
    unsafe { sys::unmap(word.cast(), 4096) };
}

// ---- reports -------------------------------------------------------------

type Line = Buf<1024>;

fn emit(rt: &Runtime, line: &mut Line) {
    let bytes = line.end_line();
    match &rt.log {
        LogTarget::Off => {}
        LogTarget::Stderr => sys::write_all(2, bytes),
        LogTarget::File(path) => sys::append_to(path, bytes),
    }
}

/// The once-per-process `config` line, before the first fork line.
#[cold]
#[inline(never)]
fn banner(rt: &Runtime) {
    if rt.banner_done.swap(true, Ordering::AcqRel) {
        return;
    }
    let mut line = Line::new();
    if rt.json {
        json_start(&mut line, i64::from(sys::getpid()));
    } else {
        line.str("forkguard[")
            .i64(i64::from(sys::getpid()))
            .byte(b']');
    }
    line.push(&rt.banner);
    emit(rt, &mut line);
}

/// `{"ts":T,"pid":P`: how every JSON line starts.
fn json_start(line: &mut Line, pid: i64) {
    line.str("{\"ts\":");
    ts(line);
    line.str(",\"pid\":").i64(pid);
}

/// `{"ts":T,"pid":P,"event":"E"`.
fn json_head(line: &mut Line, pid: i64, event: &str) {
    json_start(line, pid);
    line.str(",\"event\":\"").str(event).byte(b'"');
}

fn ts(line: &mut Line) {
    let ns = sys::wall_ns();
    line.u64(ns / 1_000_000_000).byte(b'.');
    let frac = (ns % 1_000_000_000) / 1000;
    let mut div = 100_000;
    while div > 0 {
        line.byte(b'0' + ((frac / div) % 10) as u8);
        div /= 10;
    }
}

/// `fd 7 reopen /x: EACCES` into `line`. Async-signal-safe.
fn describe(rt: &Runtime, f: &Failure, line: &mut Line) {
    if f.fd >= 0 {
        line.str("fd ").i64(i64::from(f.fd)).byte(b' ');
    }
    if f.action >= CHILD_SETTING {
        line.str(crate::actions::child::setting_name(
            f.action - CHILD_SETTING,
        ));
    } else if let Some(a) = rt.actions.get(usize::from(f.action)) {
        line.push(&a.label);
    }
    line.str(": ");
    match f.err {
        ERR_UNRESOLVED => line.str("symbol not resolved"),
        ERR_TIMEOUT => line.str("timed out"),
        e => match sys::errno_name(e) {
            Some(n) => line.str(n),
            None => line.str("errno ").i64(i64::from(e)),
        },
    };
}

fn text_tally(line: &mut Line, rt: &Runtime, t: &Tally) {
    line.u64(u64::from(t.ok)).str(" ok");
    if t.failed > 0 {
        line.str(", ").u64(u64::from(t.failed)).str(" failed (");
        for (k, f) in t.failures().iter().enumerate() {
            if k > 0 {
                line.str("; ");
            }
            describe(rt, f, line);
        }
        if t.failed as usize > MAX_ERRS {
            line.str("; ...");
        }
        line.byte(b')');
    }
}

fn json_errors(line: &mut Line, rt: &Runtime, tallies: &[&Tally]) {
    line.str(",\"errors\":[");
    let mut first = true;
    for t in tallies {
        for f in t.failures() {
            if !first {
                line.byte(b',');
            }
            first = false;
            let mut one = Line::new();
            describe(rt, f, &mut one);
            line.byte(b'"').json_str(one.as_bytes()).byte(b'"');
        }
    }
    line.byte(b']');
}

#[cold]
#[inline(never)]
fn log_parent(rt: &Runtime, st: &ForkState, pid: pid_t, err: c_int, t: &Tally, parent_ns: u64) {
    let mut line = Line::new();
    let me = i64::from(sys::getpid());
    let child = if pid == i32::MAX { 0 } else { i64::from(pid) };
    if rt.json {
        json_head(&mut line, me, "fork");
        line.str(",\"via\":\"").str(st.via.name());
        line.str("\",\"child\":").i64(child);
        if pid < 0 {
            line.str(",\"errno\":")
                .i64(i64::from(err))
                .str(",\"error\":\"");
            line.str(sys::errno_name(err).unwrap_or("?")).byte(b'"');
        }
        line.str(",\"phase_us\":").micros(st.prepare_ns + parent_ns);
        line.str(",\"prepare_us\":")
            .micros(st.prepare_ns)
            .str(",\"parent_us\":")
            .micros(parent_ns);
        line.str(",\"actions_ok\":")
            .u64(u64::from(st.prepare.ok + t.ok));
        line.str(",\"actions_failed\":")
            .u64(u64::from(st.prepare.failed + t.failed));
        json_errors(&mut line, rt, &[&st.prepare, t]);
        line.byte(b'}');
    } else {
        line.str("forkguard[").i64(me).str("] fork -> ").i64(child);
        if pid < 0 {
            line.str(" (")
                .str(sys::errno_name(err).unwrap_or("error"))
                .byte(b')');
        }
        line.str(" via ").str(st.via.name()).str(": prepare ");
        text_tally(&mut line, rt, &st.prepare);
        line.byte(b' ').micros(st.prepare_ns).str("us, parent ");
        text_tally(&mut line, rt, t);
        line.byte(b' ').micros(parent_ns).str("us");
    }
    emit(rt, &mut line);
}

/// The child's report: formatted on the stack, one write. Async-signal-safe.
#[cold]
#[inline(never)]
fn log_child(rt: &Runtime, st: &ForkState, t: &Tally, ns: u64) {
    let mut line = Line::new();
    let me = i64::from(sys::getpid());
    if rt.json {
        json_head(&mut line, me, "child");
        line.str(",\"via\":\"").str(st.via.name());
        line.str("\",\"child\":")
            .i64(me)
            .str(",\"parent\":")
            .i64(i64::from(st.parent_pid));
        line.str(",\"phase_us\":").micros(ns);
        line.str(",\"actions_ok\":")
            .u64(u64::from(t.ok))
            .str(",\"actions_failed\":")
            .u64(u64::from(t.failed));
        json_errors(&mut line, rt, &[t]);
        line.byte(b'}');
    } else {
        line.str("forkguard[")
            .i64(me)
            .str("] child of ")
            .i64(i64::from(st.parent_pid))
            .str(": ");
        text_tally(&mut line, rt, t);
        line.byte(b' ').micros(ns).str("us");
    }
    emit(rt, &mut line);
}
