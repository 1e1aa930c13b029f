//! `type = "rwlock"`: `pthread_rwlock_t`, and the per-thread count of
//! read locks that tells the forking thread's own read locks apart.

use super::shared::*;
use crate::os::buf::Buf;
use crate::os::sys;
use libc::c_int;
use std::sync::atomic::{AtomicU32, Ordering};

const RW_READERS: usize = 0;
const RW_WRPHASE_FUTEX: usize = 8;
const RW_WRITERS_FUTEX: usize = 12;
const RW_CUR_WRITER: usize = 24;
const RW_SHARED: usize = 28;
/// `__readers` bits: write phase, write-locked; readers from bit 3.
const RW_WRPHASE: u32 = 1;
const RW_WRLOCKED: u32 = 2;
const RW_READER_SHIFT: u32 = 3;

#[link_section = ".text.fg_hot"]
pub(super) fn rwlock_prepare(addr: usize, acquire: bool, ms: u32) -> Result<u8, c_int> {
    // SAFETY: usable() checked a writable, aligned, rwlock-sized variable.
    let writer = unsafe { word(addr, RW_CUR_WRITER) }.load(Ordering::Relaxed);
    if writer != 0 && writer == sys::gettid() {
        return Ok(MINE);
    }
    let reads = crate::actions::held::my_reads(addr);
    if reads > 0 {
        // Our own read lock keeps writers out; other readers may be inside.
        return Ok(READS | reads.min(0x7f) as u8);
    }
    if !acquire {
        return Ok(SEEN);
    }
    let l = addr as *mut libc::pthread_rwlock_t;
    // SAFETY: an rwlock variable (see above).
    let mut r = unsafe { crate::os::clib::pthread_rwlock_trywrlock(l) };
    if r == libc::EBUSY && ms > 0 {
        let ts = sys::timespec(deadline_after(ms));
        // SAFETY: an rwlock variable; ts is a valid absolute time.
        r = unsafe { crate::os::clib::pthread_rwlock_clockwrlock(l, libc::CLOCK_MONOTONIC, &ts) };
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
pub(super) fn rwlock_child(addr: usize, state: u8) {
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

/// Audit: is it held now, and by whom (see [`super::held`]).
pub(super) fn rwlock_held(addr: usize, me: libc::pid_t, held: &mut Buf<160>) {
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
        let mine = crate::actions::held::my_reads(addr);
        if mine > 0 {
            held.str(", ")
                .u64(u64::from(mine))
                .str(" of them the forking thread");
        }
    }
}

/// `held_locks`: an rwlock's `__readers` word, current writer, and
/// process-shared flag.
pub fn rwlock_state(addr: usize) -> (u32, i32, bool) {
    // SAFETY: addr is an rwlock the program passed to a lock call.
    unsafe {
        (
            AtomicU32::from_ptr(addr as *mut u32).load(Ordering::Relaxed),
            word(addr, RW_CUR_WRITER).load(Ordering::Relaxed),
            word(addr, RW_SHARED).load(Ordering::Relaxed) != 0,
        )
    }
}

/// `held_locks`: the words of `addr` look like a glibc rwlock (its futex
/// words 0, 1 or 2 — with the waiters bit —, padding zero, a known
/// preference): see `mutex_plausible`. Reads only.
pub fn rwlock_plausible(addr: usize) -> bool {
    // SAFETY: addr is an rwlock the program passed to a lock call; reads only.
    let (wrphase, writers, pad3, pad4, shared, flags) = unsafe {
        (
            word(addr, RW_WRPHASE_FUTEX).load(Ordering::Relaxed),
            word(addr, RW_WRITERS_FUTEX).load(Ordering::Relaxed),
            word(addr, 16).load(Ordering::Relaxed),
            word(addr, 20).load(Ordering::Relaxed),
            word(addr, RW_SHARED).load(Ordering::Relaxed),
            word(addr, 48).load(Ordering::Relaxed),
        )
    };
    (0..=3).contains(&wrphase)
        && (0..=3).contains(&writers)
        && pad3 == 0
        && pad4 == 0
        && (0..=1).contains(&shared)
        && (0..=2).contains(&flags)
}

/// `held_locks`, child: write-held by the child's thread (`writer` != 0),
/// or read-held `reads` times by it, or free. Async-signal-safe.
pub fn rwlock_make(addr: usize, writer: i32, reads: u32) {
    let state = if writer != 0 {
        MINE
    } else if reads > 0 {
        READS | reads.min(0x7f) as u8
    } else {
        SEEN
    };
    rwlock_child(addr, state)
}
