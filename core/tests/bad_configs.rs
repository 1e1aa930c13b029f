//! A corpus of bad configs, each with the exact `forkguard: FILE:LINE:COL:`
//! prefix and the start of its message. A config is rejected whole: no
//! partial plan exists when parse fails.

use forkguard_core::Plan;

/// (config text, expected "LINE:COL: message start")
const CORPUS: &[(&str, &str)] = &[
    (
        "version = 1\n[settings]\nlibc_locks = \"always\"\n",
        "3:14: unknown variant `always`",
    ),
    (
        "version = 1\n[[zero]]\nsymbol = \"g\"\noffset = 8\n",
        "4:10: [[zero]] with offset needs size",
    ),
    (
        "version = 1\n[[zero]]\nsymbol = \"g\"\noffset = 8\nsize = 0\n",
        "5:8: size must be at least 1",
    ),
    (
        "version = 1\n[[lock]]\nsymbol = \"g\"\ntype = \"futex\"\noffset = -4\n",
        "5:10: offset must be between",
    ),
    (
        "version = 1\n[[lock]]\nsymbol = \"libc.so.6::lock\"\ntype = \"futex\"\n",
        "3:10: empty source file name",
    ),
    (
        "version = 1\n[[lock]]\nsymbol = \"a:b:c:d\"\ntype = \"futex\"\n",
        "3:10: expected \"name\"",
    ),
    (
        "version = 1\n[[lock]]\nsymbol = \"g\"\ntype = \"futexrecursive\"\n",
        "4:8: unknown variant `futexrecursive`",
    ),
    ("", "1:1: missing field `version`"),
    ("version = 2\n", "1:11: unsupported version"),
    ("version = \"1\"\n", "1:11: invalid type"),
    ("version = 1\nbogus = true\n", "2:1: unknown field `bogus`"),
    (
        "version = 1\n[settings]\nlog = \"relative.log\"\n",
        "3:7: log must be",
    ),
    (
        "version = 1\n[settings]\non_error = \"explode\"\n",
        "3:12: unknown variant `explode`",
    ),
    (
        "version = 1\n[settings]\nlog_format = \"xml\"\n",
        "3:14: unknown variant `xml`",
    ),
    (
        "version = 1\n[settings]\nvfork = \"maybe\"\n",
        "3:9: unknown variant `maybe`",
    ),
    (
        "version = 1\n[settings]\nprograms = []\n",
        "3:12: programs is empty",
    ),
    (
        "version = 1\n[settings]\nlock_timeout_ms = -5\n",
        "3:19: milliseconds must be",
    ),
    (
        "version = 1\n[settings]\nhandshake_timeout_ms = 99999999\n",
        "3:24: milliseconds must be",
    ),
    (
        "version = 1\n[[call]]\nphase = \"later\"\nsymbol = \"f\"\n",
        "3:9: unknown variant `later`",
    ),
    (
        "version = 1\n[[call]]\nphase = \"child\"\n",
        "2:1: missing field `symbol`",
    ),
    (
        "version = 1\n[[call]]\nphase = \"child\"\nsymbol = \"not a name\"\n",
        "4:10: not a symbol name",
    ),
    (
        "version = 1\n[[call]]\nphase = \"child\"\nsymbol = \":f\"\n",
        "4:10: empty library name",
    ),
    (
        "version = 1\n[[call]]\nphase = \"child\"\nsymbol = \"f\"\nwhen = 1\n",
        "5:1: unknown field `when`",
    ),
    (
        "version = 1\n[child]\nparent_death_signal = \"SIGNOPE\"\n",
        "3:23: unknown signal",
    ),
    (
        "version = 1\n[child]\nparent_death_signal = 99\n",
        "3:23: unknown signal",
    ),
    (
        "version = 1\n[child]\noom_score_adj = 2000\n",
        "3:17: oom_score_adj must be",
    ),
    (
        "version = 1\n[child]\nname = \"a-name-longer-than-15\"\n",
        "3:8: name must be 1 to 15 bytes",
    ),
    (
        "version = 1\n[child]\nnew_session = \"yes\"\n",
        "3:15: invalid type",
    ),
    (
        "version = 1\n[[lock]]\nsymbol = \"l\"\ntype = \"ticket\"\n",
        "4:8: unknown variant `ticket`",
    ),
    (
        "version = 1\n[[lock]]\nsymbol = \"l\"\ntype = \"mutex\"\nstrategy = \"pray\"\n",
        "5:12: unknown variant `pray`",
    ),
    (
        "version = 1\n[[fd]]\nselect = {}\naction = \"close\"\n",
        "3:10: empty selector",
    ),
    (
        "version = 1\n[[fd]]\nselect = { fd = -1 }\naction = \"close\"\n",
        "3:17: not a file descriptor number",
    ),
    (
        "version = 1\n[[fd]]\nselect = { kind = \"file\" }\naction = \"disconnect\"\n",
        "4:10: disconnect applies to sockets",
    ),
    (
        "version = 1\n[[fd]]\nselect = { kind = \"socket\" }\naction = \"renew\"\n",
        "4:10: renew applies to",
    ),
    (
        "version = 1\n[[fd]]\nselect = { fd = 3 }\naction = \"reopen\"\n",
        "4:10: reopen needs a path",
    ),
    (
        "version = 1\n[[fd]]\nselect = { fd = 3 }\naction = \"reopen\"\npath = \"x.log\"\n",
        "5:8: reopen path must be absolute",
    ),
    (
        "version = 1\n[[fd]]\nselect = { fd = 3 }\naction = \"reopen\"\npath = \"/x.%d\"\n",
        "5:8: in a reopen path",
    ),
    (
        "version = 1\n[[fd]]\nselect = { fd = 3 }\naction = \"close\"\npath = \"/x\"\n",
        "5:8: path is only used with",
    ),
    (
        "version = 1\n[[fd]]\nselect = { peer = \"nowhere\" }\naction = \"close\"\n",
        "3:19: peer: expected",
    ),
    ("version = 1\nversion = 1\n", "2:1: duplicate key"),
    // [[call]] args (SPEC 8.8): count, type, range.
    (
        "version = 1\n[[call]]\nphase = \"prepare\"\nsymbol = \"f\"\nargs = [1, 2, 3, 4, 5, 6, 7]\n",
        "5:27: at most 6 args",
    ),
    (
        "version = 1\n[[call]]\nphase = \"prepare\"\nsymbol = \"f\"\nargs = [\"hard\"]\n",
        "5:9: args are signed 64-bit integers, not a string",
    ),
    (
        "version = 1\n[[call]]\nphase = \"prepare\"\nsymbol = \"f\"\nargs = [1, 2.5]\n",
        "5:12: args are signed 64-bit integers, not a float",
    ),
    (
        "version = 1\n[[call]]\nphase = \"prepare\"\nsymbol = \"f\"\nargs = [true]\n",
        "5:9: args are signed 64-bit integers, not a boolean",
    ),
    (
        "version = 1\n[[call]]\nphase = \"prepare\"\nsymbol = \"f\"\nargs = [9223372036854775808]\n",
        "5:9: 9223372036854775808 is out of range",
    ),
    (
        "version = 1\n[[call]]\nphase = \"prepare\"\nsymbol = \"f\"\nargs = [-9223372036854775809]\n",
        "5:9: -9223372036854775809 is out of range",
    ),
    (
        "version = 1\n[[call]]\nphase = \"prepare\"\nsymbol = \"f\"\nargs = [0xffffffffffffffff]\n",
        "5:9: 18446744073709551615 is out of range",
    ),
    (
        "version = 1\n[[call]]\nphase = \"prepare\"\nsymbol = \"f\"\nargs = [[1]]\n",
        "5:9: args are signed 64-bit integers, not an array",
    ),
    (
        "version = 1\n[[call]]\nphase = \"prepare\"\nsymbol = \"f\"\nargs = 2\n",
        "5:8: invalid type",
    ),
    ("version = 1\n[settings\n", "2:10: "),
];

