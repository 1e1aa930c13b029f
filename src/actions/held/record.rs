//! Per-thread records of the locks each thread holds or is acquiring.
//!
//! A record is a fixed array of entries in a static pool (`.bss`: pages are
//! only touched once a thread uses them), claimed by a thread on its first
//! tracked call and reached through the thread's forkguard state
//! (`tls::state().held`). Only the owning thread writes its record's
//! entries; the forking thread reads every record (prepare, audit) and the
//! child reads the copy the fork made. Because the pool is static, a record
//! outlives its thread: a thread that exits holding a lock leaves its entry,
//! and its record is recycled only once it is empty (or when the pool is
//! full: counted as overflow).
//!
//! Entries are pushed *before* the real lock call and removed *after* the
//! real unlock, so a lock held at the fork always has its entry in the
//! snapshot (x86-64 stores become visible in program order, and the lock's
//! own atomic instruction comes after the entry's stores). Whether it is
//! really held is decided at the fork from the lock's own state.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use core::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};

/// Entries per thread (locks held at once, counting recursion).
pub const SLOTS: usize = 32;
/// Records in the pool (threads tracked at once).
pub const MAX_RECORDS: usize = 1024;

/// Entry kinds, in the top byte of `Entry::info`.
pub const MUTEX: u8 = 1;
pub const RW_READ: u8 = 2;
pub const RW_WRITE: u8 = 3;
pub const SPIN: u8 = 4;
pub const SEM: u8 = 5;

const KIND_SHIFT: u32 = 56;
const RET_MASK: usize = (1 << KIND_SHIFT) - 1;

#[repr(C)]
pub struct Entry {
    /// The lock's address; 0 for an empty or dropped entry.
    pub addr: AtomicUsize,
    /// The caller's return address | kind << 56.
    pub info: AtomicUsize,
}

impl Entry {
    pub fn kind(&self) -> u8 {
        (self.info.load(Ordering::Relaxed) >> KIND_SHIFT) as u8
    }

    pub fn ret(&self) -> usize {
        self.info.load(Ordering::Relaxed) & RET_MASK
    }
}

#[repr(C)]
pub struct Record {
    /// Entries in use (only the owner writes it).
    pub n: AtomicUsize,
    /// The owner's thread id (for semaphores, which record their holder).
    pub tid: AtomicI32,
    pub e: [Entry; SLOTS],
}

impl Record {
    const fn new() -> Record {
        Record::with(0)
    }

    const fn with(n: usize) -> Record {
        Record {
            n: AtomicUsize::new(n),
            tid: AtomicI32::new(0),
            e: [const {
                Entry {
                    addr: AtomicUsize::new(0),
                    info: AtomicUsize::new(0),
                }
            }; SLOTS],
        }
    }

    /// The entries in use (a snapshot: the owner may be changing them).
    pub fn entries(&self) -> &[Entry] {
        let n = self.n.load(Ordering::Acquire).min(SLOTS);
        self.e.get(..n).unwrap_or(&[])
    }
}

static RECORDS: [Record; MAX_RECORDS] = [const { Record::new() }; MAX_RECORDS];
/// Each record's owner: 0 free, a tid while its thread runs, minus the tid
/// once the thread exited with entries left.
static TIDS: [AtomicI32; MAX_RECORDS] = [const { AtomicI32::new(0) }; MAX_RECORDS];
/// One past the highest record ever claimed (bounds every scan).
static HIGH: AtomicUsize = AtomicUsize::new(0);
/// Locks not recorded because a record or the pool was full.
pub static OVERFLOW: AtomicU64 = AtomicU64::new(0);
/// Handed to a thread when the pool is full: always full, never written.
static FULL: Record = Record::with(SLOTS);

/// The thread-exit key (its value is the record's index + 1).
static KEY: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Create the thread-exit key. Load time.
pub fn init() {
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: creates a key whose destructor is a plain extern "C" function
    // that lives as long as the process (the library is never unloaded).
    if unsafe { crate::os::clib::pthread_key_create(&mut key, Some(thread_exit as unsafe extern "C" fn(*mut libc::c_void))) } == 0 {
        KEY.store(key as usize, Ordering::Release);
    }
}

/// The calling thread's record, or None (not claimed yet, or swapped out
/// while this thread runs fork phases). One load from the thread pointer.
#[inline(always)]
pub fn mine() -> Option<&'static Record> {
    let p = crate::os::thread_words::record_word();
    // SAFETY: a non-zero value is a `&'static Record` stored by `claim`
    // (the pool or FULL).
    unsafe { (p as *const Record).as_ref() }
}

