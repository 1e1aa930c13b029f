//! The trackers the lock entry points jump to while tracking is on.
//!
//! A lock or wait call records the lock in the thread's record, then calls
//! glibc; a failed call forgets it again. An unlock or post calls glibc,
//! then forgets it (in that order: see `record`). Each tracker is a few
//! loads and stores on top of glibc's call (measured in
//! docs/BENCHMARKS.md).
//!
//! While this thread runs fork phases its record is swapped out: the fork
//! handlers of other libraries (which glibc runs inside the fork) then find
//! every lock forkguard took for the fork already theirs (the call returns
//! 0 without waiting, and the matching unlock does nothing), and their own
//! locking is not recorded (they undo it themselves).
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use super::record::{self, Record, MUTEX, RW_READ, RW_WRITE, SEM, SPIN};
use super::real::{bound, slot};
use core::ffi::c_void;
use libc::{c_int, c_uint, clockid_t, timespec};

type P = *mut c_void;

/// Glibc's function in slot `$i`, typed.
macro_rules! real {
    ($i:expr, fn($($t:ty),*)) => {{
        // Slot $i holds glibc's function of this signature (bound at load,
        // before any tracker was installed); callers wrap this in `unsafe`.
        core::mem::transmute::<usize, unsafe extern "C" fn($($t),*) -> c_int>(bound($i))
    }};
}

/// Around a lock call: record, call, forget on failure.
#[inline(always)]
fn locking(
    addr: P,
    kind: u8,
    ret: usize,
    ok: fn(c_int) -> bool,
    call: impl FnOnce() -> c_int,
) -> c_int {
    match record::mine() {
        Some(r) => {
            record::push(r, addr as usize, kind, ret);
            let rv = call();
            if !ok(rv) {
                record::pop(r, addr as usize);
            }
            rv
        }
        None => locking_cold(addr, kind, ret, ok, |_| call()),
    }
}

#[cold]
#[inline(never)]
fn locking_cold(
    addr: P,
    kind: u8,
    ret: usize,
    ok: fn(c_int) -> bool,
    call: impl FnOnce(P) -> c_int,
) -> c_int {
    if let Some(f) = super::fork_in_progress() {
        // A fork handler on the forking thread.
        if f.took(addr as usize) {
            return 0;
        }
        return call(addr);
    }
    let r = record::claim();
    record::push(r, addr as usize, kind, ret);
    let rv = call(addr);
    if !ok(rv) {
        record::pop(r, addr as usize);
    }
    rv
}

/// Around a blocking lock call, which fails only on misuse: record, then
/// jump to glibc (a tail call: no frame, no check). An entry left by a
/// failed call is harmless: the fork decides from the lock's state, and
/// the unlock that never comes leaves it to the record's clean-up.
#[inline(always)]
fn locking_tail(addr: P, kind: u8, ret: usize) -> bool {
    match record::mine() {
        Some(r) => {
            record::push(r, addr as usize, kind, ret);
            true
        }
        None => false,
    }
}

/// Around an unlock: call, then forget.
#[inline(always)]
fn unlocking(addr: P, call: fn(P) -> c_int) -> c_int {
    match record::mine() {
        Some(r) => {
            let rv = call(addr);
            if rv == 0 {
                record::pop(r, addr as usize);
            }
            rv
        }
        None => unlocking_cold(addr, call),
    }
}

#[cold]
#[inline(never)]
fn unlocking_cold(addr: P, call: fn(P) -> c_int) -> c_int {
    if super::fork_in_progress().is_some_and(|f| f.took(addr as usize)) {
        return 0;
    }
    call(addr)
}

fn mutex_ok(rv: c_int) -> bool {
    rv == 0 || rv == libc::EOWNERDEAD
}

fn zero_ok(rv: c_int) -> bool {
    rv == 0
}

// ---- mutex ---------------------------------------------------------------

