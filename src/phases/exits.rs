//! `[settings] log_exits = true` (SPEC 8.5): each forked child's exit is
//! logged (pid, exit status or signal, lifetime) without taking the status
//! from the program.
//!
//! How:
//! - At the first fork of a process (its parent phase), a watcher thread is
//!   started: a bare `clone(CLONE_VM | CLONE_THREAD | ...)` on a stack of
//!   its own, which first `unshare(CLONE_FILES)`s, so it has a descriptor
//!   table of its own: it closes its copy of the program's descriptors at
//!   once (keeping
//!   only fd 2, for `log = "stderr"`), and the program can neither see,
//!   inherit nor close what it opens (`close_range(3, ~0U, 0)` in the
//!   program changes nothing for it, and it changes nothing for the
//!   program). It makes raw system calls only: no libc, no thread-local
//!   storage, no allocation, every signal blocked.
//! - The parent phase records each new child (pid, fork time) in a table
//!   and wakes the watcher (futex). The watcher opens a pidfd for it
//!   (`pidfd_open`, in its own table), waits for the pidfds to become
//!   readable (`ppoll`), and asks `waitid(P_PIDFD, ..., WEXITED | WNOWAIT)`:
//!   the status is read and the zombie left for the program, whose
//!   `waitpid`, `wait`, `waitid` and SIGCHLD handling see exactly what they
//!   would (SIGCHLD comes from the kernel; nothing here blocks, takes or
//!   sends it).
//! - A child the program reaps before the watcher looked (`pidfd_open`
//!   gives `ESRCH`, or `waitid` gives `ECHILD`) is reported from what the
//!   program's own `waitpid`/`wait`/`wait3`/`wait4`/`waitid` returned:
//!   those are exported here and note the status of a tracked child (one
//!   atomic load and nothing else when `log_exits` is off). A child reaped
//!   through some other path (a raw system call, `SIGCHLD` ignored) is
//!   reported with an unknown status.
//! - The watcher is woken for new children only while it has none to
//!   watch; otherwise it looks for them every 50 ms (it cannot be woken
//!   from `ppoll` without a descriptor or a signal the program could see).
use crate::os::buf::Buf;
use crate::phases::runtime::{self, LogTarget, Runtime};
use crate::os::sys;
use libc::{c_int, c_long, pid_t};
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Children tracked at once.
const SLOTS: usize = 4096;
/// A child's slot is one of the PROBE slots from `pid % SLOTS` (a fork
/// that finds none free is not reported).
const PROBE: usize = 256;
/// Pidfds the watcher waits on at once.
const WATCH: usize = 1024;
/// The watcher's stack (only the pages it touches are resident).
const STACK: usize = 256 * 1024;
/// How often the watcher looks for new children while it waits on others.
const LOOK_MS: i64 = 50;

const FREE: u32 = 0;
const CLAIMED: u32 = 1;
const NEW: u32 = 2;
const WATCHED: u32 = 3;

struct Slot {
    state: AtomicU32,
    pid: AtomicI32,
    start_ns: AtomicU64,
    /// 1 once the program's own wait call reaped the child (status set).
    reaped: AtomicU32,
    status: AtomicI32,
    reaped_ns: AtomicU64,
}

/// The table of this process's children (mapped at its first fork).
static TABLE: AtomicPtr<Slot> = AtomicPtr::new(core::ptr::null_mut());
/// The process the table and watcher belong to (a child inherits the
/// parent's values and starts its own at its own first fork).
static OWNER: AtomicI32 = AtomicI32::new(0);
static STARTER: AtomicI32 = AtomicI32::new(0);
/// Bumped (and futex-woken) for every new child.
static SEQ: AtomicU32 = AtomicU32::new(0);
/// One bit per slot that holds a new child the watcher has not opened yet:
/// the watcher looks at these 64 words, not at every slot.
static PENDING: [AtomicU64; SLOTS / 64] = [const { AtomicU64::new(0) }; SLOTS / 64];

fn set_pending(i: usize) {
    if let Some(w) = PENDING.get(i / 64) {
        w.fetch_or(1 << (i % 64), Ordering::AcqRel);
    }
}

fn raw(n: c_long, a: [usize; 6]) -> isize {
    // SAFETY: every caller passes arguments valid for `n` (checked at each
    // call site below); raw never touches errno.
    unsafe { sys::raw(n, a) }
}

fn mono_ns() -> u64 {
    clock(libc::CLOCK_MONOTONIC)
}

