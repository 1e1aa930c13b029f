//! `type = "spinlock"`: `pthread_spinlock_t` (no owner recorded).

use super::shared::*;
use crate::os::buf::Buf;
use libc::c_int;
use std::sync::atomic::{AtomicI32, Ordering};

/// Child: a spinlock is free again (whoever held it).
#[link_section = ".text.fg_hot"]
pub(super) fn spin_child(addr: usize, _state: u8) {
    // SAFETY: a 4-byte aligned, writable spinlock variable (checked at load
    // and by `usable`).
    unsafe { AtomicI32::from_ptr(addr as *mut i32) }.store(spin_free(), Ordering::Relaxed);
}

/// The value of a free `pthread_spinlock_t` (1 on x86-64, 0 elsewhere),
/// learned from `pthread_spin_init` once. Async-signal-safe after the
/// first call (which prepare makes, before any child exists).
#[link_section = ".text.fg_hot"]
pub(super) fn spin_free() -> i32 {
    static FREE: AtomicI32 = AtomicI32::new(i32::MIN);
    let v = FREE.load(Ordering::Relaxed);
    if v != i32::MIN {
        return v;
    }
    let mut s: libc::pthread_spinlock_t = 0;
    // SAFETY: initialises a local spinlock.
    unsafe { crate::os::clib::pthread_spin_init(&mut s, libc::PTHREAD_PROCESS_PRIVATE) };
    FREE.store(s, Ordering::Relaxed);
    s
}

#[link_section = ".text.fg_hot"]
pub(super) fn spin_prepare(addr: usize, acquire: bool, ms: u32) -> Result<u8, c_int> {
    spin_free();
    if !acquire {
        return Ok(SEEN);
    }
    // SAFETY: usable() checked a writable, aligned spinlock variable.
    let try_ = || unsafe { crate::os::clib::pthread_spin_trylock(addr as *mut libc::pthread_spinlock_t) } == 0;
    Ok(try_until(ms, try_))
}

/// Audit: is it held now, and by whom (see [`super::held`]).
pub(super) fn spinlock_held(addr: usize, _me: libc::pid_t, held: &mut Buf<160>) {
    // SAFETY: a resolved spinlock variable (read only).
    if unsafe { word(addr, 0) }.load(Ordering::Relaxed) != spin_free() {
        held.str("(a spinlock records no owner)");
    }
}

/// `held_locks`: is the spinlock taken?
pub fn spin_locked(addr: usize) -> bool {
    // SAFETY: addr is a spinlock the program passed to a lock call.
    unsafe { word(addr, 0) }.load(Ordering::Relaxed) != spin_free()
}

/// `held_locks`, child: free. Async-signal-safe.
pub fn spin_make_free(addr: usize) {
    spin_child(addr, SEEN)
}
