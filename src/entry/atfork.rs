//! The `pthread_atfork` fallback: forks that reach glibc's fork handlers
//! without going through an interposed entry point (`__fork`, a `fork`
//! found with `dlsym` on a libc handle, another libc's `forkpty`).

use crate::phases;

/// Register the fallback handlers. Called once, at load, only when a
/// runtime is installed.
pub fn register() {
    // SAFETY: the handlers are plain extern "C" functions that live as long
    // as the library (it is never unloaded: LD_PRELOAD).
    unsafe { crate::os::clib::pthread_atfork(atfork_prepare, atfork_parent, atfork_child) };
}

extern "C" fn atfork_prepare() {
    phases::fallback_prepare()
}

#[link_section = ".text.fg_hot"]
extern "C" fn atfork_parent() {
    phases::fallback_after(false)
}

#[link_section = ".text.fg_hot"]
extern "C" fn atfork_child() {
    phases::fallback_after(true)
}
