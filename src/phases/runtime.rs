//! The runtime plan: a validated config turned, once at load, into what the
//! phases need: resolved addresses, prepared labels and paths, the log
//! target. After it is built it is never changed, except for symbol
//! addresses re-resolved in the parent (atomics, see `symbols`).

use crate::os::symbols::Sym;
use forkguard_core::plan::{ActionKind, LogDest, LogFormat, Phase, Plan, VforkPolicy};
use forkguard_core::ConfigError;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

/// The active runtime, or null: every hook passes straight through.
static RUNTIME: AtomicPtr<Runtime> = AtomicPtr::new(std::ptr::null_mut());

/// The installed runtime, if any. Async-signal-safe (one atomic load).
pub fn get() -> Option<&'static Runtime> {
    let p = RUNTIME.load(Ordering::Acquire);
    // SAFETY: a non-null pointer comes from `install`, which leaks the Box:
    // the Runtime lives (unchanged) until the process ends.
    unsafe { p.as_ref() }
}

/// Make `rt` the runtime for the rest of the process (called once, at load).
pub fn install(rt: Runtime) -> &'static Runtime {
    let rt: &'static mut Runtime = Box::leak(Box::new(rt));
    RUNTIME.store(rt, Ordering::Release);
    rt
}

/// Where log lines go.
pub enum LogTarget {
    Off,
    Stderr,
    /// A NUL-terminated path, opened for each line (see `sys::append_to`).
    File(Vec<u8>),
}

pub struct Runtime {
    pub log: LogTarget,
    pub json: bool,
    pub vfork_as_fork: bool,
    pub handshake_ms: u32,
    /// Lock, call, zero and fd actions in declaration order.
    pub actions: Vec<RtAction>,
    pub child: Option<crate::actions::child::ChildPlan>,
    /// Report hazards at each fork and change nothing (`forkguard audit`).
    pub audit: bool,
    /// The `config` event (after its pid), written once, before the first
    /// fork's line.
    pub banner: Vec<u8>,
    pub banner_done: AtomicBool,
    /// Some symbol was missing at load: watch for objects loaded or unloaded
    /// at each prepare (see `build`).
    pub has_symbols: bool,
    /// Some action is an fd action (the child phase's largest stack user,
    /// called only then).
    pub has_fd: bool,
    /// Some action needs the forking process's pid after the fork
    /// (`parent_death_signal`, a `reopen` template's `%P`, audit).
    pub needs_parent_pid: bool,
    /// The loader generation every symbol was last resolved in.
    pub symbols_generation: AtomicU64,
}

/// One action, with a label for messages (`call foo`, `lock g_lock`).
pub struct RtAction {
    pub label: Vec<u8>,
    pub kind: RtKind,
}

pub enum RtKind {
    Call { phase: Phase, sym: Sym },
    Lock(crate::actions::lock::LockAction),
    Zero(crate::actions::zero::ZeroAction),
    Fd(crate::actions::fd::FdAction),
}

impl RtKind {
    /// The symbol this action needs resolved, if any.
    pub fn sym(&self) -> Option<&Sym> {
        match self {
            RtKind::Call { sym, .. } => Some(sym),
            RtKind::Lock(l) => Some(&l.sym),
            RtKind::Zero(z) => Some(&z.sym),
            RtKind::Fd(_) => None,
        }
    }
}

/// What the process is: the names `programs` globs are matched against.
pub struct Program {
    /// The path given to execve (AT_EXECFN) and the resolved /proc/self/exe.
    pub paths: Vec<String>,
}

impl Program {
    pub fn matches_any(&self, globs: &[String]) -> bool {
        globs.is_empty()
            || globs.iter().any(|g| {
                self.paths.iter().any(|p| {
                    let base = p.rsplit('/').next().unwrap_or(p);
                    forkguard_core::glob::matches(g.as_bytes(), p.as_bytes())
                        || forkguard_core::glob::matches(g.as_bytes(), base.as_bytes())
                })
            })
    }
}

