//! The test helpers' own parsers, on the examples SPEC §5 gives: a wrong
//! parser would make the other tests pass or fail for the wrong reason.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

#[test]
fn text_log_lines_from_the_spec_parse() {
    let log = Log::parse(
        "forkguard[4242] fork -> 4250 via forkpty: prepare 3 ok 4.1us, parent 3 ok 1.2us\n\
         forkguard[4250] child of 4242: 6 ok, 1 failed (fd 7 reopen /x: EACCES) 2.0us\n\
         forkguard[7] fork -> -1 (EAGAIN) via fork: prepare 1 ok, 2 failed (lock a (x): ETIMEDOUT, lock b: EBUSY) 3us, parent 1 ok 1.0us\n\
         forkguard: /etc/x.toml:1:2: bad\n\
         forkguard[7] config /x.toml: 3 actions for /bin/x\n",
    );
    log.assert_all_parse();
    assert_eq!(
        log.lines[0],
        LogLine::Fork {
            pid: 4242,
            child: 4250,
            errno: None,
            via: "forkpty".into(),
            phases: vec![
                PhaseSummary {
                    name: "prepare".into(),
                    ok: 3,
                    failed: 0,
                    detail: None,
                    time: "4.1us".into()
                },
                PhaseSummary {
                    name: "parent".into(),
                    ok: 3,
                    failed: 0,
                    detail: None,
                    time: "1.2us".into()
                },
            ],
        }
    );
    assert_eq!(
        log.lines[1],
        LogLine::Child {
            pid: 4250,
            parent: 4242,
            summary: PhaseSummary {
                name: String::new(),
                ok: 6,
                failed: 1,
                detail: Some("fd 7 reopen /x: EACCES".into()),
                time: "2.0us".into(),
            },
        }
    );
    let LogLine::Fork {
        child,
        errno,
        phases,
        ..
    } = &log.lines[2]
    else {
        panic!("{:?}", log.lines[2])
    };
    assert_eq!((*child, errno.as_deref()), (-1, Some("EAGAIN")));
    assert_eq!(phases.len(), 2);
    assert_eq!((phases[0].ok, phases[0].failed), (1, 2));
    assert_eq!(
        phases[0].detail.as_deref(),
        Some("lock a (x): ETIMEDOUT, lock b: EBUSY")
    );
    assert!(matches!(log.lines[3], LogLine::Other(_)));
    assert!(matches!(log.lines[4], LogLine::Other(_)));
    assert_eq!(log.forks().len(), 2);
    assert_eq!(log.children().len(), 1);
}

#[test]
fn malformed_log_lines_are_caught() {
    for bad in [
        "forkguard[1] fork -> 2 via fork prepare 1 ok 1us",
        "forkguard[1] fork -> 2 via fork: prepare one ok 1us",
        "forkguard[1] child of 2: 1 ok",
        "forkguard[1] fork-> 2 via fork: prepare 1 ok 1us",
    ] {
        let log = Log::parse(bad);
        assert_eq!(log.unparsed().len(), 1, "{bad:?} should not parse");
    }
}

#[test]
fn json_reader() {
    let j = Json::parse(
        r#"{"ts": 1700000000.25, "pid": 42, "event": "fork", "via": "fork", "child": -1,
            "errno": "EAGAIN", "phase_us": 3.5, "actions_ok": 2, "actions_failed": 0,
            "errors": ["a \"q\" \u00e9", "b"], "x": [true, false, null, {}]}"#,
    )
    .expect("valid json");
    assert_eq!(j.get("ts").and_then(Json::as_f64), Some(1_700_000_000.25));
    assert_eq!(j.get("child").and_then(Json::as_i64), Some(-1));
    assert_eq!(j.get("event").and_then(Json::as_str), Some("fork"));
    let errors = j.get("errors").and_then(Json::as_arr).expect("errors");
    assert_eq!(errors[0].as_str(), Some("a \"q\" \u{e9}"));
    assert!(Json::parse("{\"a\": 1} x").is_err());
    assert!(Json::parse("{\"a\" 1}").is_err());
    assert!(Json::parse("[1, 2").is_err());
}

#[test]
fn trace_reader() {
    let s = Scratch::new("selftest");
    std::fs::write(
        s.trace_path(),
        "prepare 10\nparent-main 10 11 1 1\nchild 11\n",
    )
    .expect("write");
    let t = s.trace();
    assert_eq!(t.one("prepare").pid(), 10);
    assert_eq!(t.one("parent-main").nums, [10, 11, 1, 1]);
    assert_eq!(t.words_of(11), ["child"]);
    assert!(t.index_of("prepare", 10) < t.index_of("child", 11));
}

/// Issue 17: what a test runs as another user must not depend on where the
/// checkout is. Here `forker` sits in a private (0700) directory, as in a
/// clone under /root or in a `mktemp -d` directory: `preloaded_as_nobody`
/// runs copies nobody can reach (the program and the library), and the fork
/// is guarded. Control: nobody cannot run the program where it is.
/// (scripts/test.sh also keeps the library and the fixtures of the whole
/// suite in a 0700 directory.)
#[test]
fn what_nobody_runs_is_reachable_from_a_private_checkout() {
    const NAME: &str = "what_nobody_runs_is_reachable_from_a_private_checkout";
    if !is_root() {
        eprintln!("SKIP {NAME}: needs root (switches to nobody)");
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("SKIP {NAME}: setpriv (util-linux) is not installed");
        return;
    }
    let private = Scratch::new("private-checkout");
    fs::set_permissions(&private.dir, fs::Permissions::from_mode(0o700)).expect("chmod");
    let forker = private.path("forker");
    fs::copy(fixture("forker"), &forker).expect("copy forker");
    assert!(reachable_by_others(&private.dir).is_err());

    let s = Scratch::new("selftest-nobody");
    // nobody writes the trace and the log; the config stays root's.
    fs::set_permissions(&s.dir, fs::Permissions::from_mode(0o1777)).expect("chmod");
    let cfg = s.config(
        "fg.toml",
        &format!("{}{}", header(&s.path("fg.log"), ""), trace_calls()),
    );
    let as_nobody = |mut c: Command| {
        clean_env(&mut c);
        c.env("FORKGUARD_CONFIG", &cfg)
            .env("FGT_TRACE", s.trace_path())
            .current_dir(&s.dir);
        run(&s, c, TIMEOUT)
    };

    // Control: env (as nobody) cannot execute the private program: 126.
    let mut ctl = Command::new(AS_NOBODY[0]);
    ctl.args(&AS_NOBODY[1..]).arg(&forker).arg("fork");
    let out = as_nobody(ctl);
    assert_eq!(out.code(), Some(126), "control: {}", out.dump());
    assert_eq!(
        s.trace().count("main-before"),
        0,
        "control: {}",
        s.trace().raw
    );

    let c = preloaded_as_nobody(&s, &forker, "fork");
    let preload = c
        .get_args()
        .find_map(|a| a.to_str()?.strip_prefix("LD_PRELOAD=").map(PathBuf::from))
        .expect("an LD_PRELOAD= word");
    reachable_by_others(preload.parent().expect("library dir")).expect("the library copy");
    let out = as_nobody(c);
    out.assert_config_accepted().assert_success();
    let t = s.trace();
    assert_eq!(
        (t.count("prepare"), t.count("parent"), t.count("child")),
        (1, 1, 1),
        "{}\n{}",
        t.raw,
        out.dump()
    );
}
