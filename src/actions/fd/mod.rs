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

mod ops;
mod select;

use crate::actions::Tally;
use crate::os::buf::Buf;
use forkguard_core::plan::{FdActionKind, FdSpec, Loc, OpenFlag, Selector};
use libc::c_int;
use ops::{apply, close_ranges, Ids, Op, Reopen, PATH_BUF};
use select::{addr, selects, visit, Sel};
pub struct FdAction {
    pub spec: FdSpec,
    sel: Sel,
    op: Op,
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

/// The action's description in reports, without the fd number:
/// `close`, `reopen /var/log/app.%p.log`.
pub fn label(f: &FdAction) -> String {
    match &f.spec.path {
        Some(p) if f.spec.action == FdActionKind::Reopen => format!("reopen {p}"),
        _ => f.spec.action.name().to_string(),
    }
}

impl FdAction {
    /// Does this action need the forking process's pid (`%P`)?
    pub fn uses_parent_pid(&self) -> bool {
        matches!(&self.op, Op::Reopen(r) if r.template.windows(2).any(|w| w == b"%P"))
    }
}

/// The count of an action that one `close_range` did (not counted).
pub const RANGE: u32 = u32::MAX;

/// Child: apply one fd action (number `i`) to every descriptor it selects;
/// returns how many it acted on ([`RANGE`] for a `close_range`).
/// It counts once as ok when nothing failed; otherwise each descriptor it
/// could not handle is one failure (`fd 7 reopen /x: EACCES`).
/// Async-signal-safe.
#[link_section = ".text.fg_hot"]
pub fn child(f: &FdAction, i: usize, parent: libc::pid_t, t: &mut Tally) -> u32 {
    let ids = Ids { parent };
    let failed = t.failed;
    let n = run(f, u16::try_from(i).unwrap_or(u16::MAX), &ids, t);
    if t.failed == failed {
        t.ok();
    }
    n
}

#[link_section = ".text.fg_hot"]
fn run(f: &FdAction, i: u16, ids: &Ids, t: &mut Tally) -> u32 {
    if f.sel.pure_range
        && matches!(f.op, Op::Close | Op::Cloexec)
        && close_ranges(&f.sel, matches!(f.op, Op::Cloexec))
    {
        return RANGE;
    }
    // A `path` pattern needs the whole link target; classifying a kind
    // needs only its start (`anon_inode:[eventpoll]`, `/memfd:`): the
    // smaller buffer keeps the common case within the stack pages already
    // in use.
    if f.sel.path.is_some() {
        run_path(f, i, ids, t)
    } else {
        run_with(f, i, ids, t, &mut [0u8; 64])
    }
}

#[inline(never)]
fn run_path(f: &FdAction, i: u16, ids: &Ids, t: &mut Tally) -> u32 {
    run_with(f, i, ids, t, &mut [0u8; PATH_BUF])
}

#[link_section = ".text.fg_hot"]
fn run_with(f: &FdAction, i: u16, ids: &Ids, t: &mut Tally, link: &mut [u8]) -> u32 {
    let mut n = 0u32;
    // Inlined into `visit`: a closure cannot be placed in `.text.fg_hot`.
    visit(
        &f.sel,
        #[inline(always)]
        |fd| {
            if let Some(kind) = selects(&f.sel, fd, link) {
                n = n.saturating_add(1);
                if let Err(e) = apply(&f.op, fd, kind, ids) {
                    t.fail(i, fd, e);
                }
            }
        },
    );
    n
}

/// Calls `each(fd)` for every open descriptor `f` selects, changing
/// nothing (spawned programs, `entry::spawn`). `link` is scratch space for
/// the `/proc/self/fd/N` target (4096 bytes for a `path` selector).
/// Async-signal-safe.
pub fn for_each_selected(f: &FdAction, link: &mut [u8], mut each: impl FnMut(c_int)) {
    visit(&f.sel, |fd| {
        if selects(&f.sel, fd, link).is_some() {
            each(fd);
        }
    });
}

/// Audit: append which descriptors the fd action (named by its config
/// line) would select now: `; fd close (line 7) -> 3-9,12; fd disconnect
/// (line 12) -> none`. Parent side, in prepare; changes nothing.
pub fn audit(f: &FdAction, label: &[u8], config_line: u32, line: &mut Buf<1024>) {
    let mut link = [0u8; PATH_BUF];
    line.str("; fd ").push(label);
    line.str(" (line ").u64(u64::from(config_line)).str(") ->");
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