pub unsafe extern "C" fn mutex_lock(m: P, ret: usize) -> c_int {
    if !locking_tail(m, MUTEX, ret) {
        return locking_cold(m, MUTEX, ret, mutex_ok, |p| {
            // SAFETY: the caller's arguments, passed on unchanged.
            unsafe { real!(slot::MUTEX_LOCK, fn(P))(p) }
        });
    }
    // SAFETY: as above.
    unsafe { real!(slot::MUTEX_LOCK, fn(P))(m) }
}

pub unsafe extern "C" fn mutex_trylock(m: P, ret: usize) -> c_int {
    locking(m, MUTEX, ret, mutex_ok, || {
        // SAFETY: as above.
        unsafe { real!(slot::MUTEX_TRYLOCK, fn(P))(m) }
    })
}

pub unsafe extern "C" fn mutex_timedlock(m: P, t: *const timespec, ret: usize) -> c_int {
    locking(m, MUTEX, ret, mutex_ok, || {
        // SAFETY: as above.
        unsafe { real!(slot::MUTEX_TIMEDLOCK, fn(P, *const timespec))(m, t) }
    })
}

pub unsafe extern "C" fn mutex_clocklock(
    m: P,
    c: clockid_t,
    t: *const timespec,
    ret: usize,
) -> c_int {
    locking(m, MUTEX, ret, mutex_ok, || {
        // SAFETY: as above.
        unsafe { real!(slot::MUTEX_CLOCKLOCK, fn(P, clockid_t, *const timespec))(m, c, t) }
    })
}

pub unsafe extern "C" fn mutex_unlock(m: P) -> c_int {
    unlocking(m, |p| {
        // SAFETY: the caller's argument, passed on unchanged.
        unsafe { real!(slot::MUTEX_UNLOCK, fn(P))(p) }
    })
}

// ---- rwlock --------------------------------------------------------------

pub unsafe extern "C" fn rw_rdlock(l: P, ret: usize) -> c_int {
    if !locking_tail(l, RW_READ, ret) {
        return locking_cold(l, RW_READ, ret, zero_ok, |p| {
            // SAFETY: the caller's arguments, passed on unchanged.
            unsafe { real!(slot::RW_RDLOCK, fn(P))(p) }
        });
    }
    // SAFETY: as above.
    unsafe { real!(slot::RW_RDLOCK, fn(P))(l) }
}

pub unsafe extern "C" fn rw_tryrdlock(l: P, ret: usize) -> c_int {
    locking(l, RW_READ, ret, zero_ok, || {
        // SAFETY: as above.
        unsafe { real!(slot::RW_TRYRDLOCK, fn(P))(l) }
    })
}

pub unsafe extern "C" fn rw_timedrdlock(l: P, t: *const timespec, ret: usize) -> c_int {
    locking(l, RW_READ, ret, zero_ok, || {
        // SAFETY: as above.
        unsafe { real!(slot::RW_TIMEDRDLOCK, fn(P, *const timespec))(l, t) }
    })
}

pub unsafe extern "C" fn rw_clockrdlock(
    l: P,
    c: clockid_t,
    t: *const timespec,
    ret: usize,
) -> c_int {
    locking(l, RW_READ, ret, zero_ok, || {
        // SAFETY: as above.
        unsafe { real!(slot::RW_CLOCKRDLOCK, fn(P, clockid_t, *const timespec))(l, c, t) }
    })
}

pub unsafe extern "C" fn rw_wrlock(l: P, ret: usize) -> c_int {
    if !locking_tail(l, RW_WRITE, ret) {
        return locking_cold(l, RW_WRITE, ret, zero_ok, |p| {
            // SAFETY: the caller's arguments, passed on unchanged.
            unsafe { real!(slot::RW_WRLOCK, fn(P))(p) }
        });
    }
    // SAFETY: as above.
    unsafe { real!(slot::RW_WRLOCK, fn(P))(l) }
}

pub unsafe extern "C" fn rw_trywrlock(l: P, ret: usize) -> c_int {
    locking(l, RW_WRITE, ret, zero_ok, || {
        // SAFETY: as above.
        unsafe { real!(slot::RW_TRYWRLOCK, fn(P))(l) }
    })
}

