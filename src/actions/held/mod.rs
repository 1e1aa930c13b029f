//! `[settings] held_locks` (SPEC 8.4): every pthread mutex, rwlock and
//! spinlock, and every binary semaphore, that another thread holds at the
//! fork is made free in the child (`reinit`), or first waited for and held
//! across the fork (`acquire`).
//!
//! - `track`: the trackers the lock entry points (`entry::held`) jump to
//!   while tracking is on; `record`: the per-thread records they keep.
//! - At the fork the records say which locks to look at, and each lock's
//!   own state says whether, and by whom, it is held (glibc's mutex
//!   `__owner`, the rwlock's writer and reader count, the spinlock word,
//!   the semaphore value): `pthread_cond_wait` releases and retakes its
//!   mutex inside glibc unseen, and a thread may be between its record and
//!   the real call.
//! - `name`: how the log and `forkguard audit` name a lock.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

pub mod audit;
pub mod busy;
pub mod fast;
pub mod log;
pub mod name;
pub mod real;
pub mod record;
mod shared;
pub mod track;

use crate::actions::lock::held as lock;
use real::{bound, slot};
use crate::os::sys;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use forkguard_core::plan::HeldLocks;
use libc::c_int;
use record::{Record, MUTEX, RW_READ, RW_WRITE, SEM, SPIN};

/// The mode chosen at load: 0 off, 1 reinit, 2 acquire (3: audit only).
static MODE: AtomicU32 = AtomicU32::new(OFF);
const OFF: u32 = 0;
const REINIT: u32 = 1;
const ACQUIRE: u32 = 2;
const AUDIT: u32 = 3;
/// `lock_timeout_ms`, for `acquire`.
static TIMEOUT_MS: AtomicU32 = AtomicU32::new(100);
/// CPython's `PyGILState_Check`, when the process is a Python interpreter.
static PY_GIL_CHECK: AtomicUsize = AtomicUsize::new(0);

/// Choose the mode at load, before any fork (`entry::held::install` then
/// points the entry points at the trackers). Returns whether to track.
pub fn configure(mode: HeldLocks, audit: bool, timeout_ms: u32) -> bool {
    let m = match (mode, audit) {
        (_, true) => AUDIT,
        (HeldLocks::Off, false) => return false,
        (HeldLocks::Reinit, false) => REINIT,
        (HeldLocks::Acquire, false) => ACQUIRE,
    };
    if m == ACQUIRE {
        busy::enable();
    }
    TIMEOUT_MS.store(timeout_ms, Ordering::Relaxed);
    if let Some((p, _)) = crate::os::lazy::first_definition(b"PyGILState_Check") {
        PY_GIL_CHECK.store(p, Ordering::Relaxed);
    }
    MODE.store(m, Ordering::Release);
    true
}

/// Load time, once tracking is on: the thread-exit key, the child's fork
/// handler (registered now, so it runs before the child handlers other
/// libraries register later), and audit's summary at exit.
pub fn start() {
    static KEY: AtomicBool = AtomicBool::new(false);
    static HANDLER: AtomicBool = AtomicBool::new(false);
    static SUMMARY: AtomicBool = AtomicBool::new(false);
    if !KEY.swap(true, Ordering::AcqRel) {
        record::init();
    }
    if active() && !HANDLER.swap(true, Ordering::AcqRel) {
        // SAFETY: the handlers are plain functions that live as long as the
        // library.
        unsafe { crate::os::clib::pthread_atfork(nothing, nothing, atfork_child) };
    }
    if auditing() && !SUMMARY.swap(true, Ordering::AcqRel) {
        audit::setup();
    }
}

extern "C" fn nothing() {}

/// Is held-lock handling on (not audit)?
pub fn active() -> bool {
    matches!(MODE.load(Ordering::Relaxed), REINIT | ACQUIRE)
}

/// Is tracking on for audit?
pub fn auditing() -> bool {
    MODE.load(Ordering::Relaxed) == AUDIT
}

/// How many read locks the calling thread holds on the rwlock at `addr`
/// (0 when read locks are not tracked).
pub fn my_reads(addr: usize) -> u32 {
    record::mine().map_or(0, |r| record::reads(r, addr))
}

