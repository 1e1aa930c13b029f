//! Operations: what an fd action does to one selected descriptor (close,
//! cloexec, devnull, reopen, disconnect, renew). Each leaves the number in
//! use and never touches what the child shares with the parent.
//! Async-signal-safe.

use super::select::Sel;
use crate::os::buf::Buf;
use crate::os::fdinfo;
use crate::os::sys;
use forkguard_core::plan::FdKind;
use libc::c_int;

/// Room for a `/proc/self/fd/N` target or an expanded `reopen` path
/// (PATH_MAX, NUL included).
pub(super) const PATH_BUF: usize = 4096;

pub(super) enum Op {
    Close,
    Cloexec,
    Devnull,
    Reopen(Reopen),
    Disconnect,
    Renew,
}

pub(super) struct Reopen {
    /// The path with `%p`, `%P`, `%%` unexpanded, without NUL.
    pub(super) template: Vec<u8>,
    /// `O_APPEND`, `O_CREAT | O_NOFOLLOW`, `O_TRUNC` as configured; the
    /// access mode comes from the old descriptor in the child.
    pub(super) oflags: c_int,
    pub(super) cloexec: bool,
    pub(super) mode: libc::mode_t,
}

/// What `%p` and `%P` expand to: the child's pid is asked for only when a
/// template needs it (a system call per fork otherwise).
pub(super) struct Ids {
    pub(super) parent: libc::pid_t,
}

/// Do the action on one selected descriptor; Err(errno) on failure.
/// Async-signal-safe.
#[link_section = ".text.fg_hot"]
pub(super) fn apply(op: &Op, fd: c_int, kind: Option<FdKind>, ids: &Ids) -> Result<(), c_int> {
    match op {
        // SPEC §4: the child never ends up with 0, 1 or 2 closed.
        Op::Close if (0..=2).contains(&fd) => devnull(fd),
        Op::Close => close(fd),
        Op::Cloexec => cloexec(fd),
        Op::Devnull => devnull(fd),
        Op::Reopen(r) => reopen(fd, r, ids),
        Op::Disconnect => disconnect(fd),
        Op::Renew => renew(fd, kind),
    }
}

/// errno after a failed call (never 0, so a failure always reads as one).
pub(super) fn err() -> c_int {
    match sys::errno() {
        0 => libc::EIO,
        e => e,
    }
}

#[link_section = ".text.fg_hot"]
pub(super) fn close(fd: c_int) -> Result<(), c_int> {
    // SAFETY: closing a descriptor the config selected; no memory involved.
    // On Linux the number is released even when close reports an error, and
    // EINTR is not a failure (retrying could close a reused number).
    match unsafe { sys::call(libc::SYS_close, [fd as usize, 0, 0, 0, 0, 0]) } {
        Err(e) if e != libc::EINTR => Err(e),
        _ => Ok(()),
    }
}

#[link_section = ".text.fg_hot"]
pub(super) fn cloexec(fd: c_int) -> Result<(), c_int> {
    let flags = sys::fcntl(fd, libc::F_GETFD, 0)?;
    sys::fcntl(fd, libc::F_SETFD, (flags | libc::FD_CLOEXEC) as usize).map(drop)
}

/// The status flags (`F_GETFL`) and whether close-on-exec is set.
pub(super) fn flags_of(fd: c_int) -> Result<(c_int, bool), c_int> {
    // SAFETY: fcntl with integer arguments only.
    let fl = unsafe { crate::os::clib::fcntl(fd, libc::F_GETFL, 0) };
    // SAFETY: as above.
    let fdf = unsafe { crate::os::clib::fcntl(fd, libc::F_GETFD, 0) };
    if fl < 0 || fdf < 0 {
        return Err(err());
    }
    Ok((fl, fdf & libc::FD_CLOEXEC != 0))
}

/// Put `new` at number `fd` (atomically replacing what was there), with
/// close-on-exec as asked, and close `new`. Async-signal-safe.
pub(super) fn replace(new: c_int, fd: c_int, cloexec: bool) -> Result<(), c_int> {
    // SAFETY: both are descriptors; dup3 closes the old `fd` only in this
    // process (the parent keeps its own reference to that file).
    let r = unsafe { crate::os::clib::dup3(new, fd, if cloexec { libc::O_CLOEXEC } else { 0 }) };
    let e = err();
    // SAFETY: new is our temporary descriptor.
    unsafe { crate::os::clib::close(new) };
    if r < 0 {
        return Err(e);
    }
    Ok(())
}

/// Keep O_NONBLOCK as the old descriptor had it.
pub(super) fn set_nonblock(fd: c_int, on: bool) {
    if on {
        // SAFETY: fcntl with integer arguments only.
        unsafe { crate::os::clib::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK) };
    }
}

/// `/dev/null` at the same number, with the same access mode.
pub(super) fn devnull(fd: c_int) -> Result<(), c_int> {
    let (fl, cx) = flags_of(fd)?;
    // SAFETY: a NUL-terminated literal path.
    let new = unsafe {
        crate::os::clib::open(
            c"/dev/null".as_ptr(),
            (fl & libc::O_ACCMODE) | libc::O_CLOEXEC | libc::O_NOCTTY,
            0,
        )
    };
    if new < 0 {
        return Err(err());
    }
    replace(new, fd, cx)
}

