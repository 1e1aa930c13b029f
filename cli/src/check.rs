//! `check`: validate a config and print the plan phase by phase; with
//! `--program`, resolve every symbol inside that program.

use forkguard_core::load::{self, Trust};
use forkguard_core::plan::{Action, ActionKind, HeldLocks, LockStrategy, LogDest, Phase, Plan};
use std::io::Read;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

fn default_file() -> String {
    std::env::var(forkguard_core::ENV_CONFIG)
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| forkguard_core::SYSTEM_CONFIG.to_string())
}

pub fn run(file: Option<&str>, program: Option<&str>) -> ExitCode {
    let file = file.map_or_else(default_file, str::to_string);
    // SAFETY: getuid cannot fail.
    let real_uid = unsafe { libc::getuid() };
    let plan = match load::read_config(&file, Trust::User { real_uid })
        .and_then(|l| load::plan(&file, &l))
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let syntax = match crate::pycheck::check(&plan) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    print_plan(&plan);
    match syntax {
        crate::pycheck::Outcome::Nothing => {}
        crate::pycheck::Outcome::Compiled(n, py) => {
            println!(
                "python: {n} code entr{} compiled by {py}",
                if n == 1 { "y" } else { "ies" }
            );
        }
        crate::pycheck::Outcome::NotChecked(n, why) => {
            println!(
                "python: the syntax of {n} code entr{} was NOT checked ({why}); the library reports a hook that does not compile when it registers it",
                if n == 1 { "y" } else { "ies" }
            );
        }
    }
    match program {
        None => ExitCode::SUCCESS,
        Some(p) => check_program(&file, p),
    }
}

fn programs(list: &[String]) -> String {
    if list.is_empty() {
        "every program".into()
    } else {
        list.join(", ")
    }
}

