//! The held-lock part of a fork's log lines (additive: SPEC §5's fields
//! stay as they are). Text: `; held locks: 2 held by other threads
//! (NAME, NAME), 2 taken` in the parent, `; held locks freed: 2 (NAME,
//! NAME)` in the child. JSON: `held_locks`, `held_taken`, `held_timed_out`,
//! `held_not_waited`, `held` (names) in the parent's `fork` event;
//! `held_freed`, `held_moved`, `held` in the child's. Nothing is added when
//! `held_locks` is off or nothing was held.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use super::{name, HeldFork};
use crate::os::buf::Buf;

type Line = Buf<1024>;

fn names_seen(f: &HeldFork) -> usize {
    if !f.names {
        return 0;
    }
    let mut scratch = Buf::<8>::new();
    name::push_all(&mut scratch, "")
}

pub fn parent_text(f: &HeldFork, line: &mut Line) {
    if !f.on {
        return;
    }
    let seen = names_seen(f);
    if seen > 0 || f.n_acquired + f.timed_out + f.not_waited > 0 {
        line.str("; held locks: ")
            .u64(seen as u64)
            .str(" held by other threads");
        if seen > 0 {
            line.str(" (");
            name::push_all(line, ", ");
            line.byte(b')');
        }
        if f.n_acquired > 0 {
            line.str(", ").u64(u64::from(f.n_acquired)).str(" taken");
        }
        if f.timed_out > 0 {
            line.str(", ").u64(u64::from(f.timed_out)).str(" timed out");
        }
        if f.not_waited > 0 {
            line.str(", ")
                .u64(u64::from(f.not_waited))
                .str(" not waited for");
        }
    }
    overflow_text(f, line);
    if f.names {
        name::release_log_names();
    }
}

pub fn parent_json(f: &HeldFork, line: &mut Line) {
    if !f.on {
        return;
    }
    let seen = names_seen(f);
    line.str(",\"held_locks\":").u64(seen as u64);
    line.str(",\"held_taken\":").u64(u64::from(f.n_acquired));
    line.str(",\"held_timed_out\":").u64(u64::from(f.timed_out));
    line.str(",\"held_not_waited\":")
        .u64(u64::from(f.not_waited));
    line.str(",\"held\":[");
    if seen > 0 {
        line.byte(b'"');
        let mut all = Buf::<768>::new();
        name::push_all(&mut all, "\u{1}");
        for (k, part) in all.as_bytes().split(|&b| b == 1).enumerate() {
            if k > 0 {
                line.str("\",\"");
            }
            line.json_str(part);
        }
        line.byte(b'"');
    }
    line.byte(b']');
    if f.overflow > 0 {
        line.str(",\"held_not_recorded\":").u64(f.overflow);
    }
    if f.names {
        name::release_log_names();
    }
}

fn overflow_text(f: &HeldFork, line: &mut Line) {
    if f.overflow > 0 {
        line.str("; ")
            .u64(f.overflow)
            .str(" lock calls not recorded (records full)");
    }
}

/// Async-signal-safe.
pub fn child_text(f: &HeldFork, line: &mut Line) {
    if !f.on || (f.freed == 0 && f.moved == 0) {
        return;
    }
    line.str("; held locks freed: ").u64(u64::from(f.freed));
    if f.freed > 0 {
        line.str(" (");
        for (k, &a) in f.freed_addrs.iter().take(f.freed as usize).enumerate() {
            if k > 0 {
                line.str(", ");
            }
            name::push_name(f.names, a, line);
        }
        if f.freed as usize > f.freed_addrs.len() {
            line.str(", ...");
        }
        line.byte(b')');
    }
    if f.moved > 0 {
        line.str(", ")
            .u64(u64::from(f.moved))
            .str(" moved to the child's thread");
    }
}

/// Async-signal-safe.
pub fn child_json(f: &HeldFork, line: &mut Line) {
    if !f.on {
        return;
    }
    line.str(",\"held_freed\":").u64(u64::from(f.freed));
    line.str(",\"held_moved\":").u64(u64::from(f.moved));
    line.str(",\"held\":[");
    for (k, &a) in f.freed_addrs.iter().take(f.freed as usize).enumerate() {
        if k > 0 {
            line.byte(b',');
        }
        let mut one = Buf::<256>::new();
        name::push_name(f.names, a, &mut one);
        line.byte(b'"').json_str(one.as_bytes()).byte(b'"');
    }
    line.byte(b']');
}
