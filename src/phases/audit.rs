//! `forkguard audit`: at each fork, report the hazards and change nothing.
//! Runs in prepare (parent side), so it may take its time; it still
//! formats with the fixed buffer, since it runs with signals blocked inside
//! other people's fork calls.

use crate::os::buf::Buf;
use crate::os::fdinfo;
use crate::os::sys;
use crate::phases::log;
use crate::phases::runtime::{LogTarget, RtKind, Runtime};
use crate::phases::state::Via;

/// One audit line for the fork about to happen.
#[cold]
#[inline(never)]
pub fn report(rt: &Runtime, via: Via) {
    let threads = fdinfo::thread_count();
    let mut counts = [0u32; fdinfo::KINDS.len()];
    let mut link = [0u8; 256];
    fdinfo::for_each_fd(0, |fd| {
        if let Some((kind, _)) = fdinfo::classify(fd, &mut link) {
            if let Some(c) = counts.get_mut(fdinfo::kind_index(kind)) {
                *c += 1;
            }
        }
    });
    let mut line = log::Line::new();
    let me = i64::from(sys::getpid());
    let others = threads.saturating_sub(1) as u64;
    let openmp;
    if rt.json {
        log::json_head(&mut line, me, "audit");
        line.str(",\"via\":\"").str(via.name());
        line.str("\",\"other_threads\":")
            .u64(others)
            .str(",\"fds\":{");
        let mut first = true;
        for (k, n) in fdinfo::KINDS.iter().zip(counts) {
            if n > 0 {
                if !first {
                    line.byte(b',');
                }
                first = false;
                line.byte(b'"').str(k.name()).str("\":").u64(u64::from(n));
            }
        }
        line.byte(b'}');
        // Configured locks held and fd actions' matches, as one string in
        // the same words as the text line.
        openmp = crate::phases::openmp::note(&mut line, true);
        let mut more = Buf::<1024>::new();
        locks(rt, &mut more);
        fds(rt, &mut more);
        let text = more.as_bytes();
        let text = text.strip_prefix(b"; ").unwrap_or(text);
        line.str(",\"configured\":\"").json_str(text).byte(b'"');
        crate::actions::held::audit::report(true, &mut line);
        line.byte(b'}');
    } else {
        line.str("forkguard[")
            .i64(me)
            .str("] audit fork via ")
            .str(via.name())
            .str(": ");
        line.u64(others).str(if others == 1 {
            " other thread"
        } else {
            " other threads"
        });
        line.str(" alive; inherited fds:");
        let mut any = false;
        for (k, n) in fdinfo::KINDS.iter().zip(counts) {
            if n > 0 {
                line.str(if any { ", " } else { " " })
                    .u64(u64::from(n))
                    .byte(b' ')
                    .str(k.name());
                any = true;
            }
        }
        if !any {
            line.str(" none");
        }
        locks(rt, &mut line);
        fds(rt, &mut line);
        crate::actions::held::audit::report(false, &mut line);
        openmp = crate::phases::openmp::note(&mut line, false);
    }
    if openmp {
        crate::actions::held::audit::suggest_append(b"openmp\n");
    }
    // The audit always reports: on stderr when the log is off.
    let to = match &rt.log {
        LogTarget::Off => &LogTarget::Stderr,
        to => to,
    };
    log::emit_to(to, &mut line);
}

/// Which configured locks are held now: `; configured locks held: lock g
/// by tid 12, ...` (or `none`), when there are lock actions.
fn locks(rt: &Runtime, line: &mut Buf<1024>) {
    let mut any = false;
    let me = sys::gettid();
    for a in &rt.actions {
        let RtKind::Lock(l) = &a.kind else { continue };
        let mut held = Buf::<160>::new();
        crate::actions::lock::held(l, me, &mut held);
        if held.as_bytes().is_empty() {
            continue;
        }
        line.str(if any {
            ", "
        } else {
            "; configured locks held: "
        });
        line.push(&a.label).str(" (line ").u64(u64::from(a.line)).str(") ");
        line.push(held.as_bytes());
        any = true;
    }
    if !any && rt.actions.iter().any(|a| matches!(a.kind, RtKind::Lock(_))) {
        line.str("; configured locks held: none");
    }
}

/// What each fd action would select now.
fn fds(rt: &Runtime, line: &mut Buf<1024>) {
    for a in &rt.actions {
        if let RtKind::Fd(f) = &a.kind {
            crate::actions::fd::audit(f, &a.label, a.line, line);
        }
    }
}
