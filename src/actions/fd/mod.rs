//! `[[fd]]`: reset what the child inherits (SPEC §3 selectors and actions).
//!
//! At load, [`build`] turns each action into prepared data: sorted fd
//! numbers, the `path` glob as bytes, `peer`/`local` as binary addresses,
//! the `reopen` template with its `open(2)` flags. In the child, [`child`]
//! only makes system calls on that data and on the stack. It is
//! async-signal-safe: no allocation, no lock, no stdio, no formatting
//! machinery, no panic.
//!
//! What must stay true:
//! - fds 0, 1 and 2 are selected only when named in `fd`/`fds`, and are
//!   never left closed: `close` on them acts as `devnull`, and every
//!   replacement is a `dup3` over the old number, so the number is never
//!   free.
//! - The parent is never affected. Nothing here acts on an open file
//!   description it shares with the parent (no `shutdown`, `epoll_ctl`,
//!   `lseek` or `flock` on an inherited descriptor): the child only drops
//!   its own reference and takes a fresh object in its place.
//! - A failure is recorded and never stops the next descriptor or the next
//!   action.
//! - Actions run in declaration order, each over every descriptor it
//!   selects (a later action sees what an earlier one left).

use crate::actions::Tally;
use crate::os::buf::Buf;
use crate::os::fdinfo;
use crate::os::sys;
use forkguard_core::glob;
use forkguard_core::plan::{FdActionKind, FdKind, FdSpec, Loc, OpenFlag, Selector};
use libc::c_int;
use std::net::IpAddr;

/// Room for a `/proc/self/fd/N` target or an expanded `reopen` path
/// (PATH_MAX, NUL included).
const PATH_BUF: usize = 4096;

pub struct FdAction {
    pub spec: FdSpec,
    sel: Sel,
    op: Op,
}

/// A selector, prepared for the child.
struct Sel {
    /// `fd` and `fds`, sorted, without duplicates; empty = not by number.
    fds: Vec<c_int>,
    from: Option<c_int>,
    /// Sorted, without duplicates.
    except: Vec<c_int>,
    kind: Option<FdKind>,
    path: Option<Vec<u8>>,
    peer: Option<Addr>,
    local: Option<Addr>,
    /// Only `from` (and `except`): `close_range` can do the work.
    pure_range: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Host {
    Any,
    V4([u8; 4]),
    V6([u8; 16]),
}

/// `host:port` in the byte order the kernel reports; an IPv4-mapped IPv6
/// address is kept as IPv4, so `127.0.0.1` matches both socket families.
#[derive(Clone, Copy)]
struct Addr {
    host: Host,
    port: u16,
}

enum Op {
    Close,
    Cloexec,
    Devnull,
    Reopen(Reopen),
    Disconnect,
    Renew,
}

struct Reopen {
    /// The path with `%p`, `%P`, `%%` unexpanded, without NUL.
    template: Vec<u8>,
    /// `O_APPEND`, `O_CREAT | O_NOFOLLOW`, `O_TRUNC` as configured; the
    /// access mode comes from the old descriptor in the child.
    oflags: c_int,
    cloexec: bool,
    mode: libc::mode_t,
}

/// Prepare one `[[fd]]` action. Everything the child needs is computed here.
pub fn build(spec: &FdSpec, loc: Loc) -> Result<FdAction, (Loc, String)> {
    let s: &Selector = &spec.select;
    let sorted = |v: &[i32]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v.dedup();
        v
    };
    let sel = Sel {
        fds: sorted(&s.fds),
        from: s.from,
        except: sorted(&s.except),
        kind: s.kind,
        path: s.path.as_ref().map(|p| p.as_bytes().to_vec()),
        peer: s.peer.map(|e| addr(e.host, e.port)),
        local: s.local.map(|e| addr(e.host, e.port)),
        pure_range: s.is_pure_range(),
    };
    let op = match spec.action {
        FdActionKind::Close => Op::Close,
        FdActionKind::Cloexec => Op::Cloexec,
        FdActionKind::Devnull => Op::Devnull,
        FdActionKind::Disconnect => Op::Disconnect,
        FdActionKind::Renew => Op::Renew,
        FdActionKind::Reopen => {
            let path = spec
                .path
                .as_ref()
                .ok_or_else(|| (loc, "reopen needs a path".to_string()))?;
            let mut oflags = 0;
            let mut cloexec = false;
            for f in &spec.flags {
                match f {
                    OpenFlag::Append => oflags |= libc::O_APPEND,
                    // SPEC §4: creating never follows a symlink at the last component.
                    OpenFlag::Create => oflags |= libc::O_CREAT | libc::O_NOFOLLOW,
                    OpenFlag::Truncate => oflags |= libc::O_TRUNC,
                    OpenFlag::Cloexec => cloexec = true,
                }
            }
            Op::Reopen(Reopen {
                template: path.as_bytes().to_vec(),
                oflags,
                cloexec,
                mode: spec.mode,
            })
        }
    };
    Ok(FdAction {
        spec: spec.clone(),
        sel,
        op,
    })
}

