//! What each fd action did in a child, in the log: how many descriptors it
//! acted on (`forkguard[4250] fd actions: close (line 7) 2 fds,
//! disconnect (line 12) 0 fds`), and a warning, once per action for the
//! whole run, when one matched nothing (a wrong port, `127.0.0.1` for a
//! client that connected over `::1`).
//!
//! "Once" is remembered in a shared anonymous page mapped at load (only
//! when some fd action exists and the log is on): one byte per action,
//! set by the first child that warns with an atomic swap. The page is
//! shared by every process forked from the one that loaded the config, so
//! the warning is written once for all of them, and the child needs no
//! allocation, no lock and no message to its parent. A program `exec`ed
//! anew loads the config again and warns again.
use super::log::{emit, json_head as json_start, Line};
use crate::os::buf::Buf;
use crate::phases::runtime::{LogTarget, RtKind, Runtime};
use crate::os::sys;
use forkguard_core::plan::MAX_ACTIONS;
use std::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

/// The count of an action `close_range` did in one call (not counted).
pub const RANGE: u32 = u32::MAX;

/// One byte per action: 1 once its "matched nothing" warning is written.
static WARNED: AtomicPtr<AtomicU8> = AtomicPtr::new(core::ptr::null_mut());

/// At load, with the runtime built: the shared page, when it can be used.
pub fn init(rt: &Runtime) {
    if rt.has_fd && !matches!(rt.log, LogTarget::Off) && !rt.audit {
        WARNED.store(sys::map_shared(4096).cast(), Ordering::Release);
    }
}

/// Per-action counts of one child phase, on the stack.
pub struct Counts {
    n: usize,
    items: [(u16, u32); MAX_ACTIONS],
}

impl Counts {
    pub const fn new() -> Counts {
        Counts {
            n: 0,
            items: [(0, 0); MAX_ACTIONS],
        }
    }

    /// Action `i` acted on `count` descriptors. Async-signal-safe.
    pub fn push(&mut self, i: usize, count: u32) {
        if let Some(slot) = self.items.get_mut(self.n) {
            *slot = (u16::try_from(i).unwrap_or(u16::MAX), count);
            self.n += 1;
        }
    }

    fn all(&self) -> &[(u16, u32)] {
        self.items.get(..self.n).unwrap_or(&[])
    }
}

/// Child, after the fd actions, when logging: the counts line, and the
/// warnings not yet written. Async-signal-safe.
#[cold]
#[inline(never)]
pub fn child(rt: &Runtime, counts: &Counts) {
    let me = i64::from(sys::getpid());
    let mut line = Line::new();
    if rt.json {
        json_start(&mut line, me, "fd");
        line.str(",\"actions\":[");
    } else {
        line.str("forkguard[").i64(me).str("] fd actions:");
    }
    for (k, &(i, n)) in counts.all().iter().enumerate() {
        let Some(a) = rt.actions.get(usize::from(i)) else {
            continue;
        };
        if rt.json {
            if k > 0 {
                line.byte(b',');
            }
            line.str("{\"action\":\"").json_str(&a.label);
            line.str("\",\"line\":")
                .u64(u64::from(a.line))
                .str(",\"fds\":");
            if n == RANGE {
                line.str("null");
            } else {
                line.u64(u64::from(n));
            }
            line.byte(b'}');
        } else {
            line.str(if k > 0 { ", " } else { " " }).push(&a.label);
            line.str(" (line ").u64(u64::from(a.line)).str(") ");
            if n == RANGE {
                line.str("a range");
            } else {
                line.u64(u64::from(n))
                    .str(if n == 1 { " fd" } else { " fds" });
            }
        }
    }
    if rt.json {
        line.str("]}");
    }
    emit(rt, &mut line);
    for &(i, n) in counts.all() {
        if n == 0 {
            warn_once(rt, usize::from(i), me);
        }
    }
}

/// `forkguard[4250] warning: fd disconnect (line 12) matched no descriptor
/// in a child; ...`, the first time only. Async-signal-safe.
fn warn_once(rt: &Runtime, i: usize, me: i64) {
    let page = WARNED.load(Ordering::Acquire);
    if page.is_null() || i >= 4096 {
        return;
    }
    // SAFETY: page is a live 4096-byte shared mapping (never unmapped);
    // i is below its size.
    let flag = unsafe { &*page.add(i) };
    if flag.swap(1, Ordering::AcqRel) != 0 {
        return;
    }
    let Some(a) = rt.actions.get(i) else { return };
    let socket_hint = match &a.kind {
        RtKind::Fd(f) => f.spec.select.peer.is_some() || f.spec.select.local.is_some(),
        _ => false,
    };
    let mut msg = Buf::<512>::new();
    msg.str("fd ")
        .push(&a.label)
        .str(" (line ")
        .u64(u64::from(a.line));
    msg.str(") matched no descriptor in a child (said once)");
    if socket_hint {
        msg.str(": check the address and port; \"localhost\" is 127.0.0.1, a client may have connected over [::1], \"*:PORT\" matches any host");
    }
    let mut line = Line::new();
    if rt.json {
        json_start(&mut line, me, "warning");
        line.str(",\"message\":\"")
            .json_str(msg.as_bytes())
            .str("\"}");
    } else {
        line.str("forkguard[")
            .i64(me)
            .str("] warning: ")
            .push(msg.as_bytes());
    }
    emit(rt, &mut line);
}
