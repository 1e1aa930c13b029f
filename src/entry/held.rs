//! The pthread lock and semaphore entry points that `held_locks` (SPEC
//! 8.4), `forkguard audit` and rwlock `[[lock]]` actions track.
//!
//! Each exported function is one instruction, `jmp *slot`. Whether a
//! program's call reaches this library at all is decided by the loader (the
//! library is preloaded, so its definitions come first); what happens next
//! is decided by the slot:
//! - at first, a small stub that finds the next definition (glibc's, with
//!   `dlsym(RTLD_NEXT)`), stores it in the slot and jumps there: a process
//!   that tracks nothing pays one lookup per function it uses, nothing at
//!   load, and then one indirect jump per call;
//! - when tracking is on (decided at load, before any fork), the tracker in
//!   `actions::held::track`, reached for the lock and wait calls through a
//!   two-instruction stub that passes the caller's return address (for
//!   audit's "taken in FUNCTION").
//!
//! Calls made by forkguard itself go through these entry points too; the
//! held-lock code calls glibc's functions directly (`actions::held::real`).

use core::sync::atomic::{AtomicPtr, Ordering};

use crate::actions::held::real::{self, real, COUNT};
use crate::actions::held::{fast, track};

/// Where each entry point jumps. Read by the exported `jmp *slot`s.
// Evaluated at compile time: an index out of range is a build error, never
// a panic.
#[allow(clippy::indexing_slicing)]
static SLOTS: [AtomicPtr<()>; COUNT] = {
    let mut s = [const { AtomicPtr::new(core::ptr::null_mut()) }; COUNT];
    let stubs = BIND_STUBS;
    let mut i = 0;
    while i < COUNT {
        s[i] = AtomicPtr::new(stubs[i] as *mut ());
        i += 1;
    }
    s
};

