//! `[[lock]]`: named locks made safe across fork (SPEC §3, §4).
//!
//! The problem: a lock held by another thread at the fork stays held
//! forever in the child, where that thread does not exist. And a lock the
//! forking thread holds records the parent thread's id, which the child's
//! thread does not have, so the child's own unlock fails (`EPERM`) or
//! leaves it busy (rwlocks): measured on glibc 2.36, see docs/DESIGN.md,
//! "Lock actions".
//!
//! What each phase does:
//! - prepare: look whether the forking thread holds the lock (never take
//!   it again then); with `acquire`, take it within `timeout_ms`. What was
//!   done is recorded in the action's scratch byte.
//! - parent: release what prepare took (also when the fork failed or did
//!   not happen: `on_timeout = "fail"`).
//! - child: rewrite the lock's bytes: free, or held by the child's thread
//!   when the forking thread held it, keeping its type and attributes
//!   (kind, robust, process-shared, priority protocol, rwlock preference)
//!   and a recursive count. No glibc call is made: `pthread_mutex_init`
//!   and friends need an attribute object and are not async-signal-safe.
//!
//! The layouts are glibc's (64-bit; the rwlock is the one glibc has had
//! since 2.25), measured on this platform (Debian 12, glibc 2.36):
//! `pthread_mutex_t` `{ int lock; unsigned count; int owner; unsigned
//! nusers; int kind; short spins, elision; list { prev, next } }`,
//! `pthread_rwlock_t` `{ unsigned readers, writers, wrphase_futex,
//! writers_futex, pad3, pad4; int cur_writer, shared; char rwelision; ...;
//! unsigned flags @48 }`, `sem_t` `{ u64 value | nwaiters << 32; int
//! private }`, `FILE` `_lock` at 136 pointing to `{ int lock; int cnt;
//! void *owner }` (owner = the holder's `pthread_self()`).
//!
//! Everything the child runs is async-signal-safe: atomic loads, plain
//! stores, `gettid`/`get_robust_list` system calls; no allocation, no lock,
//! no panic (`clippy` denies indexing and unwrapping below).

use crate::actions::{Tally, ERR_TIMEOUT, ERR_UNRESOLVED};
mod futex;
pub mod libc_locks;
mod mutex;
mod rwlock;
mod semaphore;
mod shared;
mod spinlock;
mod stdio;

/// The layouts, by address, for `held_locks` (`actions::held`).
pub mod held {
    pub use super::mutex::{
        mutex_in_transit, mutex_make_free, mutex_make_held_by, mutex_owner_of, mutex_plausible,
        mutex_put_back_dead, mutex_robust, mutex_shared,
    };
    pub use super::rwlock::{rwlock_make, rwlock_plausible, rwlock_state};
    pub use super::semaphore::{sem_make_free, sem_value};
    pub use super::spinlock::{spin_locked, spin_make_free};
}

use crate::os::buf::Buf;
use crate::os::symbols::Sym;
use crate::os::sys;
use forkguard_core::plan::{Loc, LockKind, LockSpec, LockStrategy, OnTimeout, MAX_ACTIONS};
use libc::c_int;


pub struct LockAction {
    pub sym: Sym,
    pub spec: LockSpec,
    /// Bytes the lock type needs, and the address bits that must be clear
    /// (alignment): worked out once, checked at every fork.
    need: usize,
    misalign: usize,
    /// `offset = N`: the lock is this many bytes into the symbol.
    offset: usize,
    /// The child's work for this lock type, chosen at load: a `match` on
    /// the type after the fork compiles to a jump table in `.rodata`, one
    /// more page each child would fault in.
    child: fn(usize, u8),
}

use mutex::*;
use rwlock::*;
use semaphore::*;
use shared::*;
use spinlock::*;
use stdio::*;

// ---- sizes and glibc constants ---------------------------------------------

const MUTEX_SIZE: usize = 40;
const RWLOCK_SIZE: usize = 56;
const SEM_SIZE: usize = 32;

