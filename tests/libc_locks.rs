//! `[settings] libc_locks` (SPEC 8.3), `type = "futex"` (8.2) and symbols
//! from separate debug files (8.1), on real programs: `tests/c/libc_locks.c`
//! calls a glibc function in a thread while it forks, and each child calls
//! it too. Without forkguard children hang (or, for `dlopen`, abort); with
//! the profile, 0 of 200 hang or fail. Needs `libc6-dbg` (scripts/test.sh
//! installs it) and `gdb` (to check the loader's lock offsets).

mod common;
mod lock_support;

use common::Scratch;
use lock_support::{plain, result, run_guarded, Kind};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Every lock class of the issue, and whether `reinit` is enough for it.
const CLASSES: &[(&str, bool)] = &[
    ("setenv", true),
    ("localtime", true),
    ("syslog", true),
    ("setlocale", true),
    ("random", true),
    ("getaddrinfo", true),
    ("gethostbyname", true),
    ("atexit", true),
    // The loader's state is half-done when a dlopen was running: only
    // waiting for it (acquire) helps; glibc already resets the lock.
    ("dlopen", false),
];

const ITER: &str = "200";

fn fixture() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| lock_support::build("libc_locks", &["libc_locks.c"], Kind::Exported))
        .clone()
}

/// The small library the `dlopen` class loads and unloads.
fn dl_lib() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = common::lib()
            .parent()
            .expect("lib dir")
            .join("lock-fixtures");
        fs::create_dir_all(&dir).expect("fixture dir");
        let src = dir.join("fgt_dl.c");
        fs::write(&src, "int fgt_dl_value = 1;\n").expect("write");
        let out = dir.join("libfgt_dl.so");
        let tmp = dir.join(format!(".libfgt_dl.{}.tmp", std::process::id()));
        let o = Command::new("gcc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&tmp)
            .arg(&src)
            .output()
            .expect("gcc");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        fs::rename(&tmp, &out).expect("rename");
        out
    })
    .clone()
}

fn with_dl(mut cmd: Command) -> Command {
    cmd.env("FGT_DL_LIB", dl_lib());
    cmd
}

fn guarded_run(s: &Scratch, tag: &str, body: &str, args: &[&str]) -> lock_support::Guarded {
    // Like `lock_support::run_accepted`, with FGT_DL_LIB for the dlopen class.
    let log = s.path(&format!("{tag}.log"));
    let text = lock_support::config(&log, body);
    let cmd = with_dl(lock_support::guarded(
        s,
        &format!("{tag}.toml"),
        &text,
        &fixture(),
        args,
    ));
    let r = result(s, cmd);
    r.out.assert_config_accepted();
    lock_support::Guarded { r, log_path: log }
}

#[track_caller]
fn assert_clean(r: &lock_support::Result_, what: &str) {
    assert_eq!(
        (r.get("ok"), r.get("hung"), r.get("failed")),
        (ITER, "0", "0"),
        "{what}: every child must finish\n{}",
        r.out.dump()
    );
}

/// The controls: each class hangs or kills a child without forkguard.
#[test]
fn without_forkguard_every_class_hangs_a_child() {
    let s = Scratch::new("libc-plain");
    for (class, _) in CLASSES {
        let r = result(
            &s,
            with_dl(plain(&s, &fixture(), &[class, "300", "300", "stop"])),
        );
        assert!(
            r.int("hung") + r.int("failed") >= 1,
            "{class}: the fixture must show the bug without forkguard\n{}",
            r.out.dump()
        );
    }
    let r = result(
        &s,
        plain(&s, &fixture(), &["futex_struct", "300", "300", "stop"]),
    );
    assert!(r.int("hung") >= 1, "futex_struct control\n{}", r.out.dump());
}

#[test]
fn acquire_guards_every_class() {
    let s = Scratch::new("libc-acquire");
    // A generous timeout: on a loaded machine the thread inside dlopen can
    // be off the CPU for longer than the 100 ms default, and a lock not
    // taken in time is only reset (see the next test).
    let body = "libc_locks = \"acquire\"\nlock_timeout_ms = 5000\n";
    for (class, _) in CLASSES {
        let r = guarded_run(&s, class, body, &[class, ITER]);
        assert_clean(&r, class);
    }
}

