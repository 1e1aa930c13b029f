//! What a descriptor is, found the async-signal-safe way: `getdents64` on
//! `/proc/self/fd` into a stack buffer, then `fstat`, `readlink` and
//! `getsockopt` per descriptor. Nothing here allocates, locks or panics.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use forkguard_core::plan::FdKind;
use libc::c_int;

/// Calls `f(fd)` for every open descriptor except the one used for listing,
/// in ascending order. Returns false if `/proc/self/fd` cannot be read.
/// Async-signal-safe.
///
/// `f` may close or replace descriptors (and open temporary ones, if it
/// closes them before it returns): the kernel lists `/proc/self/fd` by
/// descriptor number from where the previous `getdents64` stopped, so
/// nothing is skipped or listed twice.
pub fn for_each_fd(mut f: impl FnMut(c_int)) -> bool {
    // SAFETY: the path is a NUL-terminated literal.
    let dir = unsafe {
        libc::open(
            c"/proc/self/fd".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if dir < 0 {
        return false;
    }
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: buf is a writable buffer of the given length; dir is ours.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, dir, buf.as_mut_ptr(), buf.len()) };
        if n <= 0 {
            break;
        }
        let mut off = 0usize;
        while off + 19 < n as usize {
            // linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, name...
            let reclen = match reclen_at(&buf, off) {
                Some(r) => r,
                None => break,
            };
            if reclen == 0 {
                break;
            }
            if let Some(name) = buf.get(off + 19..off + reclen) {
                if let Some(fd) = parse_fd(name) {
                    if fd != dir {
                        f(fd);
                    }
                }
            }
            off += reclen;
        }
    }
    // SAFETY: dir was opened above.
    unsafe { libc::close(dir) };
    true
}

/// `d_reclen` of the `linux_dirent64` at `off` (u64 ino, i64 off, u16 reclen, ...).
fn reclen_at(buf: &[u8], off: usize) -> Option<usize> {
    let lo = *buf.get(off + 16)?;
    let hi = *buf.get(off + 17)?;
    Some(usize::from(u16::from_ne_bytes([lo, hi])))
}

/// A NUL-terminated decimal name to a descriptor number.
fn parse_fd(name: &[u8]) -> Option<c_int> {
    let mut v: c_int = 0;
    let mut any = false;
    for &b in name {
        if b == 0 {
            break;
        }
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(c_int::from(b - b'0'))?;
        any = true;
    }
    any.then_some(v)
}

/// `/proc/self/fd/N` target into `out`; returns its length. Async-signal-safe.
pub fn link_target(fd: c_int, out: &mut [u8]) -> usize {
    let mut path = crate::buf::Buf::<32>::new();
    path.str("/proc/self/fd/").u64(fd as u64).byte(0);
    // SAFETY: path is NUL-terminated; out is writable for its length.
    let n = unsafe {
        libc::readlink(
            path.as_bytes().as_ptr().cast(),
            out.as_mut_ptr().cast(),
            out.len(),
        )
    };
    if n < 0 {
        0
    } else {
        n as usize
    }
}

/// The kind of an open descriptor, or None if it is not open.
/// `link` receives the `/proc/self/fd/N` target (its length is returned too).
/// Async-signal-safe.
pub fn classify(fd: c_int, link: &mut [u8]) -> Option<(FdKind, usize)> {
    classify_with(fd, link, true)
}

/// [`classify`], reading the `/proc/self/fd/N` target only when `want_link`
/// or when the kind needs it (anonymous inodes; files on tmpfs, which may be
/// memfds): the returned length is 0 when it was not read. The link is a
/// path lookup in procfs, several times the cost of the other calls, so a
/// `kind` or `peer` selector over many descriptors skips it.
/// Async-signal-safe.
pub fn classify_with(fd: c_int, link: &mut [u8], want_link: bool) -> Option<(FdKind, usize)> {
    // SAFETY: st is a valid out-parameter.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    let fmt = st.st_mode & libc::S_IFMT;
    // Only shmem-backed files (memfd, tmpfs, hugetlbfs) answer F_GET_SEALS.
    let maybe_memfd = fmt == libc::S_IFREG
        // SAFETY: fcntl with integer arguments only.
        && unsafe { libc::fcntl(fd, libc::F_GET_SEALS) } >= 0;
    let anon = !matches!(
        fmt,
        libc::S_IFREG | libc::S_IFDIR | libc::S_IFIFO | libc::S_IFSOCK | libc::S_IFCHR
    );
    let len = if want_link || maybe_memfd || anon {
        link_target(fd, link)
    } else {
        0
    };
    let target = link.get(..len).unwrap_or(&[]);
    let kind = match st.st_mode & libc::S_IFMT {
        libc::S_IFREG if target.starts_with(b"/memfd:") => FdKind::Memfd,
        libc::S_IFREG => FdKind::File,
        libc::S_IFDIR => FdKind::Dir,
        libc::S_IFIFO => FdKind::Pipe,
        libc::S_IFSOCK => {
            let mut on: c_int = 0;
            let mut sz = core::mem::size_of::<c_int>() as libc::socklen_t;
            // SAFETY: on/sz are valid out-parameters of the right size.
            let r = unsafe {
                libc::getsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_ACCEPTCONN,
                    (&mut on as *mut c_int).cast(),
                    &mut sz,
                )
            };
            if r == 0 && on != 0 {
                FdKind::Listen
            } else {
                FdKind::Socket
            }
        }
        libc::S_IFCHR => {
            let mut t: libc::termios = unsafe_zeroed_termios();
            // SAFETY: TCGETS writes a termios into t.
            if unsafe { libc::ioctl(fd, libc::TCGETS, &mut t) } == 0 {
                FdKind::Tty
            } else {
                FdKind::File
            }
        }
        _ => {
            if target.starts_with(b"anon_inode:[eventpoll]") {
                FdKind::Epoll
            } else if target.starts_with(b"anon_inode:[eventfd]") {
                FdKind::Eventfd
            } else if target.starts_with(b"anon_inode:[timerfd]") {
                FdKind::Timerfd
            } else if target.starts_with(b"anon_inode:[signalfd]") {
                FdKind::Signalfd
            } else if target.starts_with(b"anon_inode:inotify") {
                FdKind::Inotify
            } else if target.starts_with(b"/memfd:") {
                FdKind::Memfd
            } else {
                FdKind::File
            }
        }
    };
    Some((kind, len))
}

