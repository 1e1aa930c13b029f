//! Load time: find the config (SPEC §2), read it safely, validate it, build
//! the runtime. The cheap path matters most: a process with no config (or
//! `FORKGUARD_DISABLE=1`) costs one walk of the environment and one
//! `access`.

mod build;
mod check;
mod config;
mod env;
mod program;
mod report;

use crate::phases::runtime::{self, LogTarget, Runtime};
use env::{Env, Options};
use forkguard_core::plan::{LogDest, Plan};
use program::{program, Program};

/// The constructor's work. Never panics out (panic = abort), never exits
/// except for `on_error = "abort"` and check mode.
pub fn init() {
    let env = Env::read();
    if env.disabled() {
        return;
    }
    let opts = env.options();
    let Some(path) = config::path(&env) else {
        if opts.audit {
            audit_without_config(&opts);
        }
        return;
    };
    let Some(config::Config {
        plan,
        loaded,
        store,
    }) = config::read(&path, &opts)
    else {
        return;
    };
    if opts.check {
        check::check_symbols(&plan);
    }
    config::remember(store, &plan);
    let program = program(
        !plan.settings.programs.is_empty()
            || plan.actions.iter().any(|a| !a.programs.is_empty())
            || plan.python.iter().any(|e| !e.programs.is_empty()),
    );
    if !program.matches_any(&plan.settings.programs) {
        return;
    }
    // Nothing to do at any fork and nothing to log: stop before building
    // (a placeholder config in every process of a deployment).
    let log_off = match &opts.log {
        Some(d) => *d == LogDest::Off,
        None => plan.settings.log == LogDest::Off,
    };
    if !opts.audit && plan.is_empty() && plan.settings.handshake_timeout_ms == 0 && log_off {
        return;
    }
    match build::build(&plan, &program, opts.log.clone(), opts.json) {
        Ok(rt) => {
            // First of forkguard's fork handlers (see `libc_locks`), and
            // only once the whole config was accepted.
            crate::actions::lock::libc_locks::install(
                &plan.settings,
                !env::secure_mode() && !opts.plan_cache_off,
            );
            install(rt, opts.audit)
        }
        Err(mut e) => {
            if !loaded.may_show {
                e.msg = "invalid config (details hidden: you cannot read this file)".into();
            }
            report::fail(&e, plan.settings.on_error, opts.log.as_ref())
        }
    }
}

/// `forkguard audit` with no config: an empty plan that only reports.
fn audit_without_config(opts: &Options) {
    let Ok(plan) = Plan::parse("(no config)", "version = 1") else {
        return;
    };
    let everyone = Program { paths: Vec::new() };
    if let Ok(mut rt) = build::build(&plan, &everyone, opts.log.clone(), opts.json) {
        rt.audit = true;
        activate(rt);
    }
}

/// Activate `rt`, unless it has nothing to do at any fork and nothing to
/// log: then stay a pure pass-through.
fn install(mut rt: Runtime, audit: bool) {
    rt.audit = audit;
    let idle = rt.actions.is_empty()
        && rt.child.is_none()
        && rt.python.is_none()
        && rt.handshake_ms == 0
        && rt.held_locks == forkguard_core::plan::HeldLocks::Off;
    if !rt.audit && idle && matches!(rt.log, LogTarget::Off) {
        return;
    }
    activate(rt);
}

fn activate(rt: Runtime) {
    crate::phases::tls::init();
    // From here on forks run phases: bind every libc function now, so that
    // none is looked up in a child or in a signal handler (see `lazy`).
    crate::os::lazy::resolve_all();
    crate::entry::held::install(rt.held_locks, rt.audit, rt.lock_timeout_ms);
    crate::entry::spawn::init(&rt);
    crate::entry::wait::init(&rt);
    crate::phases::fdlog::init(&rt);
    runtime::install(rt);
    crate::entry::atfork::register();
}