pub unsafe extern "C" fn rw_timedwrlock(l: P, t: *const timespec, ret: usize) -> c_int {
    locking(l, RW_WRITE, ret, zero_ok, || {
        // SAFETY: as above.
        unsafe { real!(slot::RW_TIMEDWRLOCK, fn(P, *const timespec))(l, t) }
    })
}

pub unsafe extern "C" fn rw_clockwrlock(
    l: P,
    c: clockid_t,
    t: *const timespec,
    ret: usize,
) -> c_int {
    locking(l, RW_WRITE, ret, zero_ok, || {
        // SAFETY: as above.
        unsafe { real!(slot::RW_CLOCKWRLOCK, fn(P, clockid_t, *const timespec))(l, c, t) }
    })
}

pub unsafe extern "C" fn rw_unlock(l: P) -> c_int {
    unlocking(l, |p| {
        // SAFETY: the caller's argument, passed on unchanged.
        unsafe { real!(slot::RW_UNLOCK, fn(P))(p) }
    })
}

// ---- spinlock --------------------------------------------------------------

pub unsafe extern "C" fn spin_lock(s: P, ret: usize) -> c_int {
    if !locking_tail(s, SPIN, ret) {
        return locking_cold(s, SPIN, ret, zero_ok, |p| {
            // SAFETY: the caller's arguments, passed on unchanged.
            unsafe { real!(slot::SPIN_LOCK, fn(P))(p) }
        });
    }
    // SAFETY: as above.
    unsafe { real!(slot::SPIN_LOCK, fn(P))(s) }
}

pub unsafe extern "C" fn spin_trylock(s: P, ret: usize) -> c_int {
    locking(s, SPIN, ret, zero_ok, || {
        // SAFETY: as above.
        unsafe { real!(slot::SPIN_TRYLOCK, fn(P))(s) }
    })
}

pub unsafe extern "C" fn spin_unlock(s: P) -> c_int {
    unlocking(s, |p| {
        // SAFETY: the caller's argument, passed on unchanged.
        unsafe { real!(slot::SPIN_UNLOCK, fn(P))(p) }
    })
}

// ---- binary semaphores -----------------------------------------------------

/// glibc's `sem_t` is 32 bytes and uses the first 16 (`{ u64 data; int
/// private; int pad; }`): a binary semaphore (created with value 1, not
/// process-shared) is marked in the last 8, keyed by its address so that a
/// copied `sem_t` is not taken for one.
pub(super) const MARK_OFF: usize = 24;
/// The thread id of the semaphore's last taker, 0 once posted: the
/// semaphore says who holds it, as a mutex does (a semaphore may be posted
/// by another thread than its taker, which leaves the taker's record
/// entry behind).
pub(super) const HOLDER_OFF: usize = 16;
pub(super) const MARK: usize = 0x6667_6269_6e61_7279; // "fgbinary"

/// The recorded holder of a binary semaphore (0: none or unknown).
pub fn holder(s: usize) -> i32 {
    // SAFETY: a binary sem_t (checked by the caller): bytes 16..20 are ours.
    unsafe { core::ptr::read_volatile((s + HOLDER_OFF) as *const i32) }
}

/// Record `tid` as the semaphore's holder. Async-signal-safe.
pub fn set_holder(s: usize, tid: i32) {
    // SAFETY: as in holder.
    unsafe { core::ptr::write_volatile((s + HOLDER_OFF) as *mut i32, tid) }
}

fn mark_of(s: P) -> usize {
    MARK ^ (s as usize)
}

/// Was `s` created by `sem_init(s, 0, 1)`? One load.
#[inline(always)]
pub fn is_binary(s: P) -> bool {
    // SAFETY: s is a sem_t (32 bytes, 8-aligned) the caller passed to a
    // semaphore call.
    unsafe { core::ptr::read_volatile((s as usize + MARK_OFF) as *const usize) == mark_of(s) }
}

