//! The wait family, exported so that `log_exits` learns the status of a
//! tracked child the program reaped before the watcher looked.
//!
//! Each exported function is one instruction, `jmp *slot` (as the lock
//! entry points in `held.rs`). A slot starts at the noting version below,
//! which calls libc's function (or, before it is bound, makes the system
//! call itself) and then notes what it returned (`exits::note`). `bind`
//! finds libc's functions at the first fork or spawn; without `log_exits`
//! it then points each slot straight at libc's function, so a wait costs
//! one indirect jump.
use crate::phases::exits::{from_siginfo, note};
use crate::phases::runtime::Runtime;
use libc::{c_int, pid_t};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

/// libc's wait function from `cache`, once bound (`bind`); `None` before.
fn bound(cache: &AtomicUsize) -> Option<usize> {
    let p = cache.load(Ordering::Acquire);
    (p != 0).then_some(p)
}

/// The wait system call itself, for a wait made before libc's functions
/// were bound: what glibc's wrapper does (`wait4`/`waitid` with no usage),
/// without its cancellation point. It is never looked up then, since that
/// first wait may run in a signal handler (a SIGCHLD handler that reaps),
/// where `dlsym` must not run. Async-signal-safe.
fn sys(n: libc::c_long, a: [usize; 6]) -> c_int {
    // SAFETY: the caller passes a wait system call's arguments as given.
    unsafe { crate::os::sys::syscall(n, a) as c_int }
}

static WAITPID: AtomicUsize = AtomicUsize::new(0);
static WAIT: AtomicUsize = AtomicUsize::new(0);
static WAIT3: AtomicUsize = AtomicUsize::new(0);
static WAIT4: AtomicUsize = AtomicUsize::new(0);
static WAITID: AtomicUsize = AtomicUsize::new(0);
static BOUND: AtomicBool = AtomicBool::new(false);

/// Find libc's wait functions, once: at load when `log_exits` is on, else
/// at the first fork or spawn (there is nothing to wait for before one,
/// bar children made with a raw `clone`). Never from a wait itself.
pub fn bind() {
    if BOUND.load(Ordering::Relaxed) {
        return;
    }
    bind_now();
}

#[cold]
#[inline(never)]
fn bind_now() {
    for (cache, name) in [
        (&WAITPID, c"waitpid"),
        (&WAIT, c"wait"),
        (&WAIT3, c"wait3"),
        (&WAIT4, c"wait4"),
        (&WAITID, c"waitid"),
    ] {
        crate::os::symbols::next(cache, name);
    }
    if !NOTING.load(Ordering::Relaxed) {
        for (slot, cache) in SLOTS.iter().zip([&WAITPID, &WAIT, &WAIT3, &WAIT4, &WAITID]) {
            if let Some(f) = bound(cache) {
                slot.store(f as *mut (), Ordering::Release);
            }
        }
    }
    BOUND.store(true, Ordering::Relaxed);
}

/// Where each exported wait function jumps, in the order waitpid, wait,
/// wait3, wait4, waitid.
static SLOTS: [AtomicPtr<()>; 5] = [
    AtomicPtr::new(noting_waitpid as *mut ()),
    AtomicPtr::new(noting_wait as *mut ()),
    AtomicPtr::new(noting_wait3 as *mut ()),
    AtomicPtr::new(noting_wait4 as *mut ()),
    AtomicPtr::new(noting_waitid as *mut ()),
];

macro_rules! entries {
    ($($i:literal $name:ident;)*) => {
        $(
            /// Exported: one indirect jump through its slot.
            ///
            /// # Safety
            /// Same contract as libc's function of that name.
            #[unsafe(naked)]
            #[no_mangle]
            pub unsafe extern "C" fn $name() {
                core::arch::naked_asm!(
                    concat!("jmp qword ptr [rip + {slots} + 8*", stringify!($i), "]"),
                    slots = sym SLOTS,
                )
            }
        )*
    };
}

/// `waitpid` as the program's own call makes it: through the exported
/// entry's slot.
pub fn waitpid_as_exported(pid: pid_t, status: &mut c_int, options: c_int) -> pid_t {
    type F = unsafe extern "C" fn(pid_t, *mut c_int, c_int) -> pid_t;
    let f = SLOTS[0].load(Ordering::Acquire);
    // SAFETY: every value slot 0 holds is a function with waitpid's
    // signature (the noting version or libc's); status is valid.
    unsafe { core::mem::transmute::<*mut (), F>(f)(pid, status, options) }
}