/// A lock that cannot be taken within `lock_timeout_ms` is reported once
/// in the log and reset in the child all the same.
#[test]
fn a_lock_not_taken_in_time_is_logged_and_reset() {
    let s = Scratch::new("libc-late");
    let body = "libc_locks = \"acquire\"\nlock_timeout_ms = 0\n";
    let r = guarded_run(&s, "late", body, &["setenv", ITER]);
    assert_clean(&r, "setenv, timeout 0");
    let log = fs::read_to_string(&r.log_path).expect("log");
    assert!(
        log.contains("] libc_locks: 1 lock(s) not taken within 0 ms (first: setenv.c:envlock): reset in the child"),
        "{log}"
    );
}

#[test]
fn reinit_is_enough_for_every_class_but_dlopen() {
    let s = Scratch::new("libc-reinit");
    let body = "libc_locks = \"reinit\"\n";
    for (class, enough) in CLASSES {
        if *enough {
            let r = guarded_run(&s, class, body, &[class, ITER]);
            assert_clean(&r, class);
        }
    }
}

/// The same locks named by hand, with `type = "futex"`: a static shared by
/// 58 files named by its source file, a unique one, and a futex word
/// inside a struct (`offset`).
#[test]
fn the_same_locks_named_by_hand() {
    let s = Scratch::new("libc-hand");
    for (class, sym, extra) in [
        ("random", "libc.so.6:random.c:lock", ""),
        ("setenv", "libc.so.6:envlock", ""),
        ("setenv", "libc.so.6:setenv.c:envlock", ""),
        ("futex_struct", "g_obj", "offset = 8"),
    ] {
        for strategy in ["acquire", "reinit"] {
            let body = lock_support::lock(sym, "futex", strategy, extra);
            let r = guarded_run(&s, &format!("{class}-{strategy}"), &body, &[class, ITER]);
            assert_clean(&r, &format!("{sym} {strategy}"));
        }
    }
}

/// SPEC 8.3: the program's own fork handlers call what the locks guard (a
/// prepare handler calls syslog and setenv, a child handler setenv and
/// localtime_r): with the profile they neither hang nor fail.
#[test]
fn fork_handlers_that_use_the_guarded_functions() {
    let s = Scratch::new("libc-atfork");
    let r = result(
        &s,
        plain(&s, &fixture(), &["setenv", "300", "300", "stop", "atfork"]),
    );
    assert!(r.int("hung") >= 1, "control\n{}", r.out.dump());
    for strategy in ["acquire", "reinit"] {
        for class in ["setenv", "syslog", "localtime"] {
            let body = format!("libc_locks = \"{strategy}\"\nlock_timeout_ms = 5000\n");
            let r = guarded_run(
                &s,
                &format!("{class}-{strategy}"),
                &body,
                &[class, ITER, "3000", "atfork"],
            );
            assert_clean(&r, &format!("{class} with fork handlers, {strategy}"));
        }
    }
}

fn check_program(s: &Scratch, config: &str, program: &Path) -> common::Outcome {
    let cfg = s.config("check.toml", config);
    let mut cmd = Command::new(common::cli());
    common::clean_env(&mut cmd);
    cmd.arg("check").arg(&cfg).arg("--program").arg(program);
    common::run(s, cmd, common::TIMEOUT)
}

/// `check --program` lists every lock of the profile, found, with where;
/// the loader's lock is where gdb (reading ld.so's DWARF) says it is.
#[test]
fn check_program_lists_the_profile() {
    let s = Scratch::new("libc-check");
    let out = check_program(
        &s,
        "version = 1\n[settings]\nlibc_locks = \"acquire\"\n",
        &fixture(),
    );
    out.assert_success();
    let text = &out.stdout;
    assert!(
        text.contains("libc_locks = acquire: 37 of 37 glibc locks found"),
        "{text}"
    );
    for want in [
        "found   setenv.c:envlock (futex) at libc.so.6+0x",
        "found   tzset.c:tzset_lock (futex)",
        "found   syslog.c:syslog_lock (futex)",
        "found   __libc_setlocale_lock (rwlock)",
        "found   random.c:lock (futex)",
        "found   resolv_conf.c:lock (futex)",
        "found   __exit_funcs_lock (futex)",
        "found   _dl_load_write_lock (recursive mutex)",
    ] {
        assert!(text.contains(want), "{want}\n{text}");
    }
    assert!(!text.contains("libc_locks: missing"), "{text}");
    // The loader's lock, found by its shape, against the debug info.
    let gdb = Command::new("gdb")
        .args([
            "-batch",
            "-ex",
            "p/x (long)&_rtld_global._dl_load_lock",
            "/lib64/ld-linux-x86-64.so.2",
        ])
        .output()
        .expect("run gdb (scripts/test.sh installs it)");
    let g = String::from_utf8_lossy(&gdb.stdout);
    let addr = g
        .rsplit("= ")
        .next()
        .map(str::trim)
        .unwrap_or_default()
        .to_string();
    assert!(addr.starts_with("0x"), "gdb: {g}");
    assert!(
        text.contains(&format!(
            "found   _dl_load_lock (recursive mutex) at ld-linux-x86-64.so.2+{addr}:"
        )),
        "gdb says {addr}\n{text}"
    );
}

