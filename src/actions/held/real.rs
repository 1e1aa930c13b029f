//! glibc's lock and semaphore functions behind the entry points of
//! `entry::held`, by slot: looked up once (`dlsym(RTLD_NEXT)`), then one
//! load. The trackers and the fork work call them directly.

use core::sync::atomic::{AtomicUsize, Ordering};

/// How many entry points there are.
pub const COUNT: usize = 24;

/// The names, in slot order.
pub const NAMES: [&core::ffi::CStr; COUNT] = [
    c"pthread_mutex_lock",
    c"pthread_mutex_trylock",
    c"pthread_mutex_timedlock",
    c"pthread_mutex_clocklock",
    c"pthread_mutex_unlock",
    c"pthread_rwlock_rdlock",
    c"pthread_rwlock_tryrdlock",
    c"pthread_rwlock_timedrdlock",
    c"pthread_rwlock_clockrdlock",
    c"pthread_rwlock_wrlock",
    c"pthread_rwlock_trywrlock",
    c"pthread_rwlock_timedwrlock",
    c"pthread_rwlock_clockwrlock",
    c"pthread_rwlock_unlock",
    c"pthread_spin_lock",
    c"pthread_spin_trylock",
    c"pthread_spin_unlock",
    c"sem_init",
    c"sem_destroy",
    c"sem_wait",
    c"sem_trywait",
    c"sem_timedwait",
    c"sem_clockwait",
    c"sem_post",
];

/// Slot numbers.
pub mod slot {
    pub const MUTEX_LOCK: usize = 0;
    pub const MUTEX_TRYLOCK: usize = 1;
    pub const MUTEX_TIMEDLOCK: usize = 2;
    pub const MUTEX_CLOCKLOCK: usize = 3;
    pub const MUTEX_UNLOCK: usize = 4;
    pub const RW_RDLOCK: usize = 5;
    pub const RW_TRYRDLOCK: usize = 6;
    pub const RW_TIMEDRDLOCK: usize = 7;
    pub const RW_CLOCKRDLOCK: usize = 8;
    pub const RW_WRLOCK: usize = 9;
    pub const RW_TRYWRLOCK: usize = 10;
    pub const RW_TIMEDWRLOCK: usize = 11;
    pub const RW_CLOCKWRLOCK: usize = 12;
    pub const RW_UNLOCK: usize = 13;
    pub const SPIN_LOCK: usize = 14;
    pub const SPIN_TRYLOCK: usize = 15;
    pub const SPIN_UNLOCK: usize = 16;
    pub const SEM_INIT: usize = 17;
    pub const SEM_DESTROY: usize = 18;
    pub const SEM_WAIT: usize = 19;
    pub const SEM_TRYWAIT: usize = 20;
    pub const SEM_TIMEDWAIT: usize = 21;
    pub const SEM_CLOCKWAIT: usize = 22;
    pub const SEM_POST: usize = 23;
}

pub(super) static REAL: [AtomicUsize; COUNT] = [const { AtomicUsize::new(0) }; COUNT];

/// glibc's definition for slot `i`, looked up on first use; 0 if none. Not
/// async-signal-safe on the first call: everything is bound at load when
/// tracking is on.
pub fn real(i: usize) -> usize {
    match (REAL.get(i), NAMES.get(i)) {
        (Some(r), Some(name)) => crate::os::symbols::next(r, name),
        _ => 0,
    }
}

/// glibc's function for slot `i` once bound (0 before). One load.
#[inline(always)]
pub fn bound(i: usize) -> usize {
    REAL.get(i).map_or(0, |r| r.load(Ordering::Relaxed))
}