fn print_plan(plan: &Plan) {
    let s = &plan.settings;
    println!("{}: valid", plan.file);
    println!(
        "settings: programs = {}; on_error = {}; log = {}; log_format = {}; vfork = {}; lock_timeout_ms = {}; handshake_timeout_ms = {}; libc_locks = {}; held_locks = {}; log_exits = {}",
        programs(&s.programs),
        format!("{:?}", s.on_error).to_lowercase(),
        match &s.log {
            LogDest::Off => "off".to_string(),
            LogDest::Stderr => "stderr".to_string(),
            LogDest::File(p) => p.clone(),
        },
        format!("{:?}", s.log_format).to_lowercase(),
        format!("{:?}", s.vfork).to_lowercase(),
        s.lock_timeout_ms,
        s.handshake_timeout_ms,
        format!("{:?}", s.libc_locks).to_lowercase(),
        format!("{:?}", s.held_locks).to_lowercase(),
        s.log_exits
    );
    if plan.is_empty() {
        println!("no actions: every fork passes through unchanged");
    }
    let acts = &plan.actions;
    let mut prepare = Vec::new();
    let mut parent = Vec::new();
    let mut child = Vec::new();
    for a in acts {
        match &a.kind {
            ActionKind::Lock(l) => {
                if l.strategy == LockStrategy::Acquire {
                    prepare.push(describe(a, "take"));
                    parent.push(describe(a, "release"));
                }
                child.push((0, describe(a, "make free, type kept")));
            }
            ActionKind::Call(c) => match c.phase {
                Phase::Prepare => prepare.push(describe(a, "")),
                Phase::Parent => parent.push(describe(a, "")),
                Phase::Child => child.push((4, describe(a, ""))),
            },
            ActionKind::Zero(_) => child.push((1, describe(a, ""))),
            ActionKind::Fd(_) => child.push((2, describe(a, ""))),
        }
    }
    match s.held_locks {
        HeldLocks::Off => {}
        HeldLocks::Reinit => {
            child.push((
                0,
                "held_locks: free every lock another thread held at the fork (type kept)".into(),
            ));
        }
        HeldLocks::Acquire => {
            prepare.push(format!(
                "held_locks: take every lock another thread holds (lock_timeout_ms = {} each)",
                s.lock_timeout_ms
            ));
            parent.push("held_locks: release them".into());
            child.push((
                0,
                "held_locks: free them, and any still held by another thread (type kept)".into(),
            ));
        }
    }
    // Parent and child undo in reverse order; the child runs kinds in the
    // fixed order of SPEC §4 (locks, zero, fd, [child], calls).
    parent.reverse();
    let (mut locks, rest): (Vec<_>, Vec<_>) = child.into_iter().partition(|(k, _)| *k == 0);
    locks.reverse();
    let mut zero_fd: Vec<_> = rest
        .iter()
        .filter(|(k, _)| *k == 1 || *k == 2)
        .cloned()
        .collect();
    zero_fd.sort_by_key(|(k, _)| *k);
    let mut calls: Vec<_> = rest.into_iter().filter(|(k, _)| *k == 4).collect();
    calls.reverse();
    let mut child: Vec<String> = locks.into_iter().chain(zero_fd).map(|(_, d)| d).collect();
    if let Some(c) = plan.child.as_ref().filter(|c| !c.is_empty()) {
        let mut parts = Vec::new();
        if let Some(sig) = c.parent_death_signal {
            parts.push(format!(
                "parent_death_signal = {}",
                forkguard_core::signal::name(sig)
            ));
        }
        if c.reset_signal_mask {
            parts.push("reset_signal_mask".into());
        }
        if c.reset_signal_handlers {
            parts.push("reset_signal_handlers".into());
        }
        if c.new_session {
            parts.push("new_session".into());
        }
        if let Some(v) = c.oom_score_adj {
            parts.push(format!("oom_score_adj = {v}"));
        }
        if let Some(n) = &c.name {
            parts.push(format!("name = {n:?}"));
        }
        child.push(format!("[child] {}", parts.join(", ")));
    }
    child.extend(calls.into_iter().map(|(_, d)| d));
    let spawned: Vec<String> = acts
        .iter()
        .filter(|a| matches!(&a.kind, ActionKind::Fd(f) if f.spawn))
        .map(|a| describe(a, ""))
        .collect();
    if !spawned.is_empty() {
        println!("spawned programs (posix_spawn, posix_spawnp, system, popen, vfork + exec): not inherited:");
        for (i, d) in spawned.iter().enumerate() {
            println!("  {}. {d}", i + 1);
        }
    }
    // [[python]] hooks run inside CPython's own fork handling: its `before`
    // hooks ahead of forkguard's prepare, its `after` hooks after
    // forkguard's parent and child phases; in declared order.
    let mut py_prepare = Vec::new();
    for e in &plan.python {
        let mut d = e.describe();
        if e.optional {
            d.push_str(" (optional)");
        }
        if !e.programs.is_empty() {
            d.push_str(&format!(" [programs: {}]", e.programs.join(", ")));
        }
        d.push_str(&format!("  (line {})", e.loc.line));
        match e.phase {
            Phase::Prepare => py_prepare.push(d),
            Phase::Parent => parent.push(d),
            Phase::Child => child.push(d),
        }
    }
    py_prepare.extend(prepare);
    let prepare = py_prepare;
    for (name, list) in [("prepare", prepare), ("parent", parent), ("child", child)] {
        println!("{name}:");
        if list.is_empty() {
            println!("  (nothing)");
        }
        for (i, d) in list.iter().enumerate() {
            println!("  {}. {d}", i + 1);
        }
    }
}

fn describe(a: &Action, what: &str) -> String {
    let mut s = match &a.kind {
        ActionKind::Lock(l) => {
            let mut s = format!("lock {} ({:?}, {:?}", l.symbol, l.kind, l.strategy).to_lowercase();
            if let Some(o) = l.offset {
                s.push_str(&format!(", offset {}", o.bytes));
            }
            if l.strategy == LockStrategy::Acquire {
                s.push_str(
                    &format!(
                        ", timeout {} ms, on timeout {:?}",
                        l.timeout_ms, l.on_timeout
                    )
                    .to_lowercase(),
                );
            }
            s.push(')');
            if !what.is_empty() {
                s.push_str(&format!(": {what}"));
            }
            s
        }
        ActionKind::Call(c) => {
            let args: Vec<String> = c.args.iter().map(i64::to_string).collect();
            format!("call {}({})", c.symbol, args.join(", "))
        }
        ActionKind::Zero(z) => match (z.offset, z.size) {
            (None, None) => format!("zero {}", z.symbol),
            (o, n) => format!(
                "zero {} (offset {}, {} bytes)",
                z.symbol,
                o.map_or(0, |o| o.bytes),
                n.map_or("to the end".to_string(), |n| n.to_string())
            ),
        },
        ActionKind::Fd(f) => {
            let sel = &f.select;
            let mut keys = Vec::new();
            if !sel.fds.is_empty() {
                keys.push(format!("fds {:?}", sel.fds));
            }
            if let Some(n) = sel.from {
                keys.push(format!("from {n}"));
            }
            if let Some(k) = sel.kind {
                keys.push(format!("kind {}", k.name()));
            }
            if let Some(p) = &sel.path {
                keys.push(format!("path {p:?}"));
            }
            if let Some(e) = &sel.peer {
                keys.push(format!("peer {e}"));
            }
            if let Some(e) = &sel.local {
                keys.push(format!("local {e}"));
            }
            if !sel.except.is_empty() {
                keys.push(format!("except {:?}", sel.except));
            }
            let mut s = format!("fd {} [{}]", f.action.name(), keys.join(", "));
            if let Some(p) = &f.path {
                s.push_str(&format!(" -> {p}"));
            }
            if f.spawn {
                s.push_str(", also for spawned programs");
            }
            s
        }
    };
    if let Some(sym) = a.kind.symbol() {
        if sym.optional {
            s.push_str(" (optional)");
        }
    }
    if !a.programs.is_empty() {
        s.push_str(&format!(" [programs: {}]", a.programs.join(", ")));
    }
    s.push_str(&format!("  (line {})", a.loc.line));
    s
}

