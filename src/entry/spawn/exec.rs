//! `execve`, `execv`, `execvp`, `execvpe` in a `vfork` child: the
//! selected descriptors are made close-on-exec in the child's own table.
use super::{
    active, environ, for_each_left_out, log_exec, Kept, Real, EXECV, EXECVE, EXECVP, EXECVPE,
};
use crate::phases::runtime::LogTarget;
use crate::os::sys;
use libc::{c_char, c_int};

/// In a `vfork` child about to exec: mark the selected descriptors
/// close-on-exec in the child's own table (an exec that fails leaves them
/// open, as the caller expects). Async-signal-safe: raw system calls on
/// the stack, errno restored.
fn before_exec(envp: *const *const c_char) {
    let Some(rt) = active() else { return };
    let saved = sys::errno();
    if shares_memory_with_parent() {
        let kept = Kept::from_env(envp);
        let mut n = 0u32;
        for_each_left_out(rt, kept, &|_| false, |fd| {
            if (0..=2).contains(&fd) {
                devnull_over(fd);
            } else {
                let _ = sys::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC as usize);
            }
            n += 1;
        });
        if n > 0 && !matches!(rt.log, LogTarget::Off) {
            log_exec(rt, n);
        }
    }
    sys::set_errno(saved);
}

/// `/dev/null` over fd 0, 1 or 2, in its access mode. Async-signal-safe.
fn devnull_over(fd: c_int) {
    let mode = sys::fcntl(fd, libc::F_GETFL, 0).map_or(libc::O_RDWR, |f| f & libc::O_ACCMODE);
    let n = sys::open(c"/dev/null", mode | libc::O_CLOEXEC, 0);
    if n >= 0 {
        // SAFETY: two descriptor numbers, no memory.
        unsafe { sys::syscall(libc::SYS_dup3, [n as usize, fd as usize, 0, 0, 0, 0]) };
        sys::close(n);
    }
}

/// Is this process a `vfork` (CLONE_VM) child: the same address space as
/// its parent? `kcmp(2)`; false where it is not available.
fn shares_memory_with_parent() -> bool {
    const KCMP_VM: usize = 1;
    let (me, parent) = (sys::getpid(), sys::getppid());
    // SAFETY: no pointers.
    let r = unsafe {
        sys::syscall(
            libc::SYS_kcmp,
            [me as usize, parent as usize, KCMP_VM, 0, 0, 0],
        )
    };
    r == 0
}

type ExecFn =
    unsafe extern "C" fn(*const c_char, *const *const c_char, *const *const c_char) -> c_int;

fn exec_fn(r: &Real) -> ExecFn {
    let p = r.get();
    if p == 0 {
        crate::os::clib::abort();
    }
    // SAFETY: p is libc's exec function; the two-argument ones ignore the
    // third register.
    unsafe { core::mem::transmute::<usize, ExecFn>(p) }
}

/// `execve`.
///
/// # Safety
/// Same contract as `execve(2)`.
#[no_mangle]
pub unsafe extern "C" fn execve(
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    before_exec(envp);
    // SAFETY: forwarded contract.
    unsafe { exec_fn(&EXECVE)(path, argv, envp) }
}

/// `execvpe`.
///
/// # Safety
/// Same contract as `execvpe(3)`.
#[no_mangle]
pub unsafe extern "C" fn execvpe(
    file: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    before_exec(envp);
    // SAFETY: forwarded contract.
    unsafe { exec_fn(&EXECVPE)(file, argv, envp) }
}

/// `execv`.
///
/// # Safety
/// Same contract as `execv(3)`.
#[no_mangle]
pub unsafe extern "C" fn execv(path: *const c_char, argv: *const *const c_char) -> c_int {
    before_exec(environ());
    // SAFETY: forwarded contract.
    unsafe { exec_fn(&EXECV)(path, argv, core::ptr::null()) }
}

/// `execvp`.
///
/// # Safety
/// Same contract as `execvp(3)`.
#[no_mangle]
pub unsafe extern "C" fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int {
    before_exec(environ());
    // SAFETY: forwarded contract.
    unsafe { exec_fn(&EXECVP)(file, argv, core::ptr::null()) }
}
