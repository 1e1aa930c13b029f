//! `[[lock]]`: named locks made safe across fork (SPEC §3, §4).
//!
//! The problem: a lock held by another thread at the fork stays held
//! forever in the child, where that thread does not exist. And a lock the
//! forking thread holds records the parent thread's id, which the child's
//! thread does not have, so the child's own unlock fails (`EPERM`) or
//! leaves it busy (rwlocks). See FACTS.md, "Locks in the child".
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
use crate::os::buf::Buf;
use crate::os::symbols::Sym;
use crate::os::sys;
use forkguard_core::plan::{Loc, LockKind, LockSpec, LockStrategy, OnTimeout, MAX_ACTIONS};
use libc::c_int;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

pub struct LockAction {
    pub sym: Sym,
    pub spec: LockSpec,
    /// Bytes the lock type needs, and the address bits that must be clear
    /// (alignment): worked out once, checked at every fork.
    need: usize,
    misalign: usize,
    /// The child's work for this lock type, chosen at load: a `match` on
    /// the type after the fork compiles to a jump table in `.rodata`, one
    /// more page each child would fault in.
    child: fn(usize, u8),
}

// ---- what prepare did, per action (ForkState::scratch) -------------------

/// Prepare did not look (unresolved symbol, or never ran).
const NONE: u8 = 0;
/// Looked: not held by the forking thread; nothing taken.
const SEEN: u8 = 1;
/// Taken by prepare: the parent releases it.
const TAKEN: u8 = 2;
/// A robust mutex taken with `EOWNERDEAD`: its owner died. The parent and
/// the child put the "owner died" state back, for the program to recover.
const TAKEN_DEAD: u8 = 3;
/// Could not be taken within the timeout.
const TIMED_OUT: u8 = 4;
/// Held by the forking thread (mutex, rwlock for writing, stdio); for
/// stdio the low six bits are the recursion count.
const MINE: u8 = 0x40;
/// rwlock read-held by the forking thread: the low seven bits count how
/// many times.
const READS: u8 = 0x80;

// ---- sizes and glibc constants ---------------------------------------------

const MUTEX_SIZE: usize = 40;
const RWLOCK_SIZE: usize = 56;
const SEM_SIZE: usize = 32;

// The layout below is glibc's for 64-bit targets; the libc crate must agree
// on the sizes at least.
const _: () = assert!(core::mem::size_of::<libc::pthread_mutex_t>() >= MUTEX_SIZE);
const _: () = assert!(core::mem::size_of::<libc::pthread_rwlock_t>() == RWLOCK_SIZE);
const _: () = assert!(core::mem::size_of::<libc::sem_t>() == SEM_SIZE);

const M_LOCK: usize = 0;
const M_COUNT: usize = 4;
const M_OWNER: usize = 8;
const M_NUSERS: usize = 12;
const M_KIND: usize = 16;
const M_LIST_PREV: usize = 24;
const M_LIST_NEXT: usize = 32;

const KIND_ROBUST: i32 = 0x10;
const KIND_PI: i32 = 0x20;
const KIND_PP: i32 = 0x40;
/// The priority ceiling of a PRIO_PROTECT mutex lives in the lock word.
const PP_CEILING_MASK: i32 = 0xfff8_0000_u32 as i32;
const FUTEX_OWNER_DIED: i32 = 0x4000_0000;
const FUTEX_WAITERS: i32 = 0x8000_0000_u32 as i32;
const FUTEX_TID_MASK: i32 = 0x3fff_ffff;
const OWNER_INCONSISTENT: i32 = i32::MAX;
const OWNER_NOTRECOVERABLE: i32 = i32::MAX - 1;

const RW_READERS: usize = 0;
const RW_WRPHASE_FUTEX: usize = 8;
const RW_WRITERS_FUTEX: usize = 12;
const RW_CUR_WRITER: usize = 24;
/// `__readers` bits: write phase, write-locked; readers from bit 3.
const RW_WRPHASE: u32 = 1;
const RW_WRLOCKED: u32 = 2;
const RW_READER_SHIFT: u32 = 3;

const FILE_LOCK: usize = 136;

/// Bytes the lock type needs at the symbol's address.
fn needed(kind: LockKind) -> usize {
    match kind {
        LockKind::Mutex => MUTEX_SIZE,
        LockKind::Rwlock => RWLOCK_SIZE,
        LockKind::Spinlock => 4,
        LockKind::Semaphore => SEM_SIZE,
        LockKind::Stdio => core::mem::size_of::<*mut libc::FILE>(),
    }
}

/// Alignment the lock type needs.
fn align(kind: LockKind) -> usize {
    if kind == LockKind::Spinlock {
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
    }
}

