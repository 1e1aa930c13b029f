//! Property tests of the config parser (issue 6, fuzzing): whatever the
//! input, `Plan::parse` returns (no panic), an error points inside the
//! input, and a valid config's plan is the same every time.
//!
//! Case counts are kept small so `cargo test -p forkguard-core` stays fast;
//! `PROPTEST_CASES=20000` runs more by hand. The coverage-guided fuzzer for
//! the same properties is `fuzz/` (scripts/fuzz.sh).

use forkguard_core::{ConfigError, Plan};
use proptest::prelude::*;

const FILE: &str = "prop.toml";

/// The error names the file and points at a line and column of `text`
/// (one past the end of a line at most: "expected a value" at end of line).
fn assert_inside(text: &str, e: &ConfigError) -> Result<(), TestCaseError> {
    prop_assert_eq!(&e.file, FILE);
    let lines: Vec<&str> = text.split('\n').collect();
    prop_assert!(
        e.line >= 1 && e.line <= lines.len(),
        "line {} outside the input ({} lines): {}",
        e.line,
        lines.len(),
        e
    );
    let width = lines[e.line - 1].chars().count();
    prop_assert!(
        e.col >= 1 && e.col <= width + 1,
        "column {} outside line {} ({} chars): {}",
        e.col,
        e.line,
        width,
        e
    );
    let shown = e.to_string();
    let prefix = format!("forkguard: {FILE}:{}:{}: ", e.line, e.col);
    prop_assert!(shown.starts_with(&prefix), "{shown:?}");
    prop_assert!(!e.msg.is_empty());
    Ok(())
}

fn check(text: &str) -> Result<Option<Plan>, TestCaseError> {
    let _ = forkguard_core::load::sniff_on_error(text);
    match Plan::parse(FILE, text) {
        Ok(plan) => {
            let again = Plan::parse(FILE, text);
            prop_assert_eq!(Ok(plan.clone()), again, "plan not deterministic");
            Ok(Some(plan))
        }
        Err(e) => {
            assert_inside(text, &e)?;
            Ok(None)
        }
    }
}

// --- structured configs ------------------------------------------------------

/// One of `items`, literally (a bare string would be a regex strategy).
fn sel(items: &[&'static str]) -> impl Strategy<Value = String> {
    prop::sample::select(items.to_vec()).prop_map(String::from)
}

fn quoted(s: &str) -> String {
    format!("\"{s}\"")
}

fn symbol() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("stdout".to_string()),
        Just("libfoo.so.1:g_lock".to_string()),
        "[a-z_][a-z0-9_]{0,12}",
        Just(String::new()),
        Just("a:b:c".to_string()),
        "[ -~]{0,8}".prop_map(|s| s.replace(['"', '\\'], "")),
    ]
}

fn lock_table() -> impl Strategy<Value = String> {
    (
        symbol(),
        sel(&["mutex", "rwlock", "spinlock", "semaphore", "stdio", "futex"]),
        prop::option::of(sel(&["acquire", "reinit", "steal"])),
        prop::option::of(-5i64..100_000),
        prop::option::of(sel(&["reinit", "fail", "x"])),
        any::<bool>(),
    )
        .prop_map(|(sym, ty, strat, to, ot, opt)| {
            let mut s = format!(
                "[[lock]]\nsymbol = {}\ntype = {}\n",
                quoted(&sym),
                quoted(&ty)
            );
            if let Some(v) = strat {
                s += &format!("strategy = {}\n", quoted(&v));
            }
            if let Some(v) = to {
                s += &format!("timeout_ms = {v}\n");
            }
            if let Some(v) = ot {
                s += &format!("on_timeout = {}\n", quoted(&v));
            }
            if opt {
                s += "optional = true\n";
            }
            s
        })
}

fn call_table() -> impl Strategy<Value = String> {
    (
        sel(&["prepare", "parent", "child", "later"]),
        symbol(),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(ph, sym, opt)| {
            let mut s = format!(
                "[[call]]\nphase = {}\nsymbol = {}\n",
                quoted(&ph),
                quoted(&sym)
            );
            if let Some(o) = opt {
                s += &format!("optional = {o}\n");
            }
            s
        })
}

fn zero_table() -> impl Strategy<Value = String> {
    symbol().prop_map(|sym| format!("[[zero]]\nsymbol = {}\n", quoted(&sym)))
}

