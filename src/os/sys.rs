//! The few system calls forkguard makes, each wrapped once.
//!
//! Functions marked "async-signal-safe" may run in the child after fork.
//!
//! Most calls go straight to the kernel (`raw`) instead of through libc's
//! wrappers: every libc function the library imports is one more symbol the
//! dynamic loader must look up in *every* process the library is loaded
//! into (about 800 instructions each, measured), and a raw system call is
//! async-signal-safe by construction. They set `errno` like libc does.

use libc::{c_int, c_long, c_void};

/// One system call; returns the result, or -1 with `errno` set.
/// Async-signal-safe.
///
/// # Safety
/// The arguments must be valid for system call `n`.
pub unsafe fn syscall(n: c_long, a: [usize; 6]) -> isize {
    // SAFETY: forwarded contract.
    let r = unsafe { raw(n, a) };
    if (-4095..0).contains(&r) {
        set_errno((-r) as c_int);
        -1
    } else {
        r
    }
}

/// One system call, its result as the kernel returns it (`-errno` on
/// failure): `errno` is not touched, so it may run on a thread without
/// thread-local storage of its own (the `log_exits` watcher).
///
/// # Safety
/// The arguments must be valid for system call `n`.
#[cfg(target_arch = "x86_64")]
pub unsafe fn raw(n: c_long, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the Linux x86_64 system call convention; rcx and r11 are
    // clobbered by the instruction, memory may be read/written by the kernel.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") n as isize => ret,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
            in("r10") a[3], in("r8") a[4], in("r9") a[5],
            lateout("rcx") _, lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn raw(n: c_long, a: [usize; 6]) -> isize {
    // SAFETY: forwarded contract; libc's syscall() reports errors in errno.
    let r = unsafe { libc::syscall(n, a[0], a[1], a[2], a[3], a[4], a[5]) } as isize;
    if r == -1 {
        -(errno() as isize)
    } else {
        r
    }
}

/// `open(2)` of a NUL-terminated path. Async-signal-safe.
pub fn open(path: &core::ffi::CStr, flags: c_int, mode: u32) -> c_int {
    // SAFETY: path is NUL-terminated and lives across the call.
    unsafe {
        syscall(
            libc::SYS_openat,
            [
                libc::AT_FDCWD as usize,
                path.as_ptr() as usize,
                flags as usize,
                mode as usize,
                0,
                0,
            ],
        ) as c_int
    }
}

/// `open(2)` of a byte string that must end with a NUL. Async-signal-safe.
pub fn open_bytes(path: &[u8], flags: c_int, mode: u32) -> c_int {
    match core::ffi::CStr::from_bytes_until_nul(path) {
        Ok(p) => open(p, flags, mode),
        Err(_) => {
            set_errno(libc::EINVAL);
            -1
        }
    }
}

/// `close(2)`. Async-signal-safe.
pub fn close(fd: c_int) -> c_int {
    // SAFETY: closing a number has no memory effects.
    unsafe { syscall(libc::SYS_close, [fd as usize, 0, 0, 0, 0, 0]) as c_int }
}

/// `write(2)`. Async-signal-safe.
pub fn write(fd: c_int, bytes: &[u8]) -> isize {
    // SAFETY: the pointer and length describe a live slice.
    unsafe {
        syscall(
            libc::SYS_write,
            [fd as usize, bytes.as_ptr() as usize, bytes.len(), 0, 0, 0],
        )
    }
}

/// `kill(2)`. Async-signal-safe.
pub fn kill(pid: libc::pid_t, sig: c_int) -> c_int {
    // SAFETY: no pointers.
    unsafe { syscall(libc::SYS_kill, [pid as usize, sig as usize, 0, 0, 0, 0]) as c_int }
}

/// `prctl(2)` with integer arguments. Async-signal-safe.
pub fn prctl(op: c_int, arg: usize) -> c_int {
    // SAFETY: callers pass either integers or a pointer valid for `op`.
    unsafe { syscall(libc::SYS_prctl, [op as usize, arg, 0, 0, 0, 0]) as c_int }
}

/// `setsid(2)`. Async-signal-safe.
pub fn setsid() -> libc::pid_t {
    // SAFETY: no arguments.
    unsafe { syscall(libc::SYS_setsid, [0; 6]) as libc::pid_t }
}

/// `getsid(0)`. Async-signal-safe.
pub fn getsid() -> libc::pid_t {
    // SAFETY: no pointers.
    unsafe { syscall(libc::SYS_getsid, [0; 6]) as libc::pid_t }
}

/// `getuid(2)`.
pub fn getuid() -> u32 {
    // SAFETY: no arguments.
    unsafe { syscall(libc::SYS_getuid, [0; 6]) as u32 }
}

/// `geteuid(2)`.
pub fn geteuid() -> u32 {
    // SAFETY: no arguments.
    unsafe { syscall(libc::SYS_geteuid, [0; 6]) as u32 }
}

/// `access(path, F_OK) == 0`. Leaves errno alone (a missing file is the
/// common answer, and setting errno would bind a libc function).
pub fn exists(path: &core::ffi::CStr) -> bool {
    // SAFETY: path is NUL-terminated.
    unsafe {
        call(
            libc::SYS_faccessat,
            [
                libc::AT_FDCWD as usize,
                path.as_ptr() as usize,
                libc::F_OK as usize,
                0,
                0,
                0,
            ],
        )
        .is_ok()
    }
}

/// A shared anonymous mapping of `len` bytes, or null. Parent side.
pub fn map_shared(len: usize) -> *mut c_void {
    let flags = (libc::MAP_SHARED | libc::MAP_ANONYMOUS) as usize;
    let prot = (libc::PROT_READ | libc::PROT_WRITE) as usize;
    // SAFETY: a fresh anonymous mapping touches no existing memory.
    let p = unsafe { syscall(libc::SYS_mmap, [0, len, prot, flags, usize::MAX, 0]) };
    if p < 0 {
        core::ptr::null_mut()
    } else {
        p as *mut c_void
    }
}

/// `munmap(2)`. Async-signal-safe.
///
/// # Safety
/// Nothing may use the mapping afterwards.
pub unsafe fn unmap(p: *mut c_void, len: usize) {
    // SAFETY: forwarded contract.
    unsafe { syscall(libc::SYS_munmap, [p as usize, len, 0, 0, 0, 0]) };
}

/// `futex(2)` FUTEX_WAKE / FUTEX_WAIT on a shared (not private) word.
/// Async-signal-safe.
///
/// # Safety
/// `word` must point to a live, 4-byte aligned u32.
pub unsafe fn futex(word: *const u32, op: c_int, val: u32, timeout: *const libc::timespec) {
    // SAFETY: forwarded contract.
    unsafe {
        syscall(
            libc::SYS_futex,
            [
                word as usize,
                op as usize,
                val as usize,
                timeout as usize,
                0,
                0,
            ],
        )
    };
}

/// The calling thread's `errno`. Async-signal-safe.
pub fn errno() -> c_int {
    // SAFETY: __errno_location returns this thread's errno slot, always valid.
    unsafe { *libc::__errno_location() }
}

/// Set this thread's `errno`. Async-signal-safe.
pub fn set_errno(e: c_int) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = e }
}

