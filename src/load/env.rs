//! The environment: the `FORKGUARD_*` variables in one pass, and what
//! they ask for.

use crate::load::report::report;
use forkguard_core::plan::LogDest;
use forkguard_core::{ConfigError, ENV_LOG};
use std::ffi::CStr;

/// The `FORKGUARD_*` variables, found in one pass over the environment
/// (every process pays for this: six `getenv`s walked the environment six
/// times, and each libc function bound costs more than the walk).
#[derive(Default)]
pub struct Env {
    pub disable: Option<String>,
    pub audit: Option<String>,
    pub check: Option<String>,
    pub log_format: Option<String>,
    pub log: Option<String>,
    pub config: Option<String>,
    pub plan_cache: Option<String>,
}

impl Env {
    /// Read the environment; empty (every variable ignored) in
    /// secure-execution mode (setuid, setgid, capabilities: SPEC §7), which
    /// is only asked about when some `FORKGUARD_*` variable is set.
    pub fn read() -> Env {
        let mut env = Env::default();
        let mut any = false;
        // SAFETY: `environ` is libc's NULL-terminated array of C strings; at
        // load time no other thread changes it. The strings are copied.
        unsafe {
            let environ = crate::os::clib::dlsym(libc::RTLD_DEFAULT, c"environ".as_ptr())
                as *const *const *const u8;
            if environ.is_null() || (*environ).is_null() {
                return env;
            }
            let mut p = *environ;
            while !(*p).is_null() {
                let raw = *p;
                p = p.add(1);
                // Only FORKGUARD_* variables are measured (strlen); the
                // prefix test stops at the first byte for most others.
                if !forkguard_core::ENV_PREFIX
                    .as_bytes()
                    .iter()
                    .enumerate()
                    .all(|(k, &c)| *raw.add(k) == c)
                {
                    continue;
                }
                let var = CStr::from_ptr(raw.cast()).to_bytes();
                let Some(eq) = var.iter().position(|&b| b == b'=') else {
                    continue;
                };
                let (name, value) = (&var[..eq], &var[eq + 1..]);
                let known = [
                    (forkguard_core::ENV_DISABLE, &mut env.disable),
                    (forkguard_core::ENV_AUDIT, &mut env.audit),
                    (forkguard_core::ENV_CHECK, &mut env.check),
                    (forkguard_core::ENV_LOG_FORMAT, &mut env.log_format),
                    (forkguard_core::ENV_LOG, &mut env.log),
                    (forkguard_core::ENV_CONFIG, &mut env.config),
                    (forkguard_core::ENV_PLAN_CACHE, &mut env.plan_cache),
                ];
                let Some((_, slot)) = known.into_iter().find(|(k, _)| k.as_bytes() == name) else {
                    continue;
                };
                // The first definition wins, as with getenv.
                if slot.is_none() {
                    *slot = Some(String::from_utf8_lossy(value).into_owned());
                    any = true;
                }
            }
        }
        if any {
            // A variable set: a config will most likely be read, which binds
            // a dozen libc functions; the lookup table costs three `dlsym`s
            // and makes each binding (getauxval's first) cheaper than one.
            crate::os::lazy::prepare();
            if secure_mode() {
                return Env::default();
            }
        }
        env
    }
}

impl Env {
    /// `FORKGUARD_DISABLE` set to anything but empty or `0`.
    pub fn disabled(&self) -> bool {
        self.disable
            .as_deref()
            .is_some_and(|v| !v.is_empty() && v != "0")
    }

    /// What the variables ask for; a bad `FORKGUARD_LOG` is reported here.
    pub fn options(&self) -> Options {
        let log = match self.log.as_deref().map(LogDest::parse) {
            Some(Ok(d)) => Some(d),
            Some(Err(m)) => {
                report(&ConfigError::file(ENV_LOG, m), None);
                None
            }
            None => None,
        };
        Options {
            // `forkguard audit` sets 1; with `--suggest`, `suggest:FILE`
            // (where the held-lock audit appends what a config should guard).
            audit: match self.audit.as_deref() {
                Some("1") => true,
                Some(v) => match v.strip_prefix("suggest:") {
                    Some(p) => {
                        crate::actions::held::audit::set_suggest(p);
                        true
                    }
                    None => false,
                },
                None => false,
            },
            check: self.check.as_deref() == Some("1"),
            json: match self.log_format.as_deref() {
                Some("json") => Some(true),
                Some("text") => Some(false),
                _ => None,
            },
            log,
            plan_cache_off: self.plan_cache.as_deref() == Some("off"),
        }
    }
}

/// What the environment asks for.
pub struct Options {
    /// `forkguard audit`: report at each fork, change nothing.
    pub audit: bool,
    /// `forkguard check --program`: resolve, print, exit before `main`.
    pub check: bool,
    /// `FORKGUARD_LOG_FORMAT`: `Some(true)` for json.
    pub json: Option<bool>,
    /// `FORKGUARD_LOG`, when valid.
    pub log: Option<LogDest>,
    /// `FORKGUARD_PLAN_CACHE=off`.
    pub plan_cache_off: bool,
}

/// Whether the process runs in secure-execution mode.
pub fn secure_mode() -> bool {
    // SAFETY: getauxval has no preconditions.
    unsafe { crate::os::clib::getauxval(libc::AT_SECURE) != 0 }
}
