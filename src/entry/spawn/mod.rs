//! `spawn = true` (SPEC 8.5): `[[fd]]` `close` and `cloexec` actions also
//! keep descriptors out of programs started with `posix_spawn`,
//! `posix_spawnp`, `system` and `popen`, and out of a program a `vfork`
//! child executes with `execve`, `execv`, `execvp` or `execvpe`.
//!
//! The caller's descriptors are never touched (no `FD_CLOEXEC` toggled in
//! the caller, which another thread's fork or spawn could observe):
//! - `posix_spawn[p]`: the caller's file actions are copied (replayed
//!   through the public `posix_spawn_file_actions_add*` calls, read from
//!   glibc 2.34+'s layout) and a `close` is added for each selected
//!   descriptor that would be inherited (no `FD_CLOEXEC`). glibc ignores a
//!   `close` of a descriptor that is already closed in the child.
//! - `system` and `popen`: glibc runs its internal `posix_spawn`, which no
//!   interposer reaches, so both are re-implemented here on the real
//!   `posix_spawn`, the way glibc 2.36 does them (`/bin/sh -c`, SIGINT and
//!   SIGQUIT ignored and SIGCHLD blocked while `system` waits, shared by
//!   concurrent calls; `popen`'s pipe made close-on-exec, other `popen`
//!   streams closed in the new child, `pclose` waiting with EINTR retried).
//! - a `vfork` child (it shares the caller's memory, not its descriptor
//!   table) sets `FD_CLOEXEC` on the selected descriptors in its own table
//!   just before `exec`: only raw system calls on the stack, no allocation,
//!   no lock, `errno` restored. Told from a `fork` child by `kcmp(KCMP_VM)`
//!   with its parent (same address space).
//!
//! Kept on purpose: descriptors a `posix_spawn` file action makes (the
//! target of `dup2` and `open`), fds 3 .. 3+N-1 when the new program's
//! environment has `LISTEN_FDS=N` (systemd socket activation), and the
//! make jobserver's two fds named in `MAKEFLAGS`/`MFLAGS`
//! (`--jobserver-auth=R,W` or `--jobserver-fds=R,W`).
mod call;
mod exec;
mod shell;

use crate::phases::runtime::{self, RtKind, Runtime};
use crate::actions::fd;
use crate::os::sys;
use crate::phases;
use libc::{c_char, c_int, pid_t};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Some action of the installed runtime has `spawn = true`.
static ON: AtomicBool = AtomicBool::new(false);

/// The next definitions (libc's), found at load when `ON`, so that nothing
/// is looked up in a vfork child.
pub(super) struct Real {
    slot: AtomicUsize,
    name: &'static core::ffi::CStr,
}

macro_rules! real {
    ($($id:ident = $name:literal;)*) => {
        $(pub(super) static $id: Real = Real { slot: AtomicUsize::new(0), name: $name };)*
        const ALL: &[&Real] = &[$(&$id),*];
    };
}

real! {
    SPAWN = c"posix_spawn";
    SPAWNP = c"posix_spawnp";
    SYSTEM = c"system";
    POPEN = c"popen";
    PCLOSE = c"pclose";
    EXECVE = c"execve";
    EXECV = c"execv";
    EXECVP = c"execvp";
    EXECVPE = c"execvpe";
}

/// `environ`'s address (a data import would cost every process a lookup).
static ENVIRON: AtomicUsize = AtomicUsize::new(0);

impl Real {
    pub(super) fn get(&self) -> usize {
        crate::os::symbols::next(&self.slot, self.name)
    }
}

/// At load, with the runtime built: turn the feature on if some action
/// asks for it, and find every real function now.
pub fn init(rt: &Runtime) {
    if !rt.actions.iter().any(|a| is_spawn(&a.kind)) {
        return;
    }
    for r in ALL {
        r.get();
    }
    // SAFETY: RTLD_DEFAULT lookup of a NUL-terminated name.
    let env = unsafe { crate::os::clib::dlsym(libc::RTLD_DEFAULT, c"environ".as_ptr()) };
    ENVIRON.store(env as usize, Ordering::Release);
    ON.store(true, Ordering::Release);
}