pub unsafe extern "C" fn sem_init(s: P, pshared: c_int, value: c_uint) -> c_int {
    // SAFETY: as above.
    let rv = unsafe { real!(slot::SEM_INIT, fn(P, c_int, c_uint))(s, pshared, value) };
    if rv == 0 {
        let mark = if pshared == 0 && value == 1 {
            mark_of(s)
        } else {
            0
        };
        // SAFETY: glibc just initialised this 32-byte sem_t; its last 8
        // bytes are not used by glibc.
        unsafe { core::ptr::write_volatile((s as usize + MARK_OFF) as *mut usize, mark) };
    }
    rv
}

pub unsafe extern "C" fn sem_destroy(s: P) -> c_int {
    if is_binary(s) {
        // SAFETY: as in sem_init.
        unsafe { core::ptr::write_volatile((s as usize + MARK_OFF) as *mut usize, 0) };
        record::drop_everywhere(s as usize);
    }
    // SAFETY: the caller's argument, passed on unchanged.
    unsafe { real!(slot::SEM_DESTROY, fn(P))(s) }
}

/// Around a wait: binary semaphores only. A semaphore posted by another
/// thread leaves the taker's entry behind: harmless (the fork decides from
/// the semaphore's value and recorded holder), dropped by `sem_destroy`,
/// and compacted away when the record fills up.
#[inline(always)]
fn waiting(s: P, ret: usize, call: impl FnOnce() -> c_int) -> c_int {
    if !is_binary(s) {
        return call();
    }
    match record::mine() {
        Some(r) => {
            record::push(r, s as usize, SEM, ret);
            let rv = call();
            if rv != 0 {
                record::pop(r, s as usize);
            } else {
                set_holder(
                    s as usize,
                    r.tid.load(core::sync::atomic::Ordering::Relaxed),
                );
            }
            rv
        }
        None => waiting_cold(s, ret, call),
    }
}

#[cold]
#[inline(never)]
fn waiting_cold(s: P, ret: usize, call: impl FnOnce() -> c_int) -> c_int {
    if let Some(f) = super::fork_in_progress() {
        if f.took(s as usize) {
            return 0;
        }
        return call();
    }
    let r: &Record = record::claim();
    record::push(r, s as usize, SEM, ret);
    let rv = call();
    if rv != 0 {
        record::pop(r, s as usize);
    } else {
        set_holder(
            s as usize,
            r.tid.load(core::sync::atomic::Ordering::Relaxed),
        );
    }
    rv
}

pub unsafe extern "C" fn sem_wait(s: P, ret: usize) -> c_int {
    waiting(s, ret, || {
        // SAFETY: as above.
        unsafe { real!(slot::SEM_WAIT, fn(P))(s) }
    })
}

pub unsafe extern "C" fn sem_trywait(s: P, ret: usize) -> c_int {
    waiting(s, ret, || {
        // SAFETY: as above.
        unsafe { real!(slot::SEM_TRYWAIT, fn(P))(s) }
    })
}

pub unsafe extern "C" fn sem_timedwait(s: P, t: *const timespec, ret: usize) -> c_int {
    waiting(s, ret, || {
        // SAFETY: as above.
        unsafe { real!(slot::SEM_TIMEDWAIT, fn(P, *const timespec))(s, t) }
    })
}

pub unsafe extern "C" fn sem_clockwait(
    s: P,
    c: clockid_t,
    t: *const timespec,
    ret: usize,
) -> c_int {
    waiting(s, ret, || {
        // SAFETY: as above.
        unsafe { real!(slot::SEM_CLOCKWAIT, fn(P, clockid_t, *const timespec))(s, c, t) }
    })
}

pub unsafe extern "C" fn sem_post(s: P) -> c_int {
    if !is_binary(s) {
        // SAFETY: as above.
        return unsafe { real!(slot::SEM_POST, fn(P))(s) };
    }
    // Cleared before the post: after it, another thread may take it and
    // record itself.
    set_holder(s as usize, 0);
    unlocking(s, |p| {
        // SAFETY: the caller's argument, passed on unchanged.
        unsafe { real!(slot::SEM_POST, fn(P))(p) }
    })
}
