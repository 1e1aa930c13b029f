//! `[[call]] args` (SPEC 8.8) and the GNU OpenMP recipe: a child of a
//! process whose libgomp pool is alive hangs in its first parallel region
//! (control), and `omp_pause_resource_all(omp_pause_hard)` in prepare
//! (config/openmp.toml) makes every child finish.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// `tests/c/NAME.c` built with `gcc -fopenmp` (not one of the common
/// fixtures: only this file needs OpenMP), once per test binary.
fn omp_fixture(name: &str, shared: bool) -> PathBuf {
    static BUILT: OnceLock<std::sync::Mutex<Vec<(String, PathBuf)>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut list = built.lock().unwrap_or_else(|e| e.into_inner());
    let key = format!("{name}{}", if shared { ".so" } else { "" });
    if let Some((_, p)) = list.iter().find(|(k, _)| *k == key) {
        return p.clone();
    }
    let dir = root().join("target/fixtures");
    std::fs::create_dir_all(&dir).expect("create target/fixtures");
    let out = if shared {
        dir.join(format!("lib{name}.so"))
    } else {
        dir.join(name)
    };
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut cmd = Command::new("gcc");
    cmd.args(["-O1", "-g", "-Wall", "-fopenmp", "-pthread"]);
    if shared {
        cmd.args(["-shared", "-fPIC"]);
    } else {
        cmd.arg("-rdynamic");
    }
    cmd.arg("-I").arg(root().join("tests/c"));
    cmd.arg("-o")
        .arg(&tmp)
        .arg(root().join(format!("tests/c/{name}.c")));
    let o = cmd.output().expect("run gcc");
    assert!(
        o.status.success(),
        "gcc -fopenmp {name}.c failed (is libgomp installed? apt-get install gcc):\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::rename(&tmp, &out).expect("rename fixture");
    list.push((key, out.clone()));
    out
}

const RECIPE: &str = "\n[[call]]\nphase = \"prepare\"\nsymbol = \"omp_pause_resource_all\"\nargs = [2]\noptional = true\n";

/// `omp_fork FORKS DEADLINE_MS MODE`, guarded by `config` or (None) not
/// preloaded at all; returns (ok, hung, bad).
fn omp_fork(
    s: &Scratch,
    config: Option<&str>,
    forks: u32,
    deadline_ms: u32,
    mode: &str,
) -> (u32, u32, u32) {
    let prog = omp_fixture("omp_fork", false);
    let mut cmd = match config {
        Some(text) => {
            let cfg = s.config(
                "fg.toml",
                &format!("{}{text}", header(&s.path("fg.log"), "")),
            );
            guarded(s, &prog, &cfg)
        }
        None => {
            let mut c = Command::new(&prog);
            clean_env(&mut c);
            c
        }
    };
    cmd.args([forks.to_string(), deadline_ms.to_string(), mode.to_string()]);
    // The control's children each wait out the deadline.
    let budget = Duration::from_millis(u64::from(forks) * u64::from(deadline_ms)) + TIMEOUT;
    let out = run(s, cmd, budget);
    out.assert_success().assert_config_accepted();
    let line = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("omp-result "))
        .unwrap_or_else(|| panic!("no result line\n{}", out.dump()));
    let n: Vec<u32> = line
        .split_whitespace()
        .map(|w| w.parse().expect("number"))
        .collect();
    assert_eq!(n[0], forks, "{}", out.dump());
    (n[1], n[2], n[3])
}

#[test]
fn openmp_children_hang_without_the_recipe() {
    for mode in ["plain", "threads", "nested"] {
        let s = Scratch::new("omp-control");
        let (ok, hung, bad) = omp_fork(&s, None, 3, 400, mode);
        assert_eq!(
            (ok, hung, bad),
            (0, 3, 0),
            "{mode}: every child should hang (GCC bug 52303)"
        );
        // forkguard with a call into libgomp that does not pause the pool
        // changes nothing.
        let other = calls(&[("prepare", "omp_get_num_threads")]);
        let (ok, hung, _) = omp_fork(&s, Some(&other), 2, 400, mode);
        assert_eq!((ok, hung), (0, 2), "{mode}: a config without the recipe");
    }
}