/// Write all of `bytes` to `fd` in one `write(2)` when the kernel allows
/// (short writes are retried; EINTR too). Async-signal-safe; keeps errno.
pub fn write_all(fd: c_int, mut bytes: &[u8]) {
    let saved = errno();
    while !bytes.is_empty() {
        let n = write(fd, bytes);
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            break;
        }
        bytes = bytes.get(n as usize..).unwrap_or(&[]);
    }
    set_errno(saved);
}

/// Append one line to the file at `path` (a NUL-terminated byte string):
/// open, write, close, so no descriptor is kept that the program could close
/// or reuse under us. Async-signal-safe.
pub fn append_to(path: &[u8], line: &[u8]) {
    let saved = errno();
    let fd = open_bytes(
        path,
        libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_CLOEXEC | libc::O_NOCTTY,
        0o640,
    );
    if fd >= 0 {
        write_all(fd, line);
        close(fd);
    }
    set_errno(saved);
}

/// CLOCK_MONOTONIC in nanoseconds (vDSO, no syscall). Async-signal-safe.
pub fn now_ns() -> u64 {
    clock(libc::CLOCK_MONOTONIC)
}

/// CLOCK_REALTIME in nanoseconds. Async-signal-safe.
pub fn wall_ns() -> u64 {
    clock(libc::CLOCK_REALTIME)
}

/// Nanoseconds as a `timespec` (an absolute time for the `clock*` waits,
/// or a duration). Async-signal-safe.
pub fn timespec(ns: u64) -> libc::timespec {
    libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    }
}

