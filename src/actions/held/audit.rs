//! `forkguard audit` and held locks (SPEC 8.4): at each fork, every lock
//! another thread holds, named, with its holder; at the exit of the
//! process, a summary; and, for `--suggest`, machine-readable lines the
//! command turns into a config. Parent side only (prepare and exit).
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use super::name;
use super::record::{self, Record};
use crate::os::buf::Buf;
use crate::os::sys;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

const MAX_LOCKS: usize = 32;
const MAX_HOLDERS: usize = 4;

#[derive(Clone, Copy)]
struct Seen {
    name: [u8; 160],
    len: usize,
    kind: u8,
    forks: u32,
    /// The fork that last counted it (FORKS), so that two heap locks of
    /// one name count once per fork.
    last: u32,
    holders: [(i32, [u8; 16]); MAX_HOLDERS],
}

const EMPTY: Seen = Seen {
    name: [0; 160],
    len: 0,
    kind: 0,
    forks: 0,
    last: 0,
    holders: [(0, [0; 16]); MAX_HOLDERS],
};

struct Table {
    locks: [Seen; MAX_LOCKS],
    n: usize,
}

struct Shared(UnsafeCell<Table>);
// SAFETY: only the thread that set BUSY touches it, until it clears BUSY.
unsafe impl Sync for Shared {}

static BUSY: AtomicBool = AtomicBool::new(false);
static TABLE: Shared = Shared(UnsafeCell::new(Table {
    locks: [EMPTY; MAX_LOCKS],
    n: 0,
}));
static FORKS: AtomicU32 = AtomicU32::new(0);
/// `--suggest`: the NUL-terminated file the command reads (empty: none).
static SUGGEST: Shared2 = Shared2(UnsafeCell::new([0; 512]));
struct Shared2(UnsafeCell<[u8; 512]>);
// SAFETY: written once at load (one thread), read-only afterwards.
unsafe impl Sync for Shared2 {}

/// Load time (`FORKGUARD_AUDIT=suggest:PATH`): where `--suggest` wants its
/// lines.
pub fn set_suggest(p: &str) {
    // SAFETY: load time, one thread, before any reader.
    let buf = unsafe { &mut *SUGGEST.0.get() };
    for (d, s) in buf.iter_mut().zip(p.bytes().take(510)) {
        *d = s;
    }
}

/// Load time, audit: the summary at exit.
pub fn setup() {
    // SAFETY: registers a plain extern "C" function for exit.
    unsafe { crate::os::clib::atexit(summary) };
}

fn suggest_path() -> Option<&'static [u8]> {
    // SAFETY: read-only after load.
    let buf = unsafe { &*SUGGEST.0.get() };
    let n = buf.iter().position(|&b| b == 0)?;
    (n > 0).then(|| buf.get(..=n).unwrap_or(&[]))
}

/// The thread's name, from /proc (empty when it is gone).
fn comm(tid: i32) -> [u8; 16] {
    let mut out = [0u8; 16];
    let mut path = Buf::<48>::new();
    path.str("/proc/self/task/")
        .i64(i64::from(tid))
        .str("/comm")
        .byte(0);
    let fd = sys::open_bytes(path.as_bytes(), libc::O_RDONLY | libc::O_CLOEXEC, 0);
    if fd < 0 {
        return out;
    }
    // SAFETY: reads into a local 16-byte buffer.
    let n = unsafe {
        sys::syscall(
            libc::SYS_read,
            [fd as usize, out.as_mut_ptr() as usize, out.len(), 0, 0, 0],
        )
    };
    sys::close(fd);
    for b in out.iter_mut().skip(n.max(0) as usize) {
        *b = 0;
    }
    for b in out.iter_mut() {
        if *b == b'\n' {
            *b = 0;
        }
    }
    out
}

fn cstr(b: &[u8]) -> &[u8] {
    b.get(..b.iter().position(|&c| c == 0).unwrap_or(b.len()))
        .unwrap_or(&[])
}

