//! `forkguard why PID` (SPEC 8.6) on real stuck and idle processes.
//!
//! `tests/c/why_stuck.c` reaches each state by design (a thread holds the
//! lock while the main thread forks, synchronised with semaphores), prints
//! `ready PID`, and waits to be killed. The test waits until `/proc` shows
//! every thread of PID asleep where the mode puts it, runs `forkguard why`
//! with a deadline, and kills the fixture's process group.

mod common;

use common::*;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

/// A running `why_stuck MODE` and the process it says to look at.
struct Stuck {
    child: Child,
    pid: i32,
}

impl Drop for Stuck {
    fn drop(&mut self) {
        kill_group(self.child.id() as libc::pid_t);
        let _ = self.child.wait();
    }
}

fn fixture_path() -> PathBuf {
    extra_fixture("why_stuck", false)
}

/// Starts `program MODE` and reads its `ready PID` line (with a deadline).
fn start_program(program: &Path, mode: &str) -> Stuck {
    let mut cmd = Command::new(program);
    cmd.arg(mode);
    start_cmd(cmd, mode)
}

fn start_cmd(mut cmd: Command, mode: &str) -> Stuck {
    clean_env(&mut cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0);
    let mut child = cmd.spawn().expect("start why_stuck");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(TIMEOUT).unwrap_or_default();
    // Killed on drop, also when the ready line is missing.
    let mut stuck = Stuck { child, pid: 0 };
    stuck.pid = line
        .strip_prefix("ready ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("why_stuck {mode}: no ready line (got {line:?})"));
    stuck
}

/// Each thread's `(state, syscall line)`.
fn tasks(pid: i32) -> Vec<(char, String)> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let p = e.ok()?.path();
        let stat = fs::read_to_string(p.join("stat")).ok()?;
        let state = stat.get(stat.rfind(')')? + 2..)?.chars().next()?;
        Some((state, fs::read_to_string(p.join("syscall")).ok()?))
    })
    .collect()
}

/// Starts MODE and waits until PID has `threads` threads, all asleep in a
/// system call, and (when `futex_waits` > 0) that many in `futex`.
fn start(mode: &str, threads: usize, futex_waits: usize) -> Stuck {
    let s = start_program(&fixture_path(), mode);
    let settled = wait_until(TIMEOUT, || {
        let t = tasks(s.pid);
        t.len() == threads
            && t.iter().all(|(st, sc)| *st == 'S' && sc != "running\n")
            && t.iter().filter(|(_, sc)| sc.starts_with("202 ")).count() >= futex_waits
    });
    assert!(
        settled,
        "why_stuck {mode}: process {} did not settle: {:?}",
        s.pid,
        tasks(s.pid)
    );
    s
}

fn why_cmd(pid: i32) -> Command {
    let mut cmd = Command::new(cli());
    clean_env(&mut cmd);
    cmd.args(["why", &pid.to_string()]);
    cmd
}

fn why(scratch: &Scratch, pid: i32) -> Outcome {
    run(scratch, why_cmd(pid), TIMEOUT)
}

fn assert_has(out: &Outcome, what: &[&str]) {
    for w in what {
        assert!(
            out.stdout.contains(w),
            "no {w:?} in the output\n{}",
            out.dump()
        );
    }
}

fn assert_exit(out: &Outcome, code: i32) {
    assert_eq!(
        out.code(),
        Some(code),
        "{}: exit status\n{}",
        out.cmdline,
        out.dump()
    );
}

/// A thread was inside setenv (holding glibc's envlock) at the fork; the
/// child's own setenv waits forever.
#[test]
fn glibc_internal_lock_in_forked_child() {
    let sc = Scratch::new("why-env");
    let s = start("env", 1, 1);
    let out = why(&sc, s.pid);
    assert_exit(&out, 0);
    assert_has(
        &out,
        &[
            "waits on libc.so.6:setenv.c:envlock",
            "glibc internal lock (futex word), locked",
            "config symbol: \"libc.so.6:envlock\"",
            "owner: not recorded",
            "setenv",
            "cause: thread",
            "the lock was held at the fork by a thread that does not exist in the child",
            "[settings]",
            "libc_locks = \"acquire\"",
        ],
    );
    // The control: the child really is stuck (it still waits after `why`).
    assert!(
        tasks(s.pid)[0].1.starts_with("202 "),
        "the child is not stuck"
    );
}