extern "C" {
    fn pthread_mutex_clocklock(
        m: *mut libc::pthread_mutex_t,
        clock: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> c_int;
    fn pthread_rwlock_clockwrlock(
        l: *mut libc::pthread_rwlock_t,
        clock: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> c_int;
    fn sem_clockwait(
        s: *mut libc::sem_t,
        clock: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> c_int;
    fn ftrylockfile(f: *mut libc::FILE) -> c_int;
    fn funlockfile(f: *mut libc::FILE);
}

// ---- build -------------------------------------------------------------------

pub fn build(spec: &LockSpec, generation: u64) -> Result<LockAction, (Loc, String)> {
    let sym = Sym::new(&spec.symbol);
    let loc = spec.symbol.loc;
    if sym.resolve_for_action(generation).map_err(|m| (loc, m))? {
        check(&sym, spec.kind).map_err(|m| (loc, m))?;
    }
    if spec.kind == LockKind::Rwlock {
        track::enable();
    }
    Ok(LockAction {
        sym,
        spec: spec.clone(),
        need: needed(spec.kind),
        misalign: align(spec.kind) - 1,
        child: match spec.kind {
            LockKind::Mutex => mutex_child,
            LockKind::Rwlock => rwlock_child,
            LockKind::Spinlock => spin_child,
            LockKind::Semaphore => sem_child,
            LockKind::Stdio => stdio_child,
        },
    })
}

/// A resolved symbol fits the lock type: big enough (when the symbol table
/// tells the size), aligned, in writable memory.
fn check(sym: &Sym, kind: LockKind) -> Result<(), String> {
    let need = needed(kind);
    let size = sym.size();
    if size != 0 && size < need {
        return Err(format!(
            "{} is {size} bytes, too small for a {} ({need} bytes)",
            sym.spec,
            type_name(kind)
        ));
    }
    if sym.addr() % align(kind) != 0 {
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

/// The lock's address, or 0 when unresolved or not usable (a library
/// `dlopen`ed later may name something that is not a lock of that type).
/// Async-signal-safe.
fn usable(l: &LockAction) -> usize {
    let addr = l.sym.addr();
    let size = l.sym.size();
    // An unresolved symbol is not writable: 0.
    if addr & l.misalign == 0 && l.sym.writable() && (size == 0 || size >= l.need) {
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
    let addr = l.sym.addr();
    if addr == 0 {
        return;
    }
    let r = if state == TAKEN && l.spec.kind == LockKind::Mutex {
        // SAFETY: usable() checked a mutex-sized variable; prepare locked it.
        err_of(unsafe { libc::pthread_mutex_unlock(addr as *mut libc::pthread_mutex_t) })
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
            err_of(unsafe { libc::pthread_mutex_unlock(addr as *mut libc::pthread_mutex_t) })
        }
        (TAKEN_DEAD, LockKind::Mutex) => {
            mutex_restore_dead(addr);
            Ok(())
        }
        (TAKEN, LockKind::Rwlock) => {
            // SAFETY: an rwlock variable that prepare write-locked.
            err_of(unsafe { libc::pthread_rwlock_unlock(addr as *mut libc::pthread_rwlock_t) })
        }
        (TAKEN, LockKind::Spinlock) => {
            // SAFETY: a spinlock variable that prepare locked.
            err_of(unsafe { libc::pthread_spin_unlock(addr as *mut libc::pthread_spinlock_t) })
        }
        (TAKEN, LockKind::Semaphore) => {
            // SAFETY: a semaphore variable that prepare decremented.
            if unsafe { libc::sem_post(addr as *mut libc::sem_t) } == 0 {
                Ok(())
            } else {
                Err(sys::errno())
            }
        }
        (TAKEN, LockKind::Stdio) => {
            let f = file_of(addr);
            if !f.is_null() {
                // SAFETY: the FILE prepare locked with ftrylockfile.
                unsafe { funlockfile(f) };
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

/// Child: a spinlock is free again (whoever held it).
#[link_section = ".text.fg_hot"]
fn spin_child(addr: usize, _state: u8) {
    // SAFETY: a 4-byte aligned, writable spinlock variable (checked at load
    // and by `usable`).
    unsafe { AtomicI32::from_ptr(addr as *mut i32) }.store(spin_free(), Ordering::Relaxed);
}

fn err_of(r: c_int) -> Result<(), c_int> {
    if r == 0 {
        Ok(())
    } else {
        Err(r)
    }
}

/// An absolute CLOCK_MONOTONIC time for the `clock*` waits.
fn timespec(ns: u64) -> libc::timespec {
    libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    }
}

/// CLOCK_MONOTONIC nanoseconds `ms` from now. Read only once a lock turned
/// out to be busy: an uncontended prepare makes no clock call.
fn deadline_after(ms: u32) -> u64 {
    sys::now_ns().saturating_add(u64::from(ms) * 1_000_000)
}

/// `try_` until it succeeds or `ms` passed, sleeping a little in between
/// (spinlocks and FILE locks have no timed lock call).
fn try_until(ms: u32, mut try_: impl FnMut() -> bool) -> u8 {
    if try_() {
        return TAKEN;
    }
    if ms == 0 {
        return TIMED_OUT;
    }
    let deadline = deadline_after(ms);
    while wait_a_little(deadline) {
        if try_() {
            return TAKEN;
        }
    }
    TIMED_OUT
}

/// For the try-again loops: a short sleep, or false once `deadline` passed.
fn wait_a_little(deadline: u64) -> bool {
    let now = sys::now_ns();
    if now >= deadline {
        return false;
    }
    let ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: (deadline - now).min(50_000) as libc::c_long,
    };
    // SAFETY: ts is a valid duration; a signal cannot interrupt (blocked).
    unsafe { libc::nanosleep(&ts, core::ptr::null_mut()) };
    true
}

/// A 32-bit field of the lock at `addr + off`, for atomic access.
///
/// # Safety
/// `addr + off` must be 4-byte aligned and valid for the returned lifetime.
unsafe fn word<'a>(addr: usize, off: usize) -> &'a AtomicI32 {
    // SAFETY: per the contract.
    unsafe { AtomicI32::from_ptr(addr.wrapping_add(off) as *mut i32) }
}

/// A pointer-sized field, for atomic access.
///
/// # Safety
/// As for [`word`], 8-byte aligned.
unsafe fn ptr_word<'a>(addr: usize, off: usize) -> &'a AtomicUsize {
    // SAFETY: per the contract.
    unsafe { AtomicUsize::from_ptr(addr.wrapping_add(off) as *mut usize) }
}

// ---- mutex ---------------------------------------------------------------

#[link_section = ".text.fg_hot"]
fn mutex_prepare(addr: usize, acquire: bool, ms: u32) -> Result<u8, c_int> {
    // SAFETY: usable() checked a writable, aligned, mutex-sized variable.
    let lock = unsafe { word(addr, M_LOCK) }.load(Ordering::Relaxed);
    // A lock word without lock bits is a free mutex: nobody's, so not ours
    // (and no system call to find our thread id).
    if lock & !PP_CEILING_MASK != 0 {
        // SAFETY: as above.
        let owner = unsafe { mutex_owner(addr) };
        if owner != 0 && owner == sys::gettid() {
            return Ok(MINE);
        }
    }
    if !acquire {
        return Ok(SEEN);
    }
    let m = addr as *mut libc::pthread_mutex_t;
    // SAFETY: a mutex variable (see above).
    let mut r = unsafe { libc::pthread_mutex_trylock(m) };
    if r == 0 {
        return Ok(TAKEN);
    }
    if r == libc::EBUSY && ms > 0 {
        let ts = timespec(deadline_after(ms));
        // SAFETY: a mutex variable; ts is a valid absolute time.
        r = unsafe { pthread_mutex_clocklock(m, libc::CLOCK_MONOTONIC, &ts) };
    }
    match r {
        0 => Ok(TAKEN),
        libc::EOWNERDEAD => Ok(TAKEN_DEAD),
        libc::ETIMEDOUT | libc::EBUSY => Ok(TIMED_OUT),
        libc::EDEADLK => Ok(MINE),
        e => Err(e),
    }
}

/// The holder's thread id, 0 if none is recorded. Robust and PI mutexes
/// keep it in the lock word (`__owner` may say "inconsistent" there).
///
/// # Safety
/// `addr` is a mutex variable.
unsafe fn mutex_owner(addr: usize) -> i32 {
    // SAFETY: per the contract.
    let (kind, lock, owner) = unsafe {
        (
            word(addr, M_KIND).load(Ordering::Relaxed),
            word(addr, M_LOCK).load(Ordering::Relaxed),
            word(addr, M_OWNER).load(Ordering::Relaxed),
        )
    };
    if kind & (KIND_ROBUST | KIND_PI) != 0 {
        lock & FUTEX_TID_MASK
    } else if owner > 0 && owner < OWNER_NOTRECOVERABLE {
        owner
    } else {
        0
    }
}

#[link_section = ".text.fg_hot"]
fn mutex_child(addr: usize, state: u8) {
    match state {
        MINE => mutex_held_by(addr, sys::gettid()),
        TAKEN_DEAD => mutex_dead(addr),
        _ => mutex_free(addr),
    }
}

/// Free, type kept. A robust mutex whose owner died (or that is beyond
/// recovery) keeps saying so; one held by a thread that does not exist in
/// the child is made free, like every other kind. Async-signal-safe.
#[link_section = ".text.fg_hot"]
fn mutex_free(addr: usize) {
    // SAFETY: a writable mutex variable (all field accesses), and the child
    // has one thread: nothing else touches it.
    unsafe {
        let kind = word(addr, M_KIND).load(Ordering::Relaxed);
        let lock = word(addr, M_LOCK).load(Ordering::Relaxed);
        let owner = word(addr, M_OWNER).load(Ordering::Relaxed);
        if kind & KIND_ROBUST != 0 {
            if owner == OWNER_NOTRECOVERABLE {
                word(addr, M_LOCK).store(0, Ordering::Relaxed);
                return;
            }
            let dead = lock & FUTEX_OWNER_DIED != 0 && lock & FUTEX_TID_MASK == 0;
            if dead || owner == OWNER_INCONSISTENT {
                mutex_dead(addr);
                return;
            }
        }
        let ceiling = if kind & KIND_PP != 0 {
            lock & PP_CEILING_MASK
        } else {
            0
        };
        word(addr, M_COUNT).store(0, Ordering::Relaxed);
        word(addr, M_OWNER).store(0, Ordering::Relaxed);
        word(addr, M_NUSERS).store(0, Ordering::Relaxed);
        ptr_word(addr, M_LIST_PREV).store(0, Ordering::Relaxed);
        ptr_word(addr, M_LIST_NEXT).store(0, Ordering::Relaxed);
        word(addr, M_LOCK).store(ceiling, Ordering::Release);
    }
}

/// A robust mutex in the "owner died" state: the next lock gets
/// `EOWNERDEAD`. Async-signal-safe.
fn mutex_dead(addr: usize) {
    // SAFETY: as in mutex_free.
    unsafe {
        word(addr, M_COUNT).store(0, Ordering::Relaxed);
        word(addr, M_OWNER).store(0, Ordering::Relaxed);
        // The dead owner is still counted: glibc discounts it on recovery.
        word(addr, M_NUSERS).store(1, Ordering::Relaxed);
        ptr_word(addr, M_LIST_PREV).store(0, Ordering::Relaxed);
        ptr_word(addr, M_LIST_NEXT).store(0, Ordering::Relaxed);
        word(addr, M_LOCK).store(FUTEX_OWNER_DIED, Ordering::Release);
    }
}

/// Held by `tid` (the child's thread): what glibc's lock would have written,
/// recursion count kept. A robust mutex is also put on the thread's robust
/// list, as glibc does (the child starts with an empty one), so that its
/// unlock can take it off. Async-signal-safe.
#[link_section = ".text.fg_hot"]
fn mutex_held_by(addr: usize, tid: i32) {
    // SAFETY: as in mutex_free.
    unsafe {
        let kind = word(addr, M_KIND).load(Ordering::Relaxed);
        let old = word(addr, M_LOCK).load(Ordering::Relaxed);
        let lock = if kind & KIND_PP != 0 {
            (old & PP_CEILING_MASK) | 1
        } else if kind & (KIND_ROBUST | KIND_PI) != 0 {
            tid
        } else {
            1
        };
        // Held but not yet made consistent after EOWNERDEAD: still so.
        if word(addr, M_OWNER).load(Ordering::Relaxed) != OWNER_INCONSISTENT {
            word(addr, M_OWNER).store(tid, Ordering::Relaxed);
        }
        word(addr, M_NUSERS).store(1, Ordering::Relaxed);
        word(addr, M_LOCK).store(lock, Ordering::Release);
        if kind & KIND_ROBUST != 0 {
            robust_enqueue(addr, kind & KIND_PI != 0);
        }
    }
}

/// glibc's `ENQUEUE_MUTEX`: link the mutex at the head of this thread's
/// robust list (found with `get_robust_list`). Entries point at the
/// `__list.__next` field; the head's list pointer points at itself when
/// empty; bit 0 marks a PI mutex. Async-signal-safe.
fn robust_enqueue(addr: usize, pi: bool) {
    let mut head: *mut usize = core::ptr::null_mut();
    let mut len: libc::size_t = 0;
    // SAFETY: get_robust_list(0, ...) writes the calling thread's head
    // pointer and its size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_get_robust_list,
            0,
            &mut head as *mut *mut usize,
            &mut len as *mut libc::size_t,
        )
    };
    let entry = addr.wrapping_add(M_LIST_NEXT);
    if r != 0 || head.is_null() {
        // No list to join (seccomp?): link the mutex to itself, so that the
        // unlink in its unlock touches nothing else. The kernel will not
        // mark it "owner died" if this thread dies holding it.
        // SAFETY: a writable robust mutex variable.
        unsafe {
            ptr_word(addr, M_LIST_NEXT).store(entry, Ordering::Relaxed);
            ptr_word(addr, M_LIST_PREV).store(entry, Ordering::Relaxed);
        }
        return;
    }
    // SAFETY: head is glibc's robust_list_head of this thread (its first
    // word is the list pointer, and the word before it is `robust_prev`,
    // which glibc uses as the head's "prev" field); every entry on the list
    // is a live robust mutex's `__list.__next`, whose `__prev` is one word
    // before. The mutex itself is a writable variable.
    unsafe {
        let first = *head;
        let next_prev = (first & !1).wrapping_sub(8) as *mut usize;
        *next_prev = entry;
        ptr_word(addr, M_LIST_NEXT).store(first, Ordering::Relaxed);
        ptr_word(addr, M_LIST_PREV).store(head as usize, Ordering::Relaxed);
        *head = entry | usize::from(pi);
    }
}

/// Parent: a robust mutex that prepare took with `EOWNERDEAD` is put back
/// in the "owner died" state (unlocking it would make it unrecoverable),
/// so the program still learns that its owner died. glibc's `DEQUEUE_MUTEX`
/// takes it off this thread's robust list first.
fn mutex_restore_dead(addr: usize) {
    // SAFETY: a robust mutex variable this thread holds (prepare got
    // EOWNERDEAD): it is on this thread's robust list, whose neighbours'
    // `__list` fields are valid while we hold it.
    unsafe {
        let next = ptr_word(addr, M_LIST_NEXT).load(Ordering::Relaxed);
        let prev = ptr_word(addr, M_LIST_PREV).load(Ordering::Relaxed);
        if next != 0 && prev != 0 {
            *((next & !1).wrapping_sub(8) as *mut usize) = prev;
            *((prev & !1) as *mut usize) = next;
        }
        ptr_word(addr, M_LIST_PREV).store(0, Ordering::Relaxed);
        ptr_word(addr, M_LIST_NEXT).store(0, Ordering::Relaxed);
        word(addr, M_OWNER).store(0, Ordering::Relaxed);
        let kind = word(addr, M_KIND).load(Ordering::Relaxed);
        let old = word(addr, M_LOCK).swap(FUTEX_OWNER_DIED, Ordering::Release);
        if old & FUTEX_WAITERS != 0 {
            // Robust mutexes wait on shared futexes (glibc:
            // PTHREAD_ROBUST_MUTEX_PSHARED). PI ones would need the kernel's
            // FUTEX_UNLOCK_PI: a waiter there wakes on its timeout, if any.
            if kind & KIND_PI == 0 {
                libc::syscall(
                    libc::SYS_futex,
                    addr as *mut i32,
                    libc::FUTEX_WAKE,
                    1,
                    0,
                    0,
                    0,
                );
            }
        }
    }
}

// ---- rwlock --------------------------------------------------------------

#[link_section = ".text.fg_hot"]
fn rwlock_prepare(addr: usize, acquire: bool, ms: u32) -> Result<u8, c_int> {
    // SAFETY: usable() checked a writable, aligned, rwlock-sized variable.
    let writer = unsafe { word(addr, RW_CUR_WRITER) }.load(Ordering::Relaxed);
    if writer != 0 && writer == sys::gettid() {
        return Ok(MINE);
    }
    let reads = track::reads(addr);
    if reads > 0 {
        // Our own read lock keeps writers out; other readers may be inside.
        return Ok(READS | reads.min(0x7f) as u8);
    }
    if !acquire {
        return Ok(SEEN);
    }
    let l = addr as *mut libc::pthread_rwlock_t;
    // SAFETY: an rwlock variable (see above).
    let mut r = unsafe { libc::pthread_rwlock_trywrlock(l) };
    if r == libc::EBUSY && ms > 0 {
        let ts = timespec(deadline_after(ms));
        // SAFETY: an rwlock variable; ts is a valid absolute time.
        r = unsafe { pthread_rwlock_clockwrlock(l, libc::CLOCK_MONOTONIC, &ts) };
    }
    match r {
        0 => Ok(TAKEN),
        libc::ETIMEDOUT | libc::EBUSY => Ok(TIMED_OUT),
        libc::EDEADLK => Ok(MINE),
        e => Err(e),
    }
}

/// Free, write-held by the child's thread, or read-held by it `k` times.
/// Kept: the process-shared flag, the preference flags. Async-signal-safe.
#[link_section = ".text.fg_hot"]
fn rwlock_child(addr: usize, state: u8) {
    let (readers, wrphase, writers_futex, writer) = if state == MINE {
        (RW_WRPHASE | RW_WRLOCKED, 1, 1, sys::gettid())
    } else if state & READS != 0 {
        (u32::from(state & 0x7f) << RW_READER_SHIFT, 0, 0, 0)
    } else {
        (0, 0, 0, 0)
    };
    // SAFETY: a writable rwlock variable; the child has one thread.
    unsafe {
        // __writers, __pad3, __pad4: no writer waits in the child.
        for off in [4, 16, 20] {
            word(addr, off).store(0, Ordering::Relaxed);
        }
        word(addr, RW_WRPHASE_FUTEX).store(wrphase, Ordering::Relaxed);
        word(addr, RW_WRITERS_FUTEX).store(writers_futex, Ordering::Relaxed);
        word(addr, RW_CUR_WRITER).store(writer, Ordering::Relaxed);
        AtomicU32::from_ptr(addr as *mut u32).store(readers, Ordering::Release);
    }
    debug_assert_eq!(RW_READERS, 0);
}

/// Read locks per thread, for the rwlocks named by `[[lock]]` actions.
///
/// glibc's rwlock counts readers without saying who they are, so whether
/// the forking thread holds a read lock cannot be read from the lock. Once
/// a config has an rwlock action, forkguard's `pthread_rwlock_*rdlock` and
/// `pthread_rwlock_unlock` (interposed, forwarding to glibc's) count each
/// thread's read locks in a small thread-local table. Without such an
/// action they only forward.
mod track {
    use core::cell::Cell;
    use libc::{c_int, pthread_rwlock_t, timespec};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// Distinct rwlocks one thread can hold for reading and still be counted.
    const SLOTS: usize = 8;

    static ON: AtomicBool = AtomicBool::new(false);

    thread_local! {
        static HELD: [Cell<(usize, u32)>; SLOTS] = const { [const { Cell::new((0, 0)) }; SLOTS] };
    }

    pub fn enable() {
        resolve_all();
        ON.store(true, Ordering::Release);
    }

    /// How many read locks this thread holds on `addr`. Async-signal-safe.
    pub fn reads(addr: usize) -> u32 {
        if !ON.load(Ordering::Acquire) {
            return 0;
        }
        HELD.with(|h| {
            h.iter()
                .map(Cell::get)
                .find(|&(a, _)| a == addr)
                .map_or(0, |(_, n)| n)
        })
    }

    fn took(l: *mut pthread_rwlock_t) {
        let addr = l as usize;
        HELD.with(|h| {
            if let Some(c) = h.iter().find(|c| c.get().0 == addr) {
                c.set((addr, c.get().1.saturating_add(1)));
            } else if let Some(c) = h.iter().find(|c| c.get().1 == 0) {
                c.set((addr, 1));
            }
        });
    }

    /// Called before the real unlock: a thread never holds one rwlock for
    /// reading and writing at once, so a counted read lock is what goes.
    fn releasing(l: *mut pthread_rwlock_t) {
        let addr = l as usize;
        HELD.with(|h| {
            if let Some(c) = h.iter().find(|c| c.get().0 == addr && c.get().1 > 0) {
                let n = c.get().1 - 1;
                c.set(if n == 0 { (0, 0) } else { (addr, n) });
            }
        });
    }

    /// The next definition of `name` (glibc's), looked up once.
    fn next(slot: &AtomicUsize, name: &str) -> usize {
        let mut p = slot.load(Ordering::Acquire);
        if p == 0 {
            let mut buf = [0u8; 32];
            for (d, s) in buf.iter_mut().zip(name.bytes().take(31)) {
                *d = s;
            }
            // SAFETY: RTLD_NEXT lookup of a libc function by a NUL-terminated
            // name (buf ends with at least one 0).
            p = unsafe { libc::dlsym(libc::RTLD_NEXT, buf.as_ptr().cast()) } as usize;
            slot.store(p, Ordering::Release);
        }
        p
    }

    macro_rules! forward {
        ($name:ident, $real:ident, ($($arg:ident: $ty:ty),*), $after:expr) => {
            static $real: AtomicUsize = AtomicUsize::new(0);

            /// Forwards to glibc's; counts read locks when tracking is on.
            ///
            /// # Safety
            /// Same contract as glibc's function of that name.
            #[no_mangle]
            pub unsafe extern "C" fn $name(l: *mut pthread_rwlock_t $(, $arg: $ty)*) -> c_int {
                let p = next(&$real, stringify!($name));
                if p == 0 {
                    return libc::ENOSYS;
                }
                type Real = unsafe extern "C" fn(*mut pthread_rwlock_t $(, $ty)*) -> c_int;
                // SAFETY: p is glibc's function of the same name and type.
                let f = unsafe { core::mem::transmute::<usize, Real>(p) };
                let on = ON.load(Ordering::Acquire);
                if on && !$after {
                    releasing(l);
                }
                // SAFETY: the caller's arguments, passed on unchanged.
                let r = unsafe { f(l $(, $arg)*) };
                if on && $after && r == 0 {
                    took(l);
                }
                r
            }
        };
    }

    forward!(pthread_rwlock_rdlock, RDLOCK, (), true);
    forward!(pthread_rwlock_tryrdlock, TRYRDLOCK, (), true);
    forward!(pthread_rwlock_timedrdlock, TIMEDRDLOCK, (t: *const timespec), true);
    forward!(pthread_rwlock_clockrdlock, CLOCKRDLOCK, (c: libc::clockid_t, t: *const timespec), true);
    forward!(pthread_rwlock_unlock, UNLOCK, (), false);

    /// Every forwarder's target, looked up now (at load) rather than at
    /// first use, which may be in a child or a signal handler.
    fn resolve_all() {
        next(&RDLOCK, "pthread_rwlock_rdlock");
        next(&TRYRDLOCK, "pthread_rwlock_tryrdlock");
        next(&TIMEDRDLOCK, "pthread_rwlock_timedrdlock");
        next(&CLOCKRDLOCK, "pthread_rwlock_clockrdlock");
        next(&UNLOCK, "pthread_rwlock_unlock");
    }
}

// ---- spinlock --------------------------------------------------------------

/// The value of a free `pthread_spinlock_t` (1 on x86-64, 0 elsewhere),
/// learned from `pthread_spin_init` once. Async-signal-safe after the
/// first call (which prepare makes, before any child exists).
#[link_section = ".text.fg_hot"]
fn spin_free() -> i32 {
    static FREE: AtomicI32 = AtomicI32::new(i32::MIN);
    let v = FREE.load(Ordering::Relaxed);
    if v != i32::MIN {
        return v;
    }
    let mut s: libc::pthread_spinlock_t = 0;
    // SAFETY: initialises a local spinlock.
    unsafe { libc::pthread_spin_init(&mut s, libc::PTHREAD_PROCESS_PRIVATE) };
    FREE.store(s, Ordering::Relaxed);
    s
}

#[link_section = ".text.fg_hot"]
fn spin_prepare(addr: usize, acquire: bool, ms: u32) -> Result<u8, c_int> {
    spin_free();
    if !acquire {
        return Ok(SEEN);
    }
    // SAFETY: usable() checked a writable, aligned spinlock variable.
    let try_ = || unsafe { libc::pthread_spin_trylock(addr as *mut libc::pthread_spinlock_t) } == 0;
    Ok(try_until(ms, try_))
}

// ---- semaphore -------------------------------------------------------------

#[link_section = ".text.fg_hot"]
fn sem_prepare(addr: usize, acquire: bool, ms: u32) -> Result<u8, c_int> {
    if !acquire {
        return Ok(SEEN);
    }
    let s = addr as *mut libc::sem_t;
    // SAFETY: usable() checked a writable, aligned sem_t variable.
    if unsafe { libc::sem_trywait(s) } == 0 {
        return Ok(TAKEN);
    }
    if sys::errno() != libc::EAGAIN {
        return Err(sys::errno());
    }
    if ms == 0 {
        return Ok(TIMED_OUT);
    }
    let ts = timespec(deadline_after(ms));
    loop {
        // SAFETY: as above; ts is a valid absolute time.
        if unsafe { sem_clockwait(s, libc::CLOCK_MONOTONIC, &ts) } == 0 {
            return Ok(TAKEN);
        }
        match sys::errno() {
            libc::EINTR => continue,
            libc::ETIMEDOUT | libc::EAGAIN => return Ok(TIMED_OUT),
            e => return Err(e),
        }
    }
}

/// A semaphore has no owner: it is treated as a lock. The child gets back
/// the unit prepare took; otherwise at least one unit, since a thread that
/// held it does not exist in the child. Waiters are forgotten (none exist).
/// Async-signal-safe.
#[link_section = ".text.fg_hot"]
fn sem_child(addr: usize, state: u8) {
    // SAFETY: usable() checked a writable, 8-byte-or-better aligned sem_t
    // (glibc's starts with a 64-bit word: value | nwaiters << 32).
    let data = unsafe { AtomicU64::from_ptr(addr as *mut u64) };
    let value = (data.load(Ordering::Relaxed) & 0xffff_ffff) as u32;
    let value = if state == TAKEN {
        value.saturating_add(1)
    } else {
        value.max(1)
    };
    data.store(u64::from(value), Ordering::Release);
}

// ---- stdio -----------------------------------------------------------------

/// The `FILE *` stored in the variable at `addr` (null if none).
fn file_of(addr: usize) -> *mut libc::FILE {
    // SAFETY: usable() checked a writable, aligned pointer-sized variable.
    unsafe { AtomicPtr::from_ptr(addr as *mut *mut libc::FILE) }.load(Ordering::Acquire)
}

/// glibc's `_IO_lock_t` of a FILE, or 0.
fn io_lock(f: *mut libc::FILE) -> usize {
    if f.is_null() {
        return 0;
    }
    // SAFETY: f is a live glibc FILE (the program's stream variable); its
    // `_lock` pointer is at offset 136 on 64-bit glibc.
    unsafe { ptr_word(f as usize, FILE_LOCK) }.load(Ordering::Relaxed)
}

#[link_section = ".text.fg_hot"]
fn stdio_prepare(addr: usize, acquire: bool, ms: u32) -> Result<u8, c_int> {
    let f = file_of(addr);
    let lk = io_lock(f);
    if lk == 0 {
        return Ok(SEEN);
    }
    // SAFETY: lk points at the FILE's {int lock; int cnt; void *owner}.
    let (owner, cnt) = unsafe {
        (
            ptr_word(lk, 8).load(Ordering::Relaxed),
            word(lk, 4).load(Ordering::Relaxed),
        )
    };
    // SAFETY: pthread_self has no preconditions.
    if owner != 0 && owner == unsafe { libc::pthread_self() } as usize {
        return Ok(MINE | cnt.clamp(1, 0x3f) as u8);
    }
    if !acquire {
        return Ok(SEEN);
    }
    // SAFETY: f is a live FILE.
    Ok(try_until(ms, || unsafe { ftrylockfile(f) } == 0))
}

/// The FILE's lock: free, or held by this thread with the forking
/// thread's count. Runs after glibc's own reset of FILE locks (done only
/// when the parent had several threads, and always to free, which breaks
/// the forking thread's `funlockfile`). Async-signal-safe.
#[link_section = ".text.fg_hot"]
fn stdio_child(addr: usize, state: u8) {
    let lk = io_lock(file_of(addr));
    if lk == 0 {
        return;
    }
    let (lock, cnt, owner) = if state & (MINE | READS) == MINE {
        // SAFETY: pthread_self has no preconditions (a register read).
        (1, i32::from(state & 0x3f), unsafe { libc::pthread_self() }
            as usize)
    } else {
        (0, 0, 0)
    };
    // SAFETY: lk points at the FILE's lock; the child has one thread.
    unsafe {
        ptr_word(lk, 8).store(owner, Ordering::Relaxed);
        word(lk, 4).store(cnt, Ordering::Relaxed);
        word(lk, 0).store(lock, Ordering::Release);
    }
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
    match l.spec.kind {
        LockKind::Mutex => {
            // SAFETY: a resolved mutex variable (read only).
            let owner = unsafe { mutex_owner(addr) };
            // SAFETY: as above.
            let lock = unsafe { word(addr, M_LOCK) }.load(Ordering::Relaxed);
            if owner != 0 {
                held.str("by tid ").i64(i64::from(owner));
                if owner == me {
                    held.str(" (the forking thread)");
                }
            } else if lock & !PP_CEILING_MASK != 0 {
                held.str("(owner unknown)");
            }
        }
        LockKind::Rwlock => {
            // SAFETY: a resolved rwlock variable (read only).
            let writer = unsafe { word(addr, RW_CUR_WRITER) }.load(Ordering::Relaxed);
            // SAFETY: as above.
            let readers = unsafe { AtomicU32::from_ptr(addr as *mut u32) }.load(Ordering::Relaxed);
            if writer != 0 {
                held.str("for writing by tid ").i64(i64::from(writer));
                if writer == me {
                    held.str(" (the forking thread)");
                }
            } else if readers >> RW_READER_SHIFT != 0 {
                held.str("for reading by ")
                    .u64(u64::from(readers >> RW_READER_SHIFT))
                    .str(" reader(s)");
                let mine = track::reads(addr);
                if mine > 0 {
                    held.str(", ")
                        .u64(u64::from(mine))
                        .str(" of them the forking thread");
                }
            }
        }
        LockKind::Spinlock => {
            // SAFETY: a resolved spinlock variable (read only).
            if unsafe { word(addr, 0) }.load(Ordering::Relaxed) != spin_free() {
                held.str("(a spinlock records no owner)");
            }
        }
        LockKind::Semaphore => {
            // SAFETY: a resolved sem_t variable (read only).
            if unsafe { word(addr, 0) }.load(Ordering::Relaxed) == 0 {
                held.str("(value 0)");
            }
        }
        LockKind::Stdio => {
            let lk = io_lock(file_of(addr));
            if lk != 0 {
                // SAFETY: the FILE's lock (read only).
                let owner = unsafe { ptr_word(lk, 8) }.load(Ordering::Relaxed);
                // SAFETY: pthread_self has no preconditions.
                let self_ = unsafe { libc::pthread_self() } as usize;
                if owner == self_ {
                    held.str("by the forking thread");
                } else if owner != 0 {
                    held.str("by another thread");
                }
            }
        }
    }
}
