//! Which kind of lock a futex wait is on, and what the lock's memory says
//! about its owner: glibc 2.36's x86-64 layouts, read as bytes (pure code).
//!
//! - `pthread_mutex_t` (40 bytes): the futex is `__lock` at 0; `__owner`
//!   (the holder's thread id) at 8; `__kind` at 16. Robust mutexes keep the
//!   owner's id in the futex word too, PI mutexes wait with `FUTEX_LOCK_PI`.
//! - `pthread_rwlock_t` (56 bytes): threads wait on `__readers` (0),
//!   `__wrphase_futex` (8) or `__writers_futex` (12); a writer's id is in
//!   `__cur_writer` (24); readers are counted in `__readers >> 3`, unnamed.
//! - `sem_t` (32 bytes): the value is the low word at 0 (the futex), the
//!   number of waiters the high word; no owner.
//! - glibc's internal lock (`__libc_lock_t`, 4 bytes) and GLib's `G_LOCK`:
//!   a plain futex word, 0 free, 1 locked, 2 locked with waiters; no owner.
//! - `pthread_cond_t` (48 bytes): waiters sleep on `__g_signals` (40, 44):
//!   a wait for a signal, not for a lock.

/// `futex(2)` commands (the low 7 bits of the operation).
const FUTEX_WAIT: u32 = 0;
const FUTEX_LOCK_PI: u32 = 6;
const FUTEX_WAIT_BITSET: u32 = 9;
const FUTEX_WAIT_REQUEUE_PI: u32 = 11;
const FUTEX_LOCK_PI2: u32 = 13;
const FUTEX_CMD_MASK: u32 = 0x7f;
/// The owner's thread id in a robust or PI futex word.
const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
const FUTEX_WAITERS: u32 = 0x8000_0000;
/// Linux's largest possible thread id (`PID_MAX_LIMIT` on 64-bit).
const TID_MAX: u32 = 4 * 1024 * 1024;

/// A `futex` system call a thread is blocked in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    pub addr: u64,
    pub op: u32,
    pub val: u32,
}

impl Wait {
    pub fn cmd(&self) -> u32 {
        self.op & FUTEX_CMD_MASK
    }
    /// A command that waits (as opposed to wake, requeue...).
    pub fn is_wait(&self) -> bool {
        matches!(
            self.cmd(),
            FUTEX_WAIT | FUTEX_WAIT_BITSET | FUTEX_LOCK_PI | FUTEX_LOCK_PI2 | FUTEX_WAIT_REQUEUE_PI
        )
    }
}

/// What the functions on the waiting thread's stack say it waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    Mutex,
    RwLock,
    Semaphore,
    /// glibc's `__lll_lock_wait_private`: an internal lock.
    Internal,
    Condition,
    Join,
    Once,
    Barrier,
}

/// The hint a function name gives, if any (glibc's names, exported or from
/// its debug file).
pub fn hint_of(func: &str) -> Option<Hint> {
    let f = func.trim_start_matches('_');
    Some(if f.starts_with("lll_lock_wait_private") {
        Hint::Internal
    } else if f.starts_with("lll_lock_wait") || f.contains("pthread_mutex_") {
        Hint::Mutex
    } else if f.contains("pthread_rwlock_") {
        Hint::RwLock
    } else if f.starts_with("new_sem_wait")
        || f.starts_with("sem_wait")
        || f.starts_with("sem_timedwait")
        || f.starts_with("sem_clockwait")
        || f.starts_with("old_sem_wait")
    {
        Hint::Semaphore
    } else if f.contains("pthread_cond_") || f.starts_with("cnd_") {
        Hint::Condition
    } else if f.contains("pthread_join")
        || f.contains("pthread_clockjoin")
        || f.contains("pthread_timedjoin")
        || f.starts_with("thrd_join")
    {
        Hint::Join
    } else if f.contains("pthread_once") || f.starts_with("call_once") {
        Hint::Once
    } else if f.contains("pthread_barrier_") {
        Hint::Barrier
    } else {
        return None;
    })
}

