//! Every libc function the library calls by name, each wrapped once (the
//! raw system calls are in `sys`). Thin and inlined: a wrapper adds no
//! code, and no call, to the paths that run after a fork.
//!
//! Each of these goes through a lazy trampoline (`lazy`): a new one must be
//! added to `lazy_imports.txt` (`tests/imports.rs` checks).

use libc::c_int;

/// `pthread_atfork(3)` with all three handlers.
///
/// # Safety
/// The handlers must stay valid for the life of the process.
#[inline(always)]
pub unsafe fn pthread_atfork(
    prepare: extern "C" fn(),
    parent: extern "C" fn(),
    child: extern "C" fn(),
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) }
}
