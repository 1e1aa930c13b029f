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
}

thread_local! {
    static STATE: ThreadState = const {
        ThreadState {
            mode: Cell::new(0),
            skip: Cell::new(0),
            fallback: UnsafeCell::new(crate::phases::state::ForkState::new()),
        }
    };
}

/// `STATE`'s offset from the thread pointer, or 0 when it is not proven
/// static (then `state()` asks `__tls_get_addr`).
static OFFSET: AtomicIsize = AtomicIsize::new(0);

#[cfg(target_arch = "x86_64")]
fn thread_pointer() -> usize {
    let tp: usize;
    // SAFETY: on x86_64 glibc, %fs:0 holds the thread control block's own
    // address (the thread pointer); reading it has no side effects.
    unsafe {
        core::arch::asm!("mov {}, fs:0", out(reg) tp, options(nostack, readonly, preserves_flags));
    }
    tp
}

#[cfg(not(target_arch = "x86_64"))]
fn thread_pointer() -> usize {
    0
}

fn via_tls_get_addr() -> *const ThreadState {
    STATE.with(|s| s as *const ThreadState)
}

/// The calling thread's state. Async-signal-safe.
pub fn state() -> &'static ThreadState {
    let off = OFFSET.load(Ordering::Relaxed);
    let p = if off != 0 {
        thread_pointer().wrapping_add_signed(off) as *const ThreadState
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
    let tp = thread_pointer();
    // glibc's own report of the static TLS area's size (the same call the
    // sanitizers use); the area ends at the thread pointer on x86_64.
    // SAFETY: a lookup by NUL-terminated name.
    let f =
        unsafe { crate::os::clib::dlsym(libc::RTLD_DEFAULT, c"_dl_get_tls_static_info".as_ptr()) };
    if f.is_null() || tp == 0 {
        return;
    }
    // SAFETY: glibc's signature: void (size_t *size, size_t *align).
    let get: extern "C" fn(*mut usize, *mut usize) = unsafe { core::mem::transmute(f) };
    let (mut size, mut align) = (0usize, 0usize);
    get(&mut size, &mut align);
    // Dynamic TLS blocks are allocated on their own, never inside a
    // thread's static area: a block found there is static.
    let end = addr.saturating_add(core::mem::size_of::<ThreadState>());
    if addr < tp && end <= tp && tp - addr <= size {
        OFFSET.store(addr.wrapping_sub(tp) as isize, Ordering::Relaxed);
    }
}
