//! Secure-execution mode, every way in (issue 6, scenario 8): setuid,
//! setgid and file-capability copies of the `forker` fixture run as
//! `nobody` with hostile `FORKGUARD_CONFIG`, `FORKGUARD_LOG` and
//! `FORKGUARD_DISABLE`; all are ignored, only the system config applies, and
//! `strace` shows the hostile config file is never even opened.
//!
//! Same installation as tests/secure_mode.rs (which covers setgid with the
//! aborting config), from tests/secure_support: the library in
//! `/etc/ld.so.preload` and a system config, inside a private mount
//! namespace. Skipped with a printed reason when not root, or when
//! unshare/mount/setcap/strace are unavailable.

mod common;
mod secure_support;

use common::*;
use secure_support::*;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn have(prog: &str, arg: &str) -> bool {
    Command::new(prog).arg(arg).output().is_ok()
}

fn setup() -> Result<Install, String> {
    if !is_root() {
        return Err("needs root (setuid/setcap copies, unshare -m, mount)".into());
    }
    for (p, a) in [
        ("unshare", "--version"),
        ("setpriv", "--version"),
        ("strace", "-V"),
    ] {
        if !have(p, a) {
            return Err(format!("{p} is not installed"));
        }
    }
    Ok(install(Scratch::new("tsecure")))
}

