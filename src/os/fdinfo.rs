//! What a descriptor is, found the async-signal-safe way: `poll(2)` over
//! the numbers of a small descriptor table, or `getdents64` on
//! `/proc/self/fd` into a stack buffer, then `fstat`, `readlink` and
//! `getsockopt` per descriptor, all as system calls (no libc function, so
//! no libc code is faulted in after a fork). Nothing here allocates, locks
//! or panics.

use forkguard_core::plan::FdKind;
use libc::{c_int, pid_t};

/// Beyond this many descriptor numbers, listing `/proc/self/fd` (about
/// 20 µs in a new child, where procfs builds its entries for the new
/// process) is cheaper than asking `poll(2)` about each number (about 4 ns a
/// number here).
const POLL_SCAN_MAX: c_int = 2048;

/// Calls `f(fd)` for every open descriptor from `from` on (except one used
/// for listing), in ascending order. Returns false if they cannot be
/// enumerated. Async-signal-safe.
///
/// Small descriptor tables (the usual case) are scanned whole with `poll`,
/// up to a bound from [`table_bound`]; larger ones are listed from
/// `/proc/self/fd`. See docs/fd-actions.md.
///
/// `f` may close or replace descriptors (and open temporary ones, if it
/// closes them before it returns): numbers are visited in ascending order
/// from where the previous batch stopped, so nothing is visited twice.
pub fn for_each_fd(from: c_int, mut f: impl FnMut(c_int)) -> bool {
    let from = from.max(0);
    match table_bound() {
        Some(end) => {
            poll_scan(from, end, &mut f);
            true
        }
        None => proc_list(from, &mut f),
    }
}

/// A number no open descriptor reaches: the size of the process's
/// descriptor table (the kernel's `max_fds`), found by doubling from 64 up
/// to [`POLL_SCAN_MAX`]; None above that. Async-signal-safe.
/// Costs one system call per doubling, and one more at the end.
///
/// The table is sized in powers of two (64, 128, 256, ...; a child's is cut
/// to fit its highest descriptor), and every open descriptor is below its
/// size. A number `x` is at or beyond the size exactly when it is not open
/// and `select(2)` on it alone does not fail with `EBADF`: Linux cuts
/// `nfds` down to the table size (so the bit for `x` is never looked at)
/// and otherwise reports `EBADF` for a number that is not open. A kernel
/// that did not cut `nfds` would answer `EBADF` every time: the doubling
/// then runs past the cap and `/proc` is used; never a bound too small.
#[link_section = ".text.fg_hot"]
pub fn table_bound() -> Option<c_int> {
    let mut x: c_int = 64;
    while x <= POLL_SCAN_MAX {
        // One system call per step in the usual case (x below the size and
        // not open: EBADF); the second only when select accepts x.
        if select_accepts(x) && !is_open(x) {
            return Some(x);
        }
        x = x.checked_mul(2)?;
    }
    None
}

/// `select(2)` on `x` alone with a zero timeout: true unless it fails
/// (`EBADF`: `x` is below the table size and not open). Async-signal-safe.
#[link_section = ".text.fg_hot"]
fn select_accepts(x: c_int) -> bool {
    const WORDS: usize = POLL_SCAN_MAX as usize / 64 + 1;
    let mut set = [0u64; WORDS];
    let Ok(bit) = usize::try_from(x) else {
        return false;
    };
    let Some(word) = set.get_mut(bit / 64) else {
        return false;
    };
    *word = 1u64 << (bit % 64);
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: set covers x + 1 bits; the other sets and the sigmask are
    // null; zero is a valid timeout (return at once).
    unsafe {
        crate::os::sys::call(
            libc::SYS_pselect6,
            [
                bit + 1,
                set.as_mut_ptr() as usize,
                0,
                0,
                (&zero as *const libc::timespec) as usize,
                0,
            ],
        )
    }
    .is_ok()
}