fn addr(host: Option<IpAddr>, port: u16) -> Addr {
    let host = match host {
        None => Host::Any,
        Some(IpAddr::V4(a)) => Host::V4(a.octets()),
        Some(IpAddr::V6(a)) => match a.to_ipv4_mapped() {
            Some(v4) => Host::V4(v4.octets()),
            None => Host::V6(a.octets()),
        },
    };
    Addr { host, port }
}

/// The action's description in reports, without the fd number:
/// `close`, `reopen /var/log/app.%p.log`.
pub fn label(f: &FdAction) -> String {
    match &f.spec.path {
        Some(p) if f.spec.action == FdActionKind::Reopen => format!("reopen {p}"),
        _ => f.spec.action.name().to_string(),
    }
}

/// What `%p` and `%P` expand to: the child's pid is asked for only when a
/// template needs it (a system call per fork otherwise).
struct Ids {
    parent: libc::pid_t,
}

impl FdAction {
    /// Does this action need the forking process's pid (`%P`)?
    pub fn uses_parent_pid(&self) -> bool {
        matches!(&self.op, Op::Reopen(r) if r.template.windows(2).any(|w| w == b"%P"))
    }
}

/// Child: apply one fd action (number `i`) to every descriptor it selects.
/// It counts once as ok when nothing failed; otherwise each descriptor it
/// could not handle is one failure (`fd 7 reopen /x: EACCES`).
/// Async-signal-safe.
#[link_section = ".text.fg_hot"]
pub fn child(f: &FdAction, i: usize, parent: libc::pid_t, t: &mut Tally) {
    let ids = Ids { parent };
    let failed = t.failed;
    run(f, u16::try_from(i).unwrap_or(u16::MAX), &ids, t);
    if t.failed == failed {
        t.ok();
    }
}

#[link_section = ".text.fg_hot"]
fn run(f: &FdAction, i: u16, ids: &Ids, t: &mut Tally) {
    if f.sel.pure_range
        && matches!(f.op, Op::Close | Op::Cloexec)
        && close_ranges(&f.sel, matches!(f.op, Op::Cloexec))
    {
        return;
    }
    // A `path` pattern needs the whole link target; classifying a kind
    // needs only its start (`anon_inode:[eventpoll]`, `/memfd:`): the
    // smaller buffer keeps the common case within the stack pages already
    // in use.
    if f.sel.path.is_some() {
        run_path(f, i, ids, t);
    } else {
        run_with(f, i, ids, t, &mut [0u8; 64]);
    }
}

#[inline(never)]
fn run_path(f: &FdAction, i: u16, ids: &Ids, t: &mut Tally) {
    run_with(f, i, ids, t, &mut [0u8; PATH_BUF]);
}

#[link_section = ".text.fg_hot"]
fn run_with(f: &FdAction, i: u16, ids: &Ids, t: &mut Tally, link: &mut [u8]) {
    // Inlined into `visit`: a closure cannot be placed in `.text.fg_hot`.
    visit(
        &f.sel,
        #[inline(always)]
        |fd| {
            if let Some(kind) = selects(&f.sel, fd, link) {
                if let Err(e) = apply(&f.op, fd, kind, ids) {
                    t.fail(i, fd, e);
                }
            }
        },
    );
}

/// Calls `each(fd)` for every open descriptor the selector's numbers allow
/// (`fds` directly; otherwise see `fdinfo::for_each_fd`, or, where that
/// fails (/proc missing), by probing each number below the descriptor
/// limit).
/// Async-signal-safe.
#[link_section = ".text.fg_hot"]
fn visit(s: &Sel, mut each: impl FnMut(c_int)) {
    if !s.fds.is_empty() {
        for &fd in &s.fds {
            if fdinfo::is_open(fd) {
                each(fd);
            }
        }
        return;
    }
    let from = s.from.unwrap_or(0).max(0);
    if fdinfo::for_each_fd(from, &mut each) {
        return;
    }
    let Ok(lim) = sys::nofile_limit() else { return };
    let end = c_int::try_from(lim).unwrap_or(c_int::MAX);
    for fd in from..end {
        if fdinfo::is_open(fd) {
            each(fd);
        }
    }
}