fn selector_part() -> impl Strategy<Value = String> {
    prop_oneof![
        (-3i64..70).prop_map(|n| format!("fd = {n}")),
        prop::collection::vec(-1i64..70, 0..4).prop_map(|v| format!("fds = {v:?}")),
        (-1i64..70).prop_map(|n| format!("from = {n}")),
        sel(&[
            "file", "dir", "pipe", "socket", "listen", "tty", "epoll", "eventfd", "timerfd",
            "signalfd", "inotify", "memfd", "gizmo"
        ])
        .prop_map(|k| format!("kind = \"{k}\"")),
        sel(&["/var/log/*.log", "pipe:[*]", "[", "**", ""]).prop_map(|p| format!("path = \"{p}\"")),
        sel(&[
            "127.0.0.1:6379",
            "*:80",
            "[::1]:5432",
            "::1:5432",
            "localhost:1",
            "x",
            "1.2.3.4:99999"
        ])
        .prop_map(|p| format!("peer = \"{p}\"")),
        sel(&["0.0.0.0:8080", "*:0", "[::]:1"]).prop_map(|p| format!("local = \"{p}\"")),
        prop::collection::vec(0i64..10, 0..3).prop_map(|v| format!("except = {v:?}")),
    ]
}

fn fd_table() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(selector_part(), 0..4),
        sel(&[
            "close",
            "cloexec",
            "devnull",
            "reopen",
            "disconnect",
            "renew",
            "explode",
        ]),
        prop::option::of(sel(&["/tmp/x.%p.log", "/tmp/%P%%", "rel/path", "/tmp/%q"])),
        prop::option::of(prop::collection::vec(
            sel(&["append", "create", "truncate", "cloexec", "sync"]),
            0..3,
        )),
        prop::option::of(prop_oneof![
            Just(0o640i64),
            Just(0o7777),
            Just(-1),
            Just(0o100000)
        ]),
    )
        .prop_map(|(sel, action, path, flags, mode)| {
            // Duplicate selector keys are possible on purpose (a TOML error).
            let mut s = format!(
                "[[fd]]\nselect = {{ {} }}\naction = {}\n",
                sel.join(", "),
                quoted(&action)
            );
            if let Some(p) = path {
                s += &format!("path = {}\n", quoted(&p));
            }
            if let Some(f) = flags {
                s += &format!("flags = {f:?}\n");
            }
            if let Some(m) = mode {
                s += &format!("mode = {m}\n");
            }
            s
        })
}

fn settings_table() -> impl Strategy<Value = String> {
    (
        prop::option::of(prop::collection::vec(
            sel(&["myapp", "python3*", "/usr/bin/*", "[", ""]),
            0..3,
        )),
        prop::option::of(sel(&["warn", "abort", "panic"])),
        prop::option::of(sel(&["off", "stderr", "/tmp/fg.log", "relative.log", ""])),
        prop::option::of(sel(&["text", "json", "xml"])),
        prop::option::of(sel(&["passthrough", "fork", "spawn"])),
        prop::option::of(-10i64..1_000_000),
        prop::option::of(-10i64..1_000_000),
    )
        .prop_map(|(programs, on_error, log, fmt, vfork, lt, ht)| {
            let mut s = String::from("[settings]\n");
            if let Some(p) = programs {
                s += &format!("programs = {p:?}\n");
            }
            if let Some(v) = on_error {
                s += &format!("on_error = {}\n", quoted(&v));
            }
            if let Some(v) = log {
                s += &format!("log = {}\n", quoted(&v));
            }
            if let Some(v) = fmt {
                s += &format!("log_format = {}\n", quoted(&v));
            }
            if let Some(v) = vfork {
                s += &format!("vfork = {}\n", quoted(&v));
            }
            if let Some(v) = lt {
                s += &format!("lock_timeout_ms = {v}\n");
            }
            if let Some(v) = ht {
                s += &format!("handshake_timeout_ms = {v}\n");
            }
            s
        })
}