/// Whether a futex wait is one the function a hint came from makes: the
/// stack scan can find a stale return address (an earlier `sem_wait` left
/// below the real frames), so a hint must agree with the wait itself.
pub fn consistent(hint: Hint, w: &Wait) -> bool {
    let cmd = w.cmd();
    match hint {
        // __lll_lock_wait(_private): FUTEX_WAIT for the value 2.
        Hint::Internal => cmd == FUTEX_WAIT && w.val == 2,
        Hint::Mutex => {
            (cmd == FUTEX_WAIT && (w.val == 2 || robust_word(w.val).is_some()))
                || cmd == FUTEX_LOCK_PI
                || cmd == FUTEX_LOCK_PI2
        }
        // A semaphore waits while its value is 0.
        Hint::Semaphore => w.val == 0,
        // pthread_join waits on the thread's id.
        Hint::Join => w.val != 0,
        Hint::RwLock | Hint::Condition | Hint::Once | Hint::Barrier => true,
    }
}

/// The kind of object a wait is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Mutex,
    RwLock,
    Semaphore,
    /// A plain futex word used as a lock (glibc internal, GLib).
    FutexLock,
    Condition,
    Join,
    Once,
    Barrier,
    /// A futex whose use could not be told.
    Unknown,
    /// A `__lll_lock_wait` seen without a name or a global's size: a
    /// mutex's `__lock` or a plain lock word; `decode` tells them apart.
    LockWord,
}

impl Kind {
    /// A lock that some thread holds while others wait (as opposed to a
    /// wait for an event).
    pub fn is_lock(self) -> bool {
        matches!(
            self,
            Kind::Mutex | Kind::RwLock | Kind::Semaphore | Kind::FutexLock
        )
    }
    /// The `type` a `[[lock]]` entry takes for it (SPEC 3, 8.2).
    pub fn config_type(self) -> Option<&'static str> {
        Some(match self {
            Kind::Mutex => "mutex",
            Kind::RwLock => "rwlock",
            Kind::Semaphore => "semaphore",
            Kind::FutexLock => "futex",
            _ => return None,
        })
    }
}

/// The global object (symbol) the futex lies in: its size and the futex's
/// offset inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InObject {
    pub size: u64,
    pub offset: u64,
}

/// The kind of lock and the address of its start.
pub fn classify(w: &Wait, hint: Option<Hint>, obj: Option<InObject>) -> (Kind, u64) {
    let cmd = w.cmd();
    if cmd == FUTEX_LOCK_PI || cmd == FUTEX_LOCK_PI2 {
        return (Kind::Mutex, w.addr);
    }
    if cmd == FUTEX_WAIT_REQUEUE_PI {
        return (Kind::Condition, w.addr);
    }
    let kind = match hint {
        Some(Hint::Mutex) => Kind::Mutex,
        Some(Hint::RwLock) => Kind::RwLock,
        Some(Hint::Semaphore) => Kind::Semaphore,
        Some(Hint::Internal) => Kind::FutexLock,
        Some(Hint::Condition) => Kind::Condition,
        Some(Hint::Join) => Kind::Join,
        Some(Hint::Once) => Kind::Once,
        Some(Hint::Barrier) => Kind::Barrier,
        None => by_object(w, obj),
    };
    let base = match kind {
        Kind::RwLock => w.addr - rwlock_offset(w, obj),
        Kind::Condition => obj.map_or(w.addr, |o| w.addr - o.offset),
        _ => w.addr,
    };
    (kind, base)
}

/// Without a function name: the size of the enclosing global, else what a
/// glibc lock wait looks like.
fn by_object(w: &Wait, obj: Option<InObject>) -> Kind {
    match obj {
        Some(InObject {
            size: 40,
            offset: 0,
        }) => return Kind::Mutex,
        Some(InObject {
            size: 56,
            offset: 0 | 8 | 12,
        }) => return Kind::RwLock,
        Some(InObject {
            size: 32,
            offset: 0,
        }) => return Kind::Semaphore,
        Some(InObject { size: 48, .. }) => return Kind::Condition,
        Some(InObject { size: 4, offset: 0 }) => return Kind::FutexLock,
        _ => {}
    }
    if w.cmd() == FUTEX_WAIT && w.val == 2 {
        // __lll_lock_wait: a mutex's __lock or an internal lock word;
        // `decode` looks at the memory behind it.
        return Kind::LockWord;
    }
    if w.cmd() == FUTEX_WAIT && robust_word(w.val).is_some() {
        return Kind::Mutex;
    }
    Kind::Unknown
}