/// `template` with `%p`, `%P` and `%%` expanded, NUL-terminated, into
/// `out`. Err(ENAMETOOLONG) when it does not fit. Async-signal-safe.
pub(super) fn expand(template: &[u8], ids: &Ids, out: &mut Buf<PATH_BUF>) -> Result<(), c_int> {
    let mut it = template.iter().copied();
    while let Some(c) = it.next() {
        if c != b'%' {
            out.byte(c);
            continue;
        }
        match it.next() {
            Some(b'p') => {
                out.i64(i64::from(sys::getpid()));
            }
            Some(b'P') => {
                out.i64(i64::from(ids.parent));
            }
            // `%%` (the config allows no other escape).
            Some(other) => {
                out.byte(other);
            }
            None => {}
        }
    }
    out.byte(0);
    // A path that did not fit lost its NUL (the template has none).
    if out.as_bytes().last() == Some(&0) {
        Ok(())
    } else {
        Err(libc::ENAMETOOLONG)
    }
}

#[inline(never)]
pub(super) fn reopen(fd: c_int, r: &Reopen, ids: &Ids) -> Result<(), c_int> {
    let mut path = Buf::<PATH_BUF>::new();
    expand(&r.template, ids, &mut path)?;
    let (fl, cx) = flags_of(fd)?;
    let how = (fl & libc::O_ACCMODE) | r.oflags | libc::O_CLOEXEC | libc::O_NOCTTY;
    let p = path.as_bytes().as_ptr().cast::<libc::c_char>();
    let new = if how & libc::O_CREAT != 0 {
        // With `create`, a file that already exists is only reused when it
        // is a regular file of our own: a file another user planted (in
        // /tmp, say) is refused, not written into.
        // SAFETY: p is NUL-terminated (checked by expand).
        let made =
            unsafe { crate::os::clib::open(p, how | libc::O_EXCL, libc::c_uint::from(r.mode)) };
        if made >= 0 {
            made
        } else if err() != libc::EEXIST {
            return Err(err());
        } else {
            // SAFETY: as above.
            let old = unsafe { crate::os::clib::open(p, how & !libc::O_CREAT, 0) };
            if old < 0 {
                return Err(err());
            }
            // SAFETY: st is a valid out-parameter.
            let mut st: libc::stat = unsafe { core::mem::zeroed() };
            // SAFETY: old is open; st is valid.
            let ok = unsafe { crate::os::clib::fstat(old, &mut st) } == 0
                && st.st_mode & libc::S_IFMT == libc::S_IFREG
                // SAFETY: geteuid cannot fail.
                && st.st_uid == unsafe { crate::os::clib::geteuid() };
            if !ok {
                // SAFETY: old was opened above.
                unsafe { crate::os::clib::close(old) };
                return Err(libc::EPERM);
            }
            old
        }
    } else {
        // SAFETY: p is NUL-terminated (checked by expand).
        let new = unsafe { crate::os::clib::open(p, how, libc::c_uint::from(r.mode)) };
        if new < 0 {
            return Err(err());
        }
        new
    };
    replace(new, fd, cx || r.cloexec)
}

/// A dead socket of the same family and type in place of `fd`: reads see
/// end-of-file, writes fail with EPIPE, and `poll` reports a hang-up, as
/// for a connection the server closed, so a client library reconnects. The
/// parent's connection is untouched: the child only drops its reference.
///
/// Measured on Linux 6.x: a fresh TCP socket after `shutdown(SHUT_RDWR)`
/// (which fails with ENOTCONN but still marks it shut) reads 0 and writes
/// EPIPE; a fresh unix stream socket reads EINVAL, so unix stream and
/// seqpacket sockets get one end of a socket pair whose other end is
/// closed instead (reads 0, writes EPIPE). Async-signal-safe.
pub(super) fn disconnect(fd: c_int) -> Result<(), c_int> {
    let domain = fdinfo::sock_opt(fd, libc::SO_DOMAIN)?;
    let ty = fdinfo::sock_opt(fd, libc::SO_TYPE)?;
    let proto = fdinfo::sock_opt(fd, libc::SO_PROTOCOL).unwrap_or(0);
    let (fl, cx) = flags_of(fd)?;
    let new = if domain == libc::AF_UNIX && (ty == libc::SOCK_STREAM || ty == libc::SOCK_SEQPACKET)
    {
        let mut pair = [-1 as c_int; 2];
        // SAFETY: pair is a valid out-array of two ints.
        if unsafe {
            crate::os::clib::socketpair(
                libc::AF_UNIX,
                ty | libc::SOCK_CLOEXEC,
                0,
                pair.as_mut_ptr(),
            )
        } != 0
        {
            return Err(err());
        }
        let [mine, other] = pair;
        // SAFETY: other is the pair's end we just made.
        unsafe { crate::os::clib::close(other) };
        mine
    } else {
        // SAFETY: socket takes no pointers.
        let s = unsafe { crate::os::clib::socket(domain, ty | libc::SOCK_CLOEXEC, proto) };
        if s < 0 {
            return Err(err());
        }
        s
    };
    // SAFETY: shutdown on the fresh socket only, never on the inherited one.
    unsafe { crate::os::clib::shutdown(new, libc::SHUT_RDWR) };
    set_nonblock(new, fl & libc::O_NONBLOCK != 0);
    replace(new, fd, cx)
}