fn child_table() -> impl Strategy<Value = String> {
    (
        prop::option::of(sel(&["TERM", "SIGKILL", "usr1", "NOPE", "0"])),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
        prop::option::of(-1500i64..1500),
        prop::option::of(sel(&["worker", "", "a-name-longer-than-15-bytes", "é"])),
    )
        .prop_map(|(sig, mask, handlers, session, oom, name)| {
            let mut s = String::from("[child]\n");
            if let Some(v) = sig {
                s += &format!("parent_death_signal = {}\n", quoted(&v));
            }
            if let Some(v) = mask {
                s += &format!("reset_signal_mask = {v}\n");
            }
            if let Some(v) = handlers {
                s += &format!("reset_signal_handlers = {v}\n");
            }
            if let Some(v) = session {
                s += &format!("new_session = {v}\n");
            }
            if let Some(v) = oom {
                s += &format!("oom_score_adj = {v}\n");
            }
            if let Some(v) = name {
                s += &format!("name = {}\n", quoted(&v));
            }
            s
        })
}

/// A config assembled from tables that are each plausible, with plausible
/// and implausible values mixed in.
fn structured() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            Just("version = 1\n"),
            Just("version = 2\n"),
            Just(""),
            Just("version = \"1\"\n")
        ],
        prop::option::of(settings_table()),
        prop::collection::vec(
            prop_oneof![lock_table(), call_table(), zero_table(), fd_table()],
            0..6,
        ),
        prop::option::of(child_table()),
    )
        .prop_map(|(v, settings, actions, child)| {
            let mut s = v.to_string();
            if let Some(t) = settings {
                s += &t;
            }
            for a in actions {
                s += "\n";
                s += &a;
            }
            if let Some(c) = child {
                s += &c;
            }
            s
        })
}

/// A structured config with one byte-level edit: text near valid TOML.
fn mutated() -> impl Strategy<Value = String> {
    (
        structured(),
        any::<prop::sample::Index>(),
        0usize..4,
        "[ -~\n\t]{0,3}",
    )
        .prop_map(|(s, at, del, ins)| {
            let mut b: Vec<char> = s.chars().collect();
            let i = at.index(b.len() + 1);
            let end = (i + del).min(b.len());
            b.splice(i..end, ins.chars());
            b.into_iter().collect()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        // The library reads bytes; invalid UTF-8 is refused before parsing
        // (load.rs), so what reaches the parser is the lossy-free subset.
        if let Ok(text) = std::str::from_utf8(&bytes) {
            check(text)?;
        }
        let lossy = String::from_utf8_lossy(&bytes);
        check(&lossy)?;
    }

    #[test]
    fn arbitrary_text_never_panics(text in "(?s).{0,200}") {
        check(&text)?;
    }

    #[test]
    fn toml_like_text_never_panics(text in "([a-z_\\[\\]=\"{}, .0-9\n#]|version = 1\n|\\[\\[fd\\]\\]\n|select = ){0,60}") {
        check(&text)?;
    }

    #[test]
    fn structured_configs_parse_or_point_inside(text in structured()) {
        check(&text)?;
    }

    #[test]
    fn mutated_configs_parse_or_point_inside(text in mutated()) {
        check(&text)?;
    }

    #[test]
    fn valid_plans_are_deterministic_and_keep_declaration_order(
        tables in prop::collection::vec(prop_oneof![
            "[a-z][a-z0-9_]{0,10}".prop_map(|s| ("call", s)),
            "[a-z][a-z0-9_]{0,10}".prop_map(|s| ("zero", s)),
        ], 1..20)
    ) {
        let mut text = String::from("version = 1\n");
        for (kind, sym) in &tables {
            text += &match *kind {
                "call" => format!("\n[[call]]\nphase = \"child\"\nsymbol = \"{sym}\"\n"),
                _ => format!("\n[[zero]]\nsymbol = \"{sym}\"\n"),
            };
        }
        let plan = check(&text)?;
        let plan = plan.ok_or_else(|| TestCaseError::fail(format!("valid config rejected:\n{text}")))?;
        prop_assert_eq!(plan.actions.len(), tables.len());
        for (a, (_, sym)) in plan.actions.iter().zip(&tables) {
            let s = a.kind.symbol().map(|s| s.to_string()).unwrap_or_default();
            prop_assert_eq!(&s, sym);
        }
    }
}

/// Inputs that stress the parser's own limits, not only random ones.
#[test]
fn pathological_inputs_are_errors_not_panics() {
    let deep = format!(
        "version = 1\nx = {}1{}\n",
        "[".repeat(20_000),
        "]".repeat(20_000)
    );
    let deep_tables = format!(
        "version = 1\nx = {}1{}\n",
        "{a=".repeat(5_000),
        "}".repeat(5_000)
    );
    let many_keys: String = (0..20_000).map(|i| format!("k{i} = {i}\n")).collect();
    let dup = "version = 1\nversion = 1\n".to_string();
    let long_line = format!(
        "version = 1\n[settings]\nlog = \"/{}\"\n",
        "a".repeat(500_000)
    );
    for text in [
        deep,
        deep_tables,
        many_keys,
        dup,
        long_line,
        String::new(),
        "\u{feff}version = 1".into(),
    ] {
        let t = std::time::Instant::now();
        let r = Plan::parse(FILE, &text);
        assert!(t.elapsed().as_secs() < 5, "parse took {:?}", t.elapsed());
        if let Err(e) = r {
            let lines = text.split('\n').count();
            assert!(e.line >= 1 && e.line <= lines, "{e}");
        }
    }
}

/// The structured generator must reach both sides: valid plans (so the
/// determinism property is exercised) and errors from validation, not only
/// from TOML syntax.
#[test]
fn structured_generator_reaches_valid_and_invalid_configs() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut ok, mut semantic, n) = (0, 0, 400);
    for _ in 0..n {
        let text = structured().new_tree(&mut runner).expect("tree").current();
        match Plan::parse(FILE, &text) {
            Ok(_) => ok += 1,
            // Validation errors sit after line 1 of a syntactically valid file.
            Err(_) if toml::from_str::<toml::Table>(&text).is_ok() => semantic += 1,
            Err(_) => {}
        }
    }
    assert!(
        ok >= n / 50,
        "only {ok} of {n} generated configs were valid"
    );
    assert!(
        semantic >= n / 10,
        "only {semantic} of {n} failed validation"
    );
}

