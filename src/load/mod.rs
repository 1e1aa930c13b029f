//! Load time: find the config (SPEC §2), read it safely, validate it, build
//! the runtime. The cheap path matters most: a process with no config (or
//! `FORKGUARD_DISABLE=1`) costs one walk of the environment and one
//! `access`.

use crate::os::sys;
mod build;
mod program;

use crate::phases::runtime::{self, Runtime};
use forkguard_core::load::{self, Trust};
use forkguard_core::plan::{LogDest, OnError, Plan};
use forkguard_core::{ConfigError, ENV_CONFIG, ENV_DISABLE, ENV_LOG, SYSTEM_CONFIG};
use program::{program, Program};
use std::ffi::CStr;

/// Internal: set by `forkguard audit` (ignored in secure-execution mode).
pub const ENV_AUDIT: &str = "FORKGUARD_AUDIT";
/// Internal: set by `forkguard check --program`: resolve every symbol,
/// print the result on stdout and exit before `main`.
pub const ENV_CHECK: &str = "FORKGUARD_CHECK";

/// Up to this size a root-owned config is read before the plan cache is
/// asked (see `init`).
const SMALL_CONFIG: u64 = 512;

/// `off`: neither read nor write the plan cache (`load::cache`). Ignored in
/// secure-execution mode, where the cache is never used.
pub const ENV_PLAN_CACHE: &str = "FORKGUARD_PLAN_CACHE";

/// The `FORKGUARD_*` variables, found in one pass over the environment
/// (every process pays for this: six `getenv`s walked the environment six
/// times, and each libc function bound costs more than the walk).
#[derive(Default)]
struct Env {
    disable: Option<String>,
    audit: Option<String>,
    check: Option<String>,
    log_format: Option<String>,
    log: Option<String>,
    config: Option<String>,
    plan_cache: Option<String>,
}