/// Look every real function up now (at load, before any fork).
pub fn bind_all() {
    for i in 0..COUNT {
        let p = real(i);
        // Untracked slots still pointing at their stub go straight to glibc.
        if let (Some(s), Some(&stub)) = (SLOTS.get(i), BIND_STUBS.get(i)) {
            if p != 0 {
                let _ = s.compare_exchange(
                    stub as *mut (),
                    p as *mut (),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
            }
        }
    }
}

/// Make entry point `i` go to `target` (a tracker). Load time only.
pub fn set(i: usize, target: usize) {
    if let Some(s) = SLOTS.get(i) {
        s.store(target as *mut (), Ordering::Release);
    }
}

/// Called by a bind stub with the slot number: look the real function up,
/// make the slot go there (unless a tracker was installed meanwhile), and
/// return where to jump.
extern "C" fn fg_held_bind(i: u32) -> usize {
    let i = i as usize;
    let p = real(i);
    let (Some(s), Some(&stub)) = (SLOTS.get(i), BIND_STUBS.get(i)) else {
        die()
    };
    if p == 0 {
        die();
    }
    match s.compare_exchange(
        stub as *mut (),
        p as *mut (),
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => p,
        Err(now) => now as usize,
    }
}

#[cold]
fn die() -> ! {
    crate::os::sys::write_all(2, b"forkguard: cannot find glibc's lock functions\n");
    // SAFETY: ends the process; a lock call cannot go on without its target.
    unsafe { crate::os::sys::syscall(libc::SYS_exit_group, [127, 0, 0, 0, 0, 0]) };
    #[allow(clippy::empty_loop)]
    loop {}
}

/// Saves every argument register around [`fg_held_bind`] (slot number in
/// eax), then jumps to its answer with the caller's arguments intact.
#[unsafe(naked)]
extern "C" fn bind_common() {
    core::arch::naked_asm!(
        "push rdi",
        "push rsi",
        "push rdx",
        "push rcx",
        "push r8",
        "push r9",
        "sub rsp, 8",
        "mov edi, eax",
        "call {bind}",
        "add rsp, 8",
        "pop r9",
        "pop r8",
        "pop rcx",
        "pop rdx",
        "pop rsi",
        "pop rdi",
        "jmp rax",
        bind = sym fg_held_bind,
    )
}

macro_rules! entries {
    ($($i:literal $name:ident $stub:ident;)*) => {
        $(
            /// Exported entry point: one indirect jump through its slot.
            ///
            /// # Safety
            /// Same contract as glibc's function of that name.
            #[unsafe(naked)]
            #[no_mangle]
            pub unsafe extern "C" fn $name() {
                core::arch::naked_asm!(
                    concat!("jmp qword ptr [rip + {slots} + 8*", stringify!($i), "]"),
                    slots = sym SLOTS,
                )
            }

            #[unsafe(naked)]
            extern "C" fn $stub() {
                core::arch::naked_asm!(
                    concat!("mov eax, ", stringify!($i)),
                    "jmp {common}",
                    common = sym bind_common,
                )
            }
        )*

        const BIND_STUBS: [extern "C" fn(); COUNT] = [$($stub),*];
    };
}

entries! {
    0 pthread_mutex_lock bind_0;
    1 pthread_mutex_trylock bind_1;
    2 pthread_mutex_timedlock bind_2;
    3 pthread_mutex_clocklock bind_3;
    4 pthread_mutex_unlock bind_4;
    5 pthread_rwlock_rdlock bind_5;
    6 pthread_rwlock_tryrdlock bind_6;
    7 pthread_rwlock_timedrdlock bind_7;
    8 pthread_rwlock_clockrdlock bind_8;
    9 pthread_rwlock_wrlock bind_9;
    10 pthread_rwlock_trywrlock bind_10;
    11 pthread_rwlock_timedwrlock bind_11;
    12 pthread_rwlock_clockwrlock bind_12;
    13 pthread_rwlock_unlock bind_13;
    14 pthread_spin_lock bind_14;
    15 pthread_spin_trylock bind_15;
    16 pthread_spin_unlock bind_16;
    17 sem_init bind_17;
    18 sem_destroy bind_18;
    19 sem_wait bind_19;
    20 sem_trywait bind_20;
    21 sem_timedwait bind_21;
    22 sem_clockwait bind_22;
    23 sem_post bind_23;
}

/// Entry stubs that hand the caller's return address to a tracker as one
/// more argument (in the first register the function does not use).
macro_rules! with_return_address {
    ($($stub:ident $reg:literal $target:path;)*) => {
        $(
            #[unsafe(naked)]
            extern "C" fn $stub() {
                core::arch::naked_asm!(
                    concat!("mov ", $reg, ", qword ptr [rsp]"),
                    "jmp {t}",
                    t = sym $target,
                )
            }
        )*
    };
}

with_return_address! {
    e_mutex_trylock "rsi" track::mutex_trylock;
    e_mutex_timedlock "rdx" track::mutex_timedlock;
    e_mutex_clocklock "rcx" track::mutex_clocklock;
    e_rw_tryrdlock "rsi" track::rw_tryrdlock;
    e_rw_timedrdlock "rdx" track::rw_timedrdlock;
    e_rw_clockrdlock "rcx" track::rw_clockrdlock;
    e_rw_trywrlock "rsi" track::rw_trywrlock;
    e_rw_timedwrlock "rdx" track::rw_timedwrlock;
    e_rw_clockwrlock "rcx" track::rw_clockwrlock;
    e_spin_trylock "rsi" track::spin_trylock;
    e_sem_trywait "rsi" track::sem_trywait;
    e_sem_timedwait "rdx" track::sem_timedwait;
    e_sem_clockwait "rcx" track::sem_clockwait;
}

/// Every tracker, by slot.
fn targets() -> [usize; COUNT] {
    [
        fast::mutex_lock as *const () as usize,
        e_mutex_trylock as *const () as usize,
        e_mutex_timedlock as *const () as usize,
        e_mutex_clocklock as *const () as usize,
        fast::mutex_unlock as *const () as usize,
        fast::rw_rdlock as *const () as usize,
        e_rw_tryrdlock as *const () as usize,
        e_rw_timedrdlock as *const () as usize,
        e_rw_clockrdlock as *const () as usize,
        fast::rw_wrlock as *const () as usize,
        e_rw_trywrlock as *const () as usize,
        e_rw_timedwrlock as *const () as usize,
        e_rw_clockwrlock as *const () as usize,
        fast::rw_unlock as *const () as usize,
        fast::spin_lock as *const () as usize,
        e_spin_trylock as *const () as usize,
        fast::spin_unlock as *const () as usize,
        track::sem_init as *const () as usize,
        track::sem_destroy as *const () as usize,
        fast::sem_wait as *const () as usize,
        e_sem_trywait as *const () as usize,
        e_sem_timedwait as *const () as usize,
        e_sem_clockwait as *const () as usize,
        fast::sem_post as *const () as usize,
    ]
}

/// The slots an rwlock `[[lock]]` action needs (the forking thread's read
/// locks).
const RWLOCK_READS: [usize; 5] = [
    real::slot::RW_RDLOCK,
    real::slot::RW_TRYRDLOCK,
    real::slot::RW_TIMEDRDLOCK,
    real::slot::RW_CLOCKRDLOCK,
    real::slot::RW_UNLOCK,
];

static STARTED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Point `slots` at their trackers. Load time. The trackers reach the
/// thread's record at a static TLS offset (a preloaded library always has
/// one): without it nothing is tracked.
fn start(slots: &[usize]) {
    crate::os::thread_words::init();
    if !crate::os::thread_words::is_static() {
        return;
    }
    if !STARTED.swap(true, Ordering::AcqRel) {
        bind_all();
    }
    crate::actions::held::start();
    let all = targets();
    for &i in slots {
        if let (Some(&t), true) = (all.get(i), real::bound(i) != 0) {
            set(i, t);
        }
    }
}

/// `held_locks` or audit: track every lock call from now on. Load time,
/// before any fork.
pub fn install(mode: forkguard_core::plan::HeldLocks, audit: bool, timeout_ms: u32) {
    if crate::actions::held::configure(mode, audit, timeout_ms) {
        let all: [usize; COUNT] = core::array::from_fn(|i| i);
        start(&all);
    }
}

/// An rwlock `[[lock]]` action: count each thread's read locks. Load time.
pub fn track_rwlock_reads() {
    start(&RWLOCK_READS);
}
