//! `held_locks` (SPEC 8.4) on real, unmodified libraries whose locks have
//! no symbol: OpenSSL 3's random generator (a heap `CRYPTO_RWLOCK`, a
//! `pthread_rwlock_t`) and SQLite's static mutex array (in a stripped
//! library). Threads use the library while the main thread forks; each
//! child uses it too (`tests/c/held_ssl.c`, `tests/c/held_sqlite.c`).
//!
//! Each has a control without forkguard, and with `held_locks = "off"`,
//! where some children hang (killed after a deadline and counted); with
//! `reinit` and `acquire` none does; `forkguard audit` names the lock.
//! Skipped (a message on stderr) when the library's headers are missing
//! (scripts/test.sh installs libssl-dev and libsqlite3-dev).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// `tests/c/NAME.c` linked with `-lLIB`, built once; None (and a message)
/// when `header` is missing.
fn program(name: &str, header: &str, lib: &str) -> Option<PathBuf> {
    if !Path::new(header).exists() {
        eprintln!("SKIPPED: {header} is missing (install the library's -dev package)");
        return None;
    }
    static BUILT: OnceLock<Mutex<Vec<(String, PathBuf)>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut v = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = v.iter().find(|(n, _)| n == name) {
        return Some(p.clone());
    }
    let dir = fixture_dir();
    let out = dir.join(name);
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let o = Command::new("gcc")
        .args(["-O1", "-g", "-Wall", "-Wextra", "-pthread", "-o"])
        .arg(&tmp)
        .arg(root().join(format!("tests/c/{name}.c")))
        .arg(format!("-l{lib}"))
        .output()
        .expect("run gcc (install gcc)");
    assert!(
        o.status.success(),
        "gcc failed for {name}:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::rename(&tmp, &out).unwrap();
    v.push((name.to_string(), out.clone()));
    Some(out)
}

fn ssl() -> Option<PathBuf> {
    program("held_ssl", "/usr/include/openssl/rand.h", "crypto")
}

fn sqlite() -> Option<PathBuf> {
    program("held_sqlite", "/usr/include/sqlite3.h", "sqlite3")
}

/// `forks N hung H failed F`, the fixture's last line, of a run that
/// exited 0.
fn tally(out: &Outcome) -> (u32, u32, u32) {
    out.assert_success();
    out.fork_tally()
}

fn config(s: &Scratch, mode: &str, timeout_ms: u32) -> PathBuf {
    let name = format!("{mode}.toml");
    s.config(
        &name,
        &format!(
            "version = 1\n[settings]\nheld_locks = \"{mode}\"\nlock_timeout_ms = {timeout_ms}\nlog = \"{}\"\n",
            s.path(&format!("{name}.log")).display()
        ),
    )
}

/// The program with forkguard and `cfg`, or bare.
fn run_it(
    s: &Scratch,
    prog: &Path,
    cfg: Option<&Path>,
    forks: u32,
    child_ms: u32,
) -> (u32, u32, u32) {
    let mut cmd = match cfg {
        Some(c) => guarded(s, prog, c),
        None => {
            let mut cmd = Command::new(prog);
            clean_env(&mut cmd);
            cmd.current_dir(&s.dir);
            cmd
        }
    };
    cmd.args([forks.to_string(), child_ms.to_string()]);
    tally(&run(s, cmd, Duration::from_secs(180)))
}

/// The control (bare and `off`) hangs some children; reinit and acquire
/// none, in 200 forks each.
fn control_and_fix(tag: &str, prog: &Path, control_forks: u32) {
    let s = Scratch::new(tag);
    let (n, hung, _) = run_it(&s, prog, None, control_forks, 300);
    assert!(hung >= 1, "{tag} without forkguard: {hung} of {n} hung");
    eprintln!("{tag}: without forkguard {hung} of {n} children hung");
    let off = config(&s, "off", 100);
    let (n, hung, _) = run_it(&s, prog, Some(&off), control_forks, 300);
    assert!(hung >= 1, "{tag} held_locks = off: {hung} of {n} hung");
    // acquire gives up on a lock whose holder waits for one it took
    // (SQLite: a thread holding its connection mutex blocks on the
    // allocator mutex prepare took). With a 60 s lock_timeout_ms, a fork
    // that waited such a lock out instead would take a minute: the run's
    // 180 s bound fails the test (before the give-up: 0.7 s a fork with
    // 100 ms, several waits a fork).
    for (mode, timeout_ms) in [("reinit", 100), ("acquire", 60_000)] {
        let cfg = config(&s, mode, timeout_ms);
        let t = run_it(&s, prog, Some(&cfg), 200, 5000);
        assert_eq!(t, (200, 0, 0), "{tag} {mode}");
    }
}

/// `forkguard audit` of the program: its stderr.
fn audit(s: &Scratch, prog: &Path, forks: u32) -> String {
    let mut cmd = Command::new(cli());
    clean_env(&mut cmd);
    cmd.env("FORKGUARD_LIB", lib())
        .arg("audit")
        .arg("--")
        .arg(prog)
        .args([forks.to_string(), "200".to_string()])
        .current_dir(&s.dir);
    let out = run(s, cmd, Duration::from_secs(180));
    tally(&out);
    out.stderr
}

#[test]
fn openssl_rand_bytes_children_hang_without_forkguard_and_finish_with_held_locks() {
    let Some(prog) = ssl() else { return };
    // Measured here: 15-20 % of children hang (a random generator's heap
    // rwlock, which RAND_bytes write-locks: tests/c/held_ssl.c).
    control_and_fix("held-ssl", &prog, 200);
}

#[test]
fn audit_names_openssls_heap_rwlock() {
    let Some(prog) = ssl() else { return };
    let s = Scratch::new("held-ssl-audit");
    let err = audit(&s, &prog, 200);
    let line = err
        .lines()
        .find(|l| l.contains("held by other threads: heap rwlock taken in "))
        .unwrap_or_else(|| panic!("no held lock named:\n{err}"));
    assert!(line.contains("rwlock taken in CRYPTO_THREAD_"), "{line}");
    assert!(line.contains("(libcrypto.so.3+0x"), "{line}");
    assert!(err.contains("audit summary: 200 forks"), "{err}");
}

#[test]
fn sqlite_children_hang_without_forkguard_and_finish_with_held_locks() {
    let Some(prog) = sqlite() else { return };
    // Measured here: about half the children hang (the STATIC_MEM mutex
    // every sqlite3_malloc takes).
    control_and_fix("held-sqlite", &prog, 60);
}

#[test]
fn audit_names_sqlites_static_mutex() {
    let Some(prog) = sqlite() else { return };
    let s = Scratch::new("held-sqlite-audit");
    let err = audit(&s, &prog, 40);
    // In the library's .bss, no symbol (stripped): "static", the function
    // that took it, and where.
    let line = err
        .lines()
        .find(|l| l.contains("held by other threads: ") && l.contains("static mutex taken in "))
        .unwrap_or_else(|| panic!("no static mutex named:\n{err}"));
    assert!(line.contains("(libsqlite3.so.0+0x"), "{line}");
}
