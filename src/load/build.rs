//! Turning a validated plan into the runtime the phases read at fork.

use super::program::Program;
use crate::actions::child::ChildPlan;
use crate::os::symbols::Sym;
use crate::phases::runtime::{LogTarget, RtAction, RtKind, Runtime};
use forkguard_core::plan::{ActionKind, LockKind, LogDest, LogFormat, Plan, VforkPolicy};
use forkguard_core::ConfigError;
use std::sync::atomic::{AtomicBool, AtomicU64};

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
                let mut args = [0i64; 6];
                for (d, s) in args.iter_mut().zip(&c.args) {
                    *d = *s;
                }
                RtKind::Call {
                    phase: c.phase,
                    sym,
                    args,
                }
            }
            ActionKind::Lock(l) => {
                let lock =
                    crate::actions::lock::build(l, generation).map_err(|(loc, m)| err(loc, m))?;
                if l.kind == LockKind::Rwlock {
                    // The forking thread's read locks must be counted: the
                    // rwlock entry points are pointed at their trackers.
                    crate::entry::held::track_rwlock_reads();
                }
                RtKind::Lock(lock)
            }
            ActionKind::Zero(z) => RtKind::Zero(
                crate::actions::zero::build(z, generation).map_err(|(loc, m)| err(loc, m))?,
            ),
            ActionKind::Fd(f) => {
                RtKind::Fd(crate::actions::fd::build(f, a.loc).map_err(|(loc, m)| err(loc, m))?)
            }
        };
        let label = match &kind {
            RtKind::Call { sym, .. } => match &a.kind {
                ActionKind::Call(c) if !c.args.is_empty() => {
                    let args: Vec<String> = c.args.iter().map(i64::to_string).collect();
                    format!("call {}({})", sym.spec, args.join(", "))
                }
                _ => format!("call {}", sym.spec),
            },
            RtKind::Lock(l) => format!("lock {}", l.sym.spec),
            RtKind::Zero(z) => format!("zero {}", z.sym.spec),
            RtKind::Fd(f) => crate::actions::fd::label(f),
        };
        actions.push(RtAction {
            label: label.into_bytes(),
            line: u32::try_from(a.loc.line).unwrap_or(u32::MAX),
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
        .map(ChildPlan::new);
    let json = json_override.unwrap_or(settings.log_format == LogFormat::Json);
    let python = crate::actions::python::PyPlan::new(
        plan.python
            .iter()
            .filter(|e| program.matches_any(&e.programs))
            .cloned()
            .collect(),
        crate::actions::python::Sink {
            on: !matches!(log, LogTarget::Off),
            json,
            head: crate::phases::log::json_head,
            emit: crate::phases::log::emit_current,
        },
    );
    let n = actions.len()
        + child.as_ref().map_or(0, |c| c.count())
        + python.as_ref().map_or(0, |p| p.len());
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
        held_locks: settings.held_locks,
        lock_timeout_ms: settings.lock_timeout_ms,
        log_exits: settings.log_exits,
        actions,
        child,
        python,
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
fn json_string(out: &mut String, s: &str) {
    let mut bytes = Vec::with_capacity(s.len() + 2);
    bytes.push(b'"');
    crate::os::buf::json_escape(s.as_bytes(), |piece| bytes.extend_from_slice(piece));
    bytes.push(b'"');
    // Escaping keeps UTF-8 valid: only ASCII bytes are replaced.
    out.push_str(&String::from_utf8_lossy(&bytes));
}