// ---- one fork --------------------------------------------------------------

/// A lock prepare took for the fork (acquire).
#[derive(Clone, Copy)]
struct Taken {
    addr: usize,
    kind: u8,
    /// A robust mutex taken with EOWNERDEAD.
    dead: bool,
}

const MAX_TAKEN: usize = 32;

/// What one fork's held-lock handling carries from prepare to the parent
/// and child. Lives in the engine's fork state, on the forking thread's
/// stack; the big array is left uninitialised until used.
pub struct HeldFork {
    pub on: bool,
    child_done: bool,
    my_tid: i32,
    my_rec: usize,
    n_taken: usize,
    taken: [MaybeUninit<Taken>; MAX_TAKEN],
    /// Prepare: locks taken, and still held by another thread after
    /// `lock_timeout_ms` (or not waited for: a dead holder, a semaphore
    /// under CPython's GIL).
    pub n_acquired: u32,
    pub timed_out: u32,
    pub not_waited: u32,
    /// Child: locks made free, and locks moved to the child's thread.
    pub freed: u32,
    pub moved: u32,
    /// The first locks freed in the child, for its report.
    pub freed_addrs: [usize; 4],
    /// Locks not recorded (full records), at prepare.
    pub overflow: u64,
    /// Names of the locks held by other threads, made in prepare when the
    /// log is on (see `name::Names`).
    pub names: bool,
    /// Robust mutexes in shared memory: never rewritten in the child.
    n_shared: usize,
    shared: [usize; shared::MAX],
}

impl HeldFork {
    pub const fn new() -> HeldFork {
        HeldFork {
            on: false,
            child_done: false,
            my_tid: 0,
            my_rec: 0,
            n_taken: 0,
            taken: [MaybeUninit::uninit(); MAX_TAKEN],
            n_acquired: 0,
            timed_out: 0,
            not_waited: 0,
            freed: 0,
            moved: 0,
            freed_addrs: [0; 4],
            overflow: 0,
            names: false,
            n_shared: 0,
            shared: [0; shared::MAX],
        }
    }

    fn taken(&self) -> &[Taken] {
        let n = self.n_taken.min(MAX_TAKEN);
        let init = self.taken.get(..n).unwrap_or(&[]);
        // SAFETY: the first n_taken entries were written by `take`.
        unsafe { &*(init as *const [MaybeUninit<Taken>] as *const [Taken]) }
    }

    /// Did prepare take the lock at `addr`? Async-signal-safe.
    pub fn took(&self, addr: usize) -> bool {
        self.taken().iter().any(|t| t.addr == addr)
    }

    fn take(&mut self, t: Taken) -> bool {
        match self.taken.get_mut(self.n_taken) {
            Some(slot) => {
                slot.write(t);
                self.n_taken += 1;
                self.n_acquired += 1;
                true
            }
            None => false,
        }
    }

    fn note_freed(&mut self, addr: usize) {
        if let Some(s) = self.freed_addrs.get_mut(self.freed as usize) {
            *s = addr;
        }
        self.freed = self.freed.saturating_add(1);
    }
}

/// The calling thread's fork in progress, while it runs fork phases.
pub fn fork_in_progress() -> Option<&'static HeldFork> {
    let p = crate::os::thread_words::words().fork.get();
    // SAFETY: a non-zero value points at the HeldFork of this thread's fork
    // in progress (set in prepare, cleared in the parent and child phases,
    // which end before that frame returns).
    unsafe { (p as *const HeldFork).as_ref() }
}

/// Prepare (parent side, after the lock actions): with `acquire`, take the
/// locks other threads hold; then swap this thread's record out, so that
/// the fork handlers glibc runs next are not recorded. `log`: name the
/// locks held by other threads for the report.
pub fn prepare(f: &mut HeldFork, log: bool) {
    if !active() {
        return;
    }
    f.on = true;
    f.my_tid = sys::gettid();
    let ts = crate::os::thread_words::words();
    f.my_rec = ts.record.get();
    f.overflow = record::OVERFLOW.load(Ordering::Relaxed);
    find_shared_robust(f);
    if MODE.load(Ordering::Relaxed) == ACQUIRE {
        acquire_all(f);
    }
    if log {
        f.names = name::for_log(f.my_tid, f.my_rec);
    }
    ts.record.set(0);
    ts.fork.set(f as *mut HeldFork as usize);
}

