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

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const NOBODY: u32 = 65534;

/// Mounts over /etc in the new namespace, then runs the rest of the
/// arguments; exit 99 when no mount works.
const SCRIPT: &str = r#"
upper=$1; work=$2; etc=$3; shift 3
if ! mount -t overlay overlay -o "lowerdir=/etc,upperdir=$upper,workdir=$work" /etc 2>/dev/null; then
    mount --bind "$etc" /etc 2>/dev/null || { echo "cannot mount over /etc" >&2; exit 99; }
fi
exec "$@"
"#;

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).expect("chmod");
}

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

/// An empty log file anyone may append to: setpriv and env, which run as
/// root before the fixture with the library preloaded too, must not leave a
/// root-owned one behind that the fixture could not open.
fn fresh_log(p: &Path) {
    write_mode(p, "", 0o666);
}

struct Setup {
    s: Scratch,
    upper: PathBuf,
    work: PathBuf,
    etc: PathBuf,
    setgid_prog: PathBuf,
    plain_prog: PathBuf,
    logs: PathBuf,
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
    chmod(&s.dir, 0o755);
    let libcopy = s.path("libforkguard.so");
    fs::copy(lib(), &libcopy).expect("copy library");
    chmod(&libcopy, 0o755);
    let setgid_prog = s.path("forker-setgid");
    fs::copy(fixture("forker"), &setgid_prog).expect("copy fixture");
    // chown before chmod: chown clears the setgid bit.
    std::os::unix::fs::chown(&setgid_prog, Some(0), Some(gid)).expect("chgrp");
    chmod(&setgid_prog, 0o2755);
    let plain_prog = s.path("forker-plain");
    fs::copy(fixture("forker"), &plain_prog).expect("copy fixture");
    chmod(&plain_prog, 0o755);

    let logs = s.path("logs");
    fs::create_dir(&logs).expect("mkdir logs");
    chmod(&logs, 0o777);

    // The system config: logs to system.log, one optional prepare call.
    let system_cfg = format!(
        "version = 1\n[settings]\nlog = \"{}\"\n\n[[call]]\nphase = \"prepare\"\nsymbol = \"fgt_prepare\"\noptional = true\n",
        logs.join("system.log").display()
    );
    let preload = format!("{}\n", libcopy.display());
    let upper = s.path("upper");
    let etc = s.path("etc");
    for d in [&upper, &etc] {
        fs::create_dir_all(d.join("forkguard")).expect("mkdir");
        chmod(d, 0o755);
        chmod(&d.join("forkguard"), 0o755);
        write_mode(&d.join("ld.so.preload"), &preload, 0o644);
        write_mode(&d.join("forkguard/forkguard.toml"), &system_cfg, 0o644);
    }
    if Path::new("/etc/ld.so.cache").exists() {
        let _ = fs::copy("/etc/ld.so.cache", etc.join("ld.so.cache"));
    }
    let work = s.path("work");
    fs::create_dir(&work).expect("mkdir work");

    // Hostile configs, owned by root and 0644: accepted outside secure mode.
    s.config(
        "hostile-abort.toml",
        "version = 1\n[settings]\non_error = \"abort\"\nhostile = true\n",
    );
    s.config(
        "hostile-valid.toml",
        &format!(
            "version = 1\n[settings]\nlog = \"{}\"\n\n[[call]]\nphase = \"prepare\"\nsymbol = \"fgt_prepare2\"\n",
            logs.join("hostile-config.log").display()
        ),
    );
    Ok(Setup {
        s,
        upper,
        work,
        etc,
        setgid_prog,
        plain_prog,
        logs,
    })
}

/// Runs `prog fork` as nobody in the namespace with `env` (NAME=VALUE
/// words). None when the mounts were impossible.
fn run_as_nobody(u: &Setup, prog: &Path, env: &[String]) -> Option<Outcome> {
    let trace = u.logs.join("trace");
    let _ = fs::remove_file(&trace);
    let mut cmd = Command::new("unshare");
    clean_env(&mut cmd);
    cmd.args(["-m", "sh", "-c", SCRIPT, "sh"])
        .arg(&u.upper)
        .arg(&u.work)
        .arg(&u.etc)
        .args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "env",
        ])
        .arg(format!("FGT_TRACE={}", trace.display()))
        .args(env)
        .arg(prog)
        .arg("fork")
        .current_dir(&u.logs);
    let out = run(&u.s, cmd, TIMEOUT);
    if out.code() == Some(99) {
        eprintln!("SKIPPED secure-mode test: {}", out.stderr.trim());
        return None;
    }
    Some(out)
}

#[test]
fn secure_mode_ignores_forkguard_environment() {
    let u = match setup() {
        Ok(u) => u,
        Err(why) => {
            eprintln!("SKIPPED secure-mode test: {why}");
            return;
        }
    };
    let abort_cfg = u.s.path("hostile-abort.toml");
    let valid_cfg = u.s.path("hostile-valid.toml");
    let env_log = u.logs.join("hostile-env.log");
    let system_log = u.logs.join("system.log");
    let trace = || Trace::read(&u.logs.join("trace"));

    // Control: a plain (not setgid) copy honours FORKGUARD_CONFIG, so the
    // hostile config would abort it. Proves the library is loaded through
    // /etc/ld.so.preload and the hostile config is a real threat.
    let hostile = vec![
        format!("FORKGUARD_CONFIG={}", abort_cfg.display()),
        format!("FORKGUARD_LOG={}", env_log.display()),
    ];
    let Some(ctl) = run_as_nobody(&u, &u.plain_prog, &hostile) else {
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
    let Some(out) = run_as_nobody(&u, &u.setgid_prog, &env) else {
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
    let Some(out) = run_as_nobody(&u, &u.setgid_prog, &env) else {
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
