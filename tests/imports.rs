//! The library's load cost: what the dynamic loader must do for it in every
//! process. Each imported function is a symbol lookup at load (~800
//! instructions), so libc functions are bound lazily through src/lazy.rs;
//! this test fails when a new import slips in, or libgcc_s comes back.

use std::path::PathBuf;
use std::process::Command;

fn library() -> PathBuf {
    match std::env::var_os("FORKGUARD_LIB") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/libforkguard.so"),
    }
}

fn readelf(args: &[&str]) -> String {
    let lib = library();
    assert!(
        lib.is_file(),
        "{} missing: cargo build --release -p forkguard",
        lib.display()
    );
    let out = Command::new("readelf")
        .args(args)
        .arg(&lib)
        .output()
        .expect("readelf (binutils)");
    assert!(out.status.success(), "readelf failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn imports_only_the_loader_essentials() {
    // Undefined, non-weak dynamic symbols.
    let syms = readelf(&["--dyn-syms", "-W"]);
    let imported: Vec<String> = syms
        .lines()
        .filter(|l| l.contains(" UND ") && l.contains(" GLOBAL "))
        .filter_map(|l| l.split_whitespace().nth(7))
        .map(|s| s.split('@').next().unwrap_or(s).to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let allowed = ["dlsym", "__tls_get_addr"];
    let extra: Vec<&String> = imported
        .iter()
        .filter(|s| !allowed.contains(&s.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "libforkguard.so imports {extra:?}: add them to src/lazy_imports.txt so they are bound lazily"
    );
    assert!(
        imported.iter().any(|s| s == "dlsym"),
        "expected dlsym to be imported: {imported:?}"
    );
}

#[test]
fn exports_only_the_hooks() {
    let syms = readelf(&["--dyn-syms", "-W"]);
    let mut exported: Vec<String> = syms
        .lines()
        .filter(|l| !l.contains(" UND ") && (l.contains(" GLOBAL ") || l.contains(" WEAK ")))
        .filter_map(|l| l.split_whitespace().nth(7))
        .map(|s| s.split('@').next().unwrap_or(s).to_string())
        .collect();
    exported.sort();
    // The process creation calls, and the rwlock read-lock calls: glibc
    // does not record which threads hold a read lock, so lock.rs counts
    // them per thread (only while a config has rwlock actions) to tell a
    // read lock the forking thread holds from one another thread holds.
    let expected = [
        "daemon",
        "fork",
        "forkpty",
        "pthread_rwlock_clockrdlock",
        "pthread_rwlock_rdlock",
        "pthread_rwlock_timedrdlock",
        "pthread_rwlock_tryrdlock",
        "pthread_rwlock_unlock",
        "vfork",
    ];
    assert_eq!(exported, expected, "unexpected exports");
}

#[test]
fn does_not_load_libgcc_s() {
    let dynamic = readelf(&["-d"]);
    let needed: Vec<&str> = dynamic.lines().filter(|l| l.contains("(NEEDED)")).collect();
    assert!(
        !needed.iter().any(|l| l.contains("libgcc_s")),
        "libgcc_s is back: {needed:?}"
    );
    assert!(
        needed.iter().any(|l| l.contains("libc.so.6")),
        "no libc? {needed:?}"
    );
}