fn clock(id: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    raw(
        libc::SYS_clock_gettime,
        [id as usize, &mut ts as *mut _ as usize, 0, 0, 0, 0],
    );
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

fn table() -> Option<&'static [Slot]> {
    let p = TABLE.load(Ordering::Acquire);
    if p.is_null() {
        return None;
    }
    // SAFETY: TABLE points to SLOTS zero-initialised slots mapped once and
    // never unmapped; all-zero bytes are valid atomics.
    Some(unsafe { core::slice::from_raw_parts(p, SLOTS) })
}

/// Parent phase, after a successful fork, when `log_exits` is on: record
/// the child and make sure the watcher runs. Parent side, signals blocked.
pub fn forked(pid: pid_t) {
    if pid <= 0 || pid == pid_t::MAX {
        return;
    }
    let Some(rt) = runtime::get() else { return };
    let me = sys::getpid();
    if OWNER.load(Ordering::Acquire) != me {
        let cur = STARTER.load(Ordering::Acquire);
        if cur != me
            && STARTER
                .compare_exchange(cur, me, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            start(rt);
            OWNER.store(me, Ordering::Release);
        } else {
            while OWNER.load(Ordering::Acquire) != me {
                raw(libc::SYS_sched_yield, [0; 6]);
            }
        }
    }
    let Some(t) = table() else { return };
    let now = mono_ns();
    let h = pid as usize % SLOTS;
    for k in 0..PROBE {
        let Some(s) = t.get((h + k) % SLOTS) else {
            continue;
        };
        if s.state
            .compare_exchange(FREE, CLAIMED, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            s.pid.store(pid, Ordering::Relaxed);
            s.start_ns.store(now, Ordering::Relaxed);
            s.reaped.store(0, Ordering::Relaxed);
            s.state.store(NEW, Ordering::Release);
            set_pending((h + k) % SLOTS);
            SEQ.fetch_add(1, Ordering::AcqRel);
            // SAFETY: SEQ is a live, aligned u32.
            unsafe {
                sys::raw(
                    libc::SYS_futex,
                    [SEQ.as_ptr() as usize, libc::FUTEX_WAKE as usize, 1, 0, 0, 0],
                )
            };
            return;
        }
    }
}

/// Map the table and start the watcher. On failure nothing is reported.
fn start(rt: &'static Runtime) {
    let bytes = SLOTS * core::mem::size_of::<Slot>();
    let prot = (libc::PROT_READ | libc::PROT_WRITE) as usize;
    let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as usize;
    let t = raw(libc::SYS_mmap, [0, bytes, prot, flags, usize::MAX, 0]);
    let st = raw(
        libc::SYS_mmap,
        [
            0,
            STACK,
            prot,
            flags | libc::MAP_STACK as usize,
            usize::MAX,
            0,
        ],
    );
    if t < 0 || st < 0 {
        return;
    }
    // A guard page at the bottom of the stack.
    raw(libc::SYS_mprotect, [st as usize, 4096, 0, 0, 0, 0]);
    TABLE.store(t as *mut Slot, Ordering::Release);
    WATCHER_RT.store(rt as *const Runtime as usize, Ordering::Release);
    let top = (st as usize + STACK) & !15;
    // SAFETY: top is the 16-byte aligned end of a fresh mapping that only
    // the new thread uses; watcher_main never returns.
    unsafe { clone_thread(top, watcher_main) };
}

static WATCHER_RT: AtomicUsize = AtomicUsize::new(0);