/// Claim a record for the calling thread (its first tracked call).
#[cold]
pub fn claim() -> &'static Record {
    let tid = crate::os::sys::gettid();
    let free = (0..MAX_RECORDS).find(|&i| {
        TIDS.get(i).is_some_and(|t| {
            t.compare_exchange(0, tid, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })
    });
    // Pool full: take over a record whose thread exited, losing its entries.
    let found = free.map(|i| (i, false)).or_else(|| {
        (0..MAX_RECORDS)
            .find(|&i| {
                TIDS.get(i).is_some_and(|t| {
                    let v = t.load(Ordering::Relaxed);
                    v < 0
                        && t.compare_exchange(v, tid, Ordering::AcqRel, Ordering::Relaxed)
                            .is_ok()
                })
            })
            .map(|i| (i, true))
    });
    let r = match found.and_then(|(i, lose)| RECORDS.get(i).map(|r| (i, lose, r))) {
        Some((i, lose, r)) => {
            let lost = r.n.swap(0, Ordering::AcqRel);
            if lose && lost > 0 {
                OVERFLOW.fetch_add(lost as u64, Ordering::Relaxed);
            }
            r.tid.store(tid, Ordering::Relaxed);
            HIGH.fetch_max(i + 1, Ordering::AcqRel);
            let key = KEY.load(Ordering::Acquire);
            if key != usize::MAX {
                // SAFETY: a key created by init; the value is a plain integer.
                // A key below 32 is stored in the thread's own block (no
                // allocation).
                unsafe {
                    crate::os::clib::pthread_setspecific(key as libc::pthread_key_t, (i + 1) as *const _)
                };
            }
            r
        }
        None => {
            OVERFLOW.fetch_add(1, Ordering::Relaxed);
            &FULL
        }
    };
    crate::os::thread_words::words().record.set(r as *const Record as usize);
    r
}

/// Thread exit (the key's destructor): an empty record goes back to the
/// pool; one with entries left is kept, marked as its thread's.
extern "C" fn thread_exit(v: *mut libc::c_void) {
    let i = (v as usize).wrapping_sub(1);
    crate::os::thread_words::words().record.set(0);
    let (Some(t), Some(r)) = (TIDS.get(i), RECORDS.get(i)) else {
        return;
    };
    let tid = t.load(Ordering::Relaxed);
    if r.n.load(Ordering::Acquire) == 0 {
        t.store(0, Ordering::Release);
    } else if tid > 0 {
        t.store(-tid, Ordering::Release);
    }
}

/// Record `addr` before the real lock call. Async-signal-safe.
#[inline(always)]
pub fn push(r: &Record, addr: usize, kind: u8, ret: usize) {
    let n = r.n.load(Ordering::Relaxed);
    if let Some(e) = r.e.get(n) {
        e.addr.store(addr, Ordering::Relaxed);
        // User-space return addresses are below 2^47: no mask needed.
        e.info
            .store(ret | (kind as usize) << KIND_SHIFT, Ordering::Relaxed);
        r.n.store(n + 1, Ordering::Release);
    } else {
        push_full(r, addr, kind, ret);
    }
}