/// By number only: `fds` if given (0-2 only then), `from`, `except`.
#[link_section = ".text.fg_hot"]
fn number_selects(s: &Sel, fd: c_int) -> bool {
    if s.fds.is_empty() {
        if (0..=2).contains(&fd) {
            return false;
        }
    } else if s.fds.binary_search(&fd).is_err() {
        return false;
    }
    s.from.is_none_or(|from| fd >= from) && s.except.binary_search(&fd).is_err()
}

/// Does the selector match this open descriptor? `Some(kind)` when it does
/// (the kind is known when the selector needed to classify it). `link`
/// is scratch space for the `/proc/self/fd/N` target. Async-signal-safe.
#[link_section = ".text.fg_hot"]
fn selects(s: &Sel, fd: c_int, link: &mut [u8]) -> Option<Option<FdKind>> {
    if !number_selects(s, fd) {
        return None;
    }
    if s.kind.is_none() && s.path.is_none() && s.peer.is_none() && s.local.is_none() {
        return Some(None);
    }
    // A `listen` or `socket` kind, a peer or a local address: only a
    // socket can match, so nothing else needs telling apart.
    let sockets_only = s.path.is_none()
        && (matches!(s.kind, Some(FdKind::Listen | FdKind::Socket))
            || s.peer.is_some()
            || s.local.is_some());
    let (kind, len) = fdinfo::classify_with(fd, link, s.path.is_some(), sockets_only)?;
    let socket = matches!(kind, FdKind::Socket | FdKind::Listen);
    // `socket` is every socket, listening ones included; `listen` only those.
    if let Some(want) = s.kind {
        if want != kind && !(want == FdKind::Socket && socket) {
            return None;
        }
    }
    if let Some(pat) = &s.path {
        let target = link.get(..len).unwrap_or(&[]);
        if !(glob::matches(pat, target) || socket && unix_path_matches(fd, pat)) {
            return None;
        }
    }
    if let Some(want) = &s.peer {
        if !socket || !addr_matches(fd, true, want) {
            return None;
        }
    }
    if let Some(want) = &s.local {
        if !socket || !addr_matches(fd, false, want) {
            return None;
        }
    }
    Some(Some(kind))
}

/// Does the local or peer path of a unix socket match `pat`? An abstract
/// name is matched as `@name`. Async-signal-safe.
fn unix_path_matches(fd: c_int, pat: &[u8]) -> bool {
    for peer in [false, true] {
        let mut sa = [0u8; 128];
        let len = fdinfo::sock_name(fd, peer, &mut sa);
        if len <= 2 || family(&sa) != libc::AF_UNIX {
            continue;
        }
        let raw = sa.get(2..len).unwrap_or(&[]);
        let mut name = [0u8; 128];
        let n = match raw.split_first() {
            // Abstract: a leading NUL, then bytes (NULs included) up to len.
            Some((0, rest)) => {
                let mut n = 0;
                for (d, s) in name.iter_mut().zip(core::iter::once(&b'@').chain(rest)) {
                    *d = *s;
                    n += 1;
                }
                n
            }
            _ => {
                let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
                for (d, s) in name.iter_mut().zip(raw.get(..end).unwrap_or(&[])) {
                    *d = *s;
                }
                end
            }
        };
        if glob::matches(pat, name.get(..n).unwrap_or(&[])) {
            return true;
        }
    }
    false
}

fn family(sa: &[u8; 128]) -> c_int {
    let [a, b, ..] = *sa;
    c_int::from(u16::from_ne_bytes([a, b]))
}

