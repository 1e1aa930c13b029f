//! `[[fd]]` validation: selectors, actions, and the action-vs-kind errors
//! `forkguard check` reports with `FILE:LINE:COL`.

use super::*;

fn parse(text: &str) -> Result<Plan, ConfigError> {
    Plan::parse("t.toml", text)
}

/// The only fd action of a config made of `body` after `version = 1`.
fn fd_spec(body: &str) -> FdSpec {
    let plan = parse(&format!("version = 1\n{body}")).unwrap_or_else(|e| panic!("{e}"));
    match plan.actions.as_slice() {
        [Action {
            kind: ActionKind::Fd(f),
            ..
        }] => f.clone(),
        other => panic!("expected one fd action, got {other:?}"),
    }
}

/// The error of a config made of `body`: `(line, col, message)`.
fn fd_err(body: &str) -> (usize, usize, String) {
    match parse(&format!("version = 1\n{body}")) {
        Ok(p) => panic!("accepted: {p:?}"),
        Err(e) => (e.line, e.col, e.msg),
    }
}

#[test]
fn selectors_by_number_and_kind() {
    let f = fd_spec("[[fd]]\nselect = { fd = 7 }\naction = \"close\"\n");
    assert_eq!(f.select.fds, vec![7]);
    assert_eq!(f.action, FdActionKind::Close);
    assert!(!f.select.is_pure_range());

    let f = fd_spec("[[fd]]\nselect = { fds = [0, 1, 5], fd = 9 }\naction = \"devnull\"\n");
    assert_eq!(f.select.fds, vec![9, 0, 1, 5]);

    let f = fd_spec("[[fd]]\nselect = { from = 3, except = [5, 9] }\naction = \"cloexec\"\n");
    assert_eq!(f.select.from, Some(3));
    assert_eq!(f.select.except, vec![5, 9]);
    assert!(
        f.select.is_pure_range(),
        "from + except is still a pure range"
    );

    let f = fd_spec("[[fd]]\nselect = { from = 3, kind = \"listen\" }\naction = \"close\"\n");
    assert_eq!(f.select.kind, Some(FdKind::Listen));
    assert!(!f.select.is_pure_range());

    for k in [
        "file", "dir", "pipe", "socket", "listen", "tty", "epoll", "eventfd", "timerfd",
        "signalfd", "inotify", "memfd",
    ] {
        let f = fd_spec(&format!(
            "[[fd]]\nselect = {{ kind = \"{k}\" }}\naction = \"close\"\n"
        ));
        assert_eq!(f.select.kind.map(FdKind::name), Some(k));
    }
}

#[test]
fn endpoints() {
    let f = fd_spec("[[fd]]\nselect = { kind = \"socket\", peer = \"127.0.0.1:6379\" }\naction = \"disconnect\"\n");
    assert_eq!(
        f.select.peer,
        Some(Endpoint {
            host: Some(IpAddr::from([127, 0, 0, 1])),
            port: 6379
        })
    );
    let f = fd_spec("[[fd]]\nselect = { peer = \"[::1]:5432\" }\naction = \"disconnect\"\n");
    assert_eq!(
        f.select.peer,
        Some(Endpoint {
            host: Some("::1".parse().unwrap()),
            port: 5432
        })
    );
    let f =
        fd_spec("[[fd]]\nselect = { kind = \"listen\", local = \"*:8080\" }\naction = \"close\"\n");
    assert_eq!(
        f.select.local,
        Some(Endpoint {
            host: None,
            port: 8080
        })
    );

    assert_eq!(
        Endpoint::parse("localhost:80").unwrap().host,
        Some(IpAddr::from([127, 0, 0, 1]))
    );
    assert_eq!(
        Endpoint::parse("[::ffff:127.0.0.1]:1").unwrap().to_string(),
        "[::ffff:127.0.0.1]:1"
    );
    assert_eq!(Endpoint::parse("*:0").unwrap().to_string(), "*:0");
    for bad in [
        "6379",
        "127.0.0.1",
        "127.0.0.1:70000",
        "host.example:80",
        ":80",
        "[127.0.0.1]:80",
        "1.2.3:4",
    ] {
        assert!(Endpoint::parse(bad).is_err(), "{bad} accepted");
    }
    let e = Endpoint::parse("::1:5432").unwrap_err();
    assert!(e.contains("brackets"), "{e}");
}