/// Start `f` on a new thread of this process with the stack ending at
/// `top`: shared memory, signal handlers, file system information and
/// (until `f` unshares it) descriptor table. Returns the
/// thread id or -errno.
///
/// # Safety
/// `top` must be the aligned top of a stack only the new thread uses, and
/// `f` must never return, use thread-local storage or call into libc.
#[cfg(target_arch = "x86_64")]
unsafe fn clone_thread(top: usize, f: extern "C" fn() -> !) -> isize {
    // CLONE_FILES as for any thread (tools such as valgrind refuse other
    // thread clones); the thread unshares its table as its first act.
    let flags = libc::CLONE_VM
        | libc::CLONE_FS
        | libc::CLONE_FILES
        | libc::CLONE_SIGHAND
        | libc::CLONE_THREAD
        | libc::CLONE_SYSVSEM;
    let ret: isize;
    // SAFETY: clone(2) on x86_64: the new thread starts on `top` with the
    // caller's registers; it calls `f` (in r12) and never comes back here.
    unsafe {
        core::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "call r12",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone as isize => ret,
            in("rdi") flags as usize,
            in("rsi") top,
            in("rdx") 0usize,
            in("r10") 0usize,
            in("r8") 0usize,
            in("r12") f,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn clone_thread(_top: usize, _f: extern "C" fn() -> !) -> isize {
    -(libc::ENOSYS as isize)
}

/// The children the watcher holds a pidfd for.
struct Watched {
    n: usize,
    slot: [u16; WATCH],
    fds: [libc::pollfd; WATCH],
}

extern "C" fn watcher_main() -> ! {
    let all: u64 = !0;
    raw(
        libc::SYS_rt_sigprocmask,
        [
            libc::SIG_SETMASK as usize,
            &all as *const u64 as usize,
            0,
            8,
            0,
            0,
        ],
    );
    // Its own copy of the descriptor table: drop the program's files.
    if raw(
        libc::SYS_unshare,
        [libc::CLONE_FILES as usize, 0, 0, 0, 0, 0],
    ) != 0
    {
        // Sharing the program's table would let it close (and reuse) what
        // the watcher opens: do nothing instead.
        loop {
            // SAFETY: pause has no arguments.
            unsafe { sys::raw(libc::SYS_pause, [0; 6]) };
        }
    }
    raw(libc::SYS_close_range, [0, 1, 0, 0, 0, 0]);
    raw(libc::SYS_close_range, [3, u32::MAX as usize, 0, 0, 0, 0]);
    let p = WATCHER_RT.load(Ordering::Acquire) as *const Runtime;
    // SAFETY: set by `start` from the installed runtime, which lives until
    // the process ends.
    let rt = unsafe { &*p };
    let mut w = Watched {
        n: 0,
        slot: [0; WATCH],
        fds: [libc::pollfd {
            fd: -1,
            events: 0,
            revents: 0,
        }; WATCH],
    };
    loop {
        let seen = SEQ.load(Ordering::Acquire);
        adopt(rt, &mut w);
        if w.n == 0 {
            // SAFETY: SEQ is a live, aligned u32; no timeout.
            unsafe {
                sys::raw(
                    libc::SYS_futex,
                    [
                        SEQ.as_ptr() as usize,
                        libc::FUTEX_WAIT as usize,
                        seen as usize,
                        0,
                        0,
                        0,
                    ],
                )
            };
            continue;
        }
        let ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: LOOK_MS * 1_000_000,
        };
        let r = raw(
            libc::SYS_ppoll,
            [
                w.fds.as_mut_ptr() as usize,
                w.n,
                &ts as *const _ as usize,
                0,
                8,
                0,
            ],
        );
        if r > 0 {
            collect(rt, &mut w);
        }
    }
}

/// Open a pidfd for each new child; report those already gone.
fn adopt(rt: &Runtime, w: &mut Watched) {
    let Some(t) = table() else { return };
    for (wi, word) in PENDING.iter().enumerate() {
        if word.load(Ordering::Acquire) == 0 {
            continue;
        }
        let mut bits = word.swap(0, Ordering::AcqRel);
        while bits != 0 {
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let i = wi * 64 + b;
            let Some(s) = t.get(i) else { continue };
            if s.state.load(Ordering::Acquire) != NEW {
                continue;
            }
            if !adopt_one(rt, w, i, s) {
                // No room or no descriptor now: next round.
                set_pending(i);
            }
        }
    }
}

/// Open a pidfd for the child in slot `i`; false to try again later.
fn adopt_one(rt: &Runtime, w: &mut Watched, i: usize, s: &Slot) -> bool {
    if w.n >= WATCH {
        return false;
    }
    let pid = s.pid.load(Ordering::Relaxed);
    let fd = raw(libc::SYS_pidfd_open, [pid as usize, 0, 0, 0, 0, 0]);
    if fd >= 0 {
        if let (Some(sl), Some(pf)) = (w.slot.get_mut(w.n), w.fds.get_mut(w.n)) {
            *sl = i as u16;
            *pf = libc::pollfd {
                fd: fd as c_int,
                events: libc::POLLIN,
                revents: 0,
            };
            w.n += 1;
            s.state.store(WATCHED, Ordering::Release);
        }
        true
    } else if fd == -(libc::ESRCH as isize) {
        // Reaped before the watcher looked: the program's wait call
        // recorded the status (or is about to).
        report_reaped(rt, s, None);
        true
    } else {
        false
    }
}

/// Report every child whose pidfd is readable (it exited).
fn collect(rt: &Runtime, w: &mut Watched) {
    let mut k = 0;
    while k < w.n {
        let (Some(pf), Some(&si)) = (w.fds.get(k).copied(), w.slot.get(k)) else {
            break;
        };
        if pf.revents == 0 {
            k += 1;
            continue;
        }
        let Some(s) = table().and_then(|t| t.get(usize::from(si))) else {
            break;
        };
        // SAFETY: a zeroed siginfo is a valid out-parameter.
        let mut info: libc::siginfo_t = unsafe { core::mem::zeroed() };
        let r = raw(
            libc::SYS_waitid,
            [
                3, // P_PIDFD
                pf.fd as usize,
                &mut info as *mut _ as usize,
                (libc::WEXITED | libc::WNOWAIT) as usize,
                0,
                0,
            ],
        );
        if r == 0 {
            // SAFETY: waitid filled a CLD_* siginfo.
            let (code, status) = unsafe { (info.si_code, info.si_status()) };
            report(rt, s, Some(from_siginfo(code, status)), mono_ns());
        } else {
            report_reaped(rt, s, Some(pf.fd));
        }
        raw(libc::SYS_close, [pf.fd as usize, 0, 0, 0, 0, 0]);
        // Swap the last one in.
        w.n -= 1;
        if let (Some(&last_fd), Some(&last_slot)) = (w.fds.get(w.n), w.slot.get(w.n)) {
            if let (Some(a), Some(b)) = (w.fds.get_mut(k), w.slot.get_mut(k)) {
                *a = last_fd;
                *b = last_slot;
            }
        }
    }
}

/// A `waitid` siginfo as the status `waitpid` would give.
pub fn from_siginfo(code: c_int, status: c_int) -> c_int {
    match code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_DUMPED => (status & 0x7f) | 0x80,
        _ => status & 0x7f,
    }
}