/// Before a `vfork` (parent side): find libc's exec functions if that is
/// not done yet (one load afterwards), so that a vfork child's exec never
/// looks a symbol up (a loader lock taken in a child that shares the
/// parent's memory would stay taken).
pub fn before_vfork() {
    if EXECVPE.slot.load(Ordering::Acquire) == 0 {
        for r in [&EXECVE, &EXECV, &EXECVP, &EXECVPE] {
            r.get();
        }
    }
}

fn is_spawn(k: &RtKind) -> bool {
    matches!(k, RtKind::Fd(f) if f.spec.spawn)
}

/// The runtime, when spawned programs must be looked after now: the
/// feature is on, this is not `forkguard audit`, and no phase runs on this
/// thread (a spawn made by a phase passes through). Async-signal-safe.
pub(super) fn active() -> Option<&'static Runtime> {
    if !ON.load(Ordering::Acquire) {
        return None;
    }
    runtime::get().filter(|rt| !rt.audit && !phases::busy())
}

pub(super) fn environ() -> *const *const c_char {
    let p = ENVIRON.load(Ordering::Acquire) as *const *const *const c_char;
    if p.is_null() {
        return core::ptr::null();
    }
    // SAFETY: p is the address of libc's `environ` variable.
    unsafe { *p }
}

// ---- what is left out -----------------------------------------------------

/// Descriptors the new program must keep whatever the config selects.
#[derive(Clone, Copy, Default)]
pub(super) struct Kept {
    /// `LISTEN_FDS=N`: 3 .. 3 + N.
    listen: c_int,
    /// The jobserver's read and write ends.
    jobserver: [c_int; 2],
}

impl Kept {
    /// Read `LISTEN_FDS` and `MAKEFLAGS`/`MFLAGS` from the new program's
    /// environment (a NULL-terminated array, or null). Async-signal-safe.
    pub(super) fn from_env(envp: *const *const c_char) -> Kept {
        let mut k = Kept {
            listen: 0,
            jobserver: [-1, -1],
        };
        if envp.is_null() {
            return k;
        }
        let mut i = 0;
        loop {
            // SAFETY: envp is a NULL-terminated array of C strings.
            let p = unsafe { *envp.add(i) };
            if p.is_null() {
                break;
            }
            i += 1;
            // Only the three names are measured in full: an environment
            // is long, and most of it is not these.
            if !starts_with(p, b"LISTEN_FDS=")
                && !starts_with(p, b"MAKEFLAGS=")
                && !starts_with(p, b"MFLAGS=")
            {
                continue;
            }
            // SAFETY: p is a NUL-terminated string.
            let s = unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes();
            if let Some(v) = s.strip_prefix(b"LISTEN_FDS=") {
                k.listen = number(v).map_or(0, |(n, _)| n);
            } else if let Some(v) = s
                .strip_prefix(b"MAKEFLAGS=")
                .or_else(|| s.strip_prefix(b"MFLAGS="))
            {
                if let Some(fds) = jobserver(v) {
                    k.jobserver = fds;
                }
            }
        }
        k
    }

    fn keeps(&self, fd: c_int) -> bool {
        (fd >= 3 && fd - 3 < self.listen) || self.jobserver.contains(&fd)
    }
}

/// Does the C string at `p` start with `prefix`? Reads no further than
/// its NUL or the prefix's length. Async-signal-safe.
fn starts_with(p: *const c_char, prefix: &[u8]) -> bool {
    prefix.iter().enumerate().all(|(k, &b)| {
        // SAFETY: the bytes up to the first mismatch (a NUL included) are
        // inside the string.
        (unsafe { *p.add(k) }) as u8 == b
    })
}

/// A decimal number at the start of `s`, and the rest.
fn number(s: &[u8]) -> Option<(c_int, &[u8])> {
    let end = s
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    let (digits, rest) = s.split_at_checked(end)?;
    if digits.is_empty() || digits.len() > 6 {
        return None;
    }
    let n = digits
        .iter()
        .fold(0, |n: c_int, d| n * 10 + c_int::from(d - b'0'));
    Some((n, rest))
}