/// A program whose only symbol table is in a separate debug file found
/// through its `.gnu_debuglink`; and the same name with a debug file of
/// another build, a truncated one, a corrupt one.
#[test]
fn debug_files_found_checked_and_refused() {
    let s = Scratch::new("libc-debuglink");
    let dir = s.path("prog");
    fs::create_dir_all(dir.join(".debug")).expect("mkdir");
    let build = |out: &Path, id: &str| {
        let o = Command::new("gcc")
            .args([
                "-O1",
                "-g",
                "-pthread",
                &format!("-Wl,--build-id=0x{id}"),
                "-o",
            ])
            .arg(out)
            .arg(common::root().join("tests/c/libc_locks.c"))
            .output()
            .expect("gcc");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let sh = |args: &[&str]| {
        let o = Command::new(args[0])
            .args(&args[1..])
            .output()
            .expect("binutils");
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let prog = dir.join("ll");
    let other = dir.join("ll_other");
    build(&prog, "a1a2a3a4a5a6a7a8a9a0");
    build(&other, "b1b2b3b4b5b6b7b8b9b0");
    let p = prog.to_str().unwrap();
    let dbg = dir.join("ll.debug");
    let d = dbg.to_str().unwrap();
    sh(&["objcopy", "--only-keep-debug", p, d]);
    sh(&["strip", "--strip-all", p]);
    sh(&["objcopy", &format!("--add-gnu-debuglink={d}"), p]);
    let cfg = "[[lock]]\nsymbol = \"g_obj\"\ntype = \"futex\"\noffset = 8\n";
    // Found through the debuglink, in the object's directory: children fine.
    let r = run_guarded(&s, "found", cfg, &prog, &["futex_struct", ITER]);
    r.out.assert_config_accepted();
    assert_clean(&r, "g_obj from ll.debug");
    // In .debug/ too.
    fs::rename(&dbg, dir.join(".debug/ll.debug")).expect("mv");
    let r = run_guarded(&s, "found-sub", cfg, &prog, &["futex_struct", "20"]);
    r.out.assert_config_accepted();
    fs::rename(dir.join(".debug/ll.debug"), &dbg).expect("mv");
    // Refused: another build's debug file under the same name.
    let good = fs::read(&dbg).expect("read");
    let o = other.to_str().unwrap();
    sh(&["objcopy", "--only-keep-debug", o, d]);
    let e = refused(&s, "other", cfg, &prog);
    assert!(
        e.contains("build-id b1b2b3b4b5b6b7b8b9b0 differs from the object's a1a2a3a4a5a6a7a8a9a0"),
        "{e}"
    );
    // Truncated, then not ELF at all.
    fs::write(&dbg, &good[..good.len() / 3]).expect("write");
    let e = refused(&s, "truncated", cfg, &prog);
    assert!(e.contains("truncated"), "{e}");
    fs::write(&dbg, vec![0x5a; 4096]).expect("write");
    let e = refused(&s, "corrupt", cfg, &prog);
    assert!(e.contains("not an ELF file"), "{e}");
}

/// The config is rejected whole, with a located message naming the
/// refused debug file; the program runs unguarded (`on_error = "warn"`).
fn refused(s: &Scratch, tag: &str, cfg: &str, prog: &Path) -> String {
    let r = run_guarded(s, tag, cfg, prog, &["random", "2"]);
    let errs = lock_support::config_errors(&r.out);
    assert_eq!(errs.len(), 1, "{tag}: one error\n{}", r.out.dump());
    let e = errs[0].clone();
    assert!(
        e.contains(&format!(
            "{tag}.toml:7:10: unknown symbol \"g_obj\": debug file "
        )),
        "{e}"
    );
    e
}

/// Bad names and offsets: a located error, the whole config refused (a
/// good `[[lock]]` before the bad one is not applied either: the children
/// hang as without forkguard).
#[test]
fn bad_names_and_offsets_are_located_errors() {
    let s = Scratch::new("libc-bad");
    let good = lock_support::lock("libc.so.6:random.c:lock", "futex", "acquire", "");
    for (tag, bad, want) in [
        (
            "ambiguous",
            lock_support::lock("libc.so.6:lock", "futex", "acquire", ""),
            "13:10: 58 static symbols named lock in /lib/x86_64-linux-gnu/libc.so.6: ambiguous; name one as \"libc.so.6:FILE:lock\" (FILE: abort.c, bindresvport.c, check_pf.c,",
        ),
        (
            "missing",
            lock_support::lock("libc.so.6:fgt_no_such_lock", "futex", "acquire", ""),
            "13:10: unknown symbol \"libc.so.6:fgt_no_such_lock\"",
        ),
        (
            "wrong-file",
            lock_support::lock("libc.so.6:setenv.c:lock", "futex", "acquire", ""),
            "13:10: unknown symbol \"libc.so.6:setenv.c:lock\"",
        ),
        (
            "offset",
            lock_support::lock("g_obj", "futex", "acquire", "offset = 14"),
            "16:10: offset = 14 is past the end of g_obj (16 bytes",
        ),
        (
            "zero-offset",
            "[[zero]]\nsymbol = \"g_obj\"\noffset = 16\nsize = 1\n".to_string(),
            "14:10: offset = 16 is past the end of g_obj",
        ),
    ] {
        let body = format!("{good}\n{bad}");
        let r = run_guarded(&s, tag, &body, &fixture(), &["random", "300", "300", "stop"]);
        let errs = lock_support::config_errors(&r.out);
        assert_eq!(errs.len(), 1, "{tag}\n{}", r.out.dump());
        assert!(errs[0].contains(&format!("{tag}.toml:{want}")), "{tag}: {}", errs[0]);
        assert!(
            r.int("hung") >= 1,
            "{tag}: the good lock must not be applied either\n{}",
            r.out.dump()
        );
    }
}

/// Without the C library's debug symbols (an empty `/usr/lib/debug` in a
/// private mount namespace): one warning naming the package, and the rest
/// of the config applies (a `[[lock]]` of the program's own, and the
/// loader's locks, which need no debug file). Needs root and `unshare -m`:
/// skipped with the reason otherwise.
#[test]
fn without_debug_symbols_one_warning_and_the_rest_applies() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root (unshare -m, mount)");
        return;
    }
    let probe = Command::new("unshare").args(["-m", "true"]).status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!("skipped: unshare -m impossible here");
        return;
    }
    let s = Scratch::new("libc-nodebug");
    let log = s.path("nodebug.log");
    let body = format!(
        // Only the fixture: not unshare, sh or mount, which the preload reaches too.
        "libc_locks = \"acquire\"\nprograms = [\"libc_locks\"]\n\n{}",
        lock_support::lock("g_obj", "futex", "acquire", "offset = 8")
    );
    let cfg = s.config("nodebug.toml", &lock_support::config(&log, &body));
    let mut cmd = Command::new("unshare");
    common::clean_env(&mut cmd);
    cmd.args([
        "-m",
        "sh",
        "-c",
        "mount -t tmpfs none /usr/lib/debug && exec \"$@\"",
        "sh",
    ])
    .arg(fixture())
    .args(["futex_struct", ITER])
    .env("LD_PRELOAD", common::lib())
    .env("FORKGUARD_CONFIG", &cfg)
    // The addresses cache (kept per C library build) would answer
    // without the debug file.
    .env("FORKGUARD_PLAN_CACHE", "off")
    .current_dir(&s.dir);
    let out = common::run(&s, cmd, lock_support::TIMEOUT);
    out.assert_success();
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("forkguard:"))
        .collect();
    assert_eq!(
        warnings,
        ["forkguard: libc_locks: /lib/x86_64-linux-gnu/libc.so.6: no debug symbols for it: install libc6-dbg"],
        "{}",
        out.dump()
    );
    let kv = out.kv("result ");
    assert_eq!(
        (kv["ok"].as_str(), kv["hung"].as_str()),
        (ITER, "0"),
        "the [[lock]] still applies\n{}",
        out.dump()
    );
}