entries! {
    0 waitpid;
    1 wait;
    2 wait3;
    3 wait4;
    4 waitid;
}

/// At load, when `log_exits` is on: bind now, so that its very first
/// reaped status is noted by libc's own call.
pub fn init(rt: &Runtime) {
    if rt.log_exits {
        NOTING.store(true, Ordering::Relaxed);
        bind();
    }
}

/// `log_exits` is on: the slots keep the noting versions.
static NOTING: AtomicBool = AtomicBool::new(false);

/// `waitpid`'s noting version: libc's, then the reaped status noted for
/// `log_exits`.
///
/// # Safety
/// Same contract as `waitpid(2)`.
unsafe extern "C" fn noting_waitpid(pid: pid_t, status: *mut c_int, options: c_int) -> pid_t {
    type F = unsafe extern "C" fn(pid_t, *mut c_int, c_int) -> pid_t;
    let mut local = 0;
    let out = if status.is_null() { &mut local } else { status };
    let r = match bound(&WAITPID) {
        // SAFETY: libc's waitpid with a valid status pointer.
        Some(f) => unsafe { core::mem::transmute::<usize, F>(f)(pid, out, options) },
        None => sys(libc::SYS_wait4, [pid as usize, out as usize, options as usize, 0, 0, 0]),
    };
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
unsafe extern "C" fn noting_wait(status: *mut c_int) -> pid_t {
    type F = unsafe extern "C" fn(*mut c_int) -> pid_t;
    let mut local = 0;
    let out = if status.is_null() { &mut local } else { status };
    let r = match bound(&WAIT) {
        // SAFETY: libc's wait with a valid status pointer.
        Some(f) => unsafe { core::mem::transmute::<usize, F>(f)(out) },
        None => sys(libc::SYS_wait4, [-1isize as usize, out as usize, 0, 0, 0, 0]),
    };
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
unsafe extern "C" fn noting_wait3(status: *mut c_int, options: c_int, ru: *mut libc::rusage) -> pid_t {
    type F = unsafe extern "C" fn(*mut c_int, c_int, *mut libc::rusage) -> pid_t;
    let mut local = 0;
    let out = if status.is_null() { &mut local } else { status };
    let r = match bound(&WAIT3) {
        // SAFETY: libc's wait3 with a valid status pointer.
        Some(f) => unsafe { core::mem::transmute::<usize, F>(f)(out, options, ru) },
        None => sys(libc::SYS_wait4, [-1isize as usize, out as usize, options as usize, ru as usize, 0, 0]),
    };
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
unsafe extern "C" fn noting_wait4(
    pid: pid_t,
    status: *mut c_int,
    options: c_int,
    ru: *mut libc::rusage,
) -> pid_t {
    type F = unsafe extern "C" fn(pid_t, *mut c_int, c_int, *mut libc::rusage) -> pid_t;
    let mut local = 0;
    let out = if status.is_null() { &mut local } else { status };
    let r = match bound(&WAIT4) {
        // SAFETY: libc's wait4 with a valid status pointer.
        Some(f) => unsafe { core::mem::transmute::<usize, F>(f)(pid, out, options, ru) },
        None => sys(libc::SYS_wait4, [pid as usize, out as usize, options as usize, ru as usize, 0, 0]),
    };
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
unsafe extern "C" fn noting_waitid(
    idtype: libc::idtype_t,
    id: libc::id_t,
    info: *mut libc::siginfo_t,
    options: c_int,
) -> c_int {
    type F = unsafe extern "C" fn(libc::idtype_t, libc::id_t, *mut libc::siginfo_t, c_int) -> c_int;
    let r = match bound(&WAITID) {
        // SAFETY: libc's waitid with the caller's arguments.
        Some(f) => unsafe { core::mem::transmute::<usize, F>(f)(idtype, id, info, options) },
        None => sys(libc::SYS_waitid, [idtype as usize, id as usize, info as usize, options as usize, 0, 0]),
    };
    if r == 0 && !info.is_null() && options & libc::WNOWAIT == 0 && options & libc::WEXITED != 0 {
        // SAFETY: waitid filled info (si_pid 0: nothing was waitable).
        let (pid, code, st) = unsafe { ((*info).si_pid(), (*info).si_code, (*info).si_status()) };
        if matches!(code, libc::CLD_EXITED | libc::CLD_KILLED | libc::CLD_DUMPED) {
            note(pid, from_siginfo(code, st));
        }
    }
    r
}
