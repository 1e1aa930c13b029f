//! `system`, `popen` and `pclose`, re-implemented on the real
//! `posix_spawn` the way glibc 2.36 does them (glibc's own use its internal
//! `posix_spawn`, which no interposer reaches).
use super::call::spawn;
use super::{active, environ, PCLOSE, POPEN, SPAWN, SYSTEM};
use crate::phases::runtime::Runtime;
use crate::os::sys;
use libc::{c_char, c_int, pid_t, posix_spawn_file_actions_t, posix_spawnattr_t, FILE};
use std::sync::Mutex;

/// What concurrent `system` calls share, as in glibc: SIGINT and SIGQUIT
/// are ignored from the first call in until the last one returns.
struct SysState {
    refs: u32,
    intr: libc::sigaction,
    quit: libc::sigaction,
}

static SYS_STATE: Mutex<Option<SysState>> = Mutex::new(None);

/// `system`.
///
/// # Safety
/// Same contract as `system(3)`.
#[no_mangle]
pub unsafe extern "C" fn system(line: *const c_char) -> c_int {
    let Some(rt) = active() else {
        let p = SYSTEM.get();
        // SAFETY: libc's system, with the caller's argument.
        return unsafe {
            core::mem::transmute::<usize, unsafe extern "C" fn(*const c_char) -> c_int>(p)(line)
        };
    };
    if line.is_null() {
        // SAFETY: a static command.
        return c_int::from(unsafe { do_system(rt, c"exit 0".as_ptr()) } == 0);
    }
    // SAFETY: forwarded contract.
    unsafe { do_system(rt, line) }
}

/// glibc 2.36's `do_system` on the real `posix_spawn`.
///
/// # Safety
/// `line` is a NUL-terminated string.
unsafe fn do_system(rt: &Runtime, line: *const c_char) -> c_int {
    // SAFETY: plain libc calls on local, initialised structures.
    unsafe {
        let mut ign: libc::sigaction = core::mem::zeroed();
        ign.sa_sigaction = libc::SIG_IGN;
        crate::os::clib::sigemptyset(&mut ign.sa_mask);
        let (intr, quit) = {
            let mut g = SYS_STATE.lock().unwrap_or_else(|e| e.into_inner());
            let st = g.get_or_insert_with(|| SysState {
                refs: 0,
                intr: core::mem::zeroed(),
                quit: core::mem::zeroed(),
            });
            if st.refs == 0 {
                crate::os::clib::sigaction(libc::SIGINT, &ign, &mut st.intr);
                crate::os::clib::sigaction(libc::SIGQUIT, &ign, &mut st.quit);
            }
            st.refs += 1;
            (st.intr.sa_sigaction, st.quit.sa_sigaction)
        };
        let mut block: libc::sigset_t = core::mem::zeroed();
        crate::os::clib::sigemptyset(&mut block);
        crate::os::clib::sigaddset(&mut block, libc::SIGCHLD);
        let mut omask: libc::sigset_t = core::mem::zeroed();
        crate::os::clib::pthread_sigmask(libc::SIG_BLOCK, &block, &mut omask);
        let mut reset: libc::sigset_t = core::mem::zeroed();
        crate::os::clib::sigemptyset(&mut reset);
        if intr != libc::SIG_IGN {
            crate::os::clib::sigaddset(&mut reset, libc::SIGINT);
        }
        if quit != libc::SIG_IGN {
            crate::os::clib::sigaddset(&mut reset, libc::SIGQUIT);
        }
        let mut attr: posix_spawnattr_t = core::mem::zeroed();
        crate::os::clib::posix_spawnattr_init(&mut attr);
        crate::os::clib::posix_spawnattr_setsigmask(&mut attr, &omask);
        crate::os::clib::posix_spawnattr_setsigdefault(&mut attr, &reset);
        crate::os::clib::posix_spawnattr_setflags(
            &mut attr,
            (libc::POSIX_SPAWN_SETSIGDEF | libc::POSIX_SPAWN_SETSIGMASK) as libc::c_short,
        );
        let argv: [*const c_char; 4] = [c"sh".as_ptr(), c"-c".as_ptr(), line, core::ptr::null()];
        let mut pid: pid_t = 0;
        let _ = rt;
        let ret = spawn(
            &SPAWN,
            "system",
            &mut pid,
            c"/bin/sh".as_ptr(),
            core::ptr::null(),
            &attr,
            argv.as_ptr().cast(),
            environ().cast(),
        );
        crate::os::clib::posix_spawnattr_destroy(&mut attr);
        let mut status: c_int = -1;
        if ret == 0 {
            loop {
                let w = waitpid_real(pid, &mut status, 0);
                if w == pid {
                    break;
                }
                if w == -1 && sys::errno() == libc::EINTR {
                    continue;
                }
                status = -1;
                break;
            }
        } else {
            // POSIX: as if the shell had exited with 127.
            status = 127 << 8;
        }
        {
            let mut g = SYS_STATE.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(st) = g.as_mut() {
                st.refs = st.refs.saturating_sub(1);
                if st.refs == 0 {
                    crate::os::clib::sigaction(libc::SIGINT, &st.intr, core::ptr::null_mut());
                    crate::os::clib::sigaction(libc::SIGQUIT, &st.quit, core::ptr::null_mut());
                }
            }
        }
        crate::os::clib::pthread_sigmask(libc::SIG_SETMASK, &omask, core::ptr::null_mut());
        if ret != 0 {
            sys::set_errno(ret);
        }
        status
    }
}