/// Files of comments, blank lines and `version` lines in several spellings:
/// what the line-by-line fast path of `Plan::parse` (an empty plan without
/// the TOML parser) must agree on with the parser itself.
fn comments_and_versions() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        Just(String::new()),
        Just("   \t".to_string()),
        "[ \t]{0,2}#[ -~\t\u{1}\u{7f}é]{0,12}".prop_map(|s| s),
        sel(&[
            "version = 1",
            "version=1",
            " version = 1 # c",
            "version = 2",
            "version = 1.0",
            "version = +1",
            "versions = 1",
            "\"version\" = 1",
            "version = 1\r",
        ]),
    ];
    (
        prop::collection::vec(line, 0..8),
        sel(&["\n", "\r\n"]),
        any::<bool>(),
    )
        .prop_map(|(lines, eol, last_eol)| {
            let mut t = lines.join(eol.as_str());
            if last_eol {
                t.push_str(&eol);
            }
            t
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Appending an empty `[settings]` table changes nothing a file of
    /// comments and `version` lines means, and always sends it through the
    /// TOML parser: the fast path may only answer what the parser answers.
    #[test]
    fn fast_path_agrees_with_the_parser(text in comments_and_versions()) {
        // A CR at the very end would become a CRLF line end when the table
        // is appended, changing what the file means.
        prop_assume!(!text.ends_with('\r'));
        let fast = Plan::parse(FILE, &text);
        let full = Plan::parse(FILE, &format!("{text}\n[settings]\n"));
        match (&fast, &full) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(_), Err(_)) => {}
            _ => prop_assert!(false, "{:?}: fast {:?}, parser {:?}", text, fast.is_ok(), full.is_ok()),
        }
    }
}

/// The generator above must produce files the fast path takes (valid, empty
/// plan) as well as files it refuses, or the property says nothing.
#[test]
fn comments_and_versions_reach_both_answers() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut ok, mut err, n) = (0, 0, 400);
    for _ in 0..n {
        let text = comments_and_versions()
            .new_tree(&mut runner)
            .expect("tree")
            .current();
        match Plan::parse(FILE, &text) {
            Ok(_) => ok += 1,
            Err(_) => err += 1,
        }
    }
    assert!(ok >= n / 20, "only {ok} of {n} were valid");
    assert!(err >= n / 20, "only {err} of {n} were errors");
}