/// A thread held a heap mutex at the fork; the child locks it.
#[test]
fn heap_mutex_in_forked_child() {
    let sc = Scratch::new("why-heap");
    let s = start("heap", 1, 1);
    let out = why(&sc, s.pid);
    assert_exit(&out, 0);
    let parent = s.child.id();
    assert_has(
        &out,
        &[
            "waits on a heap pthread mutex at 0x",
            "pthread mutex, normal",
            &format!("not in this process (it is a thread of the parent, {parent})"),
            "the lock was held at the fork by a thread that does not exist in the child",
            "held_locks = \"acquire\"",
        ],
    );
    assert!(!out.stdout.contains("libc_locks"), "{}", out.dump());
}

/// The same with a named global: the fix is a `[[lock]]` entry.
#[test]
fn global_mutex_in_forked_child() {
    let sc = Scratch::new("why-global");
    let s = start("global", 1, 1);
    let out = why(&sc, s.pid);
    assert_exit(&out, 0);
    assert_has(
        &out,
        &[
            "waits on why_stuck:g_lock\n",
            "the lock was held at the fork by a thread that does not exist in the child",
            "[[lock]]\n    symbol = \"why_stuck:g_lock\"\n    type = \"mutex\"\n    strategy = \"acquire\"",
        ],
    );
}

/// A global rwlock write-locked by a thread at the fork; the child reads.
#[test]
fn rwlock_in_forked_child() {
    let sc = Scratch::new("why-rwlock");
    let s = start("rwlock", 1, 1);
    let out = why(&sc, s.pid);
    assert_exit(&out, 0);
    assert_has(
        &out,
        &[
            "waits on why_stuck:g_rwlock\n",
            "pthread rwlock, write-locked",
            "it is a thread of the parent",
            "type = \"rwlock\"",
        ],
    );
}

/// A heap binary semaphore taken by a thread at the fork (how CPython
/// 3.12 and older implement its locks): no owner recorded, and the child
/// has no other thread.
#[test]
fn heap_semaphore_in_forked_child() {
    let sc = Scratch::new("why-sem");
    let s = start("sem", 1, 1);
    let out = why(&sc, s.pid);
    assert_exit(&out, 0);
    assert_has(
        &out,
        &[
            "waits on a heap semaphore at 0x",
            "semaphore, value 0, 1 waiting",
            "owner: not recorded",
            "the process has no other thread: nobody can release it",
            "the lock was held at the fork by a thread that does not exist in the child",
            "held_locks = \"acquire\"",
        ],
    );
}

/// CPython's threading.Lock held by a thread at `os.fork`; the child
/// acquires it. Skipped (with the reason) without python3.
#[test]
fn python_lock_in_forked_child() {
    let Some(py) = python() else {
        eprintln!("skipped: no python3");
        return;
    };
    let sc = Scratch::new("why-py");
    let mut cmd = Command::new(py);
    cmd.arg(root().join("tests/py/why_lock.py"));
    let s = start_cmd(cmd, "why_lock.py");
    let settled = wait_until(TIMEOUT, || {
        let t = tasks(s.pid);
        t.len() == 1 && t[0].0 == 'S' && t[0].1.starts_with("202 ")
    });
    assert!(
        settled,
        "the Python child did not settle: {:?}",
        tasks(s.pid)
    );
    let out = why(&sc, s.pid);
    assert_exit(&out, 0);
    assert_has(
        &out,
        &[
            "waits on a heap semaphore at 0x",
            "PyThread_acquire_lock_timed",
            "the lock was held at the fork by a thread that does not exist in the child",
            "held_locks = \"acquire\"",
        ],
    );
}

/// Two live threads, two global mutexes, opposite orders.
#[test]
fn deadlock_between_live_threads() {
    let sc = Scratch::new("why-deadlock");
    let s = start("deadlock", 3, 2);
    let out = why(&sc, s.pid);
    assert_exit(&out, 0);
    assert_has(
        &out,
        &[
            "cause: deadlock between threads of this process",
            "why_stuck:g_lock_a",
            "why_stuck:g_lock_b",
            "alive in this process (waits on why_stuck:g_lock_",
        ],
    );
    assert!(!out.stdout.contains("prevent it"), "{}", out.dump());
}

