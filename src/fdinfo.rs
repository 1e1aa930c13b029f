//! What a descriptor is, found the async-signal-safe way: `getdents64` on
//! `/proc/self/fd` into a stack buffer, then `fstat`, `readlink` and
//! `getsockopt` per descriptor. Nothing here allocates, locks or panics.

use forkguard_core::plan::FdKind;
use libc::c_int;

/// Calls `f(fd)` for every open descriptor except the one used for listing.
/// Returns false if `/proc/self/fd` cannot be read. Async-signal-safe.
pub fn for_each_fd(mut f: impl FnMut(c_int)) -> bool {
    // SAFETY: the path is a NUL-terminated literal.
    let dir = unsafe {
        libc::open(c"/proc/self/fd".as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC)
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
            let reclen = match buf.get(off + 16..off + 18) {
                Some(b) => usize::from(u16::from_ne_bytes([b[0], b[1]])),
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
    let n = unsafe { libc::readlink(path.as_bytes().as_ptr().cast(), out.as_mut_ptr().cast(), out.len()) };
    if n < 0 { 0 } else { n as usize }
}

/// The kind of an open descriptor, or None if it is not open.
/// `link` receives the `/proc/self/fd/N` target (its length is returned too).
/// Async-signal-safe.
pub fn classify(fd: c_int, link: &mut [u8]) -> Option<(FdKind, usize)> {
    // SAFETY: st is a valid out-parameter.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    let len = link_target(fd, link);
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
                libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN, (&mut on as *mut c_int).cast(), &mut sz)
            };
            if r == 0 && on != 0 { FdKind::Listen } else { FdKind::Socket }
        }
        libc::S_IFCHR => {
            let mut t: libc::termios = unsafe_zeroed_termios();
            // SAFETY: TCGETS writes a termios into t.
            if unsafe { libc::ioctl(fd, libc::TCGETS, &mut t) } == 0 { FdKind::Tty } else { FdKind::File }
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
        libc::open(c"/proc/self/task".as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC)
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
            let reclen = match buf.get(off + 16..off + 18) {
                Some(b) => usize::from(u16::from_ne_bytes([b[0], b[1]])),
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
