//! `type = "mutex"`: `pthread_mutex_t`, every kind (normal, recursive,
//! error-checking, robust, PI, priority-ceiling).

use super::shared::*;
use crate::os::buf::Buf;
use crate::os::sys;
use libc::c_int;
use std::sync::atomic::Ordering;

const M_LOCK: usize = 0;
const M_COUNT: usize = 4;
const M_OWNER: usize = 8;
const M_NUSERS: usize = 12;
const M_KIND: usize = 16;
const M_LIST_PREV: usize = 24;
const M_LIST_NEXT: usize = 32;
const KIND_ROBUST: i32 = 0x10;
const KIND_PSHARED: i32 = 0x80;
const KIND_PI: i32 = 0x20;
const KIND_PP: i32 = 0x40;
/// The priority ceiling of a PRIO_PROTECT mutex lives in the lock word.
const PP_CEILING_MASK: i32 = 0xfff8_0000_u32 as i32;
const FUTEX_OWNER_DIED: i32 = 0x4000_0000;
const FUTEX_WAITERS: i32 = 0x8000_0000_u32 as i32;
const FUTEX_TID_MASK: i32 = 0x3fff_ffff;
const OWNER_INCONSISTENT: i32 = i32::MAX;
const OWNER_NOTRECOVERABLE: i32 = i32::MAX - 1;