/// The child is gone from the kernel: wait up to 100 ms for the program's
/// wait call to note its status, else report it unknown.
fn report_reaped(rt: &Runtime, s: &Slot, _fd: Option<c_int>) {
    let deadline = mono_ns() + 100_000_000;
    while s.reaped.load(Ordering::Acquire) == 0 {
        let now = mono_ns();
        if now >= deadline {
            break;
        }
        let ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 5_000_000,
        };
        // SAFETY: reaped is a live, aligned u32; a 5 ms timeout.
        unsafe {
            sys::raw(
                libc::SYS_futex,
                [
                    s.reaped.as_ptr() as usize,
                    libc::FUTEX_WAIT as usize,
                    0,
                    &ts as *const _ as usize,
                    0,
                    0,
                ],
            )
        };
    }
    if s.reaped.load(Ordering::Acquire) != 0 {
        let st = s.status.load(Ordering::Relaxed);
        report(rt, s, Some(st), s.reaped_ns.load(Ordering::Relaxed));
    } else {
        report(rt, s, None, mono_ns());
    }
}

/// Write the `exit` line and free the slot.
fn report(rt: &Runtime, s: &Slot, status: Option<c_int>, at_ns: u64) {
    let pid = s.pid.load(Ordering::Relaxed);
    let life = at_ns.saturating_sub(s.start_ns.load(Ordering::Relaxed));
    s.state.store(FREE, Ordering::Release);
    if matches!(rt.log, LogTarget::Off) {
        return;
    }
    let mut line = Buf::<512>::new();
    let me = raw(libc::SYS_getpid, [0; 6]) as i64;
    let (code, sig, core) = match status {
        Some(st) if st & 0x7f == 0 => (i64::from((st >> 8) & 0xff), 0, false),
        Some(st) => (-1, st & 0x7f, st & 0x80 != 0),
        None => (-1, 0, false),
    };
    let name = forkguard_core::signal::short_name(sig);
    if rt.json {
        let wall = clock(libc::CLOCK_REALTIME);
        line.str("{\"ts\":").u64(wall / 1_000_000_000).byte(b'.');
        frac(&mut line, wall % 1_000_000_000, 6);
        line.str(",\"pid\":")
            .i64(me)
            .str(",\"event\":\"exit\",\"child\":");
        line.i64(i64::from(pid)).str(",\"status\":").i64(code);
        line.str(",\"signal\":");
        match (sig, name) {
            (0, _) => line.str("null"),
            (_, Some(n)) => line.byte(b'"').str(n).byte(b'"'),
            (n, None) => line.str("\"").i64(i64::from(n)).byte(b'"'),
        };
        line.str(",\"core_dumped\":")
            .str(if core { "true" } else { "false" });
        if status.is_none() {
            line.str(",\"known\":false");
        }
        line.str(",\"lifetime_s\":")
            .u64(life / 1_000_000_000)
            .byte(b'.');
        frac(&mut line, life % 1_000_000_000, 6);
        line.byte(b'}');
    } else {
        line.str("forkguard[")
            .i64(me)
            .str("] exit ")
            .i64(i64::from(pid));
        match (status, sig, name) {
            (None, ..) => line.str(": status unknown (reaped unseen)"),
            (Some(_), 0, _) => line.str(": status ").i64(code),
            (Some(_), _, Some(n)) => line.str(": signal ").str(n),
            (Some(_), n, None) => line.str(": signal ").i64(i64::from(n)),
        };
        if core {
            line.str(" (core dumped)");
        }
        // `12.3s`; under a second, to the millisecond (`0.050s`).
        line.str(" after ").u64(life / 1_000_000_000).byte(b'.');
        frac(
            &mut line,
            life % 1_000_000_000,
            if life < 1_000_000_000 { 3 } else { 1 },
        );
        line.byte(b's');
    }
    write_line(rt, line.end_line());
}