fn clock(id: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-parameter. (A system call rather than the
    // vDSO: only used when logging, and it saves an import at load.)
    unsafe {
        syscall(
            libc::SYS_clock_gettime,
            [
                id as usize,
                (&mut ts as *mut libc::timespec) as usize,
                0,
                0,
                0,
                0,
            ],
        )
    };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// A signal mask as the kernel takes it (`rt_sigprocmask` with 8 bytes):
/// bit `n - 1` is signal `n`.
pub type SigMask = u64;

/// glibc's internal signals (SIGCANCEL = 32, SIGSETXID = 33): never
/// blocked, as `pthread_sigmask` never blocks them, or cancellation and
/// `setuid` across threads would hang.
const GLIBC_INTERNAL: SigMask = (1 << 31) | (1 << 32);

fn sigprocmask(how: c_int, set: *const SigMask, old: *mut SigMask) {
    // SAFETY: set/old are null or point to 8-byte masks, the size passed.
    unsafe {
        let _ = call(
            libc::SYS_rt_sigprocmask,
            [how as usize, set as usize, old as usize, 8, 0, 0],
        );
    }
}

/// Block every signal; returns the previous mask. A system call, not
/// libc's `pthread_sigmask`: the same effect, and nothing of libc is
/// touched after a fork. Async-signal-safe.
pub fn block_all() -> SigMask {
    let all: SigMask = !GLIBC_INTERNAL;
    let mut old: SigMask = 0;
    sigprocmask(libc::SIG_SETMASK, &all, &mut old);
    old
}

/// Restore a mask saved by [`block_all`]. Async-signal-safe.
pub fn set_mask(mask: SigMask) {
    sigprocmask(
        libc::SIG_SETMASK,
        &(mask & !GLIBC_INTERNAL),
        core::ptr::null_mut(),
    );
}

/// One system call; `Err(errno)` on failure. Unlike [`syscall`] it leaves
/// `errno` alone, so a path made of these never touches libc after a fork.
/// Async-signal-safe.
///
/// # Safety
/// The arguments must be valid for system call `n`.
pub unsafe fn call(n: c_long, a: [usize; 6]) -> Result<usize, c_int> {
    // SAFETY: forwarded contract.
    let r = unsafe { raw(n, a) };
    if (-4095..0).contains(&r) {
        Err((-r) as c_int)
    } else {
        Ok(r as usize)
    }
}

/// `fstat(2)` into `st`. Async-signal-safe.
pub fn fstat(fd: c_int, st: &mut libc::stat) -> Result<(), c_int> {
    // SAFETY: st is a valid, writable struct stat.
    unsafe {
        call(
            libc::SYS_fstat,
            [fd as usize, (st as *mut libc::stat) as usize, 0, 0, 0, 0],
        )
    }
    .map(drop)
}

/// `fcntl(2)` with an integer argument. Async-signal-safe.
pub fn fcntl(fd: c_int, cmd: c_int, arg: usize) -> Result<c_int, c_int> {
    // SAFETY: integer arguments only (no command taking a pointer is used).
    unsafe { call(libc::SYS_fcntl, [fd as usize, cmd as usize, arg, 0, 0, 0]) }.map(|r| r as c_int)
}

/// An integer socket option. Async-signal-safe.
pub fn sock_opt(fd: c_int, level: c_int, opt: c_int) -> Result<c_int, c_int> {
    let mut v: c_int = 0;
    let mut len = core::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: v and len are valid out-parameters of the sizes given.
    unsafe {
        call(
            libc::SYS_getsockopt,
            [
                fd as usize,
                level as usize,
                opt as usize,
                (&mut v as *mut c_int) as usize,
                (&mut len as *mut libc::socklen_t) as usize,
                0,
            ],
        )
    }
    .map(|_| v)
}

/// Is `fd` a terminal (`TCGETS` succeeds)? Async-signal-safe.
pub fn is_tty(fd: c_int) -> bool {
    let mut t = core::mem::MaybeUninit::<libc::termios>::uninit();
    // SAFETY: TCGETS writes at most one struct termios into t.
    unsafe {
        call(
            libc::SYS_ioctl,
            [
                fd as usize,
                libc::TCGETS as usize,
                t.as_mut_ptr() as usize,
                0,
                0,
                0,
            ],
        )
    }
    .is_ok()
}

/// `readlink(2)` of a NUL-terminated path into `out`; the length read.
/// Async-signal-safe.
pub fn readlink(path: &[u8], out: &mut [u8]) -> Result<usize, c_int> {
    if !path.contains(&0) {
        return Err(libc::EINVAL);
    }
    // SAFETY: path is NUL-terminated; out is writable for its length.
    unsafe {
        call(
            libc::SYS_readlinkat,
            [
                libc::AT_FDCWD as usize,
                path.as_ptr() as usize,
                out.as_mut_ptr() as usize,
                out.len(),
                0,
                0,
            ],
        )
    }
}

/// `poll(2)` with a zero timeout. Async-signal-safe.
pub fn poll_now(fds: &mut [libc::pollfd]) -> Result<usize, c_int> {
    // SAFETY: fds is a writable array of the length given.
    unsafe {
        call(
            libc::SYS_poll,
            [fds.as_mut_ptr() as usize, fds.len(), 0, 0, 0, 0],
        )
    }
}

/// `getdents64(2)` into `buf`; the entries read (empty at the end).
/// The buffer is not zeroed first: that would be a `memset`, a call into
/// libc, whose code a child would have to fault in. Async-signal-safe.
pub fn getdents64<const N: usize>(
    dir: c_int,
    buf: &mut core::mem::MaybeUninit<[u8; N]>,
) -> Result<&[u8], c_int> {
    // SAFETY: buf is writable for N bytes; the kernel writes at most that.
    let n = unsafe {
        call(
            libc::SYS_getdents64,
            [dir as usize, buf.as_mut_ptr() as usize, N, 0, 0, 0],
        )
    }?;
    // SAFETY: the kernel initialised the first n (<= N) bytes.
    Ok(unsafe { core::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n.min(N)) })
}

/// The soft `RLIMIT_NOFILE`. Async-signal-safe.
pub fn nofile_limit() -> Result<u64, c_int> {
    let mut lim = libc::rlimit64 {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid out-parameter; no new limit is set (null).
    unsafe {
        call(
            libc::SYS_prlimit64,
            [
                0,
                libc::RLIMIT_NOFILE as usize,
                0,
                (&mut lim as *mut libc::rlimit64) as usize,
                0,
                0,
            ],
        )
    }
    .map(|_| lim.rlim_cur)
}

/// This thread's `errno` slot. Taken before a fork, it stays valid in the
/// child (the same thread, at the same address), so neither process has to
/// call into libc to read or restore `errno` after the fork.
pub fn errno_ptr() -> *mut c_int {
    // SAFETY: __errno_location has no preconditions.
    unsafe { libc::__errno_location() }
}

/// Async-signal-safe.
pub fn getpid() -> libc::pid_t {
    // SAFETY: no arguments.
    unsafe { syscall(libc::SYS_getpid, [0; 6]) as libc::pid_t }
}

/// Async-signal-safe.
pub fn getppid() -> libc::pid_t {
    // SAFETY: no arguments.
    unsafe { syscall(libc::SYS_getppid, [0; 6]) as libc::pid_t }
}

/// This thread's id. Async-signal-safe.
pub fn gettid() -> libc::pid_t {
    // SAFETY: no arguments.
    unsafe { syscall(libc::SYS_gettid, [0; 6]) as libc::pid_t }
}

/// The short name of an errno value (`EACCES`), or None. Async-signal-safe.
pub fn errno_name(e: c_int) -> Option<&'static str> {
    Some(match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::ECHILD => "ECHILD",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::EPIPE => "EPIPE",
        libc::EDEADLK => "EDEADLK",
        libc::ENOSYS => "ENOSYS",
        libc::ELOOP => "ELOOP",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::ECONNRESET => "ECONNRESET",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EOWNERDEAD => "EOWNERDEAD",
        libc::ENOTRECOVERABLE => "ENOTRECOVERABLE",
        libc::EXDEV => "EXDEV",
        libc::ETXTBSY => "ETXTBSY",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        _ => return None,
    })
}