/// Refuse programs that would not load the library (static, setuid) so
/// that the check never runs one for real.
fn loadable(path: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let md = std::fs::metadata(path)
        .map_err(|e| format!("'{path}': {}", crate::launch::strip_os(&e)))?;
    if md.permissions().mode() & 0o6000 != 0 {
        return Err(format!(
            "'{path}': setuid/setgid program: forkguard will not run it to check symbols"
        ));
    }
    let mut head = vec![0u8; 4096];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| format!("'{path}': {e}"))?;
    head.truncate(n);
    if head.starts_with(b"#!") {
        return Ok(());
    }
    if !head.starts_with(b"\x7fELF") || head.get(4) != Some(&2) {
        return Err(format!("'{path}': not a 64-bit ELF program"));
    }
    let rd16 = |o: usize| {
        head.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let rd64 = |o: usize| {
        head.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as usize)
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (rd64(32), rd16(54), rd16(56)) else {
        return Err(format!("'{path}': truncated ELF header"));
    };
    let interp = (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        head.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            == Some(3) // PT_INTERP
    });
    if interp {
        Ok(())
    } else {
        Err(format!(
            "'{path}': statically linked: LD_PRELOAD cannot load forkguard into it"
        ))
    }
}

/// The interpreter a `#!/usr/bin/env NAME` script names, if PATH is one.
fn env_interpreter(path: &str) -> Option<String> {
    let mut head = [0u8; 256];
    let n = std::fs::File::open(path).ok()?.read(&mut head).ok()?;
    let line = head[..n].split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line.strip_prefix(b"#!")?).ok()?;
    let mut words = line.split_whitespace();
    if words.next()?.rsplit('/').next()? != "env" {
        return None;
    }
    words.find(|w| !w.starts_with('-')).map(str::to_string)
}

/// Load the library into PATH in check mode: it resolves every symbol,
/// prints what it found and exits before the program's `main`.
fn check_program(file: &str, program: &str) -> ExitCode {
    if let Err(m) = loadable(program) {
        eprintln!("forkguard: {m}");
        return ExitCode::from(1);
    }
    let lib = match crate::launch::library() {
        Ok(l) => l,
        Err(m) => {
            eprintln!("forkguard: {m}");
            return ExitCode::from(1);
        }
    };
    let abs = std::path::absolute(file)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or(file.to_string());
    let child = Command::new(program)
        .env("LD_PRELOAD", &lib)
        .env(forkguard_core::ENV_CONFIG, abs)
        .env(forkguard_core::ENV_CHECK, "1")
        .env_remove(forkguard_core::ENV_DISABLE)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("forkguard: '{program}': {}", crate::launch::strip_os(&e));
            return ExitCode::from(1);
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let report: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("forkguard-check: "))
        .collect();
    if report.is_empty() {
        eprint!("{err}");
        eprintln!("forkguard: '{program}': the library did not load into it (no check report)");
        return ExitCode::from(1);
    }
    eprint!("{err}");
    // `python: ` lines: which [[python]] entries apply and whether the
    // program runs CPython, said by the library loaded into it.
    let (python, symbols): (Vec<&str>, Vec<&str>) =
        report.iter().partition(|l| l.starts_with("python: "));
    println!("symbols in {program}:");
    for l in &symbols {
        println!("  {l}");
    }
    for l in &python {
        println!("{l}");
    }
    if let (false, Some(name)) = (python.is_empty(), env_interpreter(program)) {
        println!(
            "python: note: {program} starts its interpreter through env: what ran here was env; check {name} itself (--program \"$(command -v {name})\")"
        );
    }
    match status.and_then(|s| s.code()) {
        Some(0) => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    }
}
