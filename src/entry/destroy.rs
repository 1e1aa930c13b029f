//! `pthread_mutex_destroy` and `pthread_rwlock_destroy`: glibc's, then,
//! while a fork with `held_locks = "acquire"` waits for or holds that very
//! lock, wait until the fork is done, so that the caller does not free the
//! lock's memory under prepare's waiting (`actions::held::busy`). On top of
//! glibc's call: one load and a branch without `acquire` configured, a
//! fence and one more load with it.

use crate::actions::held::busy;
use core::sync::atomic::AtomicUsize;
use libc::c_int;

type Destroy = unsafe extern "C" fn(*mut libc::c_void) -> c_int;

fn real(cache: &AtomicUsize, name: &core::ffi::CStr) -> Option<Destroy> {
    let p = crate::os::symbols::next(cache, name);
    // SAFETY: the next definition of a destroy function of this signature.
    (p != 0).then(|| unsafe { core::mem::transmute::<usize, Destroy>(p) })
}

/// # Safety
/// The caller's mutex, as for glibc's.
#[no_mangle]
pub unsafe extern "C" fn pthread_mutex_destroy(m: *mut libc::c_void) -> c_int {
    static REAL: AtomicUsize = AtomicUsize::new(0);
    let Some(f) = real(&REAL, c"pthread_mutex_destroy") else {
        return libc::ENOSYS;
    };
    // SAFETY: the caller's argument, passed on unchanged.
    let rv = unsafe { f(m) };
    busy::wait_until_released(m as usize);
    rv
}

/// # Safety
/// The caller's rwlock, as for glibc's.
#[no_mangle]
pub unsafe extern "C" fn pthread_rwlock_destroy(l: *mut libc::c_void) -> c_int {
    static REAL: AtomicUsize = AtomicUsize::new(0);
    let Some(f) = real(&REAL, c"pthread_rwlock_destroy") else {
        return libc::ENOSYS;
    };
    // SAFETY: the caller's argument, passed on unchanged.
    let rv = unsafe { f(l) };
    busy::wait_until_released(l as usize);
    rv
}
