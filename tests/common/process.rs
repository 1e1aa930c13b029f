//! Running processes: with a deadline in their own process group, guarded
//! (forkguard preloaded), or as `nobody`.

use super::fixtures::fixture;
use super::paths::lib;
use super::scratch::Scratch;
use std::collections::HashMap;
use std::fs;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Default deadline for one fixture run.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A finished run.
#[derive(Debug)]
pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub cmdline: String,
}

impl Outcome {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics (with everything the process printed) unless it exited 0.
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.status.success(),
            "{} failed: {:?}\n{}",
            self.cmdline,
            self.status,
            self.dump()
        );
        self
    }

    /// Panics when forkguard reported a config problem on stderr (a rejected
    /// config runs unguarded, which would make many checks pass vacuously).
    pub fn assert_config_accepted(&self) -> &Self {
        let errs: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("forkguard:"))
            .collect();
        assert!(
            errs.is_empty(),
            "forkguard rejected the config:\n{}\n{}",
            errs.join("\n"),
            self.dump()
        );
        self
    }

    pub fn dump(&self) -> String {
        format!(
            "--- stdout ---\n{}--- stderr ---\n{}--------------",
            self.stdout, self.stderr
        )
    }

    /// The numbers of the last stdout line starting with `forks ` (the
    /// held-lock fixtures' `forks N hung H failed F`).
    pub fn fork_tally(&self) -> (u32, u32, u32) {
        let line = self
            .stdout
            .lines()
            .rev()
            .find(|l| l.starts_with("forks "))
            .unwrap_or_else(|| panic!("no tally line:\n{}", self.dump()));
        let w: Vec<u32> = line
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        assert_eq!(w.len(), 3, "{line}");
        (w[0], w[1], w[2])
    }

    /// `key=value` pairs printed on stdout lines starting with `prefix`
    /// (`""` for every line).
    pub fn kv(&self, prefix: &str) -> HashMap<String, String> {
        let mut m = HashMap::new();
        for line in self.stdout.lines().filter(|l| l.starts_with(prefix)) {
            for word in line[prefix.len()..].split_whitespace() {
                if let Some((k, v)) = word.split_once('=') {
                    m.insert(k.to_string(), v.to_string());
                }
            }
        }
        m
    }

    /// The value of `key=` in stdout lines starting with `prefix`; panics when absent.
    pub fn get(&self, prefix: &str, key: &str) -> String {
        self.kv(prefix)
            .remove(key)
            .unwrap_or_else(|| panic!("{}: no {key}= in output\n{}", self.cmdline, self.dump()))
    }
}

/// Run `cmd` with stdin from /dev/null, stdout and stderr captured (through
/// files in `scratch`, so a process that outlives its parent cannot hold a
/// pipe open), in its own process group, for at most `timeout`. On timeout
/// the whole group is killed and the test fails. Leftover members of the
/// group are killed when the leader has exited.
///
/// Polling `try_wait` is the one wait with a deadline std offers; the
/// fixtures themselves synchronise with pipes and barriers, never sleeps.
pub fn run(scratch: &Scratch, cmd: Command, timeout: Duration) -> Outcome {
    let (out, pgid) = run_leaving_group(scratch, cmd, timeout);
    kill_group(pgid);
    out
}

/// `run`, but processes left in the group when the leader exited are not
/// killed (a daemon's child is still in it until it calls setsid): the
/// caller waits for them, then calls `kill_group` with the returned id.
pub fn run_leaving_group(
    scratch: &Scratch,
    mut cmd: Command,
    timeout: Duration,
) -> (Outcome, libc::pid_t) {
    let n = scratch.next_run();
    let out_p = scratch.path(&format!("run{n}.stdout"));
    let err_p = scratch.path(&format!("run{n}.stderr"));
    let open = |p: &Path| {
        fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(p)
            .expect("create output file")
    };
    let cmdline = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(open(&out_p))
        .stderr(open(&err_p))
        .process_group(0);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmdline}: {e}"));
    let pgid = child.id() as libc::pid_t;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for fixture") {
            break st;
        }
        if Instant::now() >= deadline {
            kill_group(pgid);
            let _ = child.wait();
            let stdout = fs::read_to_string(&out_p).unwrap_or_default();
            let stderr = fs::read_to_string(&err_p).unwrap_or_default();
            panic!(
                "TIMEOUT after {timeout:?} (deadlock?): {cmdline}\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}"
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let out = Outcome {
        status,
        stdout: fs::read_to_string(&out_p).unwrap_or_default(),
        stderr: fs::read_to_string(&err_p).unwrap_or_default(),
        cmdline,
    };
    (out, pgid)
}

/// SIGKILL every process left in a group `run` created.
pub fn kill_group(pgid: libc::pid_t) {
    // SAFETY: kill(2) has no memory-safety preconditions; a negative pid
    // names the process group this helper created for the run.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// The signal that ended the process, if one did.
pub fn signal_of(st: &ExitStatus) -> Option<i32> {
    st.signal()
}

/// Wait (polling, with a deadline) until `cond` holds; false on timeout.
/// Only for processes the test cannot synchronise with otherwise, such as a
/// daemon that left the process group.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A command for a fixture with forkguard preloaded and `config` as
/// `FORKGUARD_CONFIG`; every other `FORKGUARD_*` variable removed, and
/// `FGT_TRACE` pointing at the scratch trace file.
pub fn guarded(scratch: &Scratch, program: impl AsRef<std::ffi::OsStr>, config: &Path) -> Command {
    let mut cmd = Command::new(program);
    clean_env(&mut cmd);
    cmd.env("LD_PRELOAD", lib())
        .env("FORKGUARD_CONFIG", config)
        .env("FGT_TRACE", scratch.trace_path())
        .current_dir(&scratch.dir);
    cmd
}

/// Drop every variable that would change what forkguard or a fixture does.
pub fn clean_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("FORKGUARD_") || k.starts_with("FGT_") || k == "LD_PRELOAD" {
            cmd.env_remove(&k);
        }
    }
}

/// Command words that run the rest of a command line as `nobody` (uid and
/// gid 65534, no supplementary groups): `setpriv` switches, then execs
/// `env`, so `NAME=VALUE` words may come first.
pub const AS_NOBODY: [&str; 6] = [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--",
    "env",
];

/// `program arg` run as `nobody` through [`AS_NOBODY`], with forkguard
/// preloaded into `program` only (setpriv and env run unguarded). nobody
/// runs copies of `program` and of the library in `scratch` (see
/// [`Scratch::for_others`]), so this works wherever the checkout is. The
/// caller cleans and completes the environment.
pub fn preloaded_as_nobody(scratch: &Scratch, program: &Path, arg: &str) -> Command {
    let mut cmd = Command::new(AS_NOBODY[0]);
    cmd.args(&AS_NOBODY[1..])
        .arg(format!(
            "LD_PRELOAD={}",
            scratch.for_others(&lib()).display()
        ))
        .arg(scratch.for_others(program))
        .arg(arg);
    cmd
}

/// `guarded` for a compiled C fixture with its arguments.
pub fn fixture_cmd(scratch: &Scratch, name: &str, args: &[&str], config: &Path) -> Command {
    let mut cmd = guarded(scratch, fixture(name), config);
    cmd.args(args);
    cmd
}
