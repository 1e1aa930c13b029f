//! `acquire`: the locks prepare waits for or holds, so that a thread that
//! destroys one of them (to free its memory next) waits until the fork is
//! done.
//!
//! A program may destroy and free a lock right after its own unlock when
//! no other thread can be using it (SQLite frees a connection's mutex in
//! `sqlite3_close`, OpenSSL its `CRYPTO_RWLOCK`s). Prepare, which waits
//! for the lock with glibc's clock call, is such another thread: glibc's
//! waiting loop writes the lock word, and once the memory is freed that
//! word is malloc's free-list link. So prepare registers each lock here
//! before it looks at it for the last time and waits; the destroy entry
//! points (`entry::destroy`) wait while the lock they destroy is
//! registered; the parent phase clears the registry and wakes them.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

const SLOTS: usize = 64;

/// Registered addresses (0: free slot).
static ADDRS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
/// Registered addresses in all (the destroy entry points' one load).
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
/// Set at load when `held_locks = "acquire"` is configured: only then does
/// prepare register anything, and only then do the destroy entry points
/// pay for the fence below.
static ON: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
/// Bumped (and woken) whenever addresses are dropped.
static SEQ: AtomicU32 = AtomicU32::new(0);

/// `acquire` is configured. Load time, before any fork.
pub fn enable() {
    ON.store(true, Ordering::Release);
}

/// Register `addr` before the last look at it. False when the registry is
/// full (then the lock must not be waited for).
pub fn register(addr: usize) -> bool {
    ACTIVE.fetch_add(1, Ordering::SeqCst);
    for s in ADDRS.iter() {
        if s
            .compare_exchange(0, addr, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
        {
            return true;
        }
    }
    ACTIVE.fetch_sub(1, Ordering::SeqCst);
    false
}

/// Drop `addr` (parent side; wakes the threads waiting to destroy it).
pub fn unregister(addr: usize) {
    if let Some(s) = ADDRS.iter().find(|s| s.load(Ordering::Relaxed) == addr) {
        s.store(0, Ordering::SeqCst);
        ACTIVE.fetch_sub(1, Ordering::SeqCst);
    }
    SEQ.fetch_add(1, Ordering::SeqCst);
    // SAFETY: a word of this process.
    unsafe {
        crate::os::sys::futex_wake_all(SEQ.as_ptr() as usize);
    }
}

/// Child: the registry as the fork left it belongs to the parent; no thread
/// of the child waits on it. Async-signal-safe.
pub fn child_reset() {
    for s in ADDRS.iter() {
        s.store(0, Ordering::Relaxed);
    }
    ACTIVE.store(0, Ordering::Relaxed);
}

/// Destroy entry points, after glibc's destroy and before returning (so
/// before the caller frees the memory): wait while `addr` is registered.
/// One load without `acquire`; a fence and one load when no fork is
/// acquiring locks.
#[inline(always)]
pub fn wait_until_released(addr: usize) {
    if !ON.load(Ordering::Relaxed) {
        return;
    }
    // Orders glibc's store (the destroyed kind) before the load: prepare
    // registers, then reads the kind (see `register`'s caller).
    core::sync::atomic::fence(Ordering::SeqCst);
    if ACTIVE.load(Ordering::SeqCst) != 0 {
        wait_slow(addr);
    }
}

#[cold]
#[inline(never)]
fn wait_slow(addr: usize) {
    loop {
        let seq = SEQ.load(Ordering::SeqCst);
        if !ADDRS.iter().any(|s| s.load(Ordering::SeqCst) == addr) {
            return;
        }
        // SAFETY: a word of this process; woken by unregister (or 10 ms).
        unsafe { crate::os::sys::futex_wait(SEQ.as_ptr() as usize, seq as i32, 10_000_000) };
    }
}