/// Turn a plan into a runtime for this program, resolving every symbol.
/// The first problem rejects the whole plan (`None` actions are never half
/// applied). `log_override` is `FORKGUARD_LOG`.
/// `json_override` is `FORKGUARD_LOG_FORMAT`.
pub fn build(
    plan: &Plan,
    program: &Program,
    log_override: Option<LogDest>,
    json_override: Option<bool>,
) -> Result<Runtime, ConfigError> {
    let err = |loc: forkguard_core::plan::Loc, msg: String| ConfigError {
        file: plan.file.clone(),
        line: loc.line,
        col: loc.col,
        msg,
    };
    // The loader's generation (a `dl_iterate_phdr` walk), only when some
    // action has a symbol to resolve.
    let generation = if plan.actions.iter().any(|a| a.kind.symbol().is_some()) {
        crate::os::symbols::generation()
    } else {
        0
    };
    let mut actions = Vec::new();
    for a in &plan.actions {
        if !program.matches_any(&a.programs) {
            continue;
        }
        let kind = match &a.kind {
            ActionKind::Call(c) => {
                let sym = Sym::new(&c.symbol);
                sym.resolve_for_action(generation)
                    .map_err(|m| err(c.symbol.loc, m))?;
                RtKind::Call {
                    phase: c.phase,
                    sym,
                }
            }
            ActionKind::Lock(l) => RtKind::Lock(
                crate::actions::lock::build(l, generation).map_err(|(loc, m)| err(loc, m))?,
            ),
            ActionKind::Zero(z) => RtKind::Zero(
                crate::actions::zero::build(z, generation).map_err(|(loc, m)| err(loc, m))?,
            ),
            ActionKind::Fd(f) => {
                RtKind::Fd(crate::actions::fd::build(f, a.loc).map_err(|(loc, m)| err(loc, m))?)
            }
        };
        let label = match &kind {
            RtKind::Call { sym, .. } => format!("call {}", sym.spec),
            RtKind::Lock(l) => format!("lock {}", l.sym.spec),
            RtKind::Zero(z) => format!("zero {}", z.sym.spec),
            RtKind::Fd(f) => crate::actions::fd::label(f),
        };
        actions.push(RtAction {
            label: label.into_bytes(),
            kind,
        });
    }
    // Symbols found now live in objects loaded with the program, which are
    // never unloaded: only when some symbol is still missing (a library
    // `dlopen`ed later, an optional one) must prepare watch the loader, so
    // the common case pays no `dl_iterate_phdr` (and takes no loader lock)
    // per fork.
    let has_symbols = actions
        .iter()
        .any(|a| a.kind.sym().is_some_and(|s| s.addr() == 0));
    let settings = &plan.settings;
    let log = match log_override.unwrap_or_else(|| settings.log.clone()) {
        LogDest::Off => LogTarget::Off,
        LogDest::Stderr => LogTarget::Stderr,
        LogDest::File(p) => {
            let mut v = p.into_bytes();
            v.push(0);
            LogTarget::File(v)
        }
    };
    let child = plan
        .child
        .as_ref()
        .filter(|c| !c.is_empty())
        .map(crate::actions::child::ChildPlan::new);
    let n = actions.len() + child.as_ref().map_or(0, |c| c.count());
    let json = json_override.unwrap_or(settings.log_format == LogFormat::Json);
    let prog = program.paths.first().map_or("?", |s| s.as_str());
    // The part after the pid: the pid itself is written when the line is.
    let banner = if json {
        let mut b = String::from(",\"event\":\"config\",\"file\":");
        json_string(&mut b, &plan.file);
        b.push_str(&format!(",\"actions\":{n},\"program\":"));
        json_string(&mut b, prog);
        b.push('}');
        b
    } else {
        let s = if n == 1 { "" } else { "s" };
        format!(" config {}: {n} action{s} for {prog}", plan.file)
    };
    let has_fd = actions.iter().any(|a| matches!(a.kind, RtKind::Fd(_)));
    let needs_parent_pid = actions.iter().any(|a| match &a.kind {
        RtKind::Fd(f) => f.uses_parent_pid(),
        _ => false,
    }) || child.as_ref().is_some_and(|c| c.parent_death_signal != 0);
    Ok(Runtime {
        log,
        json,
        vfork_as_fork: settings.vfork == VforkPolicy::Fork,
        handshake_ms: settings.handshake_timeout_ms,
        actions,
        child,
        audit: false,
        banner: banner.into_bytes(),
        banner_done: AtomicBool::new(false),
        has_symbols,
        has_fd,
        needs_parent_pid,
        symbols_generation: AtomicU64::new(generation),
    })
}

/// Append `s` as a JSON string literal.
pub fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}
