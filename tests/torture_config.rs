//! Untrusted and hostile config files (issue 6, scenario 9): each gives one
//! clear `forkguard:` line, the program runs unguarded (or exits 70 before
//! `main` with `on_error = "abort"` when the file could be read), nothing
//! hangs, and the content of a file the real user does not own is never
//! printed. Complements `config_and_env.rs::unsafe_config_files_are_refused`
//! (writable, symlink, directory, missing, other owner).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// 1 MiB, core/src/load.rs `MAX_CONFIG_BYTES`.
const MAX: u64 = 1 << 20;

fn errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("forkguard:"))
        .collect()
}

fn write_bytes(p: &Path, bytes: &[u8], mode: u32) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(p);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(p)
        .expect("create");
    f.write_all(bytes).expect("write");
}

struct Case {
    name: &'static str,
    path: PathBuf,
    /// The exact error line, with `{}` for the path.
    expect: String,
    /// The file is readable and says `on_error = "abort"`.
    aborts: bool,
}

fn run_case(s: &Scratch, c: &Case) -> Result<(), String> {
    s.reset_trace();
    let t0 = Instant::now();
    let out = run(
        s,
        fixture_cmd(s, "forker", &["fork"], &c.path),
        Duration::from_secs(20),
    );
    let took = t0.elapsed();
    let errs = errors(&out.stderr);
    let want = c.expect.replace("{}", &c.path.display().to_string());
    let name = c.name;
    if errs != [want.as_str()] {
        return Err(format!(
            "[{name}] expected exactly {want:?}, got {errs:?}\n{}",
            out.dump()
        ));
    }
    let t = s.trace();
    if c.aborts {
        if out.code() != Some(70) || t.count("main-before") != 0 {
            return Err(format!(
                "[{name}] abort: expected exit 70 before main, got {:?}, trace {:?}",
                out.status, t.raw
            ));
        }
    } else if !out.status.success() || t.count("main-before") != 1 || t.count("prepare") != 0 {
        return Err(format!(
            "[{name}] expected an unguarded normal run, got {:?}, trace {:?}",
            out.status, t.raw
        ));
    }
    if took > Duration::from_secs(10) {
        return Err(format!("[{name}] took {took:?}"));
    }
    Ok(())
}