/// Robust mutexes named by a record that lie in shared memory (one read of
/// `/proc/self/maps`, only when some record names a robust mutex).
fn find_shared_robust(f: &mut HeldFork) {
    let mut robust = [0usize; 16];
    let mut n = 0;
    record::each(|_, r| {
        for e in r.entries() {
            let addr = e.addr.load(Ordering::Relaxed);
            if addr != 0 && e.kind() == MUTEX && lock::mutex_robust(addr) {
                if let Some(s) = robust.get_mut(n) {
                    *s = addr;
                    n += 1;
                }
            }
        }
    });
    if n > 0 {
        f.n_shared = shared::in_shared_memory(robust.get(..n).unwrap_or(&[]), &mut f.shared);
    }
}

impl HeldFork {
    /// A mutex the child must not rewrite: process-shared, or robust in
    /// shared memory. Async-signal-safe.
    fn shared_mutex(&self, addr: usize) -> bool {
        if lock::mutex_robust(addr) {
            self.shared
                .get(..self.n_shared)
                .is_some_and(|s| s.contains(&addr))
        } else {
            lock::mutex_shared(addr)
        }
    }
}

/// Parent: release what prepare took; give the thread its record back.
pub fn parent(f: &mut HeldFork) {
    if !f.on {
        return;
    }
    for t in f.taken().iter().rev() {
        if still_ours(t, f.my_tid) {
            release(t);
        }
        if matches!(t.kind, MUTEX | RW_READ | RW_WRITE) {
            busy::unregister(t.addr);
        }
    }
    let ts = crate::os::thread_words::words();
    ts.fork.set(0);
    ts.record.set(f.my_rec);
}

/// glibc's fork handler in the child (registered at load, so it runs before
/// the handlers other libraries registered later): free the locks now, so
/// that those handlers do not wait on a lock held by a thread that is gone.
extern "C" fn atfork_child() {
    let p = crate::os::thread_words::words().fork.get() as *mut HeldFork;
    // SAFETY: a non-zero value points at this thread's own fork state (see
    // fork_in_progress); the child has one thread, and the engine, which
    // owns it, is inside the real fork call right now.
    if let Some(f) = unsafe { p.as_mut() } {
        child(f);
    }
}

/// Child: free every lock another thread held at the fork, and every lock
/// prepare took; move the forking thread's own to the child's thread.
/// Runs once per fork (from the fork handler, else from the child phase).
/// Async-signal-safe.
pub fn child(f: &mut HeldFork) {
    if !f.on || f.child_done {
        return;
    }
    f.child_done = true;
    busy::child_reset();
    let new_tid = sys::gettid();
    for k in 0..f.n_taken.min(MAX_TAKEN) {
        if let Some(t) = f.taken().get(k).copied() {
            if still_ours(&t, f.my_tid) {
                free(t.addr, t.kind, f.my_rec);
                f.note_freed(t.addr);
            }
        }
    }
    let (my_tid, my_rec) = (f.my_tid, f.my_rec);
    record::each(|tid, r| {
        let mine = core::ptr::eq(r, my_rec as *const Record);
        for e in r.entries() {
            let addr = e.addr.load(Ordering::Relaxed);
            if addr == 0 {
                continue;
            }
            let kind = e.kind();
            if kind == MUTEX && f.shared_mutex(addr) {
                continue;
            }
            if mine {
                if move_mine(addr, kind, my_tid) {
                    f.moved = f.moved.saturating_add(1);
                }
            } else if held_by_other(addr, kind, tid.abs(), my_tid, my_rec) {
                free(addr, kind, my_rec);
                f.note_freed(addr);
            }
        }
    });
    record::child_reset(my_rec, new_tid);
    let ts = crate::os::thread_words::words();
    ts.record.set(my_rec);
    ts.fork.set(0);
}

