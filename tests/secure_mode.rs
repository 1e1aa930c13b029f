//! Secure-execution mode (SPEC §7): in a setgid program forkguard ignores
//! every `FORKGUARD_*` variable and reads only the system config.
//!
//! The library is installed the way an administrator would (listed in
//! `/etc/ld.so.preload`, which ld.so honours even for setgid programs) but
//! only inside a private mount namespace: `unshare -m`, then an overlay (or
//! a bind mount) over `/etc` adds `ld.so.preload` and
//! `forkguard/forkguard.toml`. A setgid copy of the `forker` fixture then runs
//! as `nobody` with hostile `FORKGUARD_CONFIG` / `FORKGUARD_LOG` /
//! `FORKGUARD_DISABLE` values, which must all be ignored.

mod common;
mod secure_support;

use common::*;
use secure_support::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A group `nobody` is not in (by gid, from /etc/group).
fn foreign_group() -> Option<u32> {
    let groups = fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        let gid: u32 = f.get(2)?.parse().ok()?;
        let members = f.get(3).copied().unwrap_or("");
        (gid != 0 && gid != NOBODY && gid < 1000 && !members.split(',').any(|m| m == "nobody"))
            .then_some(gid)
    })
}

fn nosuid(p: &Path) -> bool {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: statvfs writes into the zeroed struct we own; `c` is a valid C string.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        libc::statvfs(c.as_ptr(), &mut st) == 0 && st.f_flag & libc::ST_NOSUID != 0
    }
}

struct Setup {
    u: Install,
    setgid_prog: PathBuf,
    plain_prog: PathBuf,
    /// A hostile config that would make the program abort.
    abort_cfg: PathBuf,
}

fn setup() -> Result<Setup, String> {
    if !is_root() {
        return Err("needs root (setgid copy, unshare -m, mount, switching to nobody)".into());
    }
    let s = Scratch::new("secure");
    if nosuid(&s.dir) {
        return Err(format!(
            "{} is mounted nosuid: a setgid program would not be secure there",
            s.dir.display()
        ));
    }
    let gid = foreign_group().ok_or("no group without nobody in /etc/group")?;
    let probe = Command::new("unshare")
        .args(["-m", "true"])
        .output()
        .map_err(|e| format!("unshare: {e}"))?;
    if !probe.status.success() {
        return Err(format!(
            "unshare -m impossible here: {}",
            String::from_utf8_lossy(&probe.stderr).trim()
        ));
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        return Err("setpriv (util-linux) is not installed".into());
    }
    let u = install(s);
    let setgid_prog = u.forker_copy("forker-setgid", Some((0, gid)), 0o2755);
    let plain_prog = u.forker_copy("forker-plain", None, 0o755);
    // Root's and 0644 like the valid one: accepted outside secure mode.
    let abort_cfg = u.s.config(
        "hostile-abort.toml",
        "version = 1\n[settings]\non_error = \"abort\"\nhostile = true\n",
    );
    Ok(Setup {
        u,
        setgid_prog,
        plain_prog,
        abort_cfg,
    })
}

#[test]
fn secure_mode_ignores_forkguard_environment() {
    let Some(Setup {
        u,
        setgid_prog,
        plain_prog,
        abort_cfg,
    }) = or_skip(setup())
    else {
        return;
    };
    let valid_cfg = &u.hostile;
    let env_log = u.logs.join("hostile-env.log");
    let system_log = u.logs.join("system.log");
    let trace = || u.trace();

    // Control: a plain (not setgid) copy honours FORKGUARD_CONFIG, so the
    // hostile config would abort it. Proves the library is loaded through
    // /etc/ld.so.preload and the hostile config is a real threat.
    let hostile = vec![
        format!("FORKGUARD_CONFIG={}", abort_cfg.display()),
        format!("FORKGUARD_LOG={}", env_log.display()),
    ];
    let Some(ctl) = u.run_as_nobody(&[], &plain_prog, &hostile) else {
        return;
    };
    assert_eq!(
        ctl.code(),
        Some(70),
        "control: the plain program should abort on the hostile config\n{}",
        ctl.dump()
    );
    assert!(
        ctl.stderr
            .contains(&format!("forkguard: {}:", abort_cfg.display())),
        "control:\n{}",
        ctl.dump()
    );
    let _ = fs::remove_file(&env_log);
    fresh_log(&system_log);

    // The setgid copy with the aborting config, a log override and DISABLE.
    let mut env = hostile.clone();
    env.push("FORKGUARD_DISABLE=1".into());
    let Some(out) = u.run_as_nobody(&[], &setgid_prog, &env) else {
        return;
    };
    out.assert_success();
    assert!(
        !out.stderr.contains(&abort_cfg.display().to_string()),
        "FORKGUARD_CONFIG read in secure mode:\n{}",
        out.dump()
    );
    assert!(
        !env_log.exists(),
        "FORKGUARD_LOG honoured in secure mode: {} was created",
        env_log.display()
    );
    let t = trace();
    assert_eq!(t.count("main-before"), 1, "{}\n{}", t.raw, out.dump());
    assert_eq!(
        t.count("prepare"),
        1,
        "the system config should apply (and FORKGUARD_DISABLE be ignored) in secure mode:\n{}\n{}",
        t.raw,
        out.dump()
    );
    let log = Log::read(&system_log);
    assert_eq!(log.forks().len(), 1, "system config's log:\n{}", log.raw);

    // The setgid copy with a valid hostile config that logs and calls.
    fresh_log(&system_log);
    let env = vec![format!("FORKGUARD_CONFIG={}", valid_cfg.display())];
    let Some(out) = u.run_as_nobody(&[], &setgid_prog, &env) else {
        return;
    };
    out.assert_success();
    let t = trace();
    assert_eq!(
        t.count("prepare2"),
        0,
        "hostile config's call ran in secure mode:\n{}",
        t.raw
    );
    assert_eq!(
        t.count("prepare"),
        1,
        "system config not applied:\n{}\n{}",
        t.raw,
        out.dump()
    );
    assert!(
        !u.logs.join("hostile-config.log").exists(),
        "hostile config's log was created in secure mode"
    );
}