fn unsafe_zeroed_termios() -> libc::termios {
    // SAFETY: termios is plain data; all-zero is a valid value.
    unsafe { core::mem::zeroed() }
}

/// All kinds, in the order audit lines list them.
pub const KINDS: [FdKind; 12] = [
    FdKind::File,
    FdKind::Dir,
    FdKind::Pipe,
    FdKind::Socket,
    FdKind::Listen,
    FdKind::Tty,
    FdKind::Epoll,
    FdKind::Eventfd,
    FdKind::Timerfd,
    FdKind::Signalfd,
    FdKind::Inotify,
    FdKind::Memfd,
];

/// Index of a kind in [`KINDS`].
pub fn kind_index(k: FdKind) -> usize {
    KINDS.iter().position(|&x| x == k).unwrap_or(0)
}

/// Number of threads in this process, from /proc/self/task. Parent side.
pub fn thread_count() -> usize {
    // SAFETY: the path is a NUL-terminated literal.
    let dir = unsafe {
        libc::open(
            c"/proc/self/task".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if dir < 0 {
        return 0;
    }
    let mut buf = [0u8; 4096];
    let mut count = 0;
    loop {
        // SAFETY: as in for_each_fd.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, dir, buf.as_mut_ptr(), buf.len()) };
        if n <= 0 {
            break;
        }
        let mut off = 0usize;
        while off + 19 < n as usize {
            let reclen = match reclen_at(&buf, off) {
                Some(r) => r,
                None => break,
            };
            if reclen == 0 {
                break;
            }
            if buf.get(off + 19..off + reclen).and_then(parse_fd).is_some() {
                count += 1;
            }
            off += reclen;
        }
    }
    // SAFETY: dir was opened above.
    unsafe { libc::close(dir) };
    count
}

/// Is `fd` an open descriptor? Async-signal-safe.
pub fn is_open(fd: c_int) -> bool {
    // SAFETY: F_GETFD takes no pointer.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// An integer `SOL_SOCKET` option (`SO_DOMAIN`, `SO_TYPE`, ...), or the
/// errno. Async-signal-safe.
pub fn sock_opt(fd: c_int, opt: c_int) -> Result<c_int, c_int> {
    let mut v: c_int = 0;
    let mut sz = core::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: v/sz are valid out-parameters of the right size.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&mut v as *mut c_int).cast(),
            &mut sz,
        )
    };
    if r == 0 {
        Ok(v)
    } else {
        Err(crate::sys::errno())
    }
}

/// Raw socket address bytes (a `sockaddr_*`): the local one, or the peer's
/// with `peer`. Returns the length written (0 on error, e.g. not connected).
/// Async-signal-safe.
pub fn sock_name(fd: c_int, peer: bool, out: &mut [u8; 128]) -> usize {
    let mut len = out.len() as libc::socklen_t;
    let p = out.as_mut_ptr().cast::<libc::sockaddr>();
    // SAFETY: out is writable for `len` bytes, which the kernel respects;
    // it copies bytes, so the byte buffer's alignment does not matter.
    let r = unsafe {
        if peer {
            libc::getpeername(fd, p, &mut len)
        } else {
            libc::getsockname(fd, p, &mut len)
        }
    };
    if r == 0 {
        (len as usize).min(out.len())
    } else {
        0
    }
}

/// The number after `key` (e.g. `b"clockid:"`) in `/proc/self/fdinfo/N`, or
/// None. Async-signal-safe: read into a stack buffer.
pub fn info_value(fd: c_int, key: &[u8]) -> Option<i64> {
    let mut path = crate::buf::Buf::<40>::new();
    path.str("/proc/self/fdinfo/")
        .u64(u64::try_from(fd).ok()?)
        .byte(0);
    // SAFETY: path is NUL-terminated.
    let f = unsafe {
        libc::open(
            path.as_bytes().as_ptr().cast(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if f < 0 {
        return None;
    }
    let mut buf = [0u8; 1024];
    // SAFETY: buf is writable for its length; f is ours.
    let n = unsafe { libc::read(f, buf.as_mut_ptr().cast(), buf.len()) };
    // SAFETY: f was opened above.
    unsafe { libc::close(f) };
    let text = buf.get(..usize::try_from(n).ok()?)?;
    text.split(|&b| b == b'\n')
        .find_map(|line| parse_number(line.strip_prefix(key)?))
}

/// Leading blanks, an optional `-`, then decimal digits.
fn parse_number(s: &[u8]) -> Option<i64> {
    let mut it = s
        .iter()
        .copied()
        .skip_while(|b| *b == b' ' || *b == b'\t')
        .peekable();
    let neg = it.next_if_eq(&b'-').is_some();
    let mut v: i64 = 0;
    let mut any = false;
    for b in it.take_while(u8::is_ascii_digit) {
        v = v.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
        any = true;
    }
    any.then_some(if neg { -v } else { v })
}
