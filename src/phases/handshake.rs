//! `handshake_timeout_ms`: the parent waits until the child's phase is done.
//! A shared anonymous page and a futex, not a pipe: no descriptor exists,
//! so none can leak into either process (or into a sibling forked by
//! another thread meanwhile), and fd actions cannot break it.

use crate::os::sys;
use std::sync::atomic::{AtomicU32, Ordering};

/// A shared anonymous page: no descriptor exists, so none can leak into
/// either process (or into a sibling forked by another thread meanwhile).
pub fn page() -> *mut AtomicU32 {
    sys::map_shared(4096).cast()
}

/// Child: say "child phase done" and wake the parent. Async-signal-safe.
pub fn signal(word: *mut AtomicU32) {
    // SAFETY: word points into the live shared page.
    unsafe {
        (*word).store(1, Ordering::Release);
        sys::futex(word.cast(), libc::FUTEX_WAKE, 1, core::ptr::null());
    }
}

/// Parent: wait until the child said so, or `ms` passed.
pub fn wait(word: *mut AtomicU32, ms: u32) {
    let deadline = sys::now_ns().saturating_add(u64::from(ms) * 1_000_000);
    loop {
        // SAFETY: word points into the live shared page.
        if unsafe { (*word).load(Ordering::Acquire) } != 0 {
            return;
        }
        let now = sys::now_ns();
        if now >= deadline {
            return;
        }
        let left = deadline - now;
        let ts = sys::timespec(left);
        // SAFETY: a shared (not private) futex wait on the page, with a timeout.
        unsafe { sys::futex(word.cast(), libc::FUTEX_WAIT, 0, &ts) };
    }
}

pub fn release(word: *mut AtomicU32) {
    // SAFETY: the page was mapped by handshake_page and is no longer used.
    unsafe { sys::unmap(word.cast(), 4096) };
}