/// `R,W` after the last `--jobserver-auth=` or `--jobserver-fds=` in a
/// MAKEFLAGS value (`fifo:PATH` names no descriptor).
fn jobserver(v: &[u8]) -> Option<[c_int; 2]> {
    let mut found = None;
    for key in [&b"--jobserver-auth="[..], &b"--jobserver-fds="[..]] {
        let mut rest = v;
        while let Some(at) = rest.windows(key.len()).position(|w| w == key) {
            rest = rest.get(at + key.len()..).unwrap_or(&[]);
            if let Some((r, tail)) = number(rest) {
                if let Some((w, _)) = tail.strip_prefix(b",").and_then(number) {
                    found = Some([r, w]);
                }
            }
        }
    }
    found
}

/// Calls `each(fd)` for every descriptor the new program would inherit
/// that a `spawn = true` action selects, except those kept on purpose
/// (`kept`, `targets`). A descriptor that is already close-on-exec is
/// not inherited and is skipped. May repeat a descriptor that several
/// actions select. Async-signal-safe.
pub(super) fn for_each_left_out(
    rt: &Runtime,
    kept: Kept,
    targets: &dyn Fn(c_int) -> bool,
    mut each: impl FnMut(c_int),
) {
    // A `path` pattern needs the whole link target, a kind only its start
    // (as in the child phase): the small buffer spares zeroing 4 KiB.
    let mut small = [0u8; 64];
    let mut whole: [u8; 4096];
    for a in &rt.actions {
        let RtKind::Fd(f) = &a.kind else { continue };
        if !f.spec.spawn {
            continue;
        }
        let link: &mut [u8] = if f.spec.select.path.is_some() {
            whole = [0u8; 4096];
            &mut whole
        } else {
            &mut small
        };
        fd::for_each_selected(f, link, |n| {
            if kept.keeps(n) || targets(n) {
                return;
            }
            match sys::fcntl(n, libc::F_GETFD, 0) {
                Ok(flags) if flags & libc::FD_CLOEXEC == 0 => each(n),
                _ => {}
            }
        });
    }
}

// ---- log ---------------------------------------------------------------------

use crate::phases::log::{emit, json_head, Line};

/// `forkguard[P] spawn /bin/sh via system -> 4250: left out fds 5, 7`.
#[cold]
#[inline(never)]
pub(super) fn log_spawn(rt: &Runtime, via: &str, prog: &[u8], child: pid_t, fds: &[c_int]) {
    let mut line = Line::new();
    let me = i64::from(sys::getpid());
    if rt.json {
        json_head(&mut line, me, "spawn");
        line.str(",\"via\":\"").str(via).str("\",\"path\":\"").json_str(prog);
        line.str("\",\"child\":")
            .i64(i64::from(child))
            .str(",\"fds\":[");
        for (k, fd) in fds.iter().enumerate() {
            if k > 0 {
                line.byte(b',');
            }
            line.i64(i64::from(*fd));
        }
        line.str("]}");
    } else {
        line.str("forkguard[").i64(me).str("] spawn ").push(prog);
        line.str(" via ").str(via).str(" -> ").i64(i64::from(child));
        line.str(": left out ");
        if fds.is_empty() {
            line.str("no fd");
        } else {
            line.str(if fds.len() == 1 { "fd" } else { "fds" });
            for (k, fd) in fds.iter().enumerate() {
                line.str(if k > 0 { ", " } else { " " }).i64(i64::from(*fd));
            }
        }
    }
    emit(rt, &mut line);
}

/// `forkguard[P] exec in a vfork child: left out 2 fds`. Async-signal-safe.
#[cold]
#[inline(never)]
pub(super) fn log_exec(rt: &Runtime, n: u32) {
    let mut line = Line::new();
    let me = i64::from(sys::getpid());
    if rt.json {
        json_head(&mut line, me, "spawn");
        line.str(",\"via\":\"vfork\",\"left_out\":");
        line.u64(u64::from(n)).byte(b'}');
    } else {
        line.str("forkguard[")
            .i64(me)
            .str("] exec in a vfork child: left out ");
        line.u64(u64::from(n))
            .str(if n == 1 { " fd" } else { " fds" });
    }
    emit(rt, &mut line);
}
