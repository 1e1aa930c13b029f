//! The engine's per-thread state, reached without `__tls_get_addr`.
//!
//! A Rust `thread_local!` in a shared library is reached through
//! `__tls_get_addr`, a call into the dynamic loader through the PLT. After
//! a fork, the child has none of the parent's code pages mapped: each page
//! of code it runs for the first time is a page fault (a few µs on this
//! VM), and those two (the PLT stub's page and the loader's) were two of
//! the faults forkguard added to every child.
//!
//! A library loaded at start-up (`LD_PRELOAD`, `/etc/ld.so.preload`) gets
//! *static* TLS: its block sits at the same offset from the thread pointer
//! in every thread. `init` finds that offset on the main thread and proves
//! the block is static (it lies inside the main thread's static TLS area,
//! whose size the loader reports); from then on `state()` is one load from
//! `%fs`. If the proof fails (a `dlopen`ed copy, another libc), `state()`
//! keeps using the `thread_local!` path.

use core::cell::{Cell, UnsafeCell};
use core::sync::atomic::{AtomicIsize, Ordering};

/// Everything the engine keeps per thread.
pub struct ThreadState {
    /// `engine::IDLE`, or who is running phases on this thread.
    pub mode: Cell<u8>,
    /// glibc fork-handler rounds to ignore (forks inside a phase, or ours).
    pub skip: Cell<u32>,
    /// The fallback path's state, kept from the prepare handler to the
    /// parent/child handler.
    pub fallback: UnsafeCell<crate::phases::state::ForkState>,
    /// What the `libc_locks` prepare handler did to each lock of the
    /// profile, for the parent and child handlers of the same fork.
    pub libc_locks: UnsafeCell<[u8; forkguard_core::libc_locks::MAX]>,
}

thread_local! {
    static STATE: ThreadState = const {
        ThreadState {
            mode: Cell::new(0),
            skip: Cell::new(0),
            fallback: UnsafeCell::new(crate::phases::state::ForkState::new()),
            libc_locks: UnsafeCell::new([0; forkguard_core::libc_locks::MAX]),
        }
    };
}

/// `STATE`'s offset from the thread pointer, or 0 when it is not proven
/// static (then `state()` asks `__tls_get_addr`).
static OFFSET: AtomicIsize = AtomicIsize::new(0);

fn via_tls_get_addr() -> *const ThreadState {
    STATE.with(|s| s as *const ThreadState)
}

/// The calling thread's state. Async-signal-safe.
pub fn state() -> &'static ThreadState {
    let off = OFFSET.load(Ordering::Relaxed);
    let p = if off != 0 {
        crate::os::thread_words::thread_pointer().wrapping_add_signed(off) as *const ThreadState
    } else {
        via_tls_get_addr()
    };
    // SAFETY: p is this thread's STATE (same static TLS offset in every
    // thread, proven in `init`), which lives as long as the thread; only
    // Cells and an UnsafeCell are reachable through the shared reference.
    unsafe { &*p }
}

/// Prove the TLS block static and record its offset. Load time, main
/// thread, before any hook can run phases.
pub fn init() {
    if cfg!(not(target_arch = "x86_64")) {
        return;
    }
    let addr = via_tls_get_addr() as usize;
    if let Some(off) =
        crate::os::thread_words::static_offset(addr, core::mem::size_of::<ThreadState>())
    {
        OFFSET.store(off, Ordering::Relaxed);
    }
}
