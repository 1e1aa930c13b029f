//! `[child]` settings, applied in the child after fork.
//!
//! Everything here is async-signal-safe: plain system calls on data the
//! load prepared before the fork (see [`ChildPlan`]).

use crate::actions::{Tally, CHILD_SETTING};
use crate::os::sys;
use forkguard_core::plan::ChildSettings;
use libc::pid_t;

/// `[child]`, prepared: nothing is formatted or looked up in the child.
pub struct ChildPlan {
    pub parent_death_signal: i32,
    pub reset_signal_mask: bool,
    pub reset_signal_handlers: bool,
    pub new_session: bool,
    /// The decimal text to write to /proc/self/oom_score_adj, if set.
    pub oom_score_adj: Option<Vec<u8>>,
    /// NUL-terminated, at most 16 bytes.
    pub name: Option<[u8; 16]>,
}

impl ChildPlan {
    pub fn new(c: &ChildSettings) -> ChildPlan {
        ChildPlan {
            parent_death_signal: c.parent_death_signal.unwrap_or(0),
            reset_signal_mask: c.reset_signal_mask,
            reset_signal_handlers: c.reset_signal_handlers,
            new_session: c.new_session,
            oom_score_adj: c.oom_score_adj.map(|v| v.to_string().into_bytes()),
            name: c.name.as_ref().map(|n| {
                let mut b = [0u8; 16];
                for (d, s) in b.iter_mut().zip(n.bytes().take(15)) {
                    *d = s;
                }
                b
            }),
        }
    }

    /// How many settings the child phase applies (each counts as an action).
    pub fn count(&self) -> usize {
        usize::from(self.parent_death_signal != 0)
            + usize::from(self.reset_signal_mask)
            + usize::from(self.reset_signal_handlers)
            + usize::from(self.new_session)
            + usize::from(self.oom_score_adj.is_some())
            + usize::from(self.name.is_some())
    }
}

const NAMES: [&str; 6] = [
    "parent_death_signal",
    "reset_signal_mask",
    "reset_signal_handlers",
    "new_session",
    "oom_score_adj",
    "name",
];

/// The config key of setting number `n`, for failure reports.
pub fn setting_name(n: u16) -> &'static str {
    NAMES.get(usize::from(n)).copied().unwrap_or("child")
}

fn check(t: &mut Tally, n: u16, ok: bool) {
    if ok {
        t.ok();
    } else {
        t.fail(CHILD_SETTING + n, -1, sys::errno());
    }
}

/// Apply the settings. The signal mask itself is reset by the engine when it
/// restores the mask at the very end. Async-signal-safe.
#[inline(never)]
#[link_section = ".text.fg_hot"]
///
/// `daemon`: the process was made by `daemon` (whose parent exits by
/// design); `parent_pid`: the forking process.
pub fn apply(c: &ChildPlan, daemon: bool, parent_pid: pid_t, t: &mut Tally) {
    if c.parent_death_signal != 0 && !daemon {
        let ok = sys::prctl(libc::PR_SET_PDEATHSIG, c.parent_death_signal as usize) == 0;
        // Close the race: if the parent died before prctl, the kernel will
        // never send the signal, so send it now (it is delivered when the
        // caller's mask is restored). A daemon's parent exits by design, so
        // the setting does not apply to `daemon`.
        if ok && sys::getppid() != parent_pid {
            sys::kill(sys::getpid(), c.parent_death_signal);
        }
        check(t, 0, ok);
    }
    if c.reset_signal_mask {
        t.ok();
    }
    if c.reset_signal_handlers {
        check(t, 2, reset_handlers());
    }
    if c.new_session {
        // Already a session leader (forkpty's child is) counts as done.
        let ok = sys::setsid() >= 0 || sys::getsid() == sys::getpid();
        check(t, 3, ok);
    }
    if let Some(v) = &c.oom_score_adj {
        check(t, 4, write_file(c"/proc/self/oom_score_adj", v));
    }
    if let Some(name) = &c.name {
        // name is a NUL-terminated 16-byte buffer, as PR_SET_NAME wants.
        let ok = sys::prctl(libc::PR_SET_NAME, name.as_ptr() as usize) == 0;
        check(t, 5, ok);
    }
}

/// Every caught signal back to SIG_DFL (ignored ones stay ignored).
fn reset_handlers() -> bool {
    let mut ok = true;
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP || sig == 32 || sig == 33 {
            continue; // cannot be caught, or glibc-internal (SIGCANCEL, SIGSETXID)
        }
        // SAFETY: sigaction with a valid out-parameter.
        let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { crate::os::clib::sigaction(sig, core::ptr::null(), &mut old) } != 0 {
            continue;
        }
        if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN {
            // SAFETY: a zeroed sigaction with SIG_DFL is valid.
            let mut dfl: libc::sigaction = unsafe { core::mem::zeroed() };
            dfl.sa_sigaction = libc::SIG_DFL;
            // SAFETY: valid signal number and action.
            ok &= unsafe { crate::os::clib::sigaction(sig, &dfl, core::ptr::null_mut()) } == 0;
        }
    }
    ok
}

fn write_file(path: &core::ffi::CStr, bytes: &[u8]) -> bool {
    let fd = sys::open(path, libc::O_WRONLY | libc::O_CLOEXEC, 0);
    if fd < 0 {
        return false;
    }
    let n = sys::write(fd, bytes);
    let err = sys::errno();
    sys::close(fd);
    sys::set_errno(err);
    n == bytes.len() as isize
}
