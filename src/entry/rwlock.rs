//! `pthread_rwlock_{rd,tryrd,timedrd,clockrd}lock` and
//! `pthread_rwlock_unlock`: forward to glibc's and, while a config has an
//! rwlock action, count the calling thread's read locks
//! (`actions::lock::track`). Every process pays one flag test and an
//! indirect call per rwlock call for this.

use crate::actions::lock::track;
use crate::os::symbols::next;
use libc::{c_int, pthread_rwlock_t, timespec};
use std::sync::atomic::AtomicUsize;

macro_rules! forward {
    ($name:ident, $cname:literal, $real:ident, ($($arg:ident: $ty:ty),*), $after:expr) => {
        static $real: AtomicUsize = AtomicUsize::new(0);

        /// Forwards to glibc's; counts read locks when tracking is on.
        ///
        /// # Safety
        /// Same contract as glibc's function of that name.
        #[no_mangle]
        pub unsafe extern "C" fn $name(l: *mut pthread_rwlock_t $(, $arg: $ty)*) -> c_int {
            let p = next(&$real, $cname);
            if p == 0 {
                return libc::ENOSYS;
            }
            type Real = unsafe extern "C" fn(*mut pthread_rwlock_t $(, $ty)*) -> c_int;
            // SAFETY: p is glibc's function of the same name and type.
            let f = unsafe { core::mem::transmute::<usize, Real>(p) };
            let on = track::on();
            if on && !$after {
                track::releasing(l as usize);
            }
            // SAFETY: the caller's arguments, passed on unchanged.
            let r = unsafe { f(l $(, $arg)*) };
            if on && $after && r == 0 {
                track::took(l as usize);
            }
            r
        }
    };
}

forward!(
    pthread_rwlock_rdlock,
    c"pthread_rwlock_rdlock",
    RDLOCK,
    (),
    true
);
forward!(
    pthread_rwlock_tryrdlock,
    c"pthread_rwlock_tryrdlock",
    TRYRDLOCK,
    (),
    true
);
forward!(pthread_rwlock_timedrdlock, c"pthread_rwlock_timedrdlock", TIMEDRDLOCK, (t: *const timespec), true);
forward!(pthread_rwlock_clockrdlock, c"pthread_rwlock_clockrdlock", CLOCKRDLOCK, (c: libc::clockid_t, t: *const timespec), true);
forward!(
    pthread_rwlock_unlock,
    c"pthread_rwlock_unlock",
    UNLOCK,
    (),
    false
);

/// Every forwarder's target, looked up now (at load, when a config has an
/// rwlock action) rather than at first use, which may be in a child or a
/// signal handler.
pub fn resolve_all() {
    next(&RDLOCK, c"pthread_rwlock_rdlock");
    next(&TRYRDLOCK, c"pthread_rwlock_tryrdlock");
    next(&TIMEDRDLOCK, c"pthread_rwlock_timedrdlock");
    next(&CLOCKRDLOCK, c"pthread_rwlock_clockrdlock");
    next(&UNLOCK, c"pthread_rwlock_unlock");
}
