//! The C fixtures in `tests/c`, compiled with gcc once per test binary into
//! [`fixture_dir`].

use super::paths::{root, target_dir};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Where compiled fixtures go: `$FGT_FIXTURE_DIR` (scripts/test.sh points it
/// into a private directory), else `target/fixtures`. Created on first use.
pub fn fixture_dir() -> PathBuf {
    let dir = match std::env::var_os("FGT_FIXTURE_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => target_dir().join("fixtures"),
    };
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// Executables built from `tests/c/NAME.c`.
const PROGRAMS: &[&str] = &[
    "forker",
    "childcheck",
    "pdeath",
    "handshake",
    "allocfix",
    "held",
];
/// Shared objects built from `tests/c/NAME.c`.
const LIBRARIES: &[&str] = &["alloccount"];

fn compile(out_dir: &Path, name: &str, shared: bool) -> PathBuf {
    let src = root().join("tests/c").join(format!("{name}.c"));
    let out = if shared {
        out_dir.join(format!("lib{name}.so"))
    } else {
        out_dir.join(name)
    };
    // Build next to the final name, then rename: test binaries (or a second
    // checkout sharing the target dir) never see a half-written file.
    let tmp = out_dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut cmd = Command::new("gcc");
    cmd.args([
        "-O1",
        "-g",
        "-Wall",
        "-Wextra",
        "-Wno-unused-parameter",
        "-pthread",
    ]);
    if shared {
        cmd.args(["-shared", "-fPIC"]);
    } else {
        cmd.arg("-rdynamic");
    }
    cmd.arg("-I").arg(root().join("tests/c"));
    // No -lutil: forkpty is in libc since glibc 2.34.
    cmd.arg("-o").arg(&tmp).arg(&src);
    let out_put = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run gcc (install gcc): {e}"));
    assert!(
        out_put.status.success(),
        "gcc failed for {}:\n{}",
        src.display(),
        String::from_utf8_lossy(&out_put.stderr)
    );
    fs::rename(&tmp, &out).expect("rename fixture");
    out
}

fn fixtures() -> &'static HashMap<&'static str, PathBuf> {
    static BUILT: OnceLock<HashMap<&'static str, PathBuf>> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = fixture_dir();
        let mut m = HashMap::new();
        for &p in PROGRAMS {
            m.insert(p, compile(&dir, p, false));
        }
        for &l in LIBRARIES {
            m.insert(l, compile(&dir, l, true));
        }
        m
    })
}

/// Path of a compiled C fixture (program or `lib*.so`), built once per test binary.
pub fn fixture(name: &str) -> PathBuf {
    fixtures()
        .get(name)
        .unwrap_or_else(|| panic!("no fixture named {name}"))
        .clone()
}

/// Path of `tests/c/NAME.c` compiled like the fixtures above (a program, or
/// `libNAME.so` when `shared`), built once per test binary, on first use.
/// For fixtures only some test binaries need (not in `PROGRAMS`).
pub fn extra_fixture(name: &str, shared: bool) -> PathBuf {
    static BUILT: OnceLock<std::sync::Mutex<HashMap<(String, bool), PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut m = built.lock().unwrap_or_else(|e| e.into_inner());
    m.entry((name.to_string(), shared))
        .or_insert_with(|| {
            let dir = fixture_dir();
            compile(&dir, name, shared)
        })
        .clone()
}
