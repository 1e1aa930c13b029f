//! The plan cache (`forkguard_core::load::cache`, /run/forkguard): a process
//! that a valid config does not apply to may stop without parsing it, but
//! every config problem is still reported at load (SPEC §4), by every
//! process. Only root writes entries; these tests need root and say so on
//! stderr (and check nothing) otherwise.
//!
//! Run: `cargo build --release -p forkguard && cargo test --profile fgtest --test plan_cache`.

mod common;

use common::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const DIR: &str = "/run/forkguard";

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The cache entry of a config file (named after its device and inode).
fn entry(config: &Path) -> PathBuf {
    let md = std::fs::metadata(config).expect("stat config");
    Path::new(DIR).join(format!("plan-{:x}-{:x}", md.dev(), md.ino()))
}

/// `/bin/true` with forkguard and `config`: not in its `programs`.
fn run_true(s: &Scratch, config: &Path) -> Outcome {
    let mut cmd = Command::new("/bin/true");
    clean_env(&mut cmd);
    cmd.env("LD_PRELOAD", lib())
        .env("FORKGUARD_CONFIG", config)
        .current_dir(&s.dir);
    run(s, cmd, Duration::from_secs(30))
}

/// A valid config for another program, `extra` bytes of comment long, so
/// that a broken variant can have exactly the same size.
fn valid(pad: usize) -> String {
    format!(
        "version = 1\n[settings]\nprograms = [\"fgt-not-this-program\"]\n#{}\n",
        "x".repeat(pad)
    )
}

/// Let the file's timestamps age past the cache's settle time (2 s).
fn settle() {
    std::thread::sleep(Duration::from_millis(2300));
}

#[test]
fn errors_are_reported_even_with_a_cache_entry() {
    if !is_root() {
        eprintln!("SKIPPED errors_are_reported_even_with_a_cache_entry: needs root (only root writes the cache)");
        return;
    }
    let s = Scratch::new("plan-cache");
    let cfg = s.config("fg.toml", &valid(40));
    settle();

    // A valid, settled file: the first process parses it and writes the entry.
    run_true(&s, &cfg).assert_success();
    assert_eq!(run_true(&s, &cfg).stderr, "");
    let e = entry(&cfg);
    assert!(e.exists(), "no cache entry {} written", e.display());
    let text = std::fs::read_to_string(&e).unwrap();
    assert!(text.contains("20:fgt-not-this-program"), "{text}");

    // The same file, rewritten in place with an error and the same size: its
    // ctime moved, the entry no longer matches, and the error is reported.
    let broken = valid(40).replace("version = 1", "version = 7");
    assert_eq!(broken.len(), valid(40).len());
    std::fs::write(&cfg, &broken).unwrap();
    let out = run_true(&s, &cfg);
    assert!(
        out.stderr
            .contains(&format!("forkguard: {}:1:", cfg.display())),
        "the error was not reported:\n{}",
        out.dump()
    );
    // Again after it settled: an invalid file never gets an entry.
    settle();
    let out = run_true(&s, &cfg);
    assert!(out.stderr.contains("forkguard: "), "{}", out.dump());
    let after = std::fs::read_to_string(&e).unwrap_or_default();
    assert_eq!(after, text, "an entry was written for an invalid file");

    // A refusal (a file writable by others) is reported before any lookup.
    std::fs::write(&cfg, valid(40)).unwrap();
    settle();
    run_true(&s, &cfg).assert_success();
    assert!(std::fs::read_to_string(&e)
        .unwrap()
        .contains("fgt-not-this-program"));
    let mut p = std::fs::metadata(&cfg).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut p, 0o666);
    std::fs::set_permissions(&cfg, p).unwrap();
    let out = run_true(&s, &cfg);
    assert!(
        out.stderr
            .contains("refusing config writable by group or others"),
        "{}",
        out.dump()
    );
    let _ = std::fs::remove_file(&e);
}

#[test]
fn untrusted_entries_and_the_off_switch() {
    if !is_root() {
        eprintln!("SKIPPED untrusted_entries_and_the_off_switch: needs root");
        return;
    }
    let s = Scratch::new("plan-cache-off");
    let cfg = s.config("fg.toml", &valid(10));
    settle();
    let e = entry(&cfg);
    let _ = std::fs::remove_file(&e);

    // FORKGUARD_PLAN_CACHE=off: no entry written.
    let mut cmd = Command::new("/bin/true");
    clean_env(&mut cmd);
    cmd.env("LD_PRELOAD", lib())
        .env("FORKGUARD_CONFIG", &cfg)
        .env("FORKGUARD_PLAN_CACHE", "off");
    run(&s, cmd, Duration::from_secs(30)).assert_success();
    assert!(
        !e.exists(),
        "FORKGUARD_PLAN_CACHE=off wrote {}",
        e.display()
    );

    // An entry not owned by root is ignored: a forged "valid" entry for a
    // broken file must not hide its error.
    run_true(&s, &cfg).assert_success();
    assert!(e.exists());
    let forged = std::fs::read_to_string(&e).unwrap();
    std::fs::write(&cfg, valid(10).replace("version = 1", "version = 9")).unwrap();
    // Re-key the entry to the broken file's new identity, then hand it to
    // another user: a forgery as that user could make it.
    let md = std::fs::metadata(&cfg).unwrap();
    let key_line = format!(
        "{} {} {} {}.{:09} {}.{:09}",
        md.dev(),
        md.ino(),
        md.size(),
        md.mtime(),
        md.mtime_nsec(),
        md.ctime(),
        md.ctime_nsec()
    );
    let mut lines: Vec<&str> = forged.lines().collect();
    lines[2] = &key_line;
    let body = lines.join("\n") + "\n";
    std::fs::write(&e, &body).unwrap();
    std::os::unix::fs::chown(&e, Some(65534), None).unwrap();
    let out = run_true(&s, &cfg);
    assert!(
        out.stderr
            .contains(&format!("forkguard: {}:1:", cfg.display())),
        "a non-root entry hid the error:\n{}",
        out.dump()
    );
    // The same forgery owned by root would be believed: only root can make it.
    std::os::unix::fs::chown(&e, Some(0), None).unwrap();
    assert_eq!(run_true(&s, &cfg).stderr, "");
    let _ = std::fs::remove_file(&e);
}
