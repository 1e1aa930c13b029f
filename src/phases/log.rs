//! The log: one line per event, formatted into a fixed stack buffer (no
//! allocation, no `core::fmt`), written with one `write(2)` (a file log is
//! opened, written and closed for each line). Async-signal-safe, in the
//! parent as in the child.

use crate::actions::{Failure, Tally, CHILD_SETTING, ERR_TIMEOUT, ERR_UNRESOLVED, MAX_ERRS};
use crate::os::buf::Buf;
use crate::os::sys;
use crate::phases::runtime::{LogTarget, RtAction, Runtime};
use crate::phases::state::ForkState;
use libc::{c_int, pid_t};
use std::sync::atomic::Ordering;

/// Say once that an action's symbol went away with its object (`dlclose`):
/// from now on the action is skipped and reported as not resolved.
#[cold]
#[inline(never)]
pub fn unloaded(rt: &Runtime, a: &RtAction) {
    let mut line = Line::new();
    let me = i64::from(sys::getpid());
    if rt.json {
        json_head(&mut line, me, "error");
        line.str(",\"errors\":[\"");
        line.json_str(&a.label).str(": its object was unloaded\"]}");
    } else {
        line.str("forkguard[").i64(me).str("] ").push(&a.label);
        line.str(": its object was unloaded; skipped until it is loaded again");
    }
    emit(rt, &mut line);
}

pub type Line = Buf<1024>;

pub fn emit(rt: &Runtime, line: &mut Line) {
    emit_to(&rt.log, line);
}

/// Finish `line` and write it where `to` says: the one place lines leave.
pub fn emit_to(to: &LogTarget, line: &mut Line) {
    let bytes = line.end_line();
    match to {
        LogTarget::Off => {}
        LogTarget::Stderr => sys::write_all(2, bytes),
        LogTarget::File(path) => sys::append_to(path, bytes),
    }
}

/// Finish `line` and write it to the installed runtime's log: for lines
/// formatted outside the phases (the `[[python]]` hooks' reports).
pub fn emit_current(line: &mut Line) {
    if let Some(rt) = crate::phases::runtime::get() {
        emit_to(&rt.log, line);
    }
}

/// The once-per-process `config` line, before the first fork line.
#[cold]
#[inline(never)]
pub fn banner(rt: &Runtime) {
    if rt.banner_done.swap(true, Ordering::AcqRel) {
        return;
    }
    let mut line = Line::new();
    if rt.json {
        json_start(&mut line, i64::from(sys::getpid()));
    } else {
        line.str("forkguard[")
            .i64(i64::from(sys::getpid()))
            .byte(b']');
    }
    line.push(&rt.banner);
    emit(rt, &mut line);
}

/// `{"ts":T,"pid":P`: how every JSON line starts.
pub fn json_start(line: &mut Line, pid: i64) {
    line.str("{\"ts\":");
    ts(line);
    line.str(",\"pid\":").i64(pid);
}

/// `{"ts":T,"pid":P,"event":"E"`.
pub fn json_head(line: &mut Line, pid: i64, event: &str) {
    json_start(line, pid);
    line.str(",\"event\":\"").str(event).byte(b'"');
}

fn ts(line: &mut Line) {
    let ns = sys::wall_ns();
    line.u64(ns / 1_000_000_000).byte(b'.');
    let frac = (ns % 1_000_000_000) / 1000;
    let mut div = 100_000;
    while div > 0 {
        line.byte(b'0' + ((frac / div) % 10) as u8);
        div /= 10;
    }
}

/// `fd 7 reopen /x: EACCES` into `line`. Async-signal-safe.
pub fn describe(rt: &Runtime, f: &Failure, line: &mut Line) {
    if f.fd >= 0 {
        line.str("fd ").i64(i64::from(f.fd)).byte(b' ');
    }
    if f.action >= CHILD_SETTING {
        line.str(crate::actions::child::setting_name(
            f.action - CHILD_SETTING,
        ));
    } else if let Some(a) = rt.actions.get(usize::from(f.action)) {
        line.push(&a.label);
    }
    line.str(": ");
    match f.err {
        ERR_UNRESOLVED => line.str("symbol not resolved"),
        ERR_TIMEOUT => line.str("timed out"),
        e => match sys::errno_name(e) {
            Some(n) => line.str(n),
            None => line.str("errno ").i64(i64::from(e)),
        },
    };
}

