//! Two words per thread for `held_locks` (`actions::held`): the thread's
//! lock record, and its fork in progress. The lock trackers read the first
//! on every lock call, so it is reached at its static TLS offset in two
//! loads (`%fs`-relative), proven static at load the way `phases::tls`
//! proves its own block (a preloaded library always gets static TLS).

use core::cell::Cell;
use core::sync::atomic::{AtomicIsize, Ordering};

pub struct Words {
    /// The thread's lock record (`actions::held::record`), 0 until its
    /// first tracked call, and while it runs fork phases.
    pub record: Cell<usize>,
    /// The thread's fork in progress (a `HeldFork` on its stack), for the
    /// fork handlers glibc runs inside the fork; 0 else.
    pub fork: Cell<usize>,
}

thread_local! {
    static WORDS: Words = const { Words { record: Cell::new(0), fork: Cell::new(0) } };
}

/// `WORDS`' offset from the thread pointer; 0 until proven static.
pub(crate) static OFFSET: AtomicIsize = AtomicIsize::new(0);

/// The calling thread's thread pointer (`%fs:0`; 0 elsewhere).
/// Async-signal-safe.
#[cfg(target_arch = "x86_64")]
pub fn thread_pointer() -> usize {
    let tp: usize;
    // SAFETY: on x86_64 glibc, %fs:0 holds the thread control block's own
    // address (the thread pointer); reading it has no side effects.
    unsafe {
        core::arch::asm!("mov {}, fs:0", out(reg) tp, options(nostack, readonly, preserves_flags));
    }
    tp
}

#[cfg(not(target_arch = "x86_64"))]
pub fn thread_pointer() -> usize {
    0
}

/// Are the words at a static offset (the trackers need it)?
pub fn is_static() -> bool {
    OFFSET.load(Ordering::Relaxed) != 0
}

/// The calling thread's words. Async-signal-safe once [`is_static`].
pub fn words() -> &'static Words {
    let off = OFFSET.load(Ordering::Relaxed);
    let p = if off != 0 {
        thread_pointer().wrapping_add_signed(off) as *const Words
    } else {
        WORDS.with(|w| w as *const Words)
    };
    // SAFETY: p is this thread's WORDS (same static TLS offset in every
    // thread, proven in `init`), alive as long as the thread; only Cells.
    unsafe { &*p }
}

/// The calling thread's `record` word in two loads; 0 until [`init`]
/// proved the block static (then nothing is tracked: an rwlock action of
/// `libc_locks` asks for the forking thread's read locks without tracking
/// having started, and an offset of 0 would read the thread control block).
/// Async-signal-safe.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn record_word() -> usize {
    let off = OFFSET.load(Ordering::Relaxed);
    if off == 0 {
        return 0;
    }
    let v: usize;
    // SAFETY: off is the static TLS offset of this thread's WORDS, whose
    // first field is `record` (repr of a struct of two Cells: checked in
    // `init`); %fs-relative loads read this thread's block.
    unsafe {
        core::arch::asm!("mov {v}, qword ptr fs:[{off}]", v = out(reg) v, off = in(reg) off,
            options(nostack, readonly, preserves_flags));
    }
    v
}

#[cfg(not(target_arch = "x86_64"))]
pub fn record_word() -> usize {
    words().record.get()
}

/// Prove the block static and record its offset. Load time.
pub fn init() {
    if cfg!(not(target_arch = "x86_64")) || is_static() {
        return;
    }
    let w = WORDS.with(|w| w as *const Words as usize);
    // `record_word` reads the block's first word: it must be `record`.
    let first = WORDS.with(|w| &w.record as *const Cell<usize> as usize);
    if first != w {
        return;
    }
    if let Some(off) = static_offset(w, core::mem::size_of::<Words>()) {
        OFFSET.store(off, Ordering::Relaxed);
    }
}

/// The offset from the thread pointer of the calling thread's TLS block
/// at `addr` (`size` bytes), when it lies in the static TLS area (the same
/// offset in every thread); `None` when that cannot be proven. Load time.
pub fn static_offset(addr: usize, size: usize) -> Option<isize> {
    let tp = thread_pointer();
    // glibc's own report of the static TLS area's size (the same call the
    // sanitizers use); the area ends at the thread pointer on x86_64.
    // SAFETY: a lookup by NUL-terminated name.
    let f =
        unsafe { crate::os::clib::dlsym(libc::RTLD_DEFAULT, c"_dl_get_tls_static_info".as_ptr()) };
    if f.is_null() || tp == 0 {
        return None;
    }
    // SAFETY: glibc's signature: void (size_t *size, size_t *align).
    let get: extern "C" fn(*mut usize, *mut usize) = unsafe { core::mem::transmute(f) };
    let (mut area, mut align) = (0usize, 0usize);
    get(&mut area, &mut align);
    // Dynamic TLS blocks are allocated on their own, never inside a
    // thread's static area: a block found there is static.
    let end = addr.saturating_add(size);
    (addr < tp && end <= tp && tp - addr <= area).then(|| addr.wrapping_sub(tp) as isize)
}