#[link_section = ".text.fg_hot"]
pub(super) fn mutex_prepare(addr: usize, acquire: bool, ms: u32) -> Result<u8, c_int> {
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
    let mut r = unsafe { crate::os::clib::pthread_mutex_trylock(m) };
    if r == 0 {
        return Ok(TAKEN);
    }
    if r == libc::EBUSY && ms > 0 {
        let ts = sys::timespec(deadline_after(ms));
        // SAFETY: a mutex variable; ts is a valid absolute time.
        r = unsafe { crate::os::clib::pthread_mutex_clocklock(m, libc::CLOCK_MONOTONIC, &ts) };
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
pub(super) unsafe fn mutex_owner(addr: usize) -> i32 {
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
pub(super) fn mutex_child(addr: usize, state: u8) {
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
pub(super) fn mutex_free(addr: usize) {
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
        mutex_reset(addr, 0, ceiling);
    }
}

/// A robust mutex in the "owner died" state: the next lock gets
/// `EOWNERDEAD`. Async-signal-safe.
pub(super) fn mutex_dead(addr: usize) {
    // The dead owner is still counted: glibc discounts it on recovery.
    mutex_reset(addr, 1, FUTEX_OWNER_DIED);
}

/// No owner, no count, off every robust list; `nusers` and the lock word
/// as given (the lock word last, released). Async-signal-safe.
#[inline(always)]
fn mutex_reset(addr: usize, nusers: i32, lock: i32) {
    // SAFETY: a writable mutex variable (all field accesses), and the child
    // has one thread: nothing else touches it.
    unsafe {
        word(addr, M_COUNT).store(0, Ordering::Relaxed);
        word(addr, M_OWNER).store(0, Ordering::Relaxed);
        word(addr, M_NUSERS).store(nusers, Ordering::Relaxed);
        ptr_word(addr, M_LIST_PREV).store(0, Ordering::Relaxed);
        ptr_word(addr, M_LIST_NEXT).store(0, Ordering::Relaxed);
        word(addr, M_LOCK).store(lock, Ordering::Release);
    }
}

/// Held by `tid` (the child's thread): what glibc's lock would have written,
/// recursion count kept. A robust mutex is also put on the thread's robust
/// list, as glibc does (the child starts with an empty one), so that its
/// unlock can take it off. Async-signal-safe.
#[link_section = ".text.fg_hot"]
pub(super) fn mutex_held_by(addr: usize, tid: i32) {
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
pub(super) fn robust_enqueue(addr: usize, pi: bool) {
    let mut head: *mut usize = core::ptr::null_mut();
    let mut len: libc::size_t = 0;
    // SAFETY: get_robust_list(0, ...) writes the calling thread's head
    // pointer and its size.
    let r = unsafe {
        crate::os::clib::syscall(
            libc::SYS_get_robust_list,
            [
                0,
                &mut head as *mut *mut usize as usize,
                &mut len as *mut libc::size_t as usize,
                0,
                0,
                0,
            ],
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
pub(super) fn mutex_restore_dead(addr: usize) {
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
                crate::os::clib::syscall(
                    libc::SYS_futex,
                    [addr, libc::FUTEX_WAKE as usize, 1, 0, 0, 0],
                );
            }
        }
    }
}

/// Audit: is it held now, and by whom (see [`super::held`]).
pub(super) fn mutex_held(addr: usize, me: libc::pid_t, held: &mut Buf<160>) {
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

// ---- for held_locks (actions::held): the same layout, by address ---------

/// A process-shared mutex (its memory may be shared with other processes:
/// never rewritten in a child). glibc sets this bit on robust ones too.
pub fn mutex_shared(addr: usize) -> bool {
    // SAFETY: addr is a mutex the program passed to a lock call.
    unsafe { word(addr, M_KIND) }.load(Ordering::Relaxed) & KIND_PSHARED != 0
}

/// A robust mutex.
pub fn mutex_robust(addr: usize) -> bool {
    // SAFETY: as above.
    unsafe { word(addr, M_KIND) }.load(Ordering::Relaxed) & KIND_ROBUST != 0
}

/// The holder's thread id, 0 if none.
pub fn mutex_owner_of(addr: usize) -> i32 {
    // SAFETY: as above.
    unsafe { mutex_owner(addr) }
}

/// The words of `addr` look like a glibc mutex: a known kind, and (for a
/// plain one) a lock word of 0, 1 or 2. A record read while its thread runs
/// may name a mutex that was freed since, whose memory now holds a
/// malloc free-list link or other data; no lock call or rewrite may touch
/// such memory. (It cannot prove that the memory is still a mutex, only
/// rule most of what is not.) Reads only.
pub fn mutex_plausible(addr: usize) -> bool {
    // SAFETY: addr is a mutex the program passed to a lock call; reads only.
    let (kind, lock, count) = unsafe {
        (
            word(addr, M_KIND).load(Ordering::Relaxed),
            word(addr, M_LOCK).load(Ordering::Relaxed),
            word(addr, M_COUNT).load(Ordering::Relaxed),
        )
    };
    // Type (0-3), robust, PI, PP, process-shared, elision bits.
    const KNOWN: i32 = 3 | KIND_ROBUST | KIND_PI | KIND_PP | KIND_PSHARED | 0x100 | 0x200;
    if kind & !KNOWN != 0 || count < 0 {
        return false;
    }
    kind & (KIND_ROBUST | KIND_PI | KIND_PP) != 0 || (0..=2).contains(&lock)
}

/// A plain mutex whose lock word says locked but whose `__owner` is not
/// set yet (or no more): a thread is between the lock's atomic instruction
/// and its store of the owner (or the reverse, unlocking). Reads only.
pub fn mutex_in_transit(addr: usize) -> bool {
    // SAFETY: as in mutex_plausible.
    let (kind, lock, owner) = unsafe {
        (
            word(addr, M_KIND).load(Ordering::Relaxed),
            word(addr, M_LOCK).load(Ordering::Relaxed),
            word(addr, M_OWNER).load(Ordering::Relaxed),
        )
    };
    kind & (KIND_ROBUST | KIND_PI | KIND_PP) == 0 && (1..=2).contains(&lock) && owner == 0
}

/// Child: free, type kept. Async-signal-safe.
pub fn mutex_make_free(addr: usize) {
    mutex_free(addr)
}

/// Child: held by `tid`, recursion count kept. Async-signal-safe.
pub fn mutex_make_held_by(addr: usize, tid: i32) {
    mutex_held_by(addr, tid)
}

/// Parent: a robust mutex taken with EOWNERDEAD back to "owner died".
pub fn mutex_put_back_dead(addr: usize) {
    mutex_restore_dead(addr)
}
