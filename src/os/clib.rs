//! Every libc function the library calls by name, each wrapped once (the
//! raw system calls are in `sys`). Thin and always inlined: a wrapper adds
//! no code, and no call, to the paths that run after a fork, so every
//! caller keeps the `SAFETY` reasoning of the libc function itself.
//!
//! Each of these is bound through a lazy trampoline (`lazy`): a new one must
//! be added to `lazy_imports.txt` (`tests/imports.rs` checks).

use libc::{
    c_char, c_int, c_long, c_uint, c_ulong, c_void, clockid_t, dl_phdr_info, off_t, pthread_t,
    size_t, sockaddr, socklen_t, ssize_t, timespec, Dl_info, FILE,
};

/// `fn name(args) -> ret;` becomes a wrapper of `libc::name` with the same
/// signature and contract.
macro_rules! wrap {
    ($( fn $name:ident($($a:ident: $t:ty),*) -> $r:ty; )*) => {$(
        /// libc's function of that name.
        ///
        /// # Safety
        /// Same contract as the libc function.
        #[inline(always)]
        pub unsafe fn $name($($a: $t),*) -> $r {
            // SAFETY: forwarded contract.
            unsafe { libc::$name($($a),*) }
        }
    )*};
}

wrap! {
    fn close(fd: c_int) -> c_int;
    fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int;
    fn dl_iterate_phdr(
        callback: Option<unsafe extern "C" fn(*mut dl_phdr_info, size_t, *mut c_void) -> c_int>,
        data: *mut c_void
    ) -> c_int;
    fn dladdr(addr: *const c_void, info: *mut Dl_info) -> c_int;
    fn dladdr1(addr: *const c_void, info: *mut Dl_info, extra: *mut *mut c_void, flags: c_int) -> c_int;
    fn dlclose(handle: *mut c_void) -> c_int;
    fn dlinfo(handle: *mut c_void, request: c_int, info: *mut c_void) -> c_int;
    fn dlopen(filename: *const c_char, flag: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int;
    fn epoll_create1(flags: c_int) -> c_int;
    fn eventfd(init: c_uint, flags: c_int) -> c_int;
    fn fstat(fd: c_int, buf: *mut libc::stat) -> c_int;
    fn getauxval(kind: c_ulong) -> c_ulong;
    fn geteuid() -> libc::uid_t;
    fn getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int;
    fn getsockname(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int;
    fn inotify_init1(flags: c_int) -> c_int;
    fn mmap(addr: *mut c_void, len: size_t, prot: c_int, flags: c_int, fd: c_int, off: off_t) -> *mut c_void;
    fn munmap(addr: *mut c_void, len: size_t) -> c_int;
    fn nanosleep(req: *const timespec, rem: *mut timespec) -> c_int;
    fn pthread_mutex_trylock(m: *mut libc::pthread_mutex_t) -> c_int;
    fn pthread_mutex_unlock(m: *mut libc::pthread_mutex_t) -> c_int;
    fn pthread_rwlock_trywrlock(l: *mut libc::pthread_rwlock_t) -> c_int;
    fn pthread_rwlock_unlock(l: *mut libc::pthread_rwlock_t) -> c_int;
    fn pthread_key_create(key: *mut libc::pthread_key_t, dtor: Option<unsafe extern "C" fn(*mut c_void)>) -> c_int;
    fn pthread_self() -> pthread_t;
    fn pthread_setspecific(key: libc::pthread_key_t, value: *const c_void) -> c_int;
    fn pthread_spin_init(l: *mut libc::pthread_spinlock_t, pshared: c_int) -> c_int;
    fn pthread_spin_trylock(l: *mut libc::pthread_spinlock_t) -> c_int;
    fn pthread_spin_unlock(l: *mut libc::pthread_spinlock_t) -> c_int;
    fn read(fd: c_int, buf: *mut c_void, count: size_t) -> ssize_t;
    fn sem_post(s: *mut libc::sem_t) -> c_int;
    fn sem_trywait(s: *mut libc::sem_t) -> c_int;
    fn shutdown(fd: c_int, how: c_int) -> c_int;
    fn sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int;
    fn socket(domain: c_int, ty: c_int, proto: c_int) -> c_int;
    fn socketpair(domain: c_int, ty: c_int, proto: c_int, fds: *mut c_int) -> c_int;
    fn timerfd_create(clock: clockid_t, flags: c_int) -> c_int;
    // spawn = true (entry::spawn): posix_spawn's helpers, system, popen.
    fn posix_spawn_file_actions_init(fa: *mut libc::posix_spawn_file_actions_t) -> c_int;
    fn posix_spawn_file_actions_destroy(fa: *mut libc::posix_spawn_file_actions_t) -> c_int;
    fn posix_spawn_file_actions_addclose(fa: *mut libc::posix_spawn_file_actions_t, fd: c_int) -> c_int;
    fn posix_spawn_file_actions_adddup2(fa: *mut libc::posix_spawn_file_actions_t, fd: c_int, newfd: c_int) -> c_int;
    fn posix_spawn_file_actions_addopen(
        fa: *mut libc::posix_spawn_file_actions_t,
        fd: c_int,
        path: *const c_char,
        oflag: c_int,
        mode: libc::mode_t
    ) -> c_int;
    fn posix_spawnattr_init(a: *mut libc::posix_spawnattr_t) -> c_int;
    fn posix_spawnattr_destroy(a: *mut libc::posix_spawnattr_t) -> c_int;
    fn posix_spawnattr_setsigmask(a: *mut libc::posix_spawnattr_t, m: *const libc::sigset_t) -> c_int;
    fn posix_spawnattr_setsigdefault(a: *mut libc::posix_spawnattr_t, m: *const libc::sigset_t) -> c_int;
    fn posix_spawnattr_setflags(a: *mut libc::posix_spawnattr_t, flags: libc::c_short) -> c_int;
    fn sigemptyset(set: *mut libc::sigset_t) -> c_int;
    fn sigaddset(set: *mut libc::sigset_t, sig: c_int) -> c_int;
    fn pthread_sigmask(how: c_int, set: *const libc::sigset_t, old: *mut libc::sigset_t) -> c_int;
    fn pipe2(fds: *mut c_int, flags: c_int) -> c_int;
    fn fdopen(fd: c_int, mode: *const c_char) -> *mut FILE;
    fn fclose(f: *mut FILE) -> c_int;
}

/// glibc functions the libc crate does not declare (glibc 2.34+ and stdio).
mod glibc {
    use libc::{c_int, clockid_t, timespec, FILE};
    extern "C" {
        pub fn pthread_mutex_clocklock(
            m: *mut libc::pthread_mutex_t,
            clock: clockid_t,
            abstime: *const timespec,
        ) -> c_int;
        pub fn pthread_rwlock_clockwrlock(
            l: *mut libc::pthread_rwlock_t,
            clock: clockid_t,
            abstime: *const timespec,
        ) -> c_int;
        pub fn sem_clockwait(
            s: *mut libc::sem_t,
            clock: clockid_t,
            abstime: *const timespec,
        ) -> c_int;
        pub fn ftrylockfile(f: *mut FILE) -> c_int;
        pub fn funlockfile(f: *mut FILE);
        pub fn posix_spawn_file_actions_addchdir_np(
            fa: *mut libc::posix_spawn_file_actions_t,
            path: *const libc::c_char,
        ) -> c_int;
        pub fn posix_spawn_file_actions_addfchdir_np(
            fa: *mut libc::posix_spawn_file_actions_t,
            fd: c_int,
        ) -> c_int;
        pub fn posix_spawn_file_actions_addclosefrom_np(
            fa: *mut libc::posix_spawn_file_actions_t,
            from: c_int,
        ) -> c_int;
        pub fn posix_spawn_file_actions_addtcsetpgrp_np(
            fa: *mut libc::posix_spawn_file_actions_t,
            fd: c_int,
        ) -> c_int;
    }
}

macro_rules! wrap_glibc {
    ($( fn $name:ident($($a:ident: $t:ty),*) $(-> $r:ty)?; )*) => {$(
        /// glibc's function of that name.
        ///
        /// # Safety
        /// Same contract as the glibc function.
        #[inline(always)]
        pub unsafe fn $name($($a: $t),*) $(-> $r)? {
            // SAFETY: forwarded contract.
            unsafe { glibc::$name($($a),*) }
        }
    )*};
}

wrap_glibc! {
    fn pthread_mutex_clocklock(m: *mut libc::pthread_mutex_t, clock: clockid_t, abstime: *const timespec) -> c_int;
    fn pthread_rwlock_clockwrlock(l: *mut libc::pthread_rwlock_t, clock: clockid_t, abstime: *const timespec) -> c_int;
    fn sem_clockwait(s: *mut libc::sem_t, clock: clockid_t, abstime: *const timespec) -> c_int;
    fn ftrylockfile(f: *mut FILE) -> c_int;
    fn funlockfile(f: *mut FILE);
    fn posix_spawn_file_actions_addchdir_np(fa: *mut libc::posix_spawn_file_actions_t, path: *const c_char) -> c_int;
    fn posix_spawn_file_actions_addfchdir_np(fa: *mut libc::posix_spawn_file_actions_t, fd: c_int) -> c_int;
    fn posix_spawn_file_actions_addclosefrom_np(fa: *mut libc::posix_spawn_file_actions_t, from: c_int) -> c_int;
    fn posix_spawn_file_actions_addtcsetpgrp_np(fa: *mut libc::posix_spawn_file_actions_t, fd: c_int) -> c_int;
}

/// `open(2)` through libc; `mode` is only read with `O_CREAT`/`O_TMPFILE`.
///
/// # Safety
/// `path` is NUL-terminated.
#[inline(always)]
pub unsafe fn open(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { libc::open(path, flags, mode) }
}

/// `fcntl(2)` through libc, with an integer argument (ignored by the `GET`
/// commands).
///
/// # Safety
/// `cmd` takes an integer (or no) argument.
#[inline(always)]
pub unsafe fn fcntl(fd: c_int, cmd: c_int, arg: c_int) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { libc::fcntl(fd, cmd, arg) }
}

/// libc's `syscall(3)`, six arguments (unused ones are ignored by the
/// kernel); -1 with `errno` on failure.
///
/// # Safety
/// The arguments must be valid for system call `n`.
#[inline(always)]
pub unsafe fn syscall(n: c_long, a: [usize; 6]) -> c_long {
    let [a0, a1, a2, a3, a4, a5] = a;
    // SAFETY: forwarded contract.
    unsafe { libc::syscall(n, a0, a1, a2, a3, a4, a5) }
}

/// `pthread_atfork(3)` with all three handlers.
///
/// # Safety
/// The handlers must stay valid for the life of the process.
#[inline(always)]
pub unsafe fn pthread_atfork(
    prepare: extern "C" fn(),
    parent: extern "C" fn(),
    child: extern "C" fn(),
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) }
}

/// `atexit(3)`.
///
/// # Safety
/// `f` must stay valid until the process exits.
#[inline(always)]
pub unsafe fn atexit(f: extern "C" fn()) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { libc::atexit(f) }
}

/// `_exit(2)`: ends the process at once.
pub fn exit_now(status: c_int) -> ! {
    // SAFETY: _exit has no preconditions.
    unsafe { libc::_exit(status) }
}

/// `abort(3)`.
pub fn abort() -> ! {
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}