// The layout below is glibc's for 64-bit targets; the libc crate must agree
// on the sizes at least.
const _: () = assert!(core::mem::size_of::<libc::pthread_mutex_t>() >= MUTEX_SIZE);
const _: () = assert!(core::mem::size_of::<libc::pthread_rwlock_t>() == RWLOCK_SIZE);
const _: () = assert!(core::mem::size_of::<libc::sem_t>() == SEM_SIZE);

/// Bytes the lock type needs at the symbol's address.
fn needed(kind: LockKind) -> usize {
    match kind {
        LockKind::Mutex => MUTEX_SIZE,
        LockKind::Rwlock => RWLOCK_SIZE,
        LockKind::Spinlock => 4,
        LockKind::Semaphore => SEM_SIZE,
        LockKind::Stdio => core::mem::size_of::<*mut libc::FILE>(),
        LockKind::Futex => futex::FUTEX_SIZE,
        LockKind::FutexRecursive => futex::RECURSIVE_SIZE,
    }
}

/// Alignment the lock type needs.
fn align(kind: LockKind) -> usize {
    if matches!(kind, LockKind::Spinlock | LockKind::Futex) {
        4
    } else {
        8
    }
}

fn type_name(kind: LockKind) -> &'static str {
    match kind {
        LockKind::Mutex => "pthread_mutex_t",
        LockKind::Rwlock => "pthread_rwlock_t",
        LockKind::Spinlock => "pthread_spinlock_t",
        LockKind::Semaphore => "sem_t",
        LockKind::Stdio => "FILE *",
        LockKind::Futex => "futex word",
        LockKind::FutexRecursive => "recursive glibc lock",
    }
}

// ---- build -------------------------------------------------------------------

pub fn build(spec: &LockSpec, generation: u64) -> Result<LockAction, (Loc, String)> {
    let sym = Sym::new(&spec.symbol);
    let loc = spec.symbol.loc;
    let offset = spec.offset.map_or(0, |o| o.bytes as usize);
    if sym.resolve_for_action(generation).map_err(|m| (loc, m))? {
        if let Some(o) = spec.offset {
            within(&sym, o.bytes as usize, needed(spec.kind)).map_err(|m| (o.loc, m))?;
        }
        check(&sym, spec.kind, offset).map_err(|m| (loc, m))?;
    }
    Ok(LockAction {
        sym,
        spec: spec.clone(),
        need: needed(spec.kind),
        misalign: align(spec.kind) - 1,
        offset,
        child: match spec.kind {
            LockKind::Mutex => mutex_child,
            LockKind::Rwlock => rwlock_child,
            LockKind::Spinlock => spin_child,
            LockKind::Semaphore => sem_child,
            LockKind::Stdio => stdio_child,
            LockKind::Futex => futex::child,
            LockKind::FutexRecursive => futex::recursive_child,
        },
    })
}

/// A resolved symbol fits the lock type: big enough (when the symbol table
/// tells the size), aligned, in writable memory.
fn check(sym: &Sym, kind: LockKind, offset: usize) -> Result<(), String> {
    let need = needed(kind);
    let size = sym.size();
    if offset == 0 && size != 0 && size < need {
        return Err(format!(
            "{} is {size} bytes, too small for a {} ({need} bytes)",
            sym.spec,
            type_name(kind)
        ));
    }
    if sym.addr().wrapping_add(offset) % align(kind) != 0 {
        return Err(format!(
            "{} is not aligned like a {}",
            sym.spec,
            type_name(kind)
        ));
    }
    if !sym.writable() {
        return Err(format!(
            "{} is not in writable memory: a lock must be a variable",
            sym.spec
        ));
    }
    Ok(())
}

/// `offset` + the lock's `need` bytes lie inside the symbol (SPEC 8.1).
pub fn within(sym: &Sym, offset: usize, need: usize) -> Result<(), String> {
    let size = sym.size();
    if size == 0 {
        return Err(format!(
            "offset = {offset}: the symbol table gives no size for {}, so the offset cannot be checked",
            sym.spec
        ));
    }
    if offset.checked_add(need).is_none_or(|end| end > size) {
        return Err(format!(
            "offset = {offset} is past the end of {} ({size} bytes; the lock needs {need} from the offset)",
            sym.spec
        ));
    }
    Ok(())
}