/// Audit, at each fork: append `; held by other threads: NAME by tid T
/// (comm), ...` (text) or a `"held"` array (JSON) to the audit line, count
/// each into the summary, and write `--suggest` lines.
pub fn report<const N: usize>(json: bool, line: &mut Buf<N>) {
    if !super::auditing() {
        return;
    }
    FORKS.fetch_add(1, Ordering::Relaxed);
    let me = sys::gettid();
    let my_rec = crate::os::thread_words::words().record.get();
    let mut seen: [usize; 16] = [0; 16];
    let mut n = 0usize;
    let mut sugg = Buf::<2048>::new();
    if json {
        line.str(",\"held\":[");
    }
    record::each(|tid, r| {
        if core::ptr::eq(r, my_rec as *const Record) {
            return;
        }
        for e in r.entries() {
            let addr = e.addr.load(Ordering::Relaxed);
            let kind = e.kind();
            if addr == 0
                || seen.get(..n).is_some_and(|s| s.contains(&addr))
                || !super::held_by_other(addr, kind, tid.abs(), me, my_rec)
            {
                continue;
            }
            if let Some(s) = seen.get_mut(n) {
                *s = addr;
                n += 1;
            }
            let holder = if kind == record::SEM {
                super::track::holder(addr)
            } else if kind == record::MUTEX {
                crate::actions::lock::held::mutex_owner_of(addr)
            } else {
                tid.abs()
            };
            let holder = if holder > 0 { holder } else { tid.abs() };
            let comm = comm(holder);
            let mut nm = Buf::<160>::new();
            name::describe(addr, kind, e.ret(), &mut nm);
            if json {
                if n > 1 {
                    line.byte(b',');
                }
                line.str("{\"lock\":\"").json_str(nm.as_bytes());
                line.str("\",\"type\":\"").str(name::type_word(kind));
                line.str("\",\"tid\":").i64(i64::from(holder));
                line.str(",\"thread\":\"").json_str(cstr(&comm)).str("\"}");
            } else {
                line.str(if n == 1 {
                    "; held by other threads: "
                } else {
                    ", "
                });
                line.push(nm.as_bytes())
                    .str(" by tid ")
                    .i64(i64::from(holder));
                if comm[0] != 0 {
                    line.str(" (").push(cstr(&comm)).byte(b')');
                }
            }
            count(nm.as_bytes(), kind, holder, &comm);
            suggestion(addr, kind, nm.as_bytes(), &mut sugg);
        }
    });
    if json {
        line.byte(b']');
    } else if n == 0 {
        line.str("; held by other threads: none");
    }
    if suggest_path().is_some() {
        fds(&mut sugg);
        if let Some(p) = suggest_path() {
            sys::append_to(p, sugg.as_bytes());
        }
    }
}

/// Appends a `--suggest` line (`openmp`: a live GNU OpenMP pool) when the
/// command asked for suggestions.
pub fn suggest_append(line: &[u8]) {
    if let Some(p) = suggest_path() {
        sys::append_to(p, line);
    }
}

/// One `--suggest` line: `lock TYPE SYMBOL` for a global the config can
/// name (`lib:name`, or a bare name in the program), else `unnamed TYPE`;
/// `libc TYPE` for a lock inside glibc.
fn suggestion(addr: usize, kind: u8, nm: &[u8], out: &mut Buf<2048>) {
    let t = name::type_word(kind);
    let mut obj = Buf::<256>::new();
    let in_libc = name::object_of(addr, &mut obj) && obj.as_bytes().starts_with(b"libc.so");
    if in_libc {
        out.str("libc ").str(t).byte(b' ').push(nm).byte(b'\n');
        return;
    }
    let named = !nm.contains(&b' ') && !nm.contains(&b'+');
    if !named {
        out.str("unnamed ").str(t).byte(b' ').push(nm).byte(b'\n');
        return;
    }
    out.str("lock ").str(t).byte(b' ');
    // The main program's globals are named bare (a `lib:` prefix is looked
    // up among shared objects); a static with its source file keeps the
    // program's name (`PROGRAM:FILE:NAME`).
    let prog = name::is_main_program(addr);
    let colons = nm.iter().filter(|&&b| b == b':').count();
    match (prog, nm.iter().position(|&b| b == b':')) {
        (true, Some(i)) if colons == 1 => out.push(nm.get(i + 1..).unwrap_or(&[])),
        _ => out.push(nm),
    };
    out.byte(b'\n');
}

/// `--suggest` lines for inherited descriptors: `fd listen`, `fd peer
/// HOST:PORT` (connected TCP), `fd epoll`.
fn fds(out: &mut Buf<2048>) {
    let mut link = [0u8; 256];
    crate::os::fdinfo::for_each_fd(3, |fd| {
        let Some((kind, _)) = crate::os::fdinfo::classify(fd, &mut link) else {
            return;
        };
        match kind.name() {
            "listen" => {
                out.str("fd listen\n");
            }
            "epoll" => {
                out.str("fd epoll\n");
            }
            "socket" => {
                let mut sa = [0u8; 128];
                let len = crate::os::fdinfo::sock_name(fd, true, &mut sa);
                let ty = crate::os::fdinfo::sock_opt(fd, libc::SO_TYPE).unwrap_or(0);
                if len > 0 && ty == libc::SOCK_STREAM {
                    if let Some(p) = peer_text(&sa, len) {
                        out.str("fd peer ").push(p.as_bytes()).byte(b'\n');
                    }
                }
            }
            _ => {}
        }
    });
}