/// The owner's id in a robust mutex's futex word (`tid | FUTEX_WAITERS`).
fn robust_word(v: u32) -> Option<i32> {
    let tid = v & FUTEX_TID_MASK;
    (v & FUTEX_WAITERS != 0 && tid > 0 && tid <= TID_MAX).then_some(tid as i32)
}

/// Where the futex lies in a `pthread_rwlock_t`.
fn rwlock_offset(w: &Wait, obj: Option<InObject>) -> u64 {
    if let Some(o) = obj.filter(|o| o.size == 56 && matches!(o.offset, 0 | 8 | 12)) {
        return o.offset;
    }
    // The lock is 8-aligned; __wrphase_futex only holds 0..=3, while a
    // reader waiting on __readers expects a value with RWAITING (4) set.
    if w.addr % 8 == 4 {
        12
    } else if w.val > 3 {
        0
    } else {
        8
    }
}

/// Who holds a lock, as far as its memory says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// The thread id the lock records as its holder.
    Thread(i32),
    /// Held for reading by this many threads, not named.
    Readers(u32),
    /// Taken (locked, or a semaphore at 0), but the lock records no holder.
    NotRecorded,
    /// Free at the moment it was read.
    Free,
    /// Not a lock, or its memory could not be read.
    Unknown,
}

/// A lock read from memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub kind: Kind,
    pub base: u64,
    /// e.g. "normal", "recursive, robust", "write-locked".
    pub detail: String,
    pub owner: Owner,
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

/// Decodes the lock at `base` from `mem` (the bytes from `base` on, as many
/// as could be read). A futex word that is really a mutex's `__lock` is
/// told by a plausible `__kind` and `__owner` behind it.
pub fn decode(kind: Kind, base: u64, w: &Wait, mem: &[u8]) -> Lock {
    let lock = |kind, detail: String, owner| Lock {
        kind,
        base,
        detail,
        owner,
    };
    let Some(word) = u32_at(mem, 0) else {
        return lock(kind, "memory unreadable".into(), Owner::Unknown);
    };
    match kind {
        Kind::Mutex => decode_mutex(base, w, mem, word),
        Kind::LockWord if mutex_plausible(mem) => decode_mutex(base, w, mem, word),
        Kind::FutexLock | Kind::LockWord => {
            let (detail, owner) = match word {
                0 => ("free".to_string(), Owner::Free),
                1 => ("locked".to_string(), Owner::NotRecorded),
                2 => ("locked, with waiters".to_string(), Owner::NotRecorded),
                v => (format!("word {v:#x}"), Owner::Unknown),
            };
            lock(Kind::FutexLock, detail, owner)
        }
        Kind::RwLock => decode_rwlock(base, mem, word),
        Kind::Semaphore => {
            let waiters = u32_at(mem, 4).unwrap_or(0);
            let owner = if word == 0 {
                Owner::NotRecorded
            } else {
                Owner::Free
            };
            lock(kind, format!("value {word}, {waiters} waiting"), owner)
        }
        _ => lock(kind, String::new(), Owner::Unknown),
    }
}

/// `__kind` and `__owner` look like a glibc mutex's.
fn mutex_plausible(mem: &[u8]) -> bool {
    let (Some(owner), Some(kind)) = (u32_at(mem, 8), u32_at(mem, 16)) else {
        return false;
    };
    // kind: type (0..3) | robust 16 | PI 32 | PP 64 | pshared 128 | elision 256/512
    let known = 0x3 | 16 | 32 | 64 | 128 | 256 | 512;
    kind & !known == 0 && owner > 0 && owner <= TID_MAX
}

fn mutex_type(kind: u32) -> String {
    let mut s = match kind & 3 {
        0 => "normal",
        1 => "recursive",
        2 => "errorcheck",
        _ => "adaptive",
    }
    .to_string();
    for (bit, name) in [
        (16, "robust"),
        (32, "priority-inheritance"),
        (128, "process-shared"),
    ] {
        if kind & bit != 0 {
            s.push_str(", ");
            s.push_str(name);
        }
    }
    s
}