/// The lock's address, or 0 when unresolved or not usable (a library
/// `dlopen`ed later may name something that is not a lock of that type).
/// Async-signal-safe.
fn usable(l: &LockAction) -> usize {
    let addr = l.sym.addr().wrapping_add(l.offset);
    let size = l.sym.size();
    // An unresolved symbol is not writable: 0.
    let fits = if l.offset == 0 {
        size == 0 || size >= l.need
    } else {
        l.offset + l.need <= size
    };
    if l.sym.addr() != 0 && addr & l.misalign == 0 && l.sym.writable() && fits {
        addr
    } else {
        0
    }
}

// ---- phases --------------------------------------------------------------

/// Prepare: see whether the forking thread holds the lock; with `acquire`,
/// take it. `Err(EAGAIN)` when it timed out and `on_timeout = "fail"`.
/// Parent side.
#[link_section = ".text.fg_hot"]
pub fn prepare(
    l: &LockAction,
    i: usize,
    scratch: &mut [u8; MAX_ACTIONS],
    t: &mut Tally,
) -> Result<(), c_int> {
    let acquire = l.spec.strategy == LockStrategy::Acquire;
    let ms = l.spec.timeout_ms;
    let addr = usable(l);
    let r = if addr == 0 {
        Err(ERR_UNRESOLVED)
    } else {
        match l.spec.kind {
            LockKind::Mutex => mutex_prepare(addr, acquire, ms),
            LockKind::Rwlock => rwlock_prepare(addr, acquire, ms),
            LockKind::Spinlock => spin_prepare(addr, acquire, ms),
            LockKind::Semaphore => sem_prepare(addr, acquire, ms),
            LockKind::Stdio => stdio_prepare(addr, acquire, ms),
            LockKind::Futex => futex::prepare(addr, acquire, ms),
            LockKind::FutexRecursive => futex::recursive_prepare(addr, acquire, ms),
        }
    };
    let state = match r {
        Ok(TIMED_OUT) => {
            t.fail(i as u16, -1, ERR_TIMEOUT);
            TIMED_OUT
        }
        Ok(s) => {
            if acquire {
                t.ok();
            }
            s
        }
        // Unresolved: reported here by acquire, in the child by reinit.
        // (An `optional` symbol that is missing is skipped silently.)
        Err(ERR_UNRESOLVED) => {
            if acquire && !l.sym.spec.optional {
                t.fail(i as u16, -1, ERR_UNRESOLVED);
            }
            NONE
        }
        Err(e) => {
            t.fail(i as u16, -1, e);
            SEEN
        }
    };
    if let Some(slot) = scratch.get_mut(i) {
        *slot = state;
    }
    if state == TIMED_OUT && l.spec.on_timeout == OnTimeout::Fail {
        return Err(libc::EAGAIN);
    }
    Ok(())
}

/// Parent: release what prepare took. Runs also when no process was
/// created. Parent side.
#[link_section = ".text.fg_hot"]
pub fn parent(l: &LockAction, i: usize, scratch: &[u8; MAX_ACTIONS], t: &mut Tally) {
    let state = scratch.get(i).copied().unwrap_or(NONE);
    match state {
        TAKEN | TAKEN_DEAD => {}
        // Nothing was taken, and prepare reported what went wrong.
        NONE | TIMED_OUT => return,
        // Held by the forking thread, or seen (reinit): nothing to undo.
        _ => {
            if l.spec.strategy == LockStrategy::Acquire {
                t.ok();
            }
            return;
        }
    }
    // Prepare checked this address (usable()): it changes only when
    // objects are loaded or unloaded, and then to 0 for one that is gone.
    if l.sym.addr() == 0 {
        return;
    }
    let addr = l.sym.addr().wrapping_add(l.offset);
    let r = if state == TAKEN && l.spec.kind == LockKind::Mutex {
        // SAFETY: usable() checked a mutex-sized variable; prepare locked it.
        err_of(unsafe { crate::os::clib::pthread_mutex_unlock(addr as *mut libc::pthread_mutex_t) })
    } else {
        release_other(addr, state, l.spec.kind)
    };
    match r {
        Ok(()) => t.ok(),
        Err(e) => t.fail(i as u16, -1, e),
    }
}

