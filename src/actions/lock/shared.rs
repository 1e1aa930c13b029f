//! What every lock type shares: the record of what prepare did (one byte
//! per action), atomic access to a lock's fields, and the waits.

use crate::os::sys;
use libc::c_int;
use std::sync::atomic::{AtomicI32, AtomicUsize};

// What prepare did, per action (`ForkState::scratch`).

/// Prepare did not look (unresolved symbol, or never ran).
pub(super) const NONE: u8 = 0;
/// Looked: not held by the forking thread; nothing taken.
pub(super) const SEEN: u8 = 1;
/// Taken by prepare: the parent releases it.
pub(super) const TAKEN: u8 = 2;
/// A robust mutex taken with `EOWNERDEAD`: its owner died. The parent and
/// the child put the "owner died" state back, for the program to recover.
pub(super) const TAKEN_DEAD: u8 = 3;
/// Could not be taken within the timeout.
pub(super) const TIMED_OUT: u8 = 4;
/// Held by the forking thread (mutex, rwlock for writing, stdio); for
/// stdio the low six bits are the recursion count.
pub(super) const MINE: u8 = 0x40;
/// rwlock read-held by the forking thread: the low seven bits count how
/// many times.
pub(super) const READS: u8 = 0x80;

pub(super) fn err_of(r: c_int) -> Result<(), c_int> {
    if r == 0 {
        Ok(())
    } else {
        Err(r)
    }
}

/// CLOCK_MONOTONIC nanoseconds `ms` from now. Read only once a lock turned
/// out to be busy: an uncontended prepare makes no clock call.
pub(super) fn deadline_after(ms: u32) -> u64 {
    sys::now_ns().saturating_add(u64::from(ms) * 1_000_000)
}

/// `try_` until it succeeds or `ms` passed, sleeping a little in between
/// (spinlocks and FILE locks have no timed lock call).
pub(super) fn try_until(ms: u32, mut try_: impl FnMut() -> bool) -> u8 {
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
pub(super) fn wait_a_little(deadline: u64) -> bool {
    let now = sys::now_ns();
    if now >= deadline {
        return false;
    }
    let ts = sys::timespec((deadline - now).min(50_000));
    // SAFETY: ts is a valid duration; a signal cannot interrupt (blocked).
    unsafe { crate::os::clib::nanosleep(&ts, core::ptr::null_mut()) };
    true
}

/// A 32-bit field of the lock at `addr + off`, for atomic access.
///
/// # Safety
/// `addr + off` must be 4-byte aligned and valid for the returned lifetime.
pub(super) unsafe fn word<'a>(addr: usize, off: usize) -> &'a AtomicI32 {
    // SAFETY: per the contract.
    unsafe { AtomicI32::from_ptr(addr.wrapping_add(off) as *mut i32) }
}

/// A pointer-sized field, for atomic access.
///
/// # Safety
/// As for [`word`], 8-byte aligned.
pub(super) unsafe fn ptr_word<'a>(addr: usize, off: usize) -> &'a AtomicUsize {
    // SAFETY: per the contract.
    unsafe { AtomicUsize::from_ptr(addr.wrapping_add(off) as *mut usize) }
}