fn decode_mutex(base: u64, w: &Wait, mem: &[u8], word: u32) -> Lock {
    let kind = u32_at(mem, 16).unwrap_or(0);
    let recorded = u32_at(mem, 8).unwrap_or(0);
    let pi = matches!(w.cmd(), FUTEX_LOCK_PI | FUTEX_LOCK_PI2) || kind & 32 != 0;
    let robust = kind & 16 != 0;
    // PI and robust mutexes keep the owner in the futex word itself.
    let owner = if pi || robust {
        word & FUTEX_TID_MASK
    } else {
        recorded
    };
    let owner = match owner {
        0 if word == 0 => Owner::Free,
        0 => Owner::NotRecorded,
        // PTHREAD_MUTEX_INCONSISTENT / NOTRECOVERABLE
        0x7fff_fffe | 0x7fff_ffff => Owner::NotRecorded,
        t if t <= TID_MAX => Owner::Thread(t as i32),
        _ => Owner::Unknown,
    };
    Lock {
        kind: Kind::Mutex,
        base,
        detail: mutex_type(kind),
        owner,
    }
}

fn decode_rwlock(base: u64, mem: &[u8], readers_word: u32) -> Lock {
    const WRLOCKED: u32 = 2;
    let writer = u32_at(mem, 24).unwrap_or(0);
    let readers = readers_word >> 3;
    let (detail, owner) = if readers_word & WRLOCKED != 0 {
        let o = if writer > 0 && writer <= TID_MAX {
            Owner::Thread(writer as i32)
        } else {
            Owner::NotRecorded
        };
        ("write-locked".to_string(), o)
    } else if readers > 0 {
        (format!("read-locked by {readers}"), Owner::Readers(readers))
    } else {
        ("free".to_string(), Owner::Free)
    };
    Lock {
        kind: Kind::RwLock,
        base,
        detail,
        owner,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem(words: &[(usize, u32)], len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        for &(o, w) in words {
            v[o..o + 4].copy_from_slice(&w.to_le_bytes());
        }
        v
    }

    // The waits below are what glibc 2.36 did in tests/c/why_probe.c-like
    // programs, read from /proc/PID/task/TID/syscall.
    const MUTEX_WAIT: Wait = Wait {
        addr: 0x1000,
        op: 0x80,
        val: 2,
    };

    #[test]
    fn normal_mutex_by_hint() {
        let m = mem(&[(0, 2), (8, 4243), (12, 1)], 40);
        let (k, base) = classify(&MUTEX_WAIT, Some(Hint::Mutex), None);
        assert_eq!((k, base), (Kind::Mutex, 0x1000));
        let l = decode(k, base, &MUTEX_WAIT, &m);
        assert_eq!(l.owner, Owner::Thread(4243));
        assert_eq!(l.detail, "normal");
    }

    #[test]
    fn mutex_without_hint_told_by_its_fields() {
        let m = mem(&[(0, 2), (8, 4243), (16, 1)], 40);
        let (k, base) = classify(&MUTEX_WAIT, None, None);
        assert_eq!(k, Kind::LockWord);
        let l = decode(k, base, &MUTEX_WAIT, &m);
        assert_eq!(
            (l.kind, l.owner, l.detail.as_str()),
            (Kind::Mutex, Owner::Thread(4243), "recursive")
        );
    }

    #[test]
    fn internal_lock_word() {
        // envlock: a 4-byte global; what follows it is another variable.
        let m = mem(&[(0, 2), (8, 0xdead_beef)], 40);
        let (k, base) = classify(
            &MUTEX_WAIT,
            Some(Hint::Internal),
            Some(InObject { size: 4, offset: 0 }),
        );
        let l = decode(k, base, &MUTEX_WAIT, &m);
        assert_eq!((l.kind, l.owner), (Kind::FutexLock, Owner::NotRecorded));
        assert_eq!(l.detail, "locked, with waiters");
        // The same bytes with a mutex-like tail, named by its function: still a word.
        let m = mem(&[(0, 2), (8, 4243), (16, 1)], 40);
        let (k, base) = classify(&MUTEX_WAIT, Some(Hint::Internal), None);
        assert_eq!(decode(k, base, &MUTEX_WAIT, &m).kind, Kind::FutexLock);
        // Without a name, a word whose tail is no mutex.
        let m = mem(&[(0, 2), (8, 0xdead_beef)], 40);
        let (k, base) = classify(&MUTEX_WAIT, None, None);
        assert_eq!(decode(k, base, &MUTEX_WAIT, &m).kind, Kind::FutexLock);
    }

    #[test]
    fn robust_and_pi() {
        let w = Wait {
            addr: 0x1000,
            op: 0,
            val: 0x8000_2439,
        };
        let m = mem(&[(0, 0x8000_2439), (8, 0x2439), (16, 16)], 40);
        let (k, b) = classify(&w, None, None);
        assert_eq!(k, Kind::Mutex);
        assert_eq!(decode(k, b, &w, &m).owner, Owner::Thread(0x2439));
        let pi = Wait {
            addr: 0x1000,
            op: 0x86,
            val: 0,
        };
        let m = mem(&[(0, 0x8000_1234), (8, 0x1234), (16, 32)], 40);
        let (k, b) = classify(&pi, None, None);
        let l = decode(k, b, &pi, &m);
        assert_eq!((l.kind, l.owner), (Kind::Mutex, Owner::Thread(0x1234)));
        assert_eq!(l.detail, "normal, priority-inheritance");
    }

    #[test]
    fn rwlock_offsets() {
        // A reader waiting on __wrphase_futex (val 3), a writer on it (val 2),
        // a writer on __writers_futex, a reader on __readers.
        for (addr, val, base) in [
            (0x1008, 3, 0x1000),
            (0x1008, 2, 0x1000),
            (0x100c, 2, 0x1000),
            (0x1000, 0x0c, 0x1000),
        ] {
            let w = Wait {
                addr,
                op: 0x189,
                val,
            };
            assert_eq!(classify(&w, Some(Hint::RwLock), None), (Kind::RwLock, base));
        }
        let w = Wait {
            addr: 0x1008,
            op: 0x189,
            val: 3,
        };
        let writer = mem(&[(0, 3), (24, 777)], 56);
        let l = decode(Kind::RwLock, 0x1000, &w, &writer);
        assert_eq!(
            (l.owner, l.detail.as_str()),
            (Owner::Thread(777), "write-locked")
        );
        let readers = mem(&[(0, 2 << 3)], 56);
        assert_eq!(
            decode(Kind::RwLock, 0x1000, &w, &readers).owner,
            Owner::Readers(2)
        );
        // By the global's size alone.
        assert_eq!(
            classify(
                &w,
                None,
                Some(InObject {
                    size: 56,
                    offset: 8
                })
            ),
            (Kind::RwLock, 0x1000)
        );
    }

    #[test]
    fn semaphore_and_condition() {
        let w = Wait {
            addr: 0x2000,
            op: 0x189,
            val: 0,
        };
        let (k, b) = classify(&w, Some(Hint::Semaphore), None);
        let l = decode(k, b, &w, &mem(&[(4, 1)], 32));
        assert_eq!((l.kind, l.owner), (Kind::Semaphore, Owner::NotRecorded));
        let c = Wait { addr: 0x2028, ..w };
        assert_eq!(
            classify(
                &c,
                None,
                Some(InObject {
                    size: 48,
                    offset: 40
                })
            ),
            (Kind::Condition, 0x2000)
        );
        assert!(!Kind::Condition.is_lock());
        assert_eq!(classify(&w, None, None).0, Kind::Unknown);
    }

    #[test]
    fn stale_hints_are_refused() {
        let rd = Wait {
            addr: 0x1008,
            op: 0x189,
            val: 3,
        };
        assert!(!consistent(Hint::Semaphore, &rd));
        assert!(consistent(Hint::RwLock, &rd));
        assert!(consistent(Hint::Internal, &MUTEX_WAIT));
        assert!(!consistent(Hint::Internal, &rd));
        assert!(!consistent(Hint::Mutex, &rd));
    }

    #[test]
    fn hints_from_names() {
        assert_eq!(hint_of("__lll_lock_wait_private"), Some(Hint::Internal));
        assert_eq!(hint_of("__lll_lock_wait"), Some(Hint::Mutex));
        assert_eq!(hint_of("___pthread_mutex_lock"), Some(Hint::Mutex));
        assert_eq!(
            hint_of("__pthread_rwlock_wrlock_full64"),
            Some(Hint::RwLock)
        );
        assert_eq!(hint_of("__new_sem_wait_slow64"), Some(Hint::Semaphore));
        assert_eq!(hint_of("___pthread_cond_wait"), Some(Hint::Condition));
        assert_eq!(hint_of("setenv"), None);
    }

    #[test]
    fn short_memory() {
        let l = decode(Kind::Mutex, 0x1000, &MUTEX_WAIT, &[1, 2]);
        assert_eq!(l.owner, Owner::Unknown);
    }
}