/// `FUTEX_WAIT_PRIVATE`: sleep while the word at `addr` is `val`, at most
/// `ns` nanoseconds (woken, timed out, interrupted or the value differed:
/// the caller looks again). Parent side only (forkguard never waits in the
/// child).
///
/// # Safety
/// `addr` is a 4-byte aligned word of this process.
pub unsafe fn futex_wait(addr: usize, val: i32, ns: u64) {
    let ts = libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as c_long,
    };
    const WAIT_PRIVATE: usize = (libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG) as usize;
    // SAFETY: per the contract; ts lives across the call.
    unsafe {
        syscall(
            libc::SYS_futex,
            [
                addr,
                WAIT_PRIVATE,
                val as u32 as usize,
                &ts as *const _ as usize,
                0,
                0,
            ],
        )
    };
}

/// `FUTEX_WAKE_PRIVATE` of every waiter on the word at `addr`.
///
/// # Safety
/// `addr` is a 4-byte aligned word of this process.
pub unsafe fn futex_wake_all(addr: usize) {
    const WAKE_PRIVATE: usize = (libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG) as usize;
    // SAFETY: per the contract.
    unsafe { syscall(libc::SYS_futex, [addr, WAKE_PRIVATE, i32::MAX as usize, 0, 0, 0]) };
}

/// `FUTEX_WAKE_PRIVATE` of one waiter on the word at `addr`.
///
/// # Safety
/// `addr` is a 4-byte aligned word of this process.
pub unsafe fn futex_wake(addr: usize) {
    const WAKE_PRIVATE: usize = (libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG) as usize;
    // SAFETY: per the contract.
    unsafe { syscall(libc::SYS_futex, [addr, WAKE_PRIVATE, 1, 0, 0, 0]) };
}