/// Parent: undo what prepare took, for everything but the common case (a
/// mutex it locked), which `parent` does inline.
#[link_section = ".text.fg_hot"]
fn release_other(addr: usize, state: u8, kind: LockKind) -> Result<(), c_int> {
    match (state, kind) {
        (TAKEN, LockKind::Mutex) => {
            // SAFETY: usable() checked a mutex-sized variable; prepare locked it.
            err_of(unsafe {
                crate::os::clib::pthread_mutex_unlock(addr as *mut libc::pthread_mutex_t)
            })
        }
        (TAKEN_DEAD, LockKind::Mutex) => {
            mutex_restore_dead(addr);
            Ok(())
        }
        (TAKEN, LockKind::Rwlock) => {
            // SAFETY: an rwlock variable that prepare write-locked.
            err_of(unsafe {
                crate::os::clib::pthread_rwlock_unlock(addr as *mut libc::pthread_rwlock_t)
            })
        }
        (TAKEN, LockKind::Spinlock) => {
            // SAFETY: a spinlock variable that prepare locked.
            err_of(unsafe {
                crate::os::clib::pthread_spin_unlock(addr as *mut libc::pthread_spinlock_t)
            })
        }
        (TAKEN, LockKind::Semaphore) => {
            // SAFETY: a semaphore variable that prepare decremented.
            if unsafe { crate::os::clib::sem_post(addr as *mut libc::sem_t) } == 0 {
                Ok(())
            } else {
                Err(sys::errno())
            }
        }
        (TAKEN, LockKind::Futex) => {
            futex::release(addr);
            Ok(())
        }
        (TAKEN, LockKind::FutexRecursive) => {
            futex::recursive_release(addr);
            Ok(())
        }
        (TAKEN, LockKind::Stdio) => {
            let f = file_of(addr);
            if !f.is_null() {
                // SAFETY: the FILE prepare locked with ftrylockfile.
                unsafe { crate::os::clib::funlockfile(f) };
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Child: make the lock usable: free, or held by this (the only) thread
/// where the forking thread held it. Async-signal-safe.
#[link_section = ".text.fg_hot"]
pub fn child(l: &LockAction, i: usize, scratch: &[u8; MAX_ACTIONS], t: &mut Tally) {
    let state = scratch.get(i).copied().unwrap_or(NONE);
    let addr = usable(l);
    if addr == 0 {
        // Reported by prepare already (acquire), or here (reinit).
        if l.spec.strategy == LockStrategy::Reinit && !l.sym.spec.optional {
            t.fail(i as u16, -1, ERR_UNRESOLVED);
        }
        return;
    }
    (l.child)(addr, state);
    t.ok();
}

// ---- audit -----------------------------------------------------------------

/// Audit: describe into `held` whether the lock is held now, and by whom
/// where the lock records it (nothing when free or unusable). `me` is the
/// forking thread. Parent side, in prepare.
pub fn held(l: &LockAction, me: libc::pid_t, held: &mut Buf<160>) {
    let addr = usable(l);
    if addr == 0 {
        return;
    }
    let kind_held = match l.spec.kind {
        LockKind::Mutex => mutex_held,
        LockKind::Rwlock => rwlock_held,
        LockKind::Spinlock => spinlock_held,
        LockKind::Semaphore => semaphore_held,
        LockKind::Stdio => stdio_held,
        LockKind::Futex | LockKind::FutexRecursive => futex::futex_held,
    };
    kind_held(addr, me, held);
}
