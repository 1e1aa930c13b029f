//! `forkguard check --program` (`FORKGUARD_CHECK=1`): resolve each symbol
//! action on its own, print the result, exit before `main`.

use super::build::build;
use super::program::Program;
use crate::os::sys;
use forkguard_core::plan::{LogDest, Plan};
use std::ffi::CStr;

/// `forkguard check --program`: resolve each symbol action on its own, the
/// same way the runtime does, print one `forkguard-check:` line for each,
/// and exit (0 when every required symbol resolved) before `main`.
pub fn check_symbols(plan: &Plan) -> ! {
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
        match build(&one, &everyone, Some(LogDest::Off), None) {
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
    out.push_str(&crate::actions::lock::libc_locks::check_report(
        &plan.settings,
    ));
    out.push_str(&python_report(plan));
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

/// `[[python]]`: which entries apply to this program (`programs`, as the
/// runtime decides) and whether it runs CPython (as the hooks decide), one
/// `forkguard-check: python: ` line each and a summary.
fn python_report(plan: &Plan) -> String {
    if plan.python.is_empty() {
        return String::new();
    }
    let program = super::program::program(true);
    let name = program.paths.first().map_or("the program", |p| p.as_str());
    let everywhere = program.matches_any(&plan.settings.programs);
    let mut out = String::new();
    let mut apply = 0;
    for e in &plan.python {
        let verdict = if !everywhere {
            format!(
                "does not apply ([settings] programs = [{}])",
                plan.settings.programs.join(", ")
            )
        } else if !program.matches_any(&e.programs) {
            format!("does not apply (programs = [{}])", e.programs.join(", "))
        } else {
            apply += 1;
            "applies".to_string()
        };
        out.push_str(&format!(
            "forkguard-check: python: line {}, {}: {}: {verdict}\n",
            e.loc.line,
            e.phase.name(),
            e.describe()
        ));
    }
    let total = plan.python.len();
    let noun = if total == 1 { "entry" } else { "entries" };
    let applying = match apply {
        0 => format!("none of the {total} {noun} applies"),
        1 => format!("1 of {total} {noun} applies"),
        n => format!("{n} of {total} {noun} apply"),
    };
    let summary = match crate::actions::python::cpython_here() {
        Some((v, addr)) => format!(
            "{applying}; {name} runs CPython {v} (C API in {})",
            where_is(addr, "Py_IsInitialized").0
        ),
        None => format!(
            "{name} does not run CPython (its C API is not loaded at start); {applying}{}",
            if apply > 0 {
                ", but will not run (unless the program loads libpython later)"
            } else {
                ""
            }
        ),
    };
    out.push_str(&format!("forkguard-check: python: {summary}\n"));
    out
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
