//! Helpers for the secure-execution tests (secure_mode.rs, torture_secure.rs):
//! the library installed the way an administrator would (listed in
//! `/etc/ld.so.preload`, which ld.so honours even for privileged programs,
//! with a system config in `/etc/forkguard/forkguard.toml`), but only inside
//! a private mount namespace, and copies of the `forker` fixture run there as
//! `nobody`.

#![allow(dead_code)]

use crate::common::{self, write_mode, Outcome, Scratch, Trace};
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `nobody`'s uid and gid.
pub const NOBODY: u32 = 65534;

/// Mounts over /etc in the new namespace, then runs the rest of the
/// arguments; exit 99 when no mount works.
const SCRIPT: &str = r#"
upper=$1; work=$2; etc=$3; shift 3
if ! mount -t overlay overlay -o "lowerdir=/etc,upperdir=$upper,workdir=$work" /etc 2>/dev/null; then
    mount --bind "$etc" /etc 2>/dev/null || { echo "cannot mount over /etc" >&2; exit 99; }
fi
exec "$@"
"#;

/// Set exactly `mode` on `p`.
pub fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// An empty log file anyone may append to: setpriv and env, which run as
/// root before the fixture with the library preloaded too, must not leave a
/// root-owned one behind that the fixture could not open.
pub fn fresh_log(p: &Path) {
    write_mode(p, "", 0o666);
}

/// The value of a set-up that may be impossible here; None (after printing
/// why the test is skipped) when it is.
pub fn or_skip<T>(setup: Result<T, String>) -> Option<T> {
    setup
        .map_err(|why| eprintln!("SKIPPED secure-mode test: {why}"))
        .ok()
}

/// The installation, in a scratch dir: what the namespace mounts over /etc
/// (`upper` as an overlay, else `etc` bind-mounted), and `logs`, where the
/// fixture runs and writes its trace.
pub struct Install {
    pub s: Scratch,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub etc: PathBuf,
    pub logs: PathBuf,
    /// A valid hostile config (root's, 0644: accepted outside secure mode)
    /// that would log to `logs/hostile-config.log` and call `fgt_prepare2`.
    pub hostile: PathBuf,
}

/// Installs a copy of the library in `s`: `ld.so.preload` naming it and a
/// system config that logs to `logs/system.log` and makes one optional
/// prepare call (`fgt_prepare`), for both ways of mounting over /etc.
pub fn install(s: Scratch) -> Install {
    chmod(&s.dir, 0o755);
    let libcopy = s.path("libforkguard.so");
    fs::copy(common::lib(), &libcopy).expect("copy library");
    chmod(&libcopy, 0o755);
    let logs = s.path("logs");
    fs::create_dir(&logs).expect("mkdir logs");
    chmod(&logs, 0o777);
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
    let hostile = s.config(
        "hostile-valid.toml",
        &format!(
            "version = 1\n[settings]\nlog = \"{}\"\n\n[[call]]\nphase = \"prepare\"\nsymbol = \"fgt_prepare2\"\n",
            logs.join("hostile-config.log").display()
        ),
    );
    Install {
        s,
        upper,
        work,
        etc,
        logs,
        hostile,
    }
}

impl Install {
    /// A copy of `forker` named `name`, owned by `owner` (uid, gid) when
    /// given, with exactly `mode`.
    pub fn forker_copy(&self, name: &str, owner: Option<(u32, u32)>, mode: u32) -> PathBuf {
        let p = self.s.path(name);
        fs::copy(common::fixture("forker"), &p).expect("copy fixture");
        if let Some((uid, gid)) = owner {
            // chown before chmod: chown clears the setuid and setgid bits.
            std::os::unix::fs::chown(&p, Some(uid), Some(gid)).expect("chown");
        }
        chmod(&p, mode);
        p
    }

    /// The fixture's trace of the last run.
    pub fn trace(&self) -> Trace {
        Trace::read(&self.logs.join("trace"))
    }

    /// Runs `prog fork` as nobody in a new mount namespace with the
    /// installation over /etc and `env` (NAME=VALUE words), under the `wrap`
    /// command words (run as root, before the switch to nobody) if any.
    /// None (after printing why) when the mounts were impossible.
    pub fn run_as_nobody(&self, wrap: &[OsString], prog: &Path, env: &[String]) -> Option<Outcome> {
        let trace = self.logs.join("trace");
        let _ = fs::remove_file(&trace);
        let mut cmd = Command::new("unshare");
        common::clean_env(&mut cmd);
        cmd.args(["-m", "sh", "-c", SCRIPT, "sh"])
            .arg(&self.upper)
            .arg(&self.work)
            .arg(&self.etc)
            .args(wrap)
            .args(common::AS_NOBODY)
            .arg(format!("FGT_TRACE={}", trace.display()))
            .args(env)
            .arg(prog)
            .arg("fork")
            .current_dir(&self.logs);
        let out = common::run(&self.s, cmd, common::TIMEOUT);
        if out.code() == Some(99) {
            eprintln!("SKIPPED secure-mode test: {}", out.stderr.trim());
            return None;
        }
        Some(out)
    }
}