#[test]
fn reopen_path_flags_mode() {
    let f = fd_spec(
        "[[fd]]\nselect = { path = \"/var/log/app.log\" }\naction = \"reopen\"\npath = \"/var/log/app.%p.%P.100%%.log\"\nflags = [\"append\", \"create\", \"append\"]\nmode = 0o640\n",
    );
    assert_eq!(f.path.as_deref(), Some("/var/log/app.%p.%P.100%%.log"));
    assert_eq!(
        f.flags,
        vec![OpenFlag::Append, OpenFlag::Create],
        "duplicates dropped, order kept"
    );
    assert_eq!(f.mode, 0o640);

    let f = fd_spec("[[fd]]\nselect = { fd = 1 }\naction = \"reopen\"\npath = \"/tmp/x\"\n");
    assert!(f.flags.is_empty());
    assert_eq!(f.mode, 0o600, "default mode");
}

#[test]
fn reopen_errors_point_at_the_key() {
    let (l, c, m) = fd_err("[[fd]]\nselect = { fd = 1 }\naction = \"reopen\"\n");
    assert_eq!((l, c), (4, 10));
    assert!(m.contains("reopen needs a path"), "{m}");

    let (l, c, m) = fd_err("[[fd]]\nselect = { fd = 1 }\naction = \"reopen\"\npath = \"log/%p\"\n");
    assert_eq!((l, c), (5, 8));
    assert!(m.contains("absolute"), "{m}");

    for bad in ["/x/%d", "/x/%", "/x/%%%"] {
        let (l, _, m) = fd_err(&format!(
            "[[fd]]\nselect = {{ fd = 1 }}\naction = \"reopen\"\npath = \"{bad}\"\n"
        ));
        assert_eq!(l, 5);
        assert!(m.contains("% must be followed by p, P or %"), "{bad}: {m}");
    }

    let (l, c, m) =
        fd_err("[[fd]]\nselect = { fd = 1 }\naction = \"reopen\"\npath = \"/x\"\nmode = 0o644\n");
    assert_eq!((l, c), (6, 8));
    assert!(m.contains("only used with flags = [\"create\"]"), "{m}");

    let (l, _, m) =
        fd_err("[[fd]]\nselect = { fd = 1 }\naction = \"reopen\"\npath = \"/x\"\nflags = [\"create\"]\nmode = 0o17777\n");
    assert_eq!(l, 7);
    assert!(m.contains("mode must be"), "{m}");

    let (l, _, m) = fd_err(
        "[[fd]]\nselect = { fd = 1 }\naction = \"reopen\"\npath = \"/x\"\nflags = [\"sync\"]\n",
    );
    assert_eq!(l, 6);
    assert!(m.contains("sync"), "{m}");

    let long = format!("/{}", "a".repeat(MAX_PATH));
    let (l, _, m) = fd_err(&format!(
        "[[fd]]\nselect = {{ fd = 1 }}\naction = \"reopen\"\npath = \"{long}\"\n"
    ));
    assert_eq!(l, 5);
    assert!(m.contains("at most 1024 bytes"), "{m}");
}

#[test]
fn reopen_only_keys_on_other_actions() {
    for (key, line) in [
        ("path", "path = \"/x\""),
        ("flags", "flags = [\"append\"]"),
        ("mode", "mode = 0o600"),
    ] {
        let (l, c, m) = fd_err(&format!(
            "[[fd]]\nselect = {{ fd = 5 }}\naction = \"close\"\n{line}\n"
        ));
        assert_eq!(l, 5, "{key}");
        assert!(c >= 1);
        assert_eq!(m, format!("{key} is only used with action = \"reopen\""));
    }
}

#[test]
fn action_versus_kind() {
    // disconnect: sockets only.
    let (l, c, m) = fd_err("[[fd]]\nselect = { kind = \"file\" }\naction = \"disconnect\"\n");
    assert_eq!((l, c), (4, 10));
    assert_eq!(m, "disconnect applies to sockets, not to kind = \"file\"");
    fd_spec("[[fd]]\nselect = { kind = \"listen\" }\naction = \"disconnect\"\n");
    fd_spec("[[fd]]\nselect = { fd = 5 }\naction = \"disconnect\"\n");

    // renew: the four anonymous kinds that have a fresh, empty instance.
    for k in ["epoll", "eventfd", "timerfd", "inotify"] {
        fd_spec(&format!(
            "[[fd]]\nselect = {{ kind = \"{k}\" }}\naction = \"renew\"\n"
        ));
    }
    for k in ["socket", "signalfd", "file", "memfd", "pipe"] {
        let (l, _, m) = fd_err(&format!(
            "[[fd]]\nselect = {{ kind = \"{k}\" }}\naction = \"renew\"\n"
        ));
        assert_eq!(l, 4);
        assert!(
            m.starts_with("renew applies to epoll, eventfd, timerfd and inotify"),
            "{k}: {m}"
        );
    }
    let (_, _, m) = fd_err("[[fd]]\nselect = { fd = 5 }\naction = \"renew\"\n");
    assert!(m.contains("renew needs kind"), "{m}");

    // peer/local only on sockets, and a listener has no peer.
    let (l, c, m) =
        fd_err("[[fd]]\nselect = { kind = \"pipe\", peer = \"*:1\" }\naction = \"close\"\n");
    assert_eq!((l, c), (3, 10));
    assert!(m.contains("peer/local select sockets"), "{m}");
    let (_, _, m) =
        fd_err("[[fd]]\nselect = { kind = \"listen\", peer = \"*:1\" }\naction = \"close\"\n");
    assert!(m.contains("a listening socket has no peer"), "{m}");

    // Unknown action, unknown kind.
    let (l, _, m) = fd_err("[[fd]]\nselect = { fd = 5 }\naction = \"shred\"\n");
    assert_eq!(l, 4);
    assert!(m.contains("shred"), "{m}");
    let (l, _, m) = fd_err("[[fd]]\nselect = { kind = \"fifo\" }\naction = \"close\"\n");
    assert_eq!(l, 3);
    assert!(m.contains("fifo"), "{m}");
}

