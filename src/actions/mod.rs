//! The actions, one module per kind, and the one result type they share.
//!
//! An action receives what it needs (its own prepared data, its index in
//! the runtime's list, the parent's pid), never the whole runtime or fork
//! state, and reports into a [`Tally`]. Dependencies point one way:
//! `phases` calls `actions`, which call `os`.
//!
//! Everything here may run after the fork, in the child: no allocation, no
//! lock, no stdio, no formatting machinery, no panic (the lints that find
//! panic sites are denied for the whole folder, in `lib.rs`).

pub mod call;
pub mod child;
pub mod fd;
pub mod held;
pub mod lock;
pub mod python;
pub mod zero;

use forkguard_core::plan::MAX_ACTIONS;
use libc::c_int;

/// At most this many failures are described in one report; more are counted.
pub const MAX_ERRS: usize = 6;

/// Pseudo action numbers for `[child]` settings in failure records.
pub const CHILD_SETTING: u16 = MAX_ACTIONS as u16;

/// Errors that are not errno values.
pub const ERR_UNRESOLVED: c_int = -1;
pub const ERR_TIMEOUT: c_int = -2;

#[derive(Clone, Copy)]
pub struct Failure {
    /// Index in `Runtime::actions`, or `CHILD_SETTING + n` for `[child]`.
    pub action: u16,
    /// The descriptor concerned, or -1.
    pub fd: c_int,
    /// errno, or one of the `ERR_*` codes.
    pub err: c_int,
}

/// Counts and the first few failures of one phase.
#[derive(Clone, Copy)]
pub struct Tally {
    pub ok: u32,
    pub failed: u32,
    errs: [Failure; MAX_ERRS],
}

impl Tally {
    pub const fn new() -> Tally {
        Tally {
            ok: 0,
            failed: 0,
            errs: [Failure {
                action: 0,
                fd: -1,
                err: 0,
            }; MAX_ERRS],
        }
    }

    /// One action done. Async-signal-safe.
    pub fn ok(&mut self) {
        self.ok = self.ok.saturating_add(1);
    }

    /// One action failed; remembered for the report. Async-signal-safe.
    pub fn fail(&mut self, action: u16, fd: c_int, err: c_int) {
        if let Some(slot) = self.errs.get_mut(self.failed as usize) {
            *slot = Failure { action, fd, err };
        }
        self.failed = self.failed.saturating_add(1);
    }

    pub fn failures(&self) -> &[Failure] {
        self.errs
            .get(..(self.failed as usize).min(MAX_ERRS))
            .unwrap_or(&[])
    }
}
