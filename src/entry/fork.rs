//! `fork`, `forkpty`, `daemon` and `vfork`: each a thin shell around
//! `phases::around`.
//!
//! redhook's wrappers catch a panic and then call the real function: with
//! `panic = "abort"` (Cargo.toml) there is no unwinding, so that path can
//! never run a second fork.

use crate::phases::{self, Via};
use libc::{c_char, c_int, pid_t, termios, winsize};
use std::sync::atomic::AtomicUsize;

/// The real `fork`.
fn real_fork() -> extern "C" fn() -> pid_t {
    static REAL: AtomicUsize = AtomicUsize::new(0);
    let p = crate::os::symbols::next(&REAL, c"fork");
    if p == 0 {
        // No fork after us: nothing sensible is left but to stop.
        crate::os::clib::abort();
    }
    // SAFETY: p is the address of a function with fork's signature.
    unsafe { core::mem::transmute::<usize, extern "C" fn() -> pid_t>(p) }
}

/// `fork`, by hand rather than with redhook's `hook!` (which `forkpty` and
/// `daemon` use): so that it can sit in `.text.fg_hot` with the engine's
/// post-fork code. A child has none of the parent's code pages mapped and
/// faults in each one it runs: the code it runs from the return of the real
/// fork to the return to the caller is kept together (see `engine`).
///
/// # Safety
/// Same contract as `fork(2)`.
#[no_mangle]
#[link_section = ".text.fg_hot"]
pub unsafe extern "C" fn fork() -> pid_t {
    crate::entry::wait::bind();
    // SAFETY: the closure performs the real fork.
    unsafe { phases::around(Via::Fork, || real_fork()()) }
}

redhook::hook! {
    unsafe fn forkpty(amaster: *mut c_int, name: *mut c_char, termp: *const termios, winp: *const winsize) -> pid_t => fg_forkpty {
        // glibc's forkpty forks internally without calling `fork`: the
        // phases run here, once (its fork handlers see this thread busy).
        crate::entry::wait::bind();
        // SAFETY: the closure performs the real forkpty with the caller's arguments.
        unsafe { phases::around(Via::Forkpty, || redhook::real!(forkpty)(amaster, name, termp, winp)) }
    }
}

redhook::hook! {
    unsafe fn daemon(nochdir: c_int, noclose: c_int) -> c_int => fg_daemon {
        crate::entry::wait::bind();
        // SAFETY: the closure performs the real daemon call.
        unsafe { phases::around_daemon(|| redhook::real!(daemon)(nochdir, noclose)) }
    }
}

/// The real `vfork`, looked up once.
fn real_vfork() -> usize {
    static REAL: AtomicUsize = AtomicUsize::new(0);
    crate::os::symbols::next(&REAL, c"vfork")
}

/// `vfork = "fork"`: a real fork with all three phases.
extern "C" fn vfork_as_fork() -> pid_t {
    // SAFETY: the closure performs the real fork.
    unsafe { phases::around(Via::Vfork, || real_fork()()) }
}

/// Where `vfork` goes: the real one (default, passthrough) or a fork with
/// phases. Called from the naked `vfork` below, before any process exists.
extern "C" fn vfork_target() -> usize {
    // The child may exec through our exec wrappers: libc's are found now,
    // in the parent, never by a look-up in the vfork child.
    crate::entry::spawn::before_vfork();
    crate::entry::wait::bind();
    match crate::phases::runtime::get() {
        Some(rt) if rt.vfork_as_fork && !phases::busy() => vfork_as_fork as *const () as usize,
        _ => real_vfork(),
    }
}

/// `vfork` cannot be wrapped by an ordinary function: the child runs on the
/// parent's stack and would clobber the wrapper's frame. So this entry has
/// no frame at all: it asks `vfork_target` where to go and jumps there, and
/// the real vfork returns straight to our caller.
///
/// # Safety
/// Same contract as `vfork(2)`.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn vfork() -> pid_t {
    core::arch::naked_asm!(
        "sub rsp, 8",
        "call {target}",
        "add rsp, 8",
        "jmp rax",
        target = sym vfork_target,
    )
}
