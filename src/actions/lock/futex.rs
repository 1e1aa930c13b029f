//! `type = "futex"` (SPEC 8.2): a 32-bit futex word, 0 free, 1 locked,
//! 2 locked with waiters. glibc's internal `__libc_lock_t` and GLib's
//! `GMutex`/`G_LOCK` are such words. And glibc's `__libc_lock_recursive_t`
//! / `_IO_lock_t` (`{ int lock; int cnt; void *owner }`), used by the
//! `libc_locks` profile only.
//!
//! Taken the way its owners take it (glibc's `lll_lock`): compare-and-swap
//! 0 -> 1; else swap in 2 (so the releaser knows to wake) and
//! `FUTEX_WAIT` while it reads 2, until the timeout. Released like
//! `lll_unlock`: swap in 0, and wake one waiter when it was 2. The child
//! stores 0. A plain futex word records no owner, so whether the forking
//! thread holds it cannot be told: with `acquire` such a lock waits for
//! the timeout, and is reset in the child all the same.
//!
//! The wait is private (`FUTEX_PRIVATE_FLAG`), as glibc's and GLib's are:
//! these words are never shared between processes.

use super::shared::{deadline_after, ptr_word, word, MINE, SEEN, TAKEN, TIMED_OUT};
use crate::os::buf::Buf;
use crate::os::sys;
use libc::c_int;
use std::sync::atomic::Ordering;

/// Bytes of a futex word, and of a recursive lock.
pub const FUTEX_SIZE: usize = 4;
pub const RECURSIVE_SIZE: usize = 16;
const R_COUNT: usize = 4;
const R_OWNER: usize = 8;

/// Take the word at `addr` within `ms` (`acquire`), or only look (`reinit`).
/// Parent side.
#[link_section = ".text.fg_hot"]
pub fn prepare(addr: usize, acquire: bool, ms: u32) -> Result<u8, c_int> {
    if !acquire {
        return Ok(SEEN);
    }
    // SAFETY: callers checked a writable, 4-byte aligned word.
    let w = unsafe { word(addr, 0) };
    // A free word is taken here (the common case: glibc's locks are
    // rarely held at a fork); a held one is waited for in `lock`.
    if w.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
    {
        return Ok(TAKEN);
    }
    Ok(if lock(addr, ms) { TAKEN } else { TIMED_OUT })
}

/// glibc's `lll_lock`, with a deadline, for a word that was held a moment
/// ago. Parent side.
#[cold]
#[inline(never)]
fn lock(addr: usize, ms: u32) -> bool {
    // SAFETY: callers checked a writable, 4-byte aligned word.
    let w = unsafe { word(addr, 0) };
    if w.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
    {
        return true;
    }
    let deadline = deadline_after(ms);
    loop {
        // 2: locked with (possibly) waiters; whoever releases wakes one.
        if w.swap(2, Ordering::Acquire) == 0 {
            return true;
        }
        let now = sys::now_ns();
        if now >= deadline {
            return false;
        }
        // SAFETY: as above.
        unsafe { sys::futex_wait(addr, 2, deadline - now) };
    }
}

/// glibc's `lll_unlock`. Parent side.
#[link_section = ".text.fg_hot"]
pub fn release(addr: usize) {
    // SAFETY: a futex word prepare took.
    if unsafe { word(addr, 0) }.swap(0, Ordering::Release) > 1 {
        // SAFETY: as above.
        unsafe { sys::futex_wake(addr) };
    }
}

/// Child: free. Async-signal-safe (one store).
#[link_section = ".text.fg_hot"]
pub fn child(addr: usize, _state: u8) {
    // SAFETY: a writable, aligned futex word; the child has one thread.
    unsafe { word(addr, 0) }.store(0, Ordering::Relaxed);
}

// ---- glibc's recursive lock ------------------------------------------------

/// The forking thread's `THREAD_SELF`, which glibc records as the owner
/// (`pthread_self()` is that pointer). Parent side.
fn me() -> usize {
    // SAFETY: pthread_self cannot fail.
    unsafe { crate::os::clib::pthread_self() as usize }
}

/// Held by the forking thread (never taken again), else taken like glibc's
/// `__libc_lock_lock_recursive` (`acquire`). Parent side.
#[link_section = ".text.fg_hot"]
pub fn recursive_prepare(addr: usize, acquire: bool, ms: u32) -> Result<u8, c_int> {
    // SAFETY: callers checked a writable, 8-byte aligned 16-byte lock.
    let owner = unsafe { ptr_word(addr, R_OWNER) };
    if owner.load(Ordering::Relaxed) == me() {
        return Ok(MINE);
    }
    if !acquire {
        return Ok(SEEN);
    }
    if !lock(addr, ms) {
        return Ok(TIMED_OUT);
    }
    owner.store(me(), Ordering::Relaxed);
    // SAFETY: as above.
    unsafe { word(addr, R_COUNT) }.store(1, Ordering::Relaxed);
    Ok(TAKEN)
}

/// `__libc_lock_unlock_recursive` of the one level prepare took.
#[link_section = ".text.fg_hot"]
pub fn recursive_release(addr: usize) {
    // SAFETY: a recursive lock prepare took.
    unsafe {
        word(addr, R_COUNT).store(0, Ordering::Relaxed);
        ptr_word(addr, R_OWNER).store(0, Ordering::Relaxed);
    }
    release(addr);
}

/// Child: free; or, where the forking thread held it, kept as it is (the
/// child's thread has the same `THREAD_SELF`, so it still owns it).
/// Async-signal-safe (stores).
#[link_section = ".text.fg_hot"]
pub fn recursive_child(addr: usize, state: u8) {
    if state == MINE {
        return;
    }
    // SAFETY: a writable recursive lock; the child has one thread.
    unsafe {
        word(addr, R_COUNT).store(0, Ordering::Relaxed);
        ptr_word(addr, R_OWNER).store(0, Ordering::Relaxed);
        word(addr, 0).store(0, Ordering::Relaxed);
    }
}

/// Audit: a futex word records no owner; say whether it is held.
pub(super) fn futex_held(addr: usize, _me: libc::pid_t, held: &mut Buf<160>) {
    // SAFETY: a resolved futex word (read only).
    if unsafe { word(addr, 0) }.load(Ordering::Relaxed) != 0 {
        held.str("(a futex word records no owner)");
    }
}