#[test]
fn selectors_that_cannot_match() {
    let (l, c, m) = fd_err("[[fd]]\nselect = {}\naction = \"close\"\n");
    assert_eq!((l, c), (3, 10));
    assert!(m.starts_with("empty selector"), "{m}");

    let (_, _, m) = fd_err("[[fd]]\nselect = { fds = [] }\naction = \"close\"\n");
    assert_eq!(m, "fds is empty");

    let (_, _, m) = fd_err("[[fd]]\nselect = { fds = [1, 2], from = 3 }\naction = \"close\"\n");
    assert!(m.contains("select nothing"), "{m}");
    fd_spec("[[fd]]\nselect = { fds = [1, 7], from = 3 }\naction = \"close\"\n");

    let (_, _, m) =
        fd_err("[[fd]]\nselect = { fds = [1, 7], from = 3, except = [7] }\naction = \"close\"\n");
    assert!(m.contains("below from or in except"), "{m}");
    let (_, _, m) = fd_err("[[fd]]\nselect = { fd = 4, except = [4] }\naction = \"close\"\n");
    assert!(m.contains("also in except"), "{m}");

    let (l, c, m) = fd_err("[[fd]]\nselect = { fd = -1 }\naction = \"close\"\n");
    assert_eq!((l, c), (3, 17));
    assert_eq!(m, "not a file descriptor number");
    let (_, _, m) =
        fd_err("[[fd]]\nselect = { from = 3, except = [1, 4294967296] }\naction = \"close\"\n");
    assert_eq!(m, "not a file descriptor number");

    let (_, _, m) = fd_err("[[fd]]\nselect = { fd = 3, color = \"red\" }\naction = \"close\"\n");
    assert!(m.contains("color"), "{m}");
    let (_, _, m) = fd_err("[[fd]]\nselect = { path = \"\" }\naction = \"close\"\n");
    assert!(m.contains("path pattern"), "{m}");
    let (l, _, m) = fd_err("[[fd]]\nselect = { peer = \"::1:80\" }\naction = \"disconnect\"\n");
    assert_eq!(l, 3);
    assert!(
        m.starts_with("peer: write an IPv6 address in brackets"),
        "{m}"
    );
}

