//! What one process creation carries from prepare to parent/child, and
//! which entry point made it.

use crate::actions::Tally;
use crate::os::sys;
use forkguard_core::plan::MAX_ACTIONS;
use libc::{c_int, pid_t};
use std::cell::Cell;
use std::sync::atomic::AtomicU32;

/// Which entry point created the process (the log's `via`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Fork,
    Forkpty,
    Daemon,
    Vfork,
    /// Reached glibc's fork handlers without an interposed entry point.
    Atfork,
}

impl Via {
    pub fn name(self) -> &'static str {
        match self {
            Via::Fork => "fork",
            Via::Forkpty => "forkpty",
            Via::Daemon => "daemon",
            Via::Vfork => "vfork",
            Via::Atfork => "atfork",
        }
    }
}

/// Everything one process creation carries from prepare to parent/child.
pub struct ForkState {
    pub via: Via,
    pub old_mask: sys::SigMask,
    /// This thread's MODE cell and errno slot, found before the fork: after
    /// it, both processes reach them through these pointers (the same
    /// addresses in the child), without a thread-local lookup or a libc
    /// call, each of which would fault in a page of code in the child.
    pub mode: *const Cell<u8>,
    pub errno: *mut c_int,
    /// The forking process, for the child's report and parent-death check.
    pub parent_pid: pid_t,
    pub timing: bool,
    pub t0: u64,
    pub prepare_ns: u64,
    pub prepare: Tally,
    /// Per-action scratch: lock actions record here what prepare did.
    pub scratch: [u8; MAX_ACTIONS],
    /// Shared page for `handshake_timeout_ms` (null when off).
    pub handshake: *mut AtomicU32,
    /// `held_locks`: what prepare took, for the parent and child.
    pub held: crate::actions::held::HeldFork,
    /// Fallback path, when logging: the newest child before the fork
    /// (`Err` when /proc could not tell), to tell a failed fork apart.
    pub prev_child: Result<Option<pid_t>, ()>,
}

impl ForkState {
    pub const fn new() -> ForkState {
        ForkState {
            via: Via::Fork,
            old_mask: 0,
            mode: core::ptr::null(),
            errno: core::ptr::null_mut(),
            parent_pid: 0,
            timing: false,
            t0: 0,
            prepare_ns: 0,
            prepare: Tally::new(),
            scratch: [0; MAX_ACTIONS],
            handshake: core::ptr::null_mut(),
            held: crate::actions::held::HeldFork::new(),
            prev_child: Err(()),
        }
    }
}

pub const IDLE: u8 = 0;
pub const HOOK: u8 = 1;
pub const FALLBACK: u8 = 2;
