//! Config errors: one `forkguard: FILE:LINE:COL: message`, then `on_error`.

use crate::os::sys;
use forkguard_core::plan::{LogDest, OnError};
use forkguard_core::ConfigError;

/// Report a config problem once, then let `on_error` decide.
pub fn fail(e: &ConfigError, on_error: OnError, log: Option<&LogDest>) {
    report(e, log);
    if on_error == OnError::Abort {
        // _exit: nothing of ours is pending, and no atexit handler of a
        // program whose main never ran must run.
        crate::os::clib::exit_now(70);
    }
}

/// `forkguard: FILE:LINE:COL: message` on stderr, and as an `error` event in
/// the log file when `FORKGUARD_LOG` names one.
pub fn report(e: &ConfigError, log: Option<&LogDest>) {
    let line = format!("{e}\n");
    sys::write_all(2, line.as_bytes());
    if let Some(LogDest::File(p)) = log {
        let mut path = p.clone().into_bytes();
        path.push(0);
        let mut ev = format!("forkguard[{}] error: ", std::process::id());
        ev.push_str(line.strip_prefix("forkguard: ").unwrap_or(&line));
        sys::append_to(&path, ev.as_bytes());
    }
}