#[test]
fn fd_actions_keep_declaration_order_with_programs() {
    let plan = parse(
        "version = 1\n[[fd]]\nselect = { from = 3 }\naction = \"close\"\nprograms = [\"worker*\"]\n\
         [[call]]\nphase = \"child\"\nsymbol = \"f\"\n\
         [[fd]]\nselect = { kind = \"epoll\" }\naction = \"renew\"\n",
    )
    .unwrap();
    let kinds: Vec<&str> = plan
        .actions
        .iter()
        .map(|a| match &a.kind {
            ActionKind::Fd(f) => f.action.name(),
            ActionKind::Call(_) => "call",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["close", "call", "renew"]);
    assert_eq!(plan.actions[0].programs, vec!["worker*".to_string()]);
    assert_eq!(plan.actions[0].loc, Loc { line: 2, col: 1 });
}

#[test]
fn fd_examples_in_config_are_valid() {
    let examples = [
        (
            "prefork-redis-postgres.toml",
            include_str!("../../config/prefork-redis-postgres.toml"),
            3,
        ),
        (
            "listener.toml",
            include_str!("../../config/listener.toml"),
            1,
        ),
        ("epoll.toml", include_str!("../../config/epoll.toml"), 4),
        (
            "per-child-logs.toml",
            include_str!("../../config/per-child-logs.toml"),
            2,
        ),
    ];
    for (name, text, n) in examples {
        let plan = Plan::parse(name, text).unwrap_or_else(|e| panic!("{e}"));
        let fds = plan
            .actions
            .iter()
            .filter(|a| matches!(a.kind, ActionKind::Fd(_)))
            .count();
        assert_eq!(fds, n, "{name}");
    }
}

#[test]
fn symbols_with_source_file_and_offsets() {
    let p = Plan::parse(
        "f",
        "version = 1\n[settings]\nlibc_locks = \"acquire\"\n[[lock]]\nsymbol = \"libc.so.6:random.c:lock\"\ntype = \"futex\"\noffset = 0\n[[zero]]\nsymbol = \"g_obj\"\noffset = 8\nsize = 4\n",
    )
    .unwrap();
    assert_eq!(p.settings.libc_locks, crate::plan::LibcLocks::Acquire);
    assert!(!p.is_empty(), "libc_locks alone is something to do");
    let ActionKind::Lock(l) = &p.actions[0].kind else {
        panic!()
    };
    assert_eq!(l.symbol.lib.as_deref(), Some("libc.so.6"));
    assert_eq!(l.symbol.file.as_deref(), Some("random.c"));
    assert_eq!(l.symbol.name, "lock");
    assert_eq!(l.symbol.to_string(), "libc.so.6:random.c:lock");
    assert_eq!(l.kind, crate::plan::LockKind::Futex);
    assert_eq!(l.offset.map(|o| (o.bytes, o.loc.line)), Some((0, 7)));
    let ActionKind::Zero(z) = &p.actions[1].kind else {
        panic!()
    };
    assert_eq!((z.offset.map(|o| o.bytes), z.size), (Some(8), Some(4)));
    let off = Plan::parse("f", "version = 1\n[settings]\nlibc_locks = \"off\"\n").unwrap();
    assert!(off.is_empty());
}

#[test]
fn spawn_on_close_and_cloexec_only() {
    let f = fd_spec("[[fd]]\nselect = { kind = \"listen\" }\naction = \"close\"\nspawn = true\n");
    assert!(f.spawn);
    let f = fd_spec("[[fd]]\nselect = { from = 3 }\naction = \"cloexec\"\nspawn = true\n");
    assert!(f.spawn);
    let f = fd_spec("[[fd]]\nselect = { from = 3 }\naction = \"cloexec\"\nspawn = false\n");
    assert!(!f.spawn);
    let f = fd_spec("[[fd]]\nselect = { from = 3 }\naction = \"close\"\n");
    assert!(!f.spawn, "off by default");
    for (action, extra) in [
        ("devnull", ""),
        ("reopen", "path = \"/tmp/x\"\n"),
        ("disconnect", ""),
        ("renew", ""),
    ] {
        let kind = if action == "renew" { "epoll" } else { "socket" };
        let (line, col, msg) = fd_err(&format!(
            "[[fd]]\nselect = {{ kind = \"{kind}\" }}\naction = \"{action}\"\n{extra}spawn = true\n"
        ));
        let spawn_line = if extra.is_empty() { 5 } else { 6 };
        assert_eq!((line, col), (spawn_line, 9), "{action}: {msg}");
        assert!(
            msg.contains("spawn = true") && msg.contains(action),
            "{msg}"
        );
    }
    // Not a boolean: the parser's own error, at the value.
    let (line, _, _) = fd_err("[[fd]]\nselect = { from = 3 }\naction = \"close\"\nspawn = 1\n");
    assert_eq!(line, 5);
}

#[test]
fn log_exits_setting() {
    let p = parse("version = 1\n[settings]\nlog_exits = true\n").unwrap();
    assert!(p.settings.log_exits);
    let p = parse("version = 1\n[settings]\nlog = \"stderr\"\n").unwrap();
    assert!(!p.settings.log_exits);
    let e = parse("version = 1\n[settings]\nlog_exits = \"yes\"\n").unwrap_err();
    assert_eq!(e.line, 3);
}

#[test]
fn host_names_are_not_resolved() {
    let e = Endpoint::parse("db.internal:5432").unwrap_err();
    assert!(e.contains("host names are not resolved"), "{e}");
    assert!(e.contains("\"*:5432\""), "{e}");
    assert!(!e.contains("[::1]"), "{e}");
    let e = Endpoint::parse("ip6-localhost:6379").unwrap_err();
    assert!(
        e.contains("\"[::1]:6379\"")
            && e.contains("\"127.0.0.1:6379\"")
            && e.contains("\"*:6379\""),
        "{e}"
    );
    // Not a name: the plain format message.
    let e = Endpoint::parse("1.2.3:4").unwrap_err();
    assert!(e.contains("\"*:4\"") && !e.contains("names"), "{e}");
    // Through the config, with its location.
    let (line, col, msg) =
        fd_err("[[fd]]\nselect = { peer = \"db.internal:5432\" }\naction = \"disconnect\"\n");
    assert_eq!((line, col), (3, 19));
    assert!(
        msg.starts_with("peer: host names are not resolved"),
        "{msg}"
    );
}