/// `a.b.c.d:port` or `[v6]:port` of a sockaddr_in / sockaddr_in6.
fn peer_text(sa: &[u8; 128], len: usize) -> Option<Buf<64>> {
    let family = u16::from_ne_bytes([*sa.first()?, *sa.get(1)?]);
    let port = u16::from_be_bytes([*sa.get(2)?, *sa.get(3)?]);
    let mut b = Buf::<64>::new();
    if i32::from(family) == libc::AF_INET && len >= 8 {
        for k in 0..4 {
            if k > 0 {
                b.byte(b'.');
            }
            b.u64(u64::from(*sa.get(4 + k)?));
        }
    } else if i32::from(family) == libc::AF_INET6 && len >= 24 {
        let ip = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(sa.get(8..24)?).ok()?);
        b.byte(b'[').str(&ip.to_string()).byte(b']');
    } else {
        return None;
    }
    b.byte(b':').u64(u64::from(port));
    Some(b)
}

fn count(nm: &[u8], kind: u8, tid: i32, comm: &[u8; 16]) {
    if BUSY.swap(true, Ordering::Acquire) {
        return;
    }
    // SAFETY: BUSY is ours.
    let t = unsafe { &mut *TABLE.0.get() };
    let n = t.n.min(MAX_LOCKS);
    let found = t
        .locks
        .get(..n)
        .and_then(|l| l.iter().position(|s| s.name.get(..s.len) == Some(nm)));
    let idx = match found {
        Some(i) => Some(i),
        None if n < MAX_LOCKS => {
            if let Some(s) = t.locks.get_mut(n) {
                let len = nm.len().min(s.name.len());
                if let (Some(d), Some(src)) = (s.name.get_mut(..len), nm.get(..len)) {
                    d.copy_from_slice(src);
                }
                s.len = len;
                s.kind = kind;
            }
            t.n = n + 1;
            Some(n)
        }
        None => None,
    };
    if let Some(s) = idx.and_then(|i| t.locks.get_mut(i)) {
        let now = FORKS.load(Ordering::Relaxed);
        if s.last != now {
            s.last = now;
            s.forks += 1;
        }
        if !s.holders.iter().any(|h| h.0 == tid) {
            if let Some(h) = s.holders.iter_mut().find(|h| h.0 == 0) {
                *h = (tid, *comm);
            }
        }
    }
    BUSY.store(false, Ordering::Release);
}

/// At exit: every lock held by another thread at some fork, how often, by
/// whom. Only in processes that forked.
extern "C" fn summary() {
    let forks = FORKS.load(Ordering::Relaxed);
    if forks == 0 || BUSY.swap(true, Ordering::Acquire) {
        return;
    }
    // SAFETY: BUSY is ours.
    let t = unsafe { &*TABLE.0.get() };
    let Some(rt) = crate::phases::runtime::get() else {
        return;
    };
    let mut line = Buf::<4096>::new();
    let pid = i64::from(sys::getpid());
    let locks = t.locks.get(..t.n.min(MAX_LOCKS)).unwrap_or(&[]);
    if rt.json {
        line.str("{\"ts\":").u64(sys::wall_ns() / 1_000_000_000);
        line.str(",\"pid\":")
            .i64(pid)
            .str(",\"event\":\"audit_summary\",\"forks\":");
        line.u64(u64::from(forks)).str(",\"held\":[");
        for (k, s) in locks.iter().enumerate() {
            if k > 0 {
                line.byte(b',');
            }
            line.str("{\"lock\":\"")
                .json_str(s.name.get(..s.len).unwrap_or(&[]));
            line.str("\",\"type\":\"").str(name::type_word(s.kind));
            line.str("\",\"forks\":")
                .u64(u64::from(s.forks))
                .str(",\"holders\":[");
            for (j, h) in s.holders.iter().filter(|h| h.0 != 0).enumerate() {
                if j > 0 {
                    line.byte(b',');
                }
                line.str("{\"tid\":")
                    .i64(i64::from(h.0))
                    .str(",\"thread\":\"");
                line.json_str(cstr(&h.1)).str("\"}");
            }
            line.str("]}");
        }
        line.str("]}");
    } else {
        line.str("forkguard[")
            .i64(pid)
            .str("] audit summary: ")
            .u64(u64::from(forks));
        line.str(if forks == 1 { " fork; " } else { " forks; " });
        if locks.is_empty() {
            line.str("no lock was held by another thread at a fork");
        } else {
            line.str("held by another thread at a fork:");
            for s in locks {
                line.str("\n  ").push(s.name.get(..s.len).unwrap_or(&[]));
                line.str(": at ")
                    .u64(u64::from(s.forks))
                    .str(" of ")
                    .u64(u64::from(forks));
                line.str(" forks, by");
                for h in s.holders.iter().filter(|h| h.0 != 0) {
                    line.str(" tid ").i64(i64::from(h.0));
                    if h.1[0] != 0 {
                        line.str(" (").push(cstr(&h.1)).byte(b')');
                    }
                }
            }
        }
    }
    let bytes = line.end_line();
    match &rt.log {
        crate::phases::runtime::LogTarget::Off | crate::phases::runtime::LogTarget::Stderr => {
            sys::write_all(2, bytes)
        }
        crate::phases::runtime::LogTarget::File(p) => sys::append_to(p, bytes),
    }
    BUSY.store(false, Ordering::Release);
}