#[test]
fn hostile_config_files_each_give_one_clear_error() {
    let s = Scratch::new("tcfg");
    let body = format!("{}{}", header(&s.path("fg.log"), ""), trace_calls());
    let abort_head = "version = 1\n\n[settings]\non_error = \"abort\"\n";
    let mut cases = Vec::new();

    let fifo = s.path("fifo.toml");
    let c = std::ffi::CString::new(fifo.to_str().expect("utf-8 path")).expect("cstring");
    // SAFETY: mkfifo(3) with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
    cases.push(Case {
        name: "fifo (no writer: must not hang)",
        path: fifo,
        expect: "forkguard: {}: refusing config: not a regular file".into(),
        aborts: false,
    });

    let big = s.path("big.toml");
    write_bytes(&big, body.as_bytes(), 0o644);
    // 100 MB, sparse: refused from its size, before a byte is read.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&big)
        .and_then(|f| f.set_len(100_000_000))
        .expect("grow");
    cases.push(Case {
        name: "100 MB",
        path: big,
        expect: format!("forkguard: {{}}: refusing config larger than {MAX} bytes"),
        aborts: false,
    });

    let just_over = s.path("just-over.toml");
    let mut text = abort_head.to_string();
    text.push_str(&"#".repeat((MAX as usize + 1) - text.len()));
    write_bytes(&just_over, text.as_bytes(), 0o644);
    cases.push(Case {
        name: "1 MiB + 1 byte",
        path: just_over,
        expect: format!("forkguard: {{}}: refusing config larger than {MAX} bytes"),
        aborts: false,
    });

    let utf8 = s.path("utf8.toml");
    let mut bytes = abort_head.as_bytes().to_vec();
    bytes.extend_from_slice(b"log = \"/tmp/\xff\xfe.log\"\n");
    write_bytes(&utf8, &bytes, 0o644);
    cases.push(Case {
        name: "invalid UTF-8",
        path: utf8,
        expect: "forkguard: {}:5:13: invalid UTF-8".into(),
        // The text is refused before `on_error` can be read from it, so the
        // default (warn) applies, as for an unreadable file (docs/DESIGN.md
        // "Errors and on_error"; noted in docs/RELIABILITY.md).
        aborts: false,
    });

    let nested = s.path("nested.toml");
    let text = format!(
        "{abort_head}programs = {}\"x\"{}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    write_bytes(&nested, text.as_bytes(), 0o644);
    cases.push(Case {
        name: "deeply nested arrays",
        path: nested,
        expect: String::new(), // filled in below: the parser's own message
        aborts: true,
    });

    let dup = s.path("dup.toml");
    write_bytes(
        &dup,
        format!("{abort_head}log = \"off\"\nlog = \"stderr\"\n").as_bytes(),
        0o644,
    );
    cases.push(Case {
        name: "duplicate keys",
        path: dup,
        expect: String::new(),
        aborts: true,
    });

    let empty = s.path("empty.toml");
    write_bytes(&empty, b"", 0o644);
    cases.push(Case {
        name: "empty file",
        path: empty,
        expect: "forkguard: {}:1:1: missing field `version`".into(),
        aborts: false,
    });

    // Messages of the TOML parser itself: pinned by what `forkguard check`
    // prints for the same file (the library and the command share the
    // parser), and required to be one `FILE:LINE:COL:` line.
    for c in cases.iter_mut().filter(|c| c.expect.is_empty()) {
        let out = std::process::Command::new(cli())
            .arg("check")
            .arg(&c.path)
            .output()
            .expect("run forkguard check");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let line = errors(&stderr)
            .first()
            .unwrap_or_else(|| panic!("[{}] forkguard check printed no error: {stderr}", c.name))
            .to_string();
        let prefix = format!("forkguard: {}:", c.path.display());
        let rest = line.strip_prefix(&prefix).expect("error names the file");
        let mut parts = rest.splitn(3, ':');
        let (l, col) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        assert!(
            l.parse::<u32>().is_ok_and(|n| n >= 1) && col.parse::<u32>().is_ok_and(|n| n >= 1),
            "[{}] not FILE:LINE:COL: {line}",
            c.name
        );
        c.expect = line.replace(&c.path.display().to_string(), "{}");
        eprintln!("[{}] {}", c.name, c.expect);
    }

    let failures: Vec<String> = cases.iter().filter_map(|c| run_case(&s, c).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));

    // Control: the same body in a plain file is applied.
    s.reset_trace();
    let good = s.config("good.toml", &body);
    run(&s, fixture_cmd(&s, "forker", &["fork"], &good), TIMEOUT).assert_success();
    assert_eq!(s.trace().count("prepare"), 1, "control config not applied");
}

/// A config the real user can read but does not own (root's, readable
/// through the group only): an error in it is reported by location only,
/// never with a piece of the file.
#[test]
fn content_of_a_file_the_user_does_not_own_is_never_printed() {
    if !is_root() {
        eprintln!("SKIP content_of_a_file_the_user_does_not_own_is_never_printed: needs root");
        return;
    }
    let s = Scratch::new("tcfgsecret");
    std::fs::set_permissions(&s.dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let secret = "SECRET_TOKEN_8c1f2a";
    let text = format!("version = 1\n\n[settings]\n{secret} = \"{secret}-value\"\n");
    let run_as_nobody = |mode: u32| -> Outcome {
        let p = s.path(&format!("secret-{mode:o}.toml"));
        write_mode(&p, &text, mode);
        std::os::unix::fs::chown(&p, Some(0), Some(65534)).expect("chown");
        let mut c = preloaded_as_nobody(&s, &fixture("forker"), "fork");
        clean_env(&mut c);
        c.env("FORKGUARD_CONFIG", &p).current_dir(&s.dir);
        run(&s, c, TIMEOUT)
    };
    // Group-readable only: nobody reads it through gid 65534.
    let hidden = run_as_nobody(0o640);
    let errs = errors(&hidden.stderr);
    assert_eq!(errs.len(), 1, "{}", hidden.dump());
    assert!(
        errs[0].ends_with(": invalid config (details hidden: you cannot read this file)"),
        "{}",
        hidden.dump()
    );
    assert!(!hidden.stderr.contains(secret) && !hidden.stdout.contains(secret));
    hidden.assert_success();
    // Control: world-readable, the same error names the key.
    let shown = run_as_nobody(0o644);
    assert!(shown.stderr.contains(secret), "control: {}", shown.dump());
}