fn text_tally(line: &mut Line, rt: &Runtime, t: &Tally) {
    line.u64(u64::from(t.ok)).str(" ok");
    if t.failed > 0 {
        line.str(", ").u64(u64::from(t.failed)).str(" failed (");
        for (k, f) in t.failures().iter().enumerate() {
            if k > 0 {
                line.str("; ");
            }
            describe(rt, f, line);
        }
        if t.failed as usize > MAX_ERRS {
            line.str("; ...");
        }
        line.byte(b')');
    }
}

fn json_errors(line: &mut Line, rt: &Runtime, tallies: &[&Tally]) {
    line.str(",\"errors\":[");
    let mut first = true;
    for t in tallies {
        for f in t.failures() {
            if !first {
                line.byte(b',');
            }
            first = false;
            let mut one = Line::new();
            describe(rt, f, &mut one);
            line.byte(b'"').json_str(one.as_bytes()).byte(b'"');
        }
    }
    line.byte(b']');
}

#[cold]
#[inline(never)]
pub fn log_parent(rt: &Runtime, st: &ForkState, pid: pid_t, err: c_int, t: &Tally, parent_ns: u64) {
    let mut line = Line::new();
    let me = i64::from(sys::getpid());
    let child = if pid == i32::MAX { 0 } else { i64::from(pid) };
    if rt.json {
        json_head(&mut line, me, "fork");
        line.str(",\"via\":\"").str(st.via.name());
        line.str("\",\"child\":").i64(child);
        if pid < 0 {
            line.str(",\"errno\":")
                .i64(i64::from(err))
                .str(",\"error\":\"");
            line.str(sys::errno_name(err).unwrap_or("?")).byte(b'"');
        }
        line.str(",\"phase_us\":").micros(st.prepare_ns + parent_ns);
        line.str(",\"prepare_us\":")
            .micros(st.prepare_ns)
            .str(",\"parent_us\":")
            .micros(parent_ns);
        line.str(",\"actions_ok\":")
            .u64(u64::from(st.prepare.ok + t.ok));
        line.str(",\"actions_failed\":")
            .u64(u64::from(st.prepare.failed + t.failed));
        json_errors(&mut line, rt, &[&st.prepare, t]);
        crate::actions::held::log::parent_json(&st.held, &mut line);
        line.byte(b'}');
    } else {
        line.str("forkguard[").i64(me).str("] fork -> ").i64(child);
        if pid < 0 {
            line.str(" (")
                .str(sys::errno_name(err).unwrap_or("error"))
                .byte(b')');
        }
        line.str(" via ").str(st.via.name()).str(": prepare ");
        text_tally(&mut line, rt, &st.prepare);
        line.byte(b' ').micros(st.prepare_ns).str("us, parent ");
        text_tally(&mut line, rt, t);
        line.byte(b' ').micros(parent_ns).str("us");
        crate::actions::held::log::parent_text(&st.held, &mut line);
    }
    emit(rt, &mut line);
}

/// The child's report: formatted on the stack, one write. Async-signal-safe.
#[cold]
#[inline(never)]
pub fn log_child(rt: &Runtime, st: &ForkState, t: &Tally, ns: u64) {
    let mut line = Line::new();
    let me = i64::from(sys::getpid());
    if rt.json {
        json_head(&mut line, me, "child");
        line.str(",\"via\":\"").str(st.via.name());
        line.str("\",\"child\":")
            .i64(me)
            .str(",\"parent\":")
            .i64(i64::from(st.parent_pid));
        line.str(",\"phase_us\":").micros(ns);
        line.str(",\"actions_ok\":")
            .u64(u64::from(t.ok))
            .str(",\"actions_failed\":")
            .u64(u64::from(t.failed));
        json_errors(&mut line, rt, &[t]);
        crate::actions::held::log::child_json(&st.held, &mut line);
        line.byte(b'}');
    } else {
        line.str("forkguard[")
            .i64(me)
            .str("] child of ")
            .i64(i64::from(st.parent_pid))
            .str(": ");
        text_tally(&mut line, rt, t);
        line.byte(b' ').micros(ns).str("us");
        crate::actions::held::log::child_text(&st.held, &mut line);
    }
    emit(rt, &mut line);
}
