//! The library's load cost: what the dynamic loader must do for it in every
//! process. Each imported function is a symbol lookup at load (~800
//! instructions), so libc functions are bound lazily through src/os/lazy.rs;
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
        "libforkguard.so imports {extra:?}: add them to src/os/lazy_imports.txt so they are bound lazily"
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
    // The process creation calls; the pthread lock and semaphore calls
    // (entry/held.rs: one indirect jump each; tracked only with held_locks,
    // under audit, or for an rwlock action's read locks); `spawn = true`
    // (SPEC 8.5): the spawning calls and the exec calls of a vfork child;
    // `log_exits`: the wait family (see src/entry/wait.rs); the mutex and
    // rwlock destroy calls (entry/destroy.rs: wait while a fork with
    // held_locks = "acquire" holds the lock).
    let expected = [
        "daemon",
        "execv",
        "execve",
        "execvp",
        "execvpe",
        "fork",
        "forkpty",
        "pclose",
        "popen",
        "posix_spawn",
        "posix_spawnp",
        "pthread_mutex_clocklock",
        "pthread_mutex_destroy",
        "pthread_mutex_lock",
        "pthread_mutex_timedlock",
        "pthread_mutex_trylock",
        "pthread_mutex_unlock",
        "pthread_rwlock_clockrdlock",
        "pthread_rwlock_clockwrlock",
        "pthread_rwlock_destroy",
        "pthread_rwlock_rdlock",
        "pthread_rwlock_timedrdlock",
        "pthread_rwlock_timedwrlock",
        "pthread_rwlock_tryrdlock",
        "pthread_rwlock_trywrlock",
        "pthread_rwlock_unlock",
        "pthread_rwlock_wrlock",
        "pthread_spin_lock",
        "pthread_spin_trylock",
        "pthread_spin_unlock",
        "sem_clockwait",
        "sem_destroy",
        "sem_init",
        "sem_post",
        "sem_timedwait",
        "sem_trywait",
        "sem_wait",
        "system",
        "vfork",
        "wait",
        "wait3",
        "wait4",
        "waitid",
        "waitpid",
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

/// Each symbol relocation is a look-up by the loader in every process. The
/// library's own calls to functions it exports (its pthread lock calls)
/// bind to its own definitions at link time (`-Bsymbolic-functions`,
/// build.rs): no relocation may name an exported function.
#[test]
fn no_relocation_names_an_exported_function() {
    let syms = readelf(&["--dyn-syms", "-W"]);
    let exported: Vec<&str> = syms
        .lines()
        .filter(|l| l.contains(" FUNC ") && l.contains(" GLOBAL ") && !l.contains(" UND "))
        .filter_map(|l| l.split_whitespace().nth(7))
        .map(|n| n.split('@').next().unwrap_or(n))
        .collect();
    assert!(exported.contains(&"pthread_mutex_lock"), "{exported:?}");
    let relocs = readelf(&["-r", "-W"]);
    let own: Vec<&str> = relocs
        .lines()
        .filter(|l| l.contains("R_X86_64_"))
        .filter(|l| {
            l.split_whitespace()
                .nth(4)
                .is_some_and(|n| exported.contains(&n.split('@').next().unwrap_or(n)))
        })
        .collect();
    assert!(own.is_empty(), "relocations against own exports: {own:#?}");
}

// ---------------------------------------------------------------------------
// The library binds libc functions itself (src/os/lazy.rs): walking the loaded
// objects' GNU hash tables in load order, as the loader would. `forkguard
// check` mode compares every binding with dlsym(RTLD_DEFAULT).

mod common;

/// The check-mode line `N libc binding(s) compared with dlsym, M differ`.
fn bindings_report(preload: &str) -> (usize, usize, String) {
    let s = common::Scratch::new("bindings");
    let cfg = s.config(
        "fg.toml",
        "version = 1\n[[call]]\nsymbol = \"getpid\"\nphase = \"child\"\n",
    );
    let mut cmd = Command::new("/bin/true");
    cmd.env("LD_PRELOAD", preload)
        .env("FORKGUARD_CONFIG", &cfg)
        .env("FORKGUARD_CHECK", "1");
    // With a deadline, like every run of the library in the tests.
    let text = common::run(&s, cmd, common::TIMEOUT).stdout;
    let line = text
        .lines()
        .find(|l| l.contains("compared with dlsym"))
        .unwrap_or_else(|| panic!("no bindings line:\n{text}"));
    let nums: Vec<usize> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(nums.len(), 2, "{line}");
    (nums[0], nums[1], text)
}

#[test]
fn own_symbol_lookup_binds_what_dlsym_binds() {
    let (n, differ, text) = bindings_report(&library().display().to_string());
    assert!(n > 50, "only {n} bindings compared:\n{text}");
    assert_eq!(differ, 0, "{text}");
}

#[test]
fn own_symbol_lookup_finds_an_interposer_loaded_first() {
    // alloccount.so defines malloc, free, calloc, realloc...: loaded before
    // forkguard, dlsym(RTLD_DEFAULT) finds its functions, and so must the
    // library's own lookup (it would differ if it went to libc directly).
    let counter = common::fixture("alloccount");
    let nm = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&counter)
        .output()
        .expect("nm");
    let defined = String::from_utf8_lossy(&nm.stdout).into_owned();
    assert!(
        defined.lines().any(|l| l.ends_with(" malloc")),
        "the interposer must define malloc:\n{defined}"
    );
    let preload = format!("{} {}", counter.display(), library().display());
    let (n, differ, text) = bindings_report(&preload);
    assert!(n > 50, "{text}");
    assert_eq!(differ, 0, "{text}");
}