/// Is the lock at `addr` held by thread `tid` (not the forking thread
/// `me`), as far as its own state tells? Reads only.
fn held_by_other(addr: usize, kind: u8, tid: i32, me: i32, my_rec: usize) -> bool {
    match kind {
        MUTEX => {
            if tid == me || !lock::mutex_plausible(addr) {
                return false;
            }
            let owner = lock::mutex_owner_of(addr);
            // Owner not stored yet (or cleared already): the thread that
            // recorded it is inside glibc's lock or unlock call.
            owner == tid || (owner == 0 && lock::mutex_in_transit(addr))
        }
        RW_READ | RW_WRITE => {
            if !lock::rwlock_plausible(addr) {
                return false;
            }
            let (readers, writer, shared) = lock::rwlock_state(addr);
            if shared {
                return false;
            }
            let mine = reads_in(my_rec, addr);
            let wrlocked = readers & 2 != 0;
            (readers >> 3) > mine || (wrlocked && writer != me)
        }
        SPIN => lock::spin_locked(addr) && !has_in(my_rec, addr),
        SEM => {
            track::is_binary(addr as *mut libc::c_void)
                && lock::sem_value(addr) == Some(0)
                && track::holder(addr) != me
        }
        _ => false,
    }
}

/// A lock another thread recorded that the forking thread does not hold
/// (free now, or taken by a third thread). Reads only.
fn wanted_not_mine(addr: usize, kind: u8, me: i32, my_rec: usize) -> bool {
    match kind {
        MUTEX => lock::mutex_plausible(addr) && lock::mutex_owner_of(addr) != me,
        RW_READ | RW_WRITE => {
            if !lock::rwlock_plausible(addr) {
                return false;
            }
            let (_, writer, shared) = lock::rwlock_state(addr);
            !shared && writer != me && reads_in(my_rec, addr) == 0
        }
        SPIN => !has_in(my_rec, addr),
        SEM => {
            track::is_binary(addr as *mut libc::c_void)
                && lock::sem_value(addr).is_some()
                && track::holder(addr) != me
        }
        _ => false,
    }
}

fn reads_in(rec: usize, addr: usize) -> u32 {
    // SAFETY: rec is 0 or a `&'static Record` (see record::mine).
    unsafe { (rec as *const Record).as_ref() }.map_or(0, |r| record::reads(r, addr))
}

fn has_in(rec: usize, addr: usize) -> bool {
    // SAFETY: as in reads_in.
    unsafe { (rec as *const Record).as_ref() }.is_some_and(|r| record::has(r, addr))
}

/// Child: make the lock free, type kept; an rwlock keeps the forking
/// thread's read locks. Async-signal-safe.
fn free(addr: usize, kind: u8, my_rec: usize) {
    match kind {
        MUTEX => lock::mutex_make_free(addr),
        RW_READ | RW_WRITE => lock::rwlock_make(addr, 0, reads_in(my_rec, addr)),
        SPIN => lock::spin_make_free(addr),
        SEM => {
            lock::sem_make_free(addr);
            track::set_holder(addr, 0);
        }
        _ => {}
    }
}

/// Child: a mutex (or rwlock write lock) the forking thread held is made
/// held by the child's thread, recursion count kept, so the program's own
/// unlock works (errorcheck, recursive, robust). Async-signal-safe.
fn move_mine(addr: usize, kind: u8, me: i32) -> bool {
    match kind {
        MUTEX if lock::mutex_owner_of(addr) == me => {
            lock::mutex_make_held_by(addr, sys::gettid());
            true
        }
        SEM if track::is_binary(addr as *mut libc::c_void) && track::holder(addr) == me => {
            track::set_holder(addr, sys::gettid());
            true
        }
        RW_WRITE => {
            let (_, writer, shared) = lock::rwlock_state(addr);
            if !shared && writer == me {
                lock::rwlock_make(addr, sys::gettid(), 0);
                true
            } else {
                false
            }
        }
        _ => false,
    }
}

// ---- acquire ---------------------------------------------------------------