impl Env {
    /// Read the environment; empty (every variable ignored) in
    /// secure-execution mode (setuid, setgid, capabilities: SPEC §7), which
    /// is only asked about when some `FORKGUARD_*` variable is set.
    fn read() -> Env {
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
                if !b"FORKGUARD_"
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
                    (ENV_DISABLE, &mut env.disable),
                    (ENV_AUDIT, &mut env.audit),
                    (ENV_CHECK, &mut env.check),
                    (forkguard_core::ENV_LOG_FORMAT, &mut env.log_format),
                    (ENV_LOG, &mut env.log),
                    (ENV_CONFIG, &mut env.config),
                    (ENV_PLAN_CACHE, &mut env.plan_cache),
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

/// Whether the process runs in secure-execution mode.
pub fn secure_mode() -> bool {
    // SAFETY: getauxval has no preconditions.
    unsafe { crate::os::clib::getauxval(libc::AT_SECURE) != 0 }
}

/// The constructor's work. Never panics out (panic = abort), never exits
/// except for `on_error = "abort"`.
pub fn init() {
    let env = Env::read();
    if env
        .disable
        .as_deref()
        .is_some_and(|v| !v.is_empty() && v != "0")
    {
        return;
    }
    let audit = env.audit.as_deref() == Some("1");
    let check = env.check.as_deref() == Some("1");
    let json_env = match env.log_format.as_deref() {
        Some("json") => Some(true),
        Some("text") => Some(false),
        _ => None,
    };
    let log_override = match env.log.as_deref().map(LogDest::parse) {
        Some(Ok(d)) => Some(d),
        Some(Err(m)) => {
            report(&ConfigError::file(ENV_LOG, m), None);
            None
        }
        None => None,
    };

    let path = match env.config.clone().filter(|p| !p.is_empty()) {
        Some(p) => Some(p),
        None => sys::exists(c"/etc/forkguard/forkguard.toml").then(|| SYSTEM_CONFIG.to_string()),
    };
    let Some(path) = path else {
        if audit {
            let plan = Plan::parse("(no config)", "version = 1").ok();
            if let Some(plan) = plan {
                if let Ok(mut rt) = build::build(
                    &plan,
                    &Program { paths: Vec::new() },
                    log_override,
                    json_env,
                ) {
                    rt.audit = true;
                    activate(rt);
                }
            }
        }
        return;
    };

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
    let opened = match load::open_config(&path, trust) {
        Ok(o) => o,
        Err(e) => {
            return fail(
                &e,
                if check { OnError::Abort } else { OnError::Warn },
                &log_override,
            )
        }
    };
    // The plan cache (see `load::cache`): never in secure-execution mode,
    // never for check or audit, which must see the whole file; off with
    // FORKGUARD_PLAN_CACHE=off.
    let use_cache = !secure
        && !check
        && !audit
        && opened.root_owned()
        && env.plan_cache.as_deref() != Some("off");
    let key = opened.key();
    let read = |opened| {
        load::read_opened(&path, opened).map_err(|e| {
            fail(
                &e,
                if check { OnError::Abort } else { OnError::Warn },
                &log_override,
            )
        })
    };
    // A small file is read before the cache is asked: a placeholder (only
    // comments and `version = 1`) is then known to be empty without the
    // lookup, which formats a path and fails to open it.
    let mut early = None;
    let mut opened = Some(opened);
    if use_cache && opened.as_ref().is_some_and(|o| o.len() <= SMALL_CONFIG) {
        let Some(Ok(l)) = opened.take().map(read) else {
            return;
        };
        early = Some(l);
    }
    let placeholder = early
        .as_ref()
        .is_some_and(|l: &load::Loaded| Plan::only_version(&l.text));
    let mut cached = false;
    if use_cache && !placeholder {
        // The library's identity is only worked out when an entry exists.
        if let Some(programs) = load::cache::lookup(load::cache::DIR, library_identity, &key) {
            cached = true;
            // A valid file: stop here when it is not for this program.
            if !programs.is_empty() && !program(true).matches_any(&programs) {
                return;
            }
        }
    }
    let loaded = match (early, opened) {
        (Some(l), _) => l,
        (None, Some(o)) => match read(o) {
            Ok(l) => l,
            Err(()) => return,
        },
        (None, None) => return,
    };
    let plan = match load::plan(&path, &loaded) {
        Ok(p) => p,
        Err(e) => {
            return fail(
                &e,
                if check {
                    OnError::Abort
                } else {
                    load::sniff_on_error(&loaded.text)
                },
                &log_override,
            )
        }
    };
    if check {
        check_symbols(&plan);
    }
    // Only root writes entries (see `load::cache`), when there was none;
    // only a restricted `programs` is worth one.
    let root = sys::getuid() == 0 && sys::geteuid() == 0;
    if use_cache && !cached && root && !plan.settings.programs.is_empty() {
        if let Some(lib) = library_identity() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            load::cache::store(load::cache::DIR, &lib, &key, &plan.settings.programs, now);
        }
    }
    let program = program(
        !plan.settings.programs.is_empty() || plan.actions.iter().any(|a| !a.programs.is_empty()),
    );
    if !program.matches_any(&plan.settings.programs) {
        return;
    }
    // Nothing to do at any fork and nothing to log: stop before building
    // (a placeholder config in every process of a deployment).
    let log_off = match &log_override {
        Some(d) => *d == LogDest::Off,
        None => plan.settings.log == LogDest::Off,
    };
    if !audit && plan.is_empty() && plan.settings.handshake_timeout_ms == 0 && log_off {
        return;
    }
    match build::build(&plan, &program, log_override.clone(), json_env) {
        Ok(mut rt) => {
            rt.audit = audit;
            if !rt.audit && rt.actions.is_empty() && rt.child.is_none() && rt.handshake_ms == 0 {
                // Nothing to do at any fork: stay a pure pass-through, but
                // still log forks if asked to.
                if matches!(rt.log, runtime::LogTarget::Off) {
                    return;
                }
            }
            activate(rt);
        }
        Err(mut e) => {
            if !loaded.may_show {
                e.msg = "invalid config (details hidden: you cannot read this file)".into();
            }
            fail(&e, plan.settings.on_error, &log_override)
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

fn activate(rt: Runtime) {
    crate::phases::tls::init();
    // From here on forks run phases: bind every libc function now, so that
    // none is looked up in a child or in a signal handler (see `lazy`).
    crate::os::lazy::resolve_all();
    runtime::install(rt);
    crate::entry::atfork::register();
}

/// Report a config problem once, then let `on_error` decide.
fn fail(e: &ConfigError, on_error: OnError, log: &Option<LogDest>) {
    report(e, log.as_ref());
    if on_error == OnError::Abort {
        // _exit: nothing of ours is pending, and no atexit handler of a
        // program whose main never ran must run.
        crate::os::clib::exit_now(70);
    }
}

/// `forkguard: FILE:LINE:COL: message` on stderr, and as an `error` event in
/// the log file when `FORKGUARD_LOG` names one.
fn report(e: &ConfigError, log: Option<&LogDest>) {
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

/// `forkguard check --program`: resolve each symbol action on its own, the
/// same way the runtime does, print one `forkguard-check:` line for each,
/// and exit (0 when every required symbol resolved) before `main`.
fn check_symbols(plan: &Plan) -> ! {
    let mut out = String::new();
    let mut missing = 0;
    for a in &plan.actions {
        let Some(sym) = a.kind.symbol() else { continue };
        let one = Plan {
            actions: vec![a.clone()],
            child: None,
            ..plan.clone()
        };
        let what = match &a.kind {
            forkguard_core::plan::ActionKind::Lock(_) => "lock",
            forkguard_core::plan::ActionKind::Zero(_) => "zero",
            _ => "call",
        };
        let everyone = Program { paths: Vec::new() };
        let one = Plan {
            actions: one
                .actions
                .into_iter()
                .map(|mut a| {
                    a.programs.clear();
                    a
                })
                .collect(),
            ..one
        };
        match build::build(&one, &everyone, Some(LogDest::Off), None) {
            Ok(rt) => {
                let addr = rt
                    .actions
                    .first()
                    .and_then(|a| a.kind.sym())
                    .map_or(0, |s| s.addr());
                if addr == 0 {
                    let why = if sym.lib.is_some() {
                        "library not loaded at start"
                    } else {
                        "not found"
                    };
                    out.push_str(&format!(
                        "forkguard-check: missing  {what} {sym}: {why}{}\n",
                        if sym.optional { " (optional)" } else { "" }
                    ));
                    if !sym.optional && sym.lib.is_none() {
                        missing += 1;
                    }
                } else {
                    let (obj, how) = where_is(addr, &sym.name);
                    out.push_str(&format!(
                        "forkguard-check: resolved {what} {sym} in {obj} ({how})\n"
                    ));
                }
            }
            Err(e) => {
                missing += 1;
                out.push_str(&format!(
                    "forkguard-check: missing  {what} {sym}: {}\n",
                    e.msg
                ));
            }
        }
    }
    let (compared, differ) = crate::os::lazy::verify();
    for d in &differ {
        out.push_str(&format!("forkguard-check: libc binding differs: {d}\n"));
    }
    out.push_str(&format!(
        "forkguard-check: {compared} libc binding(s) compared with dlsym, {} differ\n",
        differ.len()
    ));
    out.push_str(&format!(
        "forkguard-check: {} symbol(s) checked, {missing} missing\n",
        plan.actions
            .iter()
            .filter(|a| a.kind.symbol().is_some())
            .count()
    ));
    sys::write_all(1, out.as_bytes());
    // Ends the process before main, as the check mode promises.
    crate::os::clib::exit_now(if missing == 0 { 0 } else { 1 })
}

/// The object holding `addr`, and whether `name` is in its dynamic symbol
/// table (dladdr only knows those) or came from the static one.
fn where_is(addr: usize, name: &str) -> (String, &'static str) {
    // SAFETY: dladdr only reads the loader's tables; info is an out-parameter.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if crate::os::clib::dladdr(addr as *const libc::c_void, &mut info) == 0
            || info.dli_fname.is_null()
        {
            return ("?".into(), "unknown");
        }
        let obj = CStr::from_ptr(info.dli_fname)
            .to_string_lossy()
            .into_owned();
        let obj = if obj.is_empty() {
            "the program".to_string()
        } else {
            obj
        };
        let dynamic = !info.dli_sname.is_null()
            && CStr::from_ptr(info.dli_sname).to_bytes() == name.as_bytes()
            && info.dli_saddr as usize == addr;
        (
            obj,
            if dynamic {
                "dynamic symbol"
            } else {
                "static symbol table"
            },
        )
    }
}