#[test]
fn openmp_recipe_no_child_hangs_in_200_forks() {
    for mode in ["plain", "threads", "nested"] {
        let s = Scratch::new("omp-recipe");
        let (ok, hung, bad) = omp_fork(&s, Some(RECIPE), 200, 10_000, mode);
        assert_eq!((ok, hung, bad), (200, 0, 0), "{mode}");
        let log = Log::read(&s.path("fg.log"));
        log.assert_all_parse();
        let forks = log.forks();
        assert_eq!(forks.len(), 200, "{mode}");
        assert!(
            forks
                .iter()
                .all(|f| phase(f, "prepare").is_some_and(|p| p.ok == 1 && p.failed == 0)),
            "{mode}: the pause runs in every prepare\n{}",
            log.raw
        );
    }
}

/// The recipe as shipped in config/ works as is.
#[test]
fn shipped_recipe_is_the_tested_one() {
    let text =
        std::fs::read_to_string(root().join("config/openmp.toml")).expect("config/openmp.toml");
    let squeezed: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    for line in [
        "[[call]]",
        "phase = \"prepare\"",
        "symbol = \"omp_pause_resource_all\"",
        "args = [2]",
        "optional = true",
    ] {
        assert!(
            squeezed.contains(line),
            "config/openmp.toml lacks {line}:\n{text}"
        );
    }
    let s = Scratch::new("omp-shipped");
    let prog = omp_fixture("omp_fork", false);
    let mut cmd = guarded(&s, &prog, &root().join("config/openmp.toml"));
    cmd.args(["20", "10000", "plain"]);
    let out = run(&s, cmd, TIMEOUT);
    out.assert_success().assert_config_accepted();
    assert!(
        out.stdout.contains("omp-result 20 20 0 0"),
        "{}",
        out.dump()
    );
}

/// Python with an OpenMP-built extension (a `-fopenmp` shared object loaded
/// with ctypes): the same hang, the same cure.
#[test]
fn openmp_in_python_extension() {
    let Some(py) = python() else {
        eprintln!("SKIPPED openmp_in_python_extension: python3 is not installed");
        return;
    };
    let lib = omp_fixture("omp_lib", true);
    let script = root().join("tests/py/omp_ext.py");
    for (config, forks, deadline, want_ok) in
        [(None, 2u32, 400u32, 0u32), (Some(RECIPE), 50, 10_000, 50)]
    {
        let s = Scratch::new("omp-py");
        let mut cmd = match config {
            Some(text) => {
                let cfg = s.config(
                    "fg.toml",
                    &format!("{}{text}", header(&s.path("fg.log"), "")),
                );
                guarded(&s, &py, &cfg)
            }
            None => {
                let mut c = Command::new(&py);
                clean_env(&mut c);
                c
            }
        };
        cmd.arg(&script)
            .arg(&lib)
            .arg(forks.to_string())
            .arg(deadline.to_string());
        let budget = Duration::from_millis(u64::from(forks) * u64::from(deadline)) + TIMEOUT;
        let out = run(&s, cmd, budget);
        out.assert_success().assert_config_accepted();
        assert!(
            out.stdout
                .contains(&format!("omp-py forks={forks} ok={want_ok} ")),
            "{:?}: {}",
            config.is_some(),
            out.dump()
        );
    }
}

/// Six values reach the function intact, in every phase; two arguments
/// reach a two-argument function.
#[test]
fn args_reach_the_function_intact() {
    let s = Scratch::new("args");
    let six = "args = [-9223372036854775808, 9223372036854775807, 0, -1, 0x123456789abcdef, 42]";
    let mut text = header(&s.path("fg.log"), "");
    for phase in ["prepare", "parent", "child"] {
        text.push_str(&format!(
            "\n[[call]]\nphase = \"{phase}\"\nsymbol = \"fgt_args6\"\n{six}\n"
        ));
    }
    text.push_str("\n[[call]]\nphase = \"child\"\nsymbol = \"fgt_args2\"\nargs = [7, -7]\n");
    let cfg = s.config("fg.toml", &text);
    let prog = extra_fixture("call_args", false);
    let out = run(&s, guarded(&s, &prog, &cfg), TIMEOUT);
    out.assert_success().assert_config_accepted();
    let t = s.trace();
    let child = t.one("reaped").nums[0];
    let six = [i64::MIN, i64::MAX, 0, -1, 0x123456789abcdef, 42];
    let calls = t.with("args6");
    assert_eq!(calls.len(), 3, "{}", t.raw);
    let parent = out_pid(&calls, child);
    assert_eq!(
        calls.iter().filter(|e| e.pid() == parent).count(),
        2,
        "{}",
        t.raw
    );
    assert_eq!(
        calls.iter().filter(|e| e.pid() == child).count(),
        1,
        "{}",
        t.raw
    );
    for e in &calls {
        assert_eq!(&e.nums[1..], &six, "{}", t.raw);
    }
    let two = t.one("args2");
    assert_eq!(two.nums, vec![child, 7, -7]);
    // The log names the call with its arguments.
    let log = std::fs::read_to_string(s.path("fg.log")).unwrap_or_default();
    assert!(log.contains(" ok "), "{log}");
}