/// Prepare with `acquire`: take every lock another thread holds, waiting
/// up to `lock_timeout_ms` for each.
fn acquire_all(f: &mut HeldFork) {
    let ms = TIMEOUT_MS.load(Ordering::Relaxed);
    let (me, my_rec) = (f.my_tid, f.my_rec);
    // Under CPython the forking thread holds the GIL: a Python thread gives
    // its lock (a semaphore) back only once it has the GIL again, so
    // waiting for it only burns the timeout.
    let gil = python_holds_gil();
    record::each(|tid, r| {
        if core::ptr::eq(r, my_rec as *const Record) {
            return;
        }
        for e in r.entries() {
            let addr = e.addr.load(Ordering::Relaxed);
            let kind = e.kind();
            // Held by that thread, or about to be (its entry comes before
            // its real lock call): taking it now closes the window in which
            // it would be taken between prepare and the fork.
            if addr == 0
                || f.took(addr)
                || (kind == MUTEX && f.shared_mutex(addr))
                || !(held_by_other(addr, kind, tid.abs(), me, my_rec)
                    || wanted_not_mine(addr, kind, me, my_rec))
            {
                continue;
            }
            // A thread that exited holding a lock will never release it;
            // this thread's own read lock would make the write lock wait
            // for itself.
            let futile = tid < 0
                || (kind == SEM && gil)
                || (matches!(kind, RW_READ | RW_WRITE) && reads_in(my_rec, addr) > 0);
            if futile {
                f.not_waited = f.not_waited.saturating_add(1);
                continue;
            }
            // Registered before the last look, so that a thread destroying
            // it now waits until the fork is done (`busy`); the thread may
            // have dropped the entry, or destroyed the lock, since it was
            // read.
            let tracked = matches!(kind, MUTEX | RW_READ | RW_WRITE);
            if tracked && !busy::register(addr) {
                f.timed_out = f.timed_out.saturating_add(1);
                continue;
            }
            let still = e.addr.load(Ordering::SeqCst) == addr
                && match kind {
                    MUTEX => lock::mutex_plausible(addr),
                    RW_READ | RW_WRITE => lock::rwlock_plausible(addr),
                    _ => true,
                };
            let got = match still {
                false => None,
                // Its holder already waits for a lock taken for this fork.
                true if waits_for_us(r, f) => Some(Took::Deadlock),
                true => Some(take(addr, kind, ms, &|| waits_for_us(r, f))),
            };
            match got {
                Some(Took::Yes(dead)) => {
                    if !f.take(Taken { addr, kind, dead }) {
                        // No room to remember it: give it back now.
                        release(&Taken { addr, kind, dead });
                        busy::unregister(addr);
                    }
                }
                other => {
                    if tracked {
                        busy::unregister(addr);
                    }
                    match other {
                        Some(Took::Deadlock) => f.not_waited = f.not_waited.saturating_add(1),
                        Some(_) => f.timed_out = f.timed_out.saturating_add(1),
                        None => {}
                    }
                }
            }
        }
    });
}

fn python_holds_gil() -> bool {
    let p = PY_GIL_CHECK.load(Ordering::Relaxed);
    if p == 0 {
        return false;
    }
    // SAFETY: CPython's `int PyGILState_Check(void)`, found at load in this
    // process's global scope; it only reads the runtime's thread state.
    let check: extern "C" fn() -> c_int = unsafe { core::mem::transmute(p) };
    check() == 1
}

/// How waiting for a lock ended.
enum Took {
    /// Taken (`true`: a robust mutex whose owner died).
    Yes(bool),
    TimedOut,
    /// Its holder waits for a lock prepare already took: waiting would
    /// only burn the timeout (a lock-order inversion).
    Deadlock,
}

/// Waits are cut in slices this long, to look for a deadlock in between.
const SLICE_NS: u64 = 2_000_000;

/// Take the lock within `ms`, with glibc's own calls (not recorded);
/// between slices, give up when `stuck` says its holder waits for us.
fn take(addr: usize, kind: u8, ms: u32, stuck: &dyn Fn() -> bool) -> Took {
    let end = sys::now_ns().saturating_add(u64::from(ms) * 1_000_000);
    loop {
        let now = sys::now_ns();
        match take_until(addr, kind, end.min(now.saturating_add(SLICE_NS))) {
            Ok(dead) => return Took::Yes(dead),
            Err(true) if now < end => {}
            Err(_) => return Took::TimedOut,
        }
        if stuck() {
            return Took::Deadlock;
        }
    }
}