/// The first `digits` decimals of `ns` (0 .. 1e9).
fn frac(line: &mut Buf<512>, ns: u64, digits: u32) {
    let mut div = 100_000_000u64;
    for _ in 0..digits {
        line.byte(b'0' + ((ns / div) % 10) as u8);
        div /= 10;
    }
}

/// One line to the log, with raw system calls (no errno: the watcher has
/// no thread-local storage of its own).
fn write_line(rt: &Runtime, bytes: &[u8]) {
    match &rt.log {
        LogTarget::Off => {}
        LogTarget::Stderr => write_fd(2, bytes),
        LogTarget::File(path) => {
            let fl =
                libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_CLOEXEC | libc::O_NOCTTY;
            let fd = raw(
                libc::SYS_openat,
                [
                    libc::AT_FDCWD as usize,
                    path.as_ptr() as usize,
                    fl as usize,
                    0o640,
                    0,
                    0,
                ],
            );
            if fd >= 0 {
                write_fd(fd as c_int, bytes);
                raw(libc::SYS_close, [fd as usize, 0, 0, 0, 0, 0]);
            }
        }
    }
}

fn write_fd(fd: c_int, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let n = raw(
            libc::SYS_write,
            [fd as usize, bytes.as_ptr() as usize, bytes.len(), 0, 0, 0],
        );
        if n == -(libc::EINTR as isize) {
            continue;
        }
        if n <= 0 {
            break;
        }
        bytes = bytes.get(n as usize..).unwrap_or(&[]);
    }
}

// ---- what the program's own wait calls reaped (see entry/wait.rs) ---------

/// Note what the program's wait call reaped, if it is a tracked child.
/// Async-signal-safe (atomics and raw system calls).
pub fn note(pid: pid_t, status: c_int) {
    if pid <= 0 || OWNER.load(Ordering::Acquire) == 0 {
        return;
    }
    // Stopped or continued: not an exit.
    if status & 0x7f == 0x7f || status == 0xffff {
        return;
    }
    if OWNER.load(Ordering::Acquire) != raw(libc::SYS_getpid, [0; 6]) as i32 {
        return;
    }
    let Some(t) = table() else { return };
    let h = pid as usize % SLOTS;
    for k in 0..PROBE {
        let Some(s) = t.get((h + k) % SLOTS) else {
            return;
        };
        let state = s.state.load(Ordering::Acquire);
        if (state == NEW || state == WATCHED) && s.pid.load(Ordering::Relaxed) == pid {
            s.status.store(status, Ordering::Relaxed);
            s.reaped_ns.store(mono_ns(), Ordering::Relaxed);
            s.reaped.store(1, Ordering::Release);
            // SAFETY: reaped is a live, aligned u32.
            unsafe {
                sys::raw(
                    libc::SYS_futex,
                    [
                        s.reaped.as_ptr() as usize,
                        libc::FUTEX_WAKE as usize,
                        1,
                        0,
                        0,
                        0,
                    ],
                )
            };
            return;
        }
    }
}