#[test]
fn every_bad_config_is_located() {
    let mut wrong = Vec::new();
    for (text, want) in CORPUS {
        match Plan::parse("bad.toml", text) {
            Ok(_) => wrong.push(format!("accepted:\n{text}")),
            Err(e) => {
                let got = e.to_string();
                let expected = format!("forkguard: bad.toml:{want}");
                if !got.starts_with(&expected) {
                    wrong.push(format!("for:\n{text}\n  want: {expected}\n  got:  {got}"));
                }
                assert!(!got.contains('\n'), "one line only: {got:?}");
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

#[test]
fn good_configs_are_accepted_and_ordered() {
    let text = "version = 1\n\
        [[call]]\nphase = \"prepare\"\nsymbol = \"a\"\n\
        [[lock]]\nsymbol = \"lib.so.1:l\"\ntype = \"mutex\"\n\
        [[call]]\nphase = \"child\"\nsymbol = \"b\"\noptional = true\n";
    let plan = Plan::parse("good.toml", text).expect("valid");
    let names: Vec<String> = plan
        .actions
        .iter()
        .map(|a| a.kind.symbol().map(|s| s.to_string()).unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        ["a", "lib.so.1:l", "b"],
        "declaration order across tables"
    );
    assert_eq!(plan.actions[0].loc.line, 2);
    let lock = plan.actions[1].kind.symbol().expect("symbol");
    assert_eq!(
        (
            lock.lib.as_deref(),
            lock.name.as_str(),
            lock.loc.line,
            lock.loc.col
        ),
        (Some("lib.so.1"), "l", 6, 10)
    );
    assert!(plan.actions[2].kind.symbol().is_some_and(|s| s.optional));
    assert_eq!(
        Plan::parse("good.toml", text),
        Ok(plan),
        "parsing is deterministic"
    );
}

#[test]
fn call_args_keep_their_values() {
    use forkguard_core::plan::ActionKind;
    let args_of = |list: &str| {
        let text = format!("version = 1\n[[call]]\nphase = \"prepare\"\nsymbol = \"f\"\n{list}\n");
        match &Plan::parse("good.toml", &text).expect("valid").actions[0].kind {
            ActionKind::Call(c) => c.args.clone(),
            _ => unreachable!(),
        }
    };
    assert_eq!(args_of(""), Vec::<i64>::new());
    assert_eq!(args_of("args = []"), Vec::<i64>::new());
    assert_eq!(args_of("args = [2]"), vec![2]);
    assert_eq!(
        args_of("args = [-9223372036854775808, 9223372036854775807, 0x7f, -1, 0o17, 0b101]"),
        vec![i64::MIN, i64::MAX, 0x7f, -1, 0o17, 0b101]
    );
}