/// Threads in read, nanosleep, poll, a condition wait, and one waiting on
/// a mutex whose owner is alive (in read): nothing stuck.
#[test]
fn idle_process_is_not_stuck() {
    let sc = Scratch::new("why-idle");
    let s = start("idle", 7, 2);
    let out = why(&sc, s.pid);
    assert_exit(&out, 1);
    assert_has(
        &out,
        &[
            "in read, an ordinary wait",
            "in poll, an ordinary wait",
            "nanosleep, an ordinary wait",
            "in pause, an ordinary wait",
            "waits on a condition variable",
            "waits on why_stuck:why_stuck.c:busy",
            "alive in this process (in read, an ordinary wait)",
            "nothing stuck:",
        ],
    );
    assert!(!out.stdout.contains("cause:"), "{}", out.dump());
}

/// A forked child that does not touch the lock held at the fork.
#[test]
fn idle_forked_child_is_not_stuck() {
    let sc = Scratch::new("why-idlechild");
    let s = start("idlechild", 1, 0);
    let out = why(&sc, s.pid);
    assert_exit(&out, 1);
    assert_has(
        &out,
        &[
            "forked from",
            "in pause, an ordinary wait",
            "nothing stuck:",
        ],
    );
}

/// No such process, a thread id that is not a process id, a bad argument.
#[test]
fn no_such_process() {
    let sc = Scratch::new("why-nopid");
    // Above the largest possible pid (PID_MAX_LIMIT = 4194304).
    let out = why(&sc, 4_194_305);
    assert_exit(&out, 2);
    assert_eq!(
        out.stderr.trim(),
        "forkguard: why: no process 4194305",
        "{}",
        out.dump()
    );
    assert!(out.stdout.is_empty(), "{}", out.dump());
    let s = start("deadlock", 3, 2);
    let thread = fs::read_dir(format!("/proc/{}/task", s.pid))
        .expect("task dir")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .find(|&t| t != s.pid)
        .expect("a second thread");
    let out = why(&sc, thread);
    assert_exit(&out, 2);
    assert!(out.stderr.contains("no process"), "{}", out.dump());
    let mut bad = Command::new(cli());
    bad.args(["why", "abc"]);
    let out = run(&sc, bad, TIMEOUT);
    assert_exit(&out, 2);
}

/// Another user's process: one line, exit 2. As root the command runs as
/// `nobody` (a copy of it, `Scratch::for_others`) on a process of
/// root's; otherwise the caller looks at pid 1.
#[test]
fn another_users_process() {
    let sc = Scratch::new("why-perm");
    let (cmd, pid, _keep) = if is_root() {
        let s = start("idle", 7, 2);
        let copy = sc.for_others(&cli());
        let mut cmd = Command::new(AS_NOBODY[0]);
        cmd.args(&AS_NOBODY[1..AS_NOBODY.len() - 1])
            .arg(&copy)
            .args(["why", &s.pid.to_string()]);
        clean_env(&mut cmd);
        (cmd, s.pid, Some(s))
    } else {
        (why_cmd(1), 1, None)
    };
    let out = run(&sc, cmd, TIMEOUT);
    assert_exit(&out, 2);
    assert_eq!(
        out.stderr.trim(),
        format!("forkguard: why: process {pid}: permission denied (run as its user or as root)"),
        "{}",
        out.dump()
    );
    assert!(out.stdout.is_empty(), "{}", out.dump());
}

/// libc's debug file, as the build-id path names it.
fn libc_debug_file() -> Option<PathBuf> {
    let maps = fs::read_to_string("/proc/self/maps").ok()?;
    let libc = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libc.so.6"))?
        .to_string();
    let out = Command::new("readelf").args(["-n", &libc]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: "))?
        .trim()
        .to_string();
    let p = PathBuf::from(format!(
        "/usr/lib/debug/.build-id/{}/{}.debug",
        &id[..2],
        &id[2..]
    ));
    p.is_file().then_some(p)
}

/// Runs `forkguard why PID` in a private mount namespace where `setup`
/// (shell) first changed /usr/lib/debug. `None` (with the reason printed)
/// when that is impossible here.
fn why_in_namespace(sc: &Scratch, pid: i32, setup: &str) -> Option<Outcome> {
    if !is_root() {
        eprintln!("skipped: needs root (unshare -m, mount)");
        return None;
    }
    let probe = Command::new("unshare").args(["-m", "true"]).status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!("skipped: unshare -m is not possible here");
        return None;
    }
    let script = format!("set -e; {setup}; exec \"$0\" why {pid}");
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c", &script])
        .arg(cli());
    clean_env(&mut cmd);
    Some(run(sc, cmd, TIMEOUT))
}

