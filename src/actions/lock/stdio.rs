//! `type = "stdio"`: the lock of a `FILE *` variable (glibc's `_IO_lock_t`).

use super::shared::*;
use crate::os::buf::Buf;
use libc::c_int;
use std::sync::atomic::{AtomicPtr, Ordering};

const FILE_LOCK: usize = 136;

/// The `FILE *` stored in the variable at `addr` (null if none).
pub(super) fn file_of(addr: usize) -> *mut libc::FILE {
    // SAFETY: usable() checked a writable, aligned pointer-sized variable.
    unsafe { AtomicPtr::from_ptr(addr as *mut *mut libc::FILE) }.load(Ordering::Acquire)
}

/// glibc's `_IO_lock_t` of a FILE, or 0.
pub(super) fn io_lock(f: *mut libc::FILE) -> usize {
    if f.is_null() {
        return 0;
    }
    // SAFETY: f is a live glibc FILE (the program's stream variable); its
    // `_lock` pointer is at offset 136 on 64-bit glibc.
    unsafe { ptr_word(f as usize, FILE_LOCK) }.load(Ordering::Relaxed)
}

#[link_section = ".text.fg_hot"]
pub(super) fn stdio_prepare(addr: usize, acquire: bool, ms: u32) -> Result<u8, c_int> {
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
    if owner != 0 && owner == unsafe { crate::os::clib::pthread_self() } as usize {
        return Ok(MINE | cnt.clamp(1, 0x3f) as u8);
    }
    if !acquire {
        return Ok(SEEN);
    }
    // SAFETY: f is a live FILE.
    Ok(try_until(
        ms,
        || unsafe { crate::os::clib::ftrylockfile(f) } == 0,
    ))
}

/// The FILE's lock: free, or held by this thread with the forking
/// thread's count. Runs after glibc's own reset of FILE locks (done only
/// when the parent had several threads, and always to free, which breaks
/// the forking thread's `funlockfile`). Async-signal-safe.
#[link_section = ".text.fg_hot"]
pub(super) fn stdio_child(addr: usize, state: u8) {
    let lk = io_lock(file_of(addr));
    if lk == 0 {
        return;
    }
    let (lock, cnt, owner) = if state & (MINE | READS) == MINE {
        // SAFETY: pthread_self has no preconditions (a register read).
        (
            1,
            i32::from(state & 0x3f),
            unsafe { crate::os::clib::pthread_self() } as usize,
        )
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

/// Audit: is it held now, and by whom (see [`super::held`]).
pub(super) fn stdio_held(addr: usize, _me: libc::pid_t, held: &mut Buf<160>) {
    let lk = io_lock(file_of(addr));
    if lk != 0 {
        // SAFETY: the FILE's lock (read only).
        let owner = unsafe { ptr_word(lk, 8) }.load(Ordering::Relaxed);
        // SAFETY: pthread_self has no preconditions.
        let self_ = unsafe { crate::os::clib::pthread_self() } as usize;
        if owner == self_ {
            held.str("by the forking thread");
        } else if owner != 0 {
            held.str("by another thread");
        }
    }
}