/// `waitpid` as the program's own call would make it (through the
/// exported symbol, so `log_exits` sees a reaped status too).
fn waitpid_real(pid: pid_t, status: &mut c_int, options: c_int) -> pid_t {
    crate::entry::wait::waitpid_as_exported(pid, status, options)
}

// ---- popen, pclose ----------------------------------------------------------

/// Streams our `popen` made: (FILE address, child pid, descriptor).
static STREAMS: Mutex<Vec<(usize, pid_t, c_int)>> = Mutex::new(Vec::new());

/// `popen`.
///
/// # Safety
/// Same contract as `popen(3)`.
#[no_mangle]
pub unsafe extern "C" fn popen(command: *const c_char, mode: *const c_char) -> *mut FILE {
    if active().is_none() {
        let p = POPEN.get();
        // SAFETY: libc's popen with the caller's arguments.
        return unsafe {
            core::mem::transmute::<
                usize,
                unsafe extern "C" fn(*const c_char, *const c_char) -> *mut FILE,
            >(p)(command, mode)
        };
    }
    // SAFETY: forwarded contract.
    unsafe { do_popen(command, mode) }
}

/// glibc 2.36's `popen` on the real `posix_spawn`, with an `fdopen`ed
/// stream.
///
/// # Safety
/// Same contract as `popen(3)`.
unsafe fn do_popen(command: *const c_char, mode: *const c_char) -> *mut FILE {
    // SAFETY: mode is a NUL-terminated string.
    let m = unsafe { core::ffi::CStr::from_ptr(mode) }.to_bytes();
    let (mut read, mut write, mut cloexec) = (false, false, false);
    for &b in m {
        match b {
            b'r' => read = true,
            b'w' => write = true,
            b'e' => cloexec = true,
            _ => {
                sys::set_errno(libc::EINVAL);
                return core::ptr::null_mut();
            }
        }
    }
    if read == write {
        sys::set_errno(libc::EINVAL);
        return core::ptr::null_mut();
    }
    let mut fds = [-1 as c_int; 2];
    // SAFETY: fds is a 2-element out array.
    if unsafe { crate::os::clib::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return core::ptr::null_mut();
    }
    let (parent_end, mut child_end, child_fd) = if read {
        (fds[0], fds[1], 1)
    } else {
        (fds[1], fds[0], 0)
    };
    let fail = |a: c_int, b: c_int| {
        sys::close(a);
        sys::close(b);
        sys::set_errno(libc::ENOMEM);
        core::ptr::null_mut()
    };
    if child_end == child_fd {
        // Moved, so the child's dup2 clears close-on-exec on a new number.
        match sys::fcntl(child_end, libc::F_DUPFD_CLOEXEC, 0) {
            Ok(t) => {
                sys::close(child_end);
                child_end = t;
            }
            Err(_) => return fail(parent_end, child_end),
        }
    }
    let fmode = if read { c"r" } else { c"w" };
    // SAFETY: parent_end is our open descriptor.
    let fp = unsafe { crate::os::clib::fdopen(parent_end, fmode.as_ptr()) };
    if fp.is_null() {
        return fail(parent_end, child_end);
    }
    let mut streams = STREAMS.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: command is a NUL-terminated string (popen's contract).
    let ret = unsafe { spawn_shell(command, child_end, child_fd, &streams) };
    sys::close(child_end);
    match ret {
        Ok(pid) => {
            if !cloexec {
                let _ = sys::fcntl(parent_end, libc::F_SETFD, 0);
            }
            streams.push((fp as usize, pid, parent_end));
            fp
        }
        Err(_) => {
            drop(streams);
            // SAFETY: fp is our stream, closed once (closes parent_end).
            unsafe { crate::os::clib::fclose(fp) };
            sys::set_errno(libc::ENOMEM);
            core::ptr::null_mut()
        }
    }
}

/// `/bin/sh -c command` with `child_end` as the child's `child_fd` and the
/// other `popen` streams closed in it; the child's pid or an errno.
///
/// # Safety
/// `command` is a NUL-terminated string.
unsafe fn spawn_shell(
    command: *const c_char,
    child_end: c_int,
    child_fd: c_int,
    streams: &[(usize, pid_t, c_int)],
) -> Result<pid_t, c_int> {
    // SAFETY: plain file-action calls on our own object.
    unsafe {
        let mut fa: posix_spawn_file_actions_t = core::mem::zeroed();
        crate::os::clib::posix_spawn_file_actions_init(&mut fa);
        let mut ok = crate::os::clib::posix_spawn_file_actions_adddup2(&mut fa, child_end, child_fd) == 0;
        // POSIX: streams of earlier popen calls are closed in the new child.
        for &(_, _, fd) in streams.iter() {
            if fd != child_fd && ok {
                ok = crate::os::clib::posix_spawn_file_actions_addclose(&mut fa, fd) == 0;
            }
        }
        let argv: [*const c_char; 4] = [c"sh".as_ptr(), c"-c".as_ptr(), command, core::ptr::null()];
        let mut pid: pid_t = 0;
        let r = if ok {
            spawn(
                &SPAWN,
                "popen",
                &mut pid,
                c"/bin/sh".as_ptr(),
                &fa,
                core::ptr::null(),
                argv.as_ptr().cast(),
                environ().cast(),
            )
        } else {
            libc::ENOMEM
        };
        crate::os::clib::posix_spawn_file_actions_destroy(&mut fa);
        if r == 0 {
            Ok(pid)
        } else {
            Err(r)
        }
    }
}

/// `pclose`: ours waits for the child like glibc's; any other stream goes
/// to the real `pclose`.
///
/// # Safety
/// Same contract as `pclose(3)`.
#[no_mangle]
pub unsafe extern "C" fn pclose(fp: *mut FILE) -> c_int {
    let mine = {
        let mut s = STREAMS.lock().unwrap_or_else(|e| e.into_inner());
        s.iter()
            .position(|e| e.0 == fp as usize)
            .map(|i| s.swap_remove(i))
    };
    let Some((_, pid, _)) = mine else {
        let p = PCLOSE.get();
        // SAFETY: libc's pclose with the caller's stream.
        return unsafe {
            core::mem::transmute::<usize, unsafe extern "C" fn(*mut FILE) -> c_int>(p)(fp)
        };
    };
    // SAFETY: our stream, closed once.
    if unsafe { crate::os::clib::fclose(fp) } != 0 {
        return -1;
    }
    let mut status: c_int = 0;
    loop {
        let w = waitpid_real(pid, &mut status, 0);
        if w == -1 && sys::errno() == libc::EINTR {
            continue;
        }
        return if w == -1 { -1 } else { status };
    }
}