/// Without libc's debug file: a note naming the package, the lock named
/// by its place in libc, the same cause and fix.
#[test]
fn without_libc_debug_symbols() {
    let sc = Scratch::new("why-nodbg");
    let s = start("env", 1, 1);
    let Some(out) = why_in_namespace(&sc, s.pid, "mount -t tmpfs none /usr/lib/debug") else {
        return;
    };
    assert_exit(&out, 0);
    assert_has(
        &out,
        &[
            "note: libc.so.6: no symbol table and no debug file (install libc6-dbg): only its exported symbols are named",
            "waits on a glibc internal lock (futex word) in libc.so.6's data at libc.so.6+0x",
            // Exported functions still name the wait.
            "stack: __lll_lock_wait_private (libc.so.6)",
            "the lock was held at the fork by a thread that does not exist in the child",
            "libc_locks = \"acquire\"",
        ],
    );
}

/// A truncated debug file is refused with its reason; the answer degrades
/// as without one.
#[test]
fn truncated_libc_debug_file() {
    let sc = Scratch::new("why-truncdbg");
    let Some(debug) = libc_debug_file() else {
        eprintln!("skipped: libc6-dbg is not installed");
        return;
    };
    let bytes = fs::read(&debug).expect("read libc debug file");
    let cut = sc.path("truncated.debug");
    fs::write(&cut, &bytes[..bytes.len() / 3]).expect("write truncated copy");
    let s = start("env", 1, 1);
    let setup = format!("mount --bind '{}' '{}'", cut.display(), debug.display());
    let Some(out) = why_in_namespace(&sc, s.pid, &setup) else {
        return;
    };
    assert_exit(&out, 0);
    assert_has(
        &out,
        &[
            &format!("; {} refused: ", debug.display()),
            "libc.so.6's data at libc.so.6+0x",
            "libc_locks = \"acquire\"",
        ],
    );
}

/// A stripped program whose symbols are in a debug file found through its
/// `.gnu_debuglink` (next to it): the global is named from that file.
/// Built without `-rdynamic`, so that `g_lock` is not in `.dynsym` either.
#[test]
fn program_symbols_from_its_debuglink() {
    let sc = Scratch::new("why-debuglink");
    let prog = sc.path("why_stripped");
    let dbg = sc.path("why_stripped.debug");
    let full = sc.path("why_full");
    let src = root().join("tests/c/why_stuck.c");
    let sh = |args: &[&str]| {
        let st = Command::new(args[0])
            .args(&args[1..])
            .status()
            .expect(args[0]);
        assert!(st.success(), "{args:?} failed");
    };
    let path = |p: &Path| p.to_str().expect("utf-8 path").to_string();
    let (p, d, f) = (path(&prog), path(&dbg), path(&full));
    sh(&["gcc", "-O1", "-g", "-pthread", "-o", &f, &path(&src)]);
    sh(&["objcopy", "--only-keep-debug", &f, &d]);
    sh(&[
        "objcopy",
        "--strip-all",
        &format!("--add-gnu-debuglink={d}"),
        &f,
        &p,
    ]);
    let st = start_program(&prog, "global");
    let settled = wait_until(TIMEOUT, || {
        let t = tasks(st.pid);
        t.len() == 1 && t[0].1.starts_with("202 ")
    });
    assert!(settled, "the stripped child did not settle");
    let out = why(&sc, st.pid);
    assert_exit(&out, 0);
    assert_has(
        &out,
        &[
            "waits on why_stripped:g_lock\n",
            "symbol = \"why_stripped:g_lock\"",
        ],
    );
    // The control: without the debug file the lock has no name.
    fs::remove_file(&dbg).expect("remove debug file");
    let out = why(&sc, st.pid);
    assert_exit(&out, 0);
    assert_has(
        &out,
        &[
            "note: why_stripped: no symbol table and no debug file",
            "in why_stripped's data at why_stripped+0x",
            "held_locks = \"acquire\"",
        ],
    );
}