/// Every open descriptor in `from..end`, by `poll(2)` with no events and no
/// timeout: `POLLNVAL` marks a number that is not open. Async-signal-safe.
#[link_section = ".text.fg_hot"]
fn poll_scan(from: c_int, end: c_int, f: &mut impl FnMut(c_int)) {
    const BATCH: usize = 128;
    // All zero (each used entry's fd is set below): a non-zero pattern would
    // be a constant in `.rodata`, a page each child would fault in.
    let none = libc::pollfd {
        fd: 0,
        events: 0,
        revents: 0,
    };
    let mut set = [none; BATCH];
    let mut base = from;
    while base < end {
        let n = usize::try_from(end - base).unwrap_or(0).min(BATCH);
        let Some(batch) = set.get_mut(..n) else {
            return;
        };
        let mut next = base;
        for p in batch.iter_mut() {
            p.fd = next;
            next += 1;
        }
        let asked = crate::os::sys::poll_now(batch).is_ok();
        for p in batch.iter() {
            // If poll itself failed (ENOMEM), ask each number instead.
            let open = if asked {
                p.revents & libc::POLLNVAL == 0
            } else {
                is_open(p.fd)
            };
            if open {
                f(p.fd);
            }
        }
        base = next;
    }
}

/// Every open descriptor from `from` on, listed from `/proc/self/fd`; the
/// kernel lists by number from where the previous `getdents64` stopped.
/// Returns false if `/proc/self/fd` cannot be opened. Async-signal-safe.
#[inline(never)]
#[link_section = ".text.fg_hot"]
fn proc_list(from: c_int, f: &mut impl FnMut(c_int)) -> bool {
    let dir = crate::os::sys::open(
        c"/proc/self/fd",
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        0,
    );
    if dir < 0 {
        return false;
    }
    let mut buf = core::mem::MaybeUninit::<[u8; 2048]>::uninit();
    while let Ok(entries) = crate::os::sys::getdents64(dir, &mut buf) {
        if entries.is_empty() {
            break;
        }
        let mut off = 0usize;
        while off + 19 < entries.len() {
            // linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, name...
            let reclen = match reclen_at(entries, off) {
                Some(r) => r,
                None => break,
            };
            if reclen == 0 {
                break;
            }
            if let Some(name) = entries.get(off + 19..off + reclen) {
                if let Some(fd) = parse_fd(name) {
                    if fd != dir && fd >= from {
                        f(fd);
                    }
                }
            }
            off += reclen;
        }
    }
    crate::os::sys::close(dir);
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
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    decimal(name.get(..end)?).and_then(|v| c_int::try_from(v).ok())
}

/// Decimal digits, all of them, to a number: `None` when empty, when
/// anything else is there, or on overflow. The one decimal parser of
/// `/proc` text. Async-signal-safe.
#[inline]
pub fn decimal(s: &[u8]) -> Option<i64> {
    if s.is_empty() {
        return None;
    }
    let mut v: i64 = 0;
    for &b in s {
        let d = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        v = v.checked_mul(10)?.checked_add(i64::from(d))?;
    }
    Some(v)
}

/// `/proc/self/fd/N` target into `out` (cut to its length); returns the
/// length read. Async-signal-safe.
#[link_section = ".text.fg_hot"]
pub fn link_target(fd: c_int, out: &mut [u8]) -> usize {
    let mut path = crate::os::buf::Buf::<32>::new();
    path.str("/proc/self/fd/").u64(fd as u64).byte(0);
    crate::os::sys::readlink(path.as_bytes(), out).unwrap_or(0)
}

/// The kind of an open descriptor, or None if it is not open.
/// `link` receives the `/proc/self/fd/N` target (its length is returned too).
/// Async-signal-safe.
pub fn classify(fd: c_int, link: &mut [u8]) -> Option<(FdKind, usize)> {
    classify_with(fd, link, true, false)
}

