//! `type = "semaphore"`: `sem_t`, treated as a lock.

use super::shared::*;
use crate::os::buf::Buf;
use crate::os::sys;
use libc::c_int;
use std::sync::atomic::{AtomicU64, Ordering};

#[link_section = ".text.fg_hot"]
pub(super) fn sem_prepare(addr: usize, acquire: bool, ms: u32) -> Result<u8, c_int> {
    if !acquire {
        return Ok(SEEN);
    }
    let s = addr as *mut libc::sem_t;
    // SAFETY: usable() checked a writable, aligned sem_t variable.
    if unsafe { crate::os::clib::sem_trywait(s) } == 0 {
        return Ok(TAKEN);
    }
    if sys::errno() != libc::EAGAIN {
        return Err(sys::errno());
    }
    if ms == 0 {
        return Ok(TIMED_OUT);
    }
    let ts = sys::timespec(deadline_after(ms));
    loop {
        // SAFETY: as above; ts is a valid absolute time.
        if unsafe { crate::os::clib::sem_clockwait(s, libc::CLOCK_MONOTONIC, &ts) } == 0 {
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
pub(super) fn sem_child(addr: usize, state: u8) {
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

/// Audit: is it held now, and by whom (see [`super::held`]).
pub(super) fn semaphore_held(addr: usize, _me: libc::pid_t, held: &mut Buf<160>) {
    // SAFETY: a resolved sem_t variable (read only).
    if unsafe { word(addr, 0) }.load(Ordering::Relaxed) == 0 {
        held.str("(value 0)");
    }
}

/// `held_locks`: a semaphore's value (None: process-shared, never
/// touched). glibc's `private` is LLL_PRIVATE (0) or LLL_SHARED (128).
pub fn sem_value(addr: usize) -> Option<u32> {
    // SAFETY: addr is a sem_t the program passed to a semaphore call.
    let (data, private) = unsafe {
        (
            AtomicU64::from_ptr(addr as *mut u64).load(Ordering::Relaxed),
            word(addr, 8).load(Ordering::Relaxed),
        )
    };
    (private == 0).then_some((data & 0xffff_ffff) as u32)
}

/// `held_locks`, child: value 1, no waiters. Async-signal-safe.
pub fn sem_make_free(addr: usize) {
    // SAFETY: as above; the child has one thread.
    unsafe { AtomicU64::from_ptr(addr as *mut u64) }.store(1, Ordering::Release);
}