/// Does the socket's local (or peer) TCP/UDP address match? Async-signal-safe.
fn addr_matches(fd: c_int, peer: bool, want: &Addr) -> bool {
    let mut sa = [0u8; 128];
    let len = fdinfo::sock_name(fd, peer, &mut sa);
    let b = |r: core::ops::Range<usize>| sa.get(r).filter(|_| len > 0);
    // sockaddr_in: family, port (big-endian) at 2, address at 4.
    // sockaddr_in6: family, port at 2, flowinfo at 4, address at 8.
    let (host, port) = match (family(&sa), b(2..4)) {
        (libc::AF_INET, Some(&[p0, p1])) => match b(4..8) {
            Some(&[a, b2, c, d]) => (Host::V4([a, b2, c, d]), u16::from_be_bytes([p0, p1])),
            _ => return false,
        },
        (libc::AF_INET6, Some(&[p0, p1])) => {
            let mut a = [0u8; 16];
            match b(8..24) {
                Some(s) => a.copy_from_slice(s),
                None => return false,
            }
            let ip = std::net::Ipv6Addr::from(a);
            let host = match ip.to_ipv4_mapped() {
                Some(v4) => Host::V4(v4.octets()),
                None => Host::V6(a),
            };
            (host, u16::from_be_bytes([p0, p1]))
        }
        _ => return false,
    };
    port == want.port && (want.host == Host::Any || want.host == host)
}

/// Do the action on one selected descriptor; Err(errno) on failure.
/// Async-signal-safe.
#[link_section = ".text.fg_hot"]
fn apply(op: &Op, fd: c_int, kind: Option<FdKind>, ids: &Ids) -> Result<(), c_int> {
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
fn err() -> c_int {
    match sys::errno() {
        0 => libc::EIO,
        e => e,
    }
}

#[link_section = ".text.fg_hot"]
fn close(fd: c_int) -> Result<(), c_int> {
    // SAFETY: closing a descriptor the config selected; no memory involved.
    // On Linux the number is released even when close reports an error, and
    // EINTR is not a failure (retrying could close a reused number).
    match unsafe { sys::call(libc::SYS_close, [fd as usize, 0, 0, 0, 0, 0]) } {
        Err(e) if e != libc::EINTR => Err(e),
        _ => Ok(()),
    }
}

#[link_section = ".text.fg_hot"]
fn cloexec(fd: c_int) -> Result<(), c_int> {
    let flags = sys::fcntl(fd, libc::F_GETFD, 0)?;
    sys::fcntl(fd, libc::F_SETFD, (flags | libc::FD_CLOEXEC) as usize).map(drop)
}

/// The status flags (`F_GETFL`) and whether close-on-exec is set.
fn flags_of(fd: c_int) -> Result<(c_int, bool), c_int> {
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
fn replace(new: c_int, fd: c_int, cloexec: bool) -> Result<(), c_int> {
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
fn set_nonblock(fd: c_int, on: bool) {
    if on {
        // SAFETY: fcntl with integer arguments only.
        unsafe { crate::os::clib::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK) };
    }
}

/// `/dev/null` at the same number, with the same access mode.
fn devnull(fd: c_int) -> Result<(), c_int> {
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
fn expand(template: &[u8], ids: &Ids, out: &mut Buf<PATH_BUF>) -> Result<(), c_int> {
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
fn reopen(fd: c_int, r: &Reopen, ids: &Ids) -> Result<(), c_int> {
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
fn disconnect(fd: c_int) -> Result<(), c_int> {
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
fn renew(fd: c_int, kind: Option<FdKind>) -> Result<(), c_int> {
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
fn close_ranges(s: &Sel, cloexec: bool) -> bool {
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

/// Audit: append which descriptors the fd action would select now:
/// `; fd close -> 3-9,12; fd disconnect -> none`. Parent side, in prepare;
/// changes nothing.
pub fn audit(f: &FdAction, label: &[u8], line: &mut Buf<1024>) {
    let mut link = [0u8; PATH_BUF];
    line.str("; fd ").push(label).str(" ->");
    let mut run: Option<(c_int, c_int)> = None;
    let mut any = false;
    let flush = |line: &mut Buf<1024>, r: (c_int, c_int), any: &mut bool| {
        line.str(if *any { "," } else { " " }).i64(i64::from(r.0));
        if r.1 > r.0 {
            line.byte(b'-').i64(i64::from(r.1));
        }
        *any = true;
    };
    visit(&f.sel, |fd| {
        if selects(&f.sel, fd, &mut link).is_none() {
            return;
        }
        run = match run {
            Some((lo, hi)) if hi.checked_add(1) == Some(fd) => Some((lo, fd)),
            Some(r) => {
                flush(line, r, &mut any);
                Some((fd, fd))
            }
            None => Some((fd, fd)),
        };
    });
    if let Some(r) = run {
        flush(line, r, &mut any);
    }
    if !any {
        line.str(" none");
    }
}
