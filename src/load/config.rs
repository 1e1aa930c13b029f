//! Finding, opening and reading the config (through the opened
//! descriptor, see `forkguard_core::load`), with the plan cache deciding
//! whether this process needs to read it at all.

use super::env::{secure_mode, Env, Options};
use super::program::program;
use super::report::fail;
use crate::os::sys;
use forkguard_core::load::{self, cache::Key, Loaded, Opened, Trust};
use forkguard_core::plan::{OnError, Plan};
use forkguard_core::SYSTEM_CONFIG;
use std::ffi::CStr;

/// Up to this size a root-owned config is read before the plan cache is
/// asked (see `read`).
const SMALL_CONFIG: u64 = 512;

/// `FORKGUARD_CONFIG`, else the system config if it exists (one `access`).
pub fn path(env: &Env) -> Option<String> {
    match env.config.clone().filter(|p| !p.is_empty()) {
        Some(p) => Some(p),
        None => sys::exists(c"/etc/forkguard/forkguard.toml").then(|| SYSTEM_CONFIG.to_string()),
    }
}

/// A config read and planned.
pub struct Config {
    pub plan: Plan,
    pub loaded: Loaded,
    /// The plan cache key, when this process may write the entry (there
    /// was none; see [`remember`]).
    pub store: Option<Key>,
}

/// Open, check and read the config at `path`, and plan it; `None` when
/// this process has nothing more to do (a refusal or error, reported, or
/// a plan cache entry that says the config is not for this program).
pub fn read(path: &str, opts: &Options) -> Option<Config> {
    // Secure-execution mode matters from here on (which files are trusted,
    // no plan cache); asked once the system config is the one to read, or
    // already answered when a variable was found.
    let secure = secure_mode();
    let real_uid = sys::getuid();
    let trust = if secure {
        Trust::RootOnly { real_uid }
    } else {
        Trust::User { real_uid }
    };
    let on_read_error = if opts.check {
        OnError::Abort
    } else {
        OnError::Warn
    };
    let opened = match load::open_config(path, trust) {
        Ok(o) => o,
        Err(e) => {
            fail(&e, on_read_error, opts.log.as_ref());
            return None;
        }
    };
    // The plan cache (see `load::cache`): never in secure-execution mode,
    // never for check or audit, which must see the whole file; off with
    // FORKGUARD_PLAN_CACHE=off.
    let use_cache =
        !secure && !opts.check && !opts.audit && opened.root_owned() && !opts.plan_cache_off;
    let key = opened.key();
    let read = |opened| {
        load::read_opened(path, opened).map_err(|e| fail(&e, on_read_error, opts.log.as_ref()))
    };
    // A small file is read before the cache is asked: a placeholder (only
    // comments and `version = 1`) is then known to be empty without the
    // lookup, which formats a path and fails to open it.
    let mut early = None;
    let mut opened: Option<Opened> = Some(opened);
    if use_cache && opened.as_ref().is_some_and(|o| o.len() <= SMALL_CONFIG) {
        let Some(Ok(l)) = opened.take().map(read) else {
            return None;
        };
        early = Some(l);
    }
    let placeholder = early
        .as_ref()
        .is_some_and(|l: &Loaded| Plan::only_version(&l.text));
    let cached = match use_cache && !placeholder {
        true => cache_lookup(&key)?,
        false => false,
    };
    let loaded = match (early, opened) {
        (Some(l), _) => l,
        (None, Some(o)) => read(o).ok()?,
        (None, None) => return None,
    };
    let plan = match load::plan(path, &loaded) {
        Ok(p) => p,
        Err(e) => {
            let on_error = if opts.check {
                OnError::Abort
            } else {
                load::sniff_on_error(&loaded.text)
            };
            fail(&e, on_error, opts.log.as_ref());
            return None;
        }
    };
    let store = (use_cache && !cached).then_some(key);
    Some(Config {
        plan,
        loaded,
        store,
    })
}

/// Ask the plan cache: `Some(true)` when it has an entry (a valid file),
/// `Some(false)` when not, `None` when the entry says the config is not
/// for this program.
fn cache_lookup(key: &Key) -> Option<bool> {
    // The library's identity is only worked out when an entry exists.
    let Some(programs) = load::cache::lookup(load::cache::DIR, library_identity, key) else {
        return Some(false);
    };
    // A valid file: stop here when it is not for this program.
    if !programs.is_empty() && !program(true).matches_any(&programs) {
        return None;
    }
    Some(true)
}

/// Write the plan cache entry: only root writes entries (see
/// `load::cache`), when there was none; only a restricted `programs` is
/// worth one.
pub fn remember(key: Option<Key>, plan: &Plan) {
    let root = sys::getuid() == 0 && sys::geteuid() == 0;
    let Some(key) = key else { return };
    if root && !plan.settings.programs.is_empty() {
        if let Some(lib) = library_identity() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            load::cache::store(load::cache::DIR, &lib, &key, &plan.settings.programs, now);
        }
    }
}

/// The identity of this library's file (its path, device, inode, size and
/// mtime), which a plan cache entry must match: another build may validate
/// differently. `None` when it cannot be found (no cache then).
fn library_identity() -> Option<String> {
    // SAFETY: dladdr only reads the loader's tables; info is an out-parameter.
    let path = unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if crate::os::clib::dladdr(library_identity as *const libc::c_void, &mut info) == 0
            || info.dli_fname.is_null()
        {
            return None;
        }
        CStr::from_ptr(info.dli_fname)
            .to_string_lossy()
            .into_owned()
    };
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(&path).ok()?;
    Some(format!(
        "{} {} {} {} {}.{:09} {}",
        path,
        md.dev(),
        md.ino(),
        md.size(),
        md.mtime(),
        md.mtime_nsec(),
        env!("CARGO_PKG_VERSION")
    ))
}