/// A full record: drop the entries `drop_everywhere` emptied, then retry
/// once; else count the lock as not recorded.
#[cold]
fn push_full(r: &Record, addr: usize, kind: u8, ret: usize) {
    if core::ptr::eq(r, &FULL) {
        OVERFLOW.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let mut keep = 0;
    for k in 0..SLOTS {
        let (Some(src), Some(dst)) = (r.e.get(k), r.e.get(keep)) else {
            break;
        };
        let a = src.addr.load(Ordering::Relaxed);
        if a != 0 {
            dst.info
                .store(src.info.load(Ordering::Relaxed), Ordering::Relaxed);
            dst.addr.store(a, Ordering::Relaxed);
            keep += 1;
        }
    }
    r.n.store(keep, Ordering::Release);
    if keep == SLOTS {
        // Still full: drop the oldest semaphore entry (a semaphore posted by
        // another thread leaves its taker's entry behind).
        keep = drop_oldest_sem(r);
    }
    if keep < SLOTS {
        push(r, addr, kind, ret);
    } else {
        OVERFLOW.fetch_add(1, Ordering::Relaxed);
    }
}

/// Remove the first semaphore entry of a full record; returns the new
/// count (SLOTS if there was none).
fn drop_oldest_sem(r: &Record) -> usize {
    let Some(i) = r.e.iter().position(|e| e.kind() == SEM) else {
        return SLOTS;
    };
    for k in i..SLOTS - 1 {
        if let (Some(d), Some(s)) = (r.e.get(k), r.e.get(k + 1)) {
            d.info
                .store(s.info.load(Ordering::Relaxed), Ordering::Relaxed);
            d.addr
                .store(s.addr.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }
    r.n.store(SLOTS - 1, Ordering::Release);
    SLOTS - 1
}

/// Forget one entry for `addr` (after the real unlock, or a failed lock).
/// False if there was none. Async-signal-safe.
#[inline(always)]
pub fn pop(r: &Record, addr: usize) -> bool {
    let top = r.n.load(Ordering::Relaxed).wrapping_sub(1);
    // Locks are mostly released in the reverse order: the last entry.
    // (n = 0 wraps to a huge index, which `get` refuses.)
    if let Some(e) = r.e.get(top) {
        if e.addr.load(Ordering::Relaxed) == addr {
            r.n.store(top, Ordering::Release);
            return true;
        }
    }
    pop_deeper(r, addr)
}

#[inline(never)]
fn pop_deeper(r: &Record, addr: usize) -> bool {
    let n = r.n.load(Ordering::Relaxed).min(SLOTS);
    let mut i = n;
    while i > 0 {
        i -= 1;
        let (Some(e), Some(last)) = (r.e.get(i), r.e.get(n - 1)) else {
            return false;
        };
        if e.addr.load(Ordering::Relaxed) == addr {
            if i != n - 1 {
                e.info
                    .store(last.info.load(Ordering::Relaxed), Ordering::Relaxed);
                e.addr
                    .store(last.addr.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            r.n.store(n - 1, Ordering::Release);
            return true;
        }
    }
    false
}

/// Does `r` have an entry for `addr`?
#[inline(always)]
pub fn has(r: &Record, addr: usize) -> bool {
    r.entries()
        .iter()
        .any(|e| e.addr.load(Ordering::Relaxed) == addr)
}

/// How many read locks `r` records on `addr`.
pub fn reads(r: &Record, addr: usize) -> u32 {
    r.entries()
        .iter()
        .filter(|e| e.addr.load(Ordering::Relaxed) == addr && e.kind() == RW_READ)
        .count() as u32
}

/// Drop every entry for `addr` in every record (`sem_destroy`): a semaphore
/// posted by another thread than the one that took it leaves that thread's
/// entry behind. The slot is emptied in place (its owner may be moving
/// entries: a missed drop only leaves a stale entry, which the fork checks
/// against the lock's state anyway).
pub fn drop_everywhere(addr: usize) {
    let high = HIGH.load(Ordering::Acquire).min(MAX_RECORDS);
    for (t, r) in TIDS.iter().zip(RECORDS.iter()).take(high) {
        if t.load(Ordering::Relaxed) == 0 {
            continue;
        }
        for e in r.entries() {
            let _ = e
                .addr
                .compare_exchange(addr, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
    }
}

/// Every claimed record with its thread id (negative: the thread exited).
/// Async-signal-safe.
pub fn each(mut f: impl FnMut(i32, &'static Record)) {
    let high = HIGH.load(Ordering::Acquire).min(MAX_RECORDS);
    for (t, r) in TIDS.iter().zip(RECORDS.iter()).take(high) {
        let tid = t.load(Ordering::Acquire);
        if tid != 0 {
            f(tid, r);
        }
    }
}

/// Child: the other threads do not exist here. Their records go back to
/// the pool (after their locks were freed); the forking thread's record is
/// now the child thread's. Async-signal-safe.
pub fn child_reset(mine: usize, tid: i32) {
    let high = HIGH.load(Ordering::Acquire).min(MAX_RECORDS);
    for (t, r) in TIDS.iter().zip(RECORDS.iter()).take(high) {
        if core::ptr::eq(r, mine as *const Record) {
            t.store(tid, Ordering::Relaxed);
            r.tid.store(tid, Ordering::Relaxed);
        } else if t.load(Ordering::Relaxed) != 0 {
            t.store(0, Ordering::Relaxed);
        }
    }
}
