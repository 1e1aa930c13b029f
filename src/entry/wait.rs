//! The wait family, exported so that `log_exits` learns the status of a
//! tracked child the program reaped before the watcher looked: each calls
//! libc's own function, then notes what it returned (`exits::note`). With
//! `log_exits` off that is one atomic load.
use crate::phases::exits::{from_siginfo, note};
use crate::phases::runtime::Runtime;
use libc::{c_int, pid_t};
use std::sync::atomic::AtomicUsize;

/// The next definition (libc's) of a wait function, looked up once.
fn next(cache: &AtomicUsize, name: &core::ffi::CStr) -> usize {
    let p = crate::os::symbols::next(cache, name);
    if p == 0 {
        // Nothing sensible is left without libc's wait.
        crate::os::clib::abort();
    }
    p
}

static WAITPID: AtomicUsize = AtomicUsize::new(0);
static WAIT: AtomicUsize = AtomicUsize::new(0);
static WAIT3: AtomicUsize = AtomicUsize::new(0);
static WAIT4: AtomicUsize = AtomicUsize::new(0);
static WAITID: AtomicUsize = AtomicUsize::new(0);

/// At load, when `log_exits` is on: find the real wait functions now, so
/// none is looked up in a signal handler.
pub fn init(rt: &Runtime) {
    if !rt.log_exits {
        return;
    }
    next(&WAITPID, c"waitpid");
    next(&WAIT, c"wait");
    next(&WAIT3, c"wait3");
    next(&WAIT4, c"wait4");
    next(&WAITID, c"waitid");
}

/// `waitpid`: libc's, then the reaped status noted for `log_exits`.
///
/// # Safety
/// Same contract as `waitpid(2)`.
#[no_mangle]
pub unsafe extern "C" fn waitpid(pid: pid_t, status: *mut c_int, options: c_int) -> pid_t {
    type F = unsafe extern "C" fn(pid_t, *mut c_int, c_int) -> pid_t;
    let f = next(&WAITPID, c"waitpid");
    let mut local = 0;
    let out = if status.is_null() { &mut local } else { status };
    // SAFETY: libc's waitpid with a valid status pointer.
    let r = unsafe { core::mem::transmute::<usize, F>(f)(pid, out, options) };
    if r > 0 {
        // SAFETY: out was just written by waitpid.
        note(r, unsafe { *out });
    }
    r
}

/// `wait`.
///
/// # Safety
/// Same contract as `wait(2)`.
#[no_mangle]
pub unsafe extern "C" fn wait(status: *mut c_int) -> pid_t {
    type F = unsafe extern "C" fn(*mut c_int) -> pid_t;
    let f = next(&WAIT, c"wait");
    let mut local = 0;
    let out = if status.is_null() { &mut local } else { status };
    // SAFETY: libc's wait with a valid status pointer.
    let r = unsafe { core::mem::transmute::<usize, F>(f)(out) };
    if r > 0 {
        // SAFETY: out was just written by wait.
        note(r, unsafe { *out });
    }
    r
}

/// `wait3`.
///
/// # Safety
/// Same contract as `wait3(2)`.
#[no_mangle]
pub unsafe extern "C" fn wait3(status: *mut c_int, options: c_int, ru: *mut libc::rusage) -> pid_t {
    type F = unsafe extern "C" fn(*mut c_int, c_int, *mut libc::rusage) -> pid_t;
    let f = next(&WAIT3, c"wait3");
    let mut local = 0;
    let out = if status.is_null() { &mut local } else { status };
    // SAFETY: libc's wait3 with a valid status pointer.
    let r = unsafe { core::mem::transmute::<usize, F>(f)(out, options, ru) };
    if r > 0 {
        // SAFETY: out was just written by wait3.
        note(r, unsafe { *out });
    }
    r
}

/// `wait4`.
///
/// # Safety
/// Same contract as `wait4(2)`.
#[no_mangle]
pub unsafe extern "C" fn wait4(
    pid: pid_t,
    status: *mut c_int,
    options: c_int,
    ru: *mut libc::rusage,
) -> pid_t {
    type F = unsafe extern "C" fn(pid_t, *mut c_int, c_int, *mut libc::rusage) -> pid_t;
    let f = next(&WAIT4, c"wait4");
    let mut local = 0;
    let out = if status.is_null() { &mut local } else { status };
    // SAFETY: libc's wait4 with a valid status pointer.
    let r = unsafe { core::mem::transmute::<usize, F>(f)(pid, out, options, ru) };
    if r > 0 {
        // SAFETY: out was just written by wait4.
        note(r, unsafe { *out });
    }
    r
}

/// `waitid`: a reaped (not `WNOWAIT`) exit is noted.
///
/// # Safety
/// Same contract as `waitid(2)`.
#[no_mangle]
pub unsafe extern "C" fn waitid(
    idtype: libc::idtype_t,
    id: libc::id_t,
    info: *mut libc::siginfo_t,
    options: c_int,
) -> c_int {
    type F = unsafe extern "C" fn(libc::idtype_t, libc::id_t, *mut libc::siginfo_t, c_int) -> c_int;
    let f = next(&WAITID, c"waitid");
    // SAFETY: libc's waitid with the caller's arguments.
    let r = unsafe { core::mem::transmute::<usize, F>(f)(idtype, id, info, options) };
    if r == 0 && !info.is_null() && options & libc::WNOWAIT == 0 && options & libc::WEXITED != 0 {
        // SAFETY: waitid filled info (si_pid 0: nothing was waitable).
        let (pid, code, st) = unsafe { ((*info).si_pid(), (*info).si_code, (*info).si_status()) };
        if matches!(code, libc::CLD_EXITED | libc::CLD_KILLED | libc::CLD_DUMPED) {
            note(pid, from_siginfo(code, st));
        }
    }
    r
}