/// One slice of `take`, until the monotonic `deadline`: `Err(true)` when
/// it timed out, `Err(false)` when the call failed otherwise.
fn take_until(addr: usize, kind: u8, deadline: u64) -> Result<bool, bool> {
    let p = addr as *mut libc::c_void;
    let ts = libc::timespec {
        tv_sec: (deadline / 1_000_000_000) as libc::time_t,
        tv_nsec: (deadline % 1_000_000_000) as libc::c_long,
    };
    type Timed =
        unsafe extern "C" fn(*mut libc::c_void, libc::clockid_t, *const libc::timespec) -> c_int;
    type Try = unsafe extern "C" fn(*mut libc::c_void) -> c_int;
    let call = |i: usize| -> c_int {
        // SAFETY: glibc's function for this lock type (bound at load), on a
        // lock the records show in use.
        unsafe { core::mem::transmute::<usize, Timed>(bound(i))(p, libc::CLOCK_MONOTONIC, &ts) }
    };
    let try_ = |i: usize| -> c_int {
        // SAFETY: as above.
        unsafe { core::mem::transmute::<usize, Try>(bound(i))(p) }
    };
    match kind {
        MUTEX => match call(slot::MUTEX_CLOCKLOCK) {
            0 => Ok(false),
            libc::EOWNERDEAD => Ok(true),
            e => Err(e == libc::ETIMEDOUT),
        },
        RW_READ | RW_WRITE => match call(slot::RW_CLOCKWRLOCK) {
            0 => Ok(false),
            e => Err(e == libc::ETIMEDOUT),
        },
        SEM => loop {
            if call(slot::SEM_CLOCKWAIT) == 0 {
                break Ok(false);
            }
            match sys::errno() {
                libc::EINTR => {}
                e => break Err(e == libc::ETIMEDOUT),
            }
        },
        SPIN => loop {
            if try_(slot::SPIN_TRYLOCK) == 0 {
                break Ok(false);
            }
            if sys::now_ns() >= deadline {
                break Err(true);
            }
            core::hint::spin_loop();
        },
        _ => Err(false),
    }
}

/// Does the record `r` name a lock prepare took (its thread waits for it,
/// or is about to)? Reads only.
fn waits_for_us(r: &Record, f: &HeldFork) -> bool {
    r.entries()
        .iter()
        .any(|e| f.took(e.addr.load(Ordering::Relaxed)))
}

/// Is a lock prepare took still ours (thread `me`)? Its owner may have
/// destroyed and freed it meanwhile (a program may free a lock right after
/// its own unlock: SQLite's connection mutex at `sqlite3_close`), and the
/// memory may hold other data now. Reads only; async-signal-safe.
fn still_ours(t: &Taken, me: i32) -> bool {
    match t.kind {
        MUTEX => lock::mutex_plausible(t.addr) && lock::mutex_owner_of(t.addr) == me,
        RW_READ | RW_WRITE => lock::rwlock_plausible(t.addr) && lock::rwlock_state(t.addr).1 == me,
        _ => true,
    }
}

/// Parent: give back a lock prepare took.
fn release(t: &Taken) {
    let p = t.addr as *mut libc::c_void;
    let i = match t.kind {
        MUTEX if t.dead => {
            lock::mutex_put_back_dead(t.addr);
            return;
        }
        MUTEX => slot::MUTEX_UNLOCK,
        RW_READ | RW_WRITE => slot::RW_UNLOCK,
        SPIN => slot::SPIN_UNLOCK,
        SEM => slot::SEM_POST,
        _ => return,
    };
    // SAFETY: glibc's unlock for the lock type, on a lock prepare took.
    unsafe {
        core::mem::transmute::<usize, unsafe extern "C" fn(*mut libc::c_void) -> c_int>(bound(i))(p)
    };
}
