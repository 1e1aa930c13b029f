//! The few system calls forkguard makes, each wrapped once.
//!
//! Functions marked "async-signal-safe" may run in the child after fork.

use libc::{c_int, c_void};

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
        // SAFETY: the pointer and length describe a live slice.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast::<c_void>(), bytes.len()) };
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
    if path.last() != Some(&0) {
        return;
    }
    let saved = errno();
    // SAFETY: path is NUL-terminated (checked above).
    let fd = unsafe {
        libc::open(
            path.as_ptr().cast(),
            libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_CLOEXEC | libc::O_NOCTTY,
            0o640,
        )
    };
    if fd >= 0 {
        write_all(fd, line);
        // SAFETY: fd was opened above and is ours.
        unsafe { libc::close(fd) };
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

fn clock(id: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid out-parameter.
    unsafe { libc::clock_gettime(id, &mut ts) };
    (ts.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec as u64)
}

/// Block every signal; returns the previous mask. Async-signal-safe.
pub fn block_all() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigfillset/pthread_sigmask only write
    // into the sets given.
    unsafe {
        let mut all: libc::sigset_t = core::mem::zeroed();
        let mut old: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        old
    }
}

/// Restore a mask saved by [`block_all`]. Async-signal-safe.
pub fn set_mask(mask: &libc::sigset_t) {
    // SAFETY: mask is a valid sigset_t.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, mask, core::ptr::null_mut()) };
}

/// An empty signal set.
pub fn empty_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set it is given.
    unsafe {
        let mut s: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut s);
        s
    }
}

pub fn getpid() -> libc::pid_t {
    // SAFETY: getpid cannot fail.
    unsafe { libc::getpid() }
}

pub fn getppid() -> libc::pid_t {
    // SAFETY: getppid cannot fail.
    unsafe { libc::getppid() }
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