fn out_pid(calls: &[&Event], child: i64) -> i64 {
    calls
        .iter()
        .map(|e| e.pid())
        .find(|&p| p != child)
        .expect("a call in the parent")
}

/// Bad `args` are config errors at their location, from `forkguard check`
/// and from the library at load.
#[test]
fn bad_args_are_located() {
    let s = Scratch::new("args-bad");
    for (args, want) in [
        ("[1, 2, 3, 4, 5, 6, 7]", "5:27: at most 6 args"),
        (
            "[\"hard\"]",
            "5:9: args are signed 64-bit integers, not a string",
        ),
        ("[2.0]", "5:9: args are signed 64-bit integers, not a float"),
        (
            "[9223372036854775808]",
            "5:9: 9223372036854775808 is out of range",
        ),
        (
            "[-9223372036854775809]",
            "5:9: -9223372036854775809 is out of range",
        ),
    ] {
        let cfg = s.config(
            "bad.toml",
            &format!("version = 1\n[[call]]\nphase = \"prepare\"\nsymbol = \"fgt_args6\"\nargs = {args}\n"),
        );
        let out = Command::new(cli())
            .arg("check")
            .arg(&cfg)
            .output()
            .expect("run forkguard check");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args}: {err}");
        let want = format!("forkguard: {}:{want}", cfg.display());
        assert!(err.starts_with(&want), "{args}:\n want {want}\n got {err}");
        // The library refuses it the same way, once, and runs unguarded.
        let prog = extra_fixture("call_args", false);
        let run_out = run(&s, guarded(&s, &prog, &cfg), TIMEOUT);
        run_out.assert_success();
        assert_eq!(
            run_out.stderr.matches(&want).count(),
            1,
            "{}",
            run_out.dump()
        );
    }
    // And check shows a good one as a call with its arguments.
    let cfg = s.config("good.toml", &format!("version = 1{RECIPE}"));
    let out = Command::new(cli())
        .arg("check")
        .arg(&cfg)
        .output()
        .expect("run forkguard check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("call omp_pause_resource_all(2) (optional)"),
        "{text}"
    );
}

/// `forkguard audit` says when a fork happens with a live OpenMP pool, in
/// text and JSON, and says nothing of the kind for a program without one.
#[test]
fn audit_sees_a_live_openmp_pool() {
    let s = Scratch::new("omp-audit");
    let prog = omp_fixture("omp_fork", false);
    for (format, want) in [
        (
            "text",
            "GNU OpenMP pool alive: 3 worker threads waiting in libgomp",
        ),
        ("json", "\"openmp_pool\":{\"workers\":3,"),
    ] {
        let mut cmd = Command::new(cli());
        clean_env(&mut cmd);
        cmd.args(["audit", "--format", format, "--"])
            .arg(&prog)
            .args(["1", "300", "plain"]);
        let out = run(&s, cmd, TIMEOUT);
        out.assert_success();
        assert_eq!(
            out.stderr.matches(want).count(),
            1,
            "{format}\n{}",
            out.dump()
        );
    }
    let mut cmd = Command::new(cli());
    clean_env(&mut cmd);
    cmd.args(["audit", "--"])
        .arg(extra_fixture("call_args", false));
    let out = run(&s, cmd, TIMEOUT);
    out.assert_success();
    assert!(out.stderr.contains("audit fork via fork"), "{}", out.dump());
    assert!(!out.stderr.contains("OpenMP"), "{}", out.dump());
}

/// The entry `audit --suggest` writes for it is the shipped recipe.
#[test]
fn suggested_entry_is_the_recipe() {
    let entry = forkguard_core::recipes::openmp_entry();
    let s = Scratch::new("omp-suggest");
    let cfg = s.config("s.toml", &format!("version = 1\n{entry}"));
    let out = Command::new(cli())
        .arg("check")
        .arg(&cfg)
        .output()
        .expect("forkguard check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("call omp_pause_resource_all(2) (optional)")
    );
}
