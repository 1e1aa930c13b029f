//! `posix_spawn` and `posix_spawnp`: the real call with a copy of the
//! caller's file actions that leaves the selected descriptors out.
use super::{active, for_each_left_out, log_spawn, Kept, Real, SPAWN, SPAWNP};
use crate::phases::runtime::LogTarget;
use crate::os::sys;
use libc::{c_char, c_int, pid_t, posix_spawn_file_actions_t, posix_spawnattr_t};

type SpawnFn = unsafe extern "C" fn(
    *mut pid_t,
    *const c_char,
    *const posix_spawn_file_actions_t,
    *const posix_spawnattr_t,
    *const *mut c_char,
    *const *mut c_char,
) -> c_int;

fn spawn_fn(r: &Real) -> SpawnFn {
    let p = r.get();
    if p == 0 {
        crate::os::clib::abort();
    }
    // SAFETY: p is libc's function of this signature.
    unsafe { core::mem::transmute::<usize, SpawnFn>(p) }
}

/// `posix_spawn`.
///
/// # Safety
/// Same contract as `posix_spawn(3)`.
#[no_mangle]
pub unsafe extern "C" fn posix_spawn(
    pid: *mut pid_t,
    path: *const c_char,
    fa: *const posix_spawn_file_actions_t,
    attr: *const posix_spawnattr_t,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
) -> c_int {
    crate::entry::wait::bind();
    // SAFETY: forwarded contract.
    unsafe { spawn(&SPAWN, "posix_spawn", pid, path, fa, attr, argv, envp) }
}

/// `posix_spawnp`.
///
/// # Safety
/// Same contract as `posix_spawnp(3)`.
#[no_mangle]
pub unsafe extern "C" fn posix_spawnp(
    pid: *mut pid_t,
    file: *const c_char,
    fa: *const posix_spawn_file_actions_t,
    attr: *const posix_spawnattr_t,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
) -> c_int {
    crate::entry::wait::bind();
    // SAFETY: forwarded contract.
    unsafe { spawn(&SPAWNP, "posix_spawnp", pid, file, fa, attr, argv, envp) }
}

/// The real call with the selected descriptors left out.
///
/// # Safety
/// Same contract as `posix_spawn(3)`.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn spawn(
    real: &Real,
    via: &str,
    pid: *mut pid_t,
    path: *const c_char,
    fa: *const posix_spawn_file_actions_t,
    attr: *const posix_spawnattr_t,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
) -> c_int {
    let f = spawn_fn(real);
    let Some(rt) = active() else {
        // SAFETY: forwarded contract.
        return unsafe { f(pid, path, fa, attr, argv, envp) };
    };
    let entry_errno = sys::errno();
    // SAFETY: fa is null or the caller's initialised file actions.
    let Some(mut copy) = (unsafe { Copy::of(fa) }) else {
        // A layout this build does not know: the call goes through as is.
        // SAFETY: forwarded contract.
        return unsafe { f(pid, path, fa, attr, argv, envp) };
    };
    let kept = Kept::from_env(envp.cast());
    let mut out = Vec::new();
    for_each_left_out(rt, kept, &|n| copy.targets.contains(&n), |n| {
        if !out.contains(&n) {
            out.push(n);
        }
    });
    out.sort_unstable();
    for &n in &out {
        copy.leave_out(n);
    }
    sys::set_errno(entry_errno);
    // SAFETY: forwarded contract, with our copy of the file actions.
    let r = unsafe { f(pid, path, &copy.fa, attr, argv, envp) };
    let err = sys::errno();
    let child = if r == 0 && !pid.is_null() {
        // SAFETY: pid is the caller's out-parameter, set on success.
        unsafe { *pid }
    } else {
        -1
    };
    drop(copy);
    if !matches!(rt.log, LogTarget::Off) {
        // SAFETY: path is a NUL-terminated string (posix_spawn's contract).
        let prog = unsafe { core::ffi::CStr::from_ptr(path) }.to_bytes();
        log_spawn(rt, via, prog, child, &out);
    }
    sys::set_errno(err);
    r
}