/// A fresh, empty instance of the same kind in place of `fd`, with the same
/// O_NONBLOCK and close-on-exec state (and for an eventfd its semaphore
/// mode, for a timerfd its clock, both read from /proc/self/fdinfo).
/// Async-signal-safe.
pub(super) fn renew(fd: c_int, kind: Option<FdKind>) -> Result<(), c_int> {
    let mut link = [0u8; 64];
    let kind = match kind {
        Some(k) => k,
        None => fdinfo::classify(fd, &mut link).ok_or_else(err)?.0,
    };
    let (fl, cx) = flags_of(fd)?;
    let new = match kind {
        FdKind::Epoll => {
            // SAFETY: creation calls with integer arguments only (here and below).
            unsafe { crate::os::clib::epoll_create1(libc::EPOLL_CLOEXEC) }
        }
        FdKind::Eventfd => {
            let sem = if fdinfo::info_value(fd, b"eventfd-semaphore:") == Some(1) {
                libc::EFD_SEMAPHORE
            } else {
                0
            };
            // SAFETY: as above.
            unsafe { crate::os::clib::eventfd(0, libc::EFD_CLOEXEC | sem) }
        }
        FdKind::Timerfd => {
            let clock = fdinfo::info_value(fd, b"clockid:")
                .and_then(|c| libc::clockid_t::try_from(c).ok())
                .unwrap_or(libc::CLOCK_MONOTONIC);
            // SAFETY: as above.
            unsafe { crate::os::clib::timerfd_create(clock, libc::TFD_CLOEXEC) }
        }
        FdKind::Inotify => {
            // SAFETY: as above.
            unsafe { crate::os::clib::inotify_init1(libc::IN_CLOEXEC) }
        }
        _ => return Err(libc::EINVAL),
    };
    if new < 0 {
        return Err(err());
    }
    set_nonblock(new, fl & libc::O_NONBLOCK != 0);
    replace(new, fd, cx)
}

/// `from` (with `except`) and nothing else: one `close_range` per gap
/// between excluded numbers, 0-2 always kept. False when the kernel cannot
/// (no `close_range`, or no `CLOSE_RANGE_CLOEXEC` before 5.11): the caller
/// falls back to the per-descriptor loop, which is safe to run after a
/// partial success. Async-signal-safe.
pub(super) fn close_ranges(s: &Sel, cloexec: bool) -> bool {
    let flags = if cloexec {
        libc::CLOSE_RANGE_CLOEXEC as c_int
    } else {
        0
    };
    let range = |first: u32, last: u32| {
        // SAFETY: close_range takes integers only.
        unsafe { crate::os::clib::close_range(first, last, flags) == 0 }
    };
    let mut start = u32::try_from(s.from.unwrap_or(0).max(3)).unwrap_or(3);
    for &e in &s.except {
        let Ok(e) = u32::try_from(e) else { continue };
        if e < start {
            continue;
        }
        if e > start && !range(start, e - 1) {
            return false;
        }
        start = e.saturating_add(1);
    }
    range(start, u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expanded(template: &str, parent: libc::pid_t) -> Result<String, c_int> {
        let mut out = Buf::<PATH_BUF>::new();
        expand(template.as_bytes(), &Ids { parent }, &mut out)?;
        let bytes = out.as_bytes();
        assert_eq!(bytes.last(), Some(&0), "NUL-terminated");
        Ok(String::from_utf8(bytes[..bytes.len() - 1].to_vec()).unwrap())
    }

    #[test]
    fn pids_and_percent() {
        let me = std::process::id();
        assert_eq!(
            expanded("/var/log/app.%p.log", 1).unwrap(),
            format!("/var/log/app.{me}.log")
        );
        assert_eq!(expanded("/x/%P-%p", 42).unwrap(), format!("/x/42-{me}"));
        assert_eq!(expanded("100%%", 1).unwrap(), "100%");
        assert_eq!(expanded("plain", 1).unwrap(), "plain");
        // A lone `%` at the end is dropped.
        assert_eq!(expanded("a%", 1).unwrap(), "a");
    }

    #[test]
    fn too_long_is_enametoolong() {
        let long = "a".repeat(PATH_BUF);
        assert_eq!(expanded(&long, 1), Err(libc::ENAMETOOLONG));
        let fits = "a".repeat(PATH_BUF - 5);
        assert_eq!(expanded(&fits, 1).unwrap().len(), PATH_BUF - 5);
    }
}