/// A copy of `forker` made privileged by `how`: "setuid", "setgid", "setcap"
/// or "plain" (the control).
fn privileged_copy(u: &Install, how: &str) -> Result<PathBuf, String> {
    let name = format!("forker-{how}");
    let p = match how {
        // Owned by `daemon` (uid 1): nobody gains a uid it does not have.
        "setuid" => u.forker_copy(&name, Some((1, 0)), 0o4755),
        "setgid" => u.forker_copy(&name, Some((0, 1)), 0o2755),
        _ => u.forker_copy(&name, None, 0o755),
    };
    if how == "setcap" {
        let out = Command::new("setcap")
            .args(["cap_net_bind_service+ep"])
            .arg(&p)
            .output()
            .map_err(|e| format!("setcap: {e} (apt-get install libcap2-bin)"))?;
        if !out.status.success() {
            return Err(format!(
                "setcap failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(p)
}

/// Runs `prog fork` as nobody under strace in the namespace, with the hostile
/// environment. Returns the outcome and the strace output; None when the
/// mounts were impossible.
fn run_traced(u: &Install, prog: &Path, tag: &str, disable: bool) -> Option<(Outcome, String)> {
    for f in ["system.log", "hostile-env.log", "hostile-config.log"] {
        let _ = fs::remove_file(u.logs.join(f));
    }
    fresh_log(&u.logs.join("system.log"));
    let st = u.s.path(&format!("strace-{tag}.txt"));
    let mut strace: Vec<OsString> = [
        "strace",
        "-f",
        "-qq",
        "-s",
        "1024",
        "-e",
        "trace=execve,open,openat,openat2,stat,newfstatat,statx,access,faccessat,faccessat2",
        "-o",
    ]
    .map(OsString::from)
    .into();
    strace.push(st.clone().into());
    let env = [
        format!("FORKGUARD_CONFIG={}", u.hostile.display()),
        format!("FORKGUARD_LOG={}", u.logs.join("hostile-env.log").display()),
        format!("FORKGUARD_DISABLE={}", u8::from(disable)),
    ];
    let out = u.run_as_nobody(&strace, prog, &env)?;
    let text = fs::read_to_string(&st).unwrap_or_default();
    Some((out, text))
}

/// strace lines of the fixture's own process, from its successful execve
/// on, that name `path`.
fn touches(strace: &str, prog: &Path, path: &Path) -> Vec<String> {
    let prog = format!("execve(\"{}\"", prog.display());
    let path = path.display().to_string();
    let lines: Vec<&str> = strace.lines().collect();
    let Some(at) = lines
        .iter()
        .position(|l| l.contains(&prog) && l.trim_end().ends_with("= 0"))
    else {
        return vec![format!("no successful {prog}...) in the strace output")];
    };
    let pid = lines[at].split_whitespace().next();
    lines[at + 1..]
        .iter()
        .filter(|l| l.split_whitespace().next() == pid && l.contains(&path))
        .map(|l| l.to_string())
        .collect()
}

#[test]
fn every_secure_execution_kind_ignores_the_environment() {
    let Some(u) = or_skip(setup()) else {
        return;
    };
    // Control: the plain copy opens the hostile config (strace sees it) and
    // applies it instead of the system one.
    let plain = privileged_copy(&u, "plain").expect("plain copy");
    let Some((ctl, st)) = run_traced(&u, &plain, "plain", false) else {
        return;
    };
    ctl.assert_success();
    let opened = touches(&st, &plain, &u.hostile);
    assert!(
        !opened.is_empty(),
        "control: the plain program should open the hostile config:\n{st}"
    );
    let t = u.trace();
    assert_eq!(
        (t.count("prepare"), t.count("prepare2")),
        (0, 1),
        "control: the hostile config applies:\n{}",
        t.raw
    );

    let mut failures = Vec::new();
    for how in ["setuid", "setgid", "setcap"] {
        let prog = match privileged_copy(&u, how) {
            Ok(p) => p,
            Err(why) => {
                eprintln!("SKIPPED {how} copy: {why}");
                continue;
            }
        };
        let Some((out, st)) = run_traced(&u, &prog, how, true) else {
            return;
        };
        if !out.status.success() {
            failures.push(format!("[{how}] failed: {:?}\n{}", out.status, out.dump()));
            continue;
        }
        let t = u.trace();
        if t.count("prepare") != 1 || t.count("prepare2") != 0 {
            failures.push(format!(
                "[{how}] expected the system config only (FORKGUARD_DISABLE and FORKGUARD_CONFIG ignored):\n{}\n{}",
                t.raw,
                out.dump()
            ));
        }
        let opened = touches(&st, &prog, &u.hostile);
        if !opened.is_empty() {
            failures.push(format!(
                "[{how}] hostile config touched:\n{}",
                opened.join("\n")
            ));
        }
        for f in ["hostile-env.log", "hostile-config.log"] {
            if u.logs.join(f).exists() {
                failures.push(format!("[{how}] {f} was created"));
            }
        }
        // strace and setpriv run with the system config too: count the
        // fixture's own fork lines.
        let log = Log::read(&u.logs.join("system.log"));
        let me = t.with("main-before").first().map_or(-1, |e| e.pid());
        let mine = log
            .forks()
            .iter()
            .filter(|l| matches!(l, LogLine::Fork { pid, .. } if *pid == me))
            .count();
        if mine != 1 {
            failures.push(format!("[{how}] system log:\n{}", log.raw));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// In secure-execution mode only a root-owned system config that is not
/// writable by group or others is read: one owned by another user, or
/// group-writable, is refused with one line and the program runs unguarded.
#[test]
fn secure_mode_refuses_a_system_config_that_is_not_roots_alone() {
    let Some(u) = or_skip(setup()) else {
        return;
    };
    let prog = privileged_copy(&u, "setuid").expect("setuid copy");
    let sys_cfgs = [
        u.upper.join("forkguard/forkguard.toml"),
        u.etc.join("forkguard/forkguard.toml"),
    ];
    let variants: [(&str, u32, u32, &str); 2] = [
        (
            "owned by nobody",
            65534,
            0o644,
            "refusing config owned by uid 65534",
        ),
        (
            "group-writable",
            0,
            0o664,
            "refusing config writable by group or others",
        ),
    ];
    let mut failures = Vec::new();
    for (name, uid, mode, msg) in variants {
        for p in &sys_cfgs {
            std::os::unix::fs::chown(p, Some(uid), Some(0)).expect("chown");
            chmod(p, mode);
        }
        let Some((out, _)) = run_traced(&u, &prog, "sysbad", true) else {
            return;
        };
        let want = format!("forkguard: /etc/forkguard/forkguard.toml: {msg}");
        let errs: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.starts_with("forkguard:"))
            .collect();
        let t = u.trace();
        // strace, setpriv and env (root, not secure) load the library from
        // /etc/ld.so.preload too and refuse the same file: each process
        // prints the same one line.
        if errs.is_empty() || errs.iter().any(|e| *e != want) {
            failures.push(format!("[{name}] expected only {want:?}, got {errs:?}"));
        }
        if !out.status.success() || t.count("main-before") != 1 || t.count("prepare") != 0 {
            failures.push(format!(
                "[{name}] expected an unguarded normal run:\n{}\n{}",
                t.raw,
                out.dump()
            ));
        }
    }
    // Control: back to root's 0644, the system config applies.
    for p in &sys_cfgs {
        std::os::unix::fs::chown(p, Some(0), Some(0)).expect("chown");
        chmod(p, 0o644);
    }
    let Some((out, _)) = run_traced(&u, &prog, "sysgood", true) else {
        return;
    };
    out.assert_success();
    assert_eq!(u.trace().count("prepare"), 1, "control");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