/// One action of glibc's `posix_spawn_file_actions_t` array (glibc 2.34
/// to 2.36 `struct __spawn_action`: a tag, then a union at offset 8).
#[repr(C)]
struct RawAction {
    tag: c_int,
    _pad: c_int,
    a: c_int,
    b: c_int,
    path: *const c_char,
    oflag: c_int,
    mode: libc::mode_t,
}

/// glibc's `posix_spawn_file_actions_t`.
#[repr(C)]
struct RawActions {
    allocated: c_int,
    used: c_int,
    actions: *const RawAction,
}

/// A private copy of the caller's file actions, which we may extend.
struct Copy {
    fa: posix_spawn_file_actions_t,
    /// Descriptors the caller's actions create (dup2 and open targets).
    targets: Vec<c_int>,
}


impl Copy {
    /// Replay `fa` (null: none) into a fresh object. `None` when an action
    /// has a tag this build does not know, or an add fails.
    ///
    /// # Safety
    /// `fa` is null or an initialised `posix_spawn_file_actions_t`.
    unsafe fn of(fa: *const posix_spawn_file_actions_t) -> Option<Copy> {
        let mut c = Copy {
            // SAFETY: the all-zero object is what init overwrites.
            fa: unsafe { core::mem::zeroed() },
            targets: Vec::new(),
        };
        // SAFETY: c.fa is writable.
        unsafe { crate::os::clib::posix_spawn_file_actions_init(&mut c.fa) };
        if fa.is_null() {
            return Some(c);
        }
        // SAFETY: glibc's layout (checked by tests/spawn.rs against the
        // running glibc through the replayed copy's behaviour).
        let raw = unsafe { &*(fa as *const RawActions) };
        let n = usize::try_from(raw.used).unwrap_or(0);
        for i in 0..n {
            // SAFETY: actions holds `used` initialised entries.
            let a = unsafe { &*raw.actions.add(i) };
            let me = &mut c.fa as *mut posix_spawn_file_actions_t;
            // SAFETY: each call gets our object and values read from the
            // caller's (paths stay the caller's, copied by glibc).
            let r = unsafe {
                match a.tag {
                    0 => crate::os::clib::posix_spawn_file_actions_addclose(me, a.a),
                    1 => {
                        c.targets.push(a.b);
                        crate::os::clib::posix_spawn_file_actions_adddup2(me, a.a, a.b)
                    }
                    2 => {
                        c.targets.push(a.a);
                        crate::os::clib::posix_spawn_file_actions_addopen(me, a.a, a.path, a.oflag, a.mode)
                    }
                    3 => crate::os::clib::posix_spawn_file_actions_addchdir_np(me, a.b_path()),
                    4 => crate::os::clib::posix_spawn_file_actions_addfchdir_np(me, a.a),
                    5 => crate::os::clib::posix_spawn_file_actions_addclosefrom_np(me, a.a),
                    6 => crate::os::clib::posix_spawn_file_actions_addtcsetpgrp_np(me, a.a),
                    _ => -1,
                }
            };
            if r != 0 {
                return None;
            }
        }
        Some(c)
    }

    /// Add the action that keeps `fd` from the new program: `close`, or
    /// `/dev/null` in its access mode for 0, 1 and 2 (never left closed).
    fn leave_out(&mut self, fd: c_int) {
        let me = &mut self.fa as *mut posix_spawn_file_actions_t;
        // SAFETY: our initialised object; the path is a static C string.
        unsafe {
            if (0..=2).contains(&fd) {
                let mode =
                    sys::fcntl(fd, libc::F_GETFL, 0).map_or(libc::O_RDWR, |f| f & libc::O_ACCMODE);
                crate::os::clib::posix_spawn_file_actions_addopen(me, fd, c"/dev/null".as_ptr(), mode, 0);
            } else {
                crate::os::clib::posix_spawn_file_actions_addclose(me, fd);
            }
        }
    }
}

impl RawAction {
    /// The chdir action's path: the union's first member is the pointer.
    fn b_path(&self) -> *const c_char {
        let p = &self.a as *const c_int as *const *const c_char;
        // SAFETY: for a chdir action the union at offset 8 holds a pointer.
        unsafe { p.read_unaligned() }
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        // SAFETY: our initialised object, destroyed once.
        unsafe { crate::os::clib::posix_spawn_file_actions_destroy(&mut self.fa) };
    }
}