/// [`classify`], reading the `/proc/self/fd/N` target only when `want_link`
/// or when the kind needs it (anonymous inodes; files on tmpfs, which may be
/// memfds): the returned length is 0 when it was not read. The link is a
/// path lookup in procfs, several times the cost of the other calls, so a
/// `kind` or `peer` selector over many descriptors skips it.
/// With `sockets_only` (the selector can only match a socket), anything
/// else is answered `File` after the `fstat`, without the calls that tell
/// other kinds apart (`TCGETS`, `F_GET_SEALS`, the link).
/// Async-signal-safe.
#[link_section = ".text.fg_hot"]
pub fn classify_with(
    fd: c_int,
    link: &mut [u8],
    want_link: bool,
    sockets_only: bool,
) -> Option<(FdKind, usize)> {
    // SAFETY: struct stat is plain data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    crate::os::sys::fstat(fd, &mut st).ok()?;
    let fmt = st.st_mode & libc::S_IFMT;
    if sockets_only && fmt != libc::S_IFSOCK {
        return Some((FdKind::File, 0));
    }
    // A memfd has no link (st_nlink 0; it cannot be linked into a file
    // system), and only shmem-backed files (memfd, tmpfs, hugetlbfs) answer
    // F_GET_SEALS: an ordinary file costs no system call more than fstat.
    let maybe_memfd = fmt == libc::S_IFREG
        && st.st_nlink == 0
        && crate::os::sys::fcntl(fd, libc::F_GET_SEALS, 0).is_ok();
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
            if sock_opt(fd, libc::SO_ACCEPTCONN).is_ok_and(|on| on != 0) {
                FdKind::Listen
            } else {
                FdKind::Socket
            }
        }
        libc::S_IFCHR => {
            if crate::os::sys::is_tty(fd) {
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
        crate::os::clib::open(
            c"/proc/self/task".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            0,
        )
    };
    if dir < 0 {
        return 0;
    }
    let mut buf = [0u8; 4096];
    let mut count = 0;
    loop {
        // SAFETY: as in for_each_fd.
        let n = unsafe {
            crate::os::clib::syscall(
                libc::SYS_getdents64,
                [dir as usize, buf.as_mut_ptr() as usize, buf.len(), 0, 0, 0],
            )
        };
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
    unsafe { crate::os::clib::close(dir) };
    count
}

/// Is `fd` an open descriptor? Async-signal-safe.
#[link_section = ".text.fg_hot"]
pub fn is_open(fd: c_int) -> bool {
    crate::os::sys::fcntl(fd, libc::F_GETFD, 0).is_ok()
}

/// An integer `SOL_SOCKET` option (`SO_DOMAIN`, `SO_TYPE`, ...), or the
/// errno. Async-signal-safe.
#[link_section = ".text.fg_hot"]
pub fn sock_opt(fd: c_int, opt: c_int) -> Result<c_int, c_int> {
    crate::os::sys::sock_opt(fd, libc::SOL_SOCKET, opt)
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
            crate::os::clib::getpeername(fd, p, &mut len)
        } else {
            crate::os::clib::getsockname(fd, p, &mut len)
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
    let mut path = crate::os::buf::Buf::<40>::new();
    path.str("/proc/self/fdinfo/")
        .u64(u64::try_from(fd).ok()?)
        .byte(0);
    // SAFETY: path is NUL-terminated.
    let f = unsafe {
        crate::os::clib::open(
            path.as_bytes().as_ptr().cast(),
            libc::O_RDONLY | libc::O_CLOEXEC,
            0,
        )
    };
    if f < 0 {
        return None;
    }
    let mut buf = [0u8; 1024];
    // SAFETY: buf is writable for its length; f is ours.
    let n = unsafe { crate::os::clib::read(f, buf.as_mut_ptr().cast(), buf.len()) };
    // SAFETY: f was opened above.
    unsafe { crate::os::clib::close(f) };
    let text = buf.get(..usize::try_from(n).ok()?)?;
    text.split(|&b| b == b'\n')
        .find_map(|line| parse_number(line.strip_prefix(key)?))
}

/// Leading blanks, an optional `-`, then decimal digits.
fn parse_number(s: &[u8]) -> Option<i64> {
    let s = match s.iter().position(|b| *b != b' ' && *b != b'\t') {
        Some(k) => s.get(k..)?,
        None => return None,
    };
    let (neg, s) = match s.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let end = s
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    let v = decimal(s.get(..end)?)?;
    Some(if neg { -v } else { v })
}

/// The last pid in /proc/self/task/TID/children (`Ok(None)`: no child;
/// `Err`: unreadable): the kernel appends new children, and the one just
/// forked has not been reaped yet.
#[inline(never)]
pub fn newest_child() -> Result<Option<pid_t>, ()> {
    newest_child_of_text().map(|p| p.filter(|&p| p > 0))
}

fn newest_child_of_text() -> Result<Option<pid_t>, ()> {
    let mut path = crate::os::buf::Buf::<64>::new();
    path.str("/proc/self/task/")
        .i64(i64::from(crate::os::sys::gettid()))
        .str("/children")
        .byte(0);
    let fd = crate::os::sys::open_bytes(path.as_bytes(), libc::O_RDONLY | libc::O_CLOEXEC, 0);
    if fd < 0 {
        return Err(());
    }
    let mut buf = [0u8; 4096];
    let mut len = 0usize;
    while let Some(room) = buf.get_mut(len..).filter(|r| !r.is_empty()) {
        // SAFETY: room is a writable slice of buf.
        let n = unsafe {
            crate::os::sys::syscall(
                libc::SYS_read,
                [fd as usize, room.as_mut_ptr() as usize, room.len(), 0, 0, 0],
            )
        };
        if n <= 0 {
            break;
        }
        len += n as usize;
    }
    crate::os::sys::close(fd);
    last_pid(buf.get(..len).ok_or(())?)
}

/// The last number of a `children` file's text (`Ok(None)`: none; `Err`:
/// not a number).
fn last_pid(text: &[u8]) -> Result<Option<pid_t>, ()> {
    let Some(last) = text
        .split(|&b| b == b' ' || b == b'\n')
        .rfind(|w| !w.is_empty())
    else {
        return Ok(None);
    };
    let pid = decimal(last)
        .and_then(|v| pid_t::try_from(v).ok())
        .ok_or(())?;
    Ok(Some(pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_file_newest_is_last() {
        assert_eq!(last_pid(b""), Ok(None));
        assert_eq!(last_pid(b"\n"), Ok(None));
        assert_eq!(last_pid(b"123 "), Ok(Some(123)));
        assert_eq!(last_pid(b"12 345 6789 \n"), Ok(Some(6789)));
        assert_eq!(last_pid(b"12 x"), Err(()));
        assert_eq!(last_pid(b"99999999999"), Err(()));
    }

    #[test]
    fn decimal_numbers() {
        assert_eq!(decimal(b"0"), Some(0));
        assert_eq!(decimal(b"4096"), Some(4096));
        assert_eq!(decimal(b""), None);
        assert_eq!(decimal(b"12a"), None);
        assert_eq!(decimal(b"-1"), None);
        assert_eq!(decimal(b"99999999999999999999"), None);
        assert_eq!(parse_fd(b"17\0junk"), Some(17));
        assert_eq!(parse_fd(b".\0"), None);
        assert_eq!(parse_fd(b"3000000000\0"), None);
        assert_eq!(parse_number(b"\t 1"), Some(1));
        assert_eq!(parse_number(b" -5 rest"), Some(-5));
        assert_eq!(parse_number(b" -"), None);
        assert_eq!(parse_number(b"   "), None);
    }

    #[test]
    fn newest_child_of_this_thread() {
        // No child yet on this test thread.
        assert_eq!(newest_child(), Ok(None));
    }
}
