//! Hostile `reopen` targets (issue 6, scenario 10): a `reopen` with
//! `create` whose target is a symlink planted in /tmp, or an existing file of
//! another user, must be refused, the victim left untouched, and the failure
//! reported in the child's log line. Fixture: `fd_fix reopen 1 3` (fd 5 is
//! reopened; the child then writes three lines to it).

mod common;
mod fd_support;

use common::*;
use fd_support::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A file in /tmp itself (world-writable, sticky), where an attacker can
/// plant things, removed on drop.
struct TmpFile(PathBuf);

impl TmpFile {
    fn new(tag: &str) -> TmpFile {
        let p = PathBuf::from(format!("/tmp/fgt-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        TmpFile(p)
    }
}

impl Drop for TmpFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn reopen_body(path: &Path) -> String {
    fd(
        "fd = 5",
        "reopen",
        &format!(
            "path = \"{}\"\nflags = [\"create\", \"append\"]",
            path.display()
        ),
    )
}

/// (content, mtime in ns) of the victim.
fn snapshot(p: &Path) -> (String, i128) {
    let md = std::fs::metadata(p).expect("victim");
    (
        std::fs::read_to_string(p).expect("read victim"),
        i128::from(md.mtime()) * 1_000_000_000 + i128::from(md.mtime_nsec()),
    )
}

#[test]
fn reopen_create_refuses_a_symlink_planted_in_tmp() {
    let s = Scratch::new("treopen-link");
    let victim = s.path("victim");
    write_mode(&victim, "VICTIM\n", 0o644);
    let before = snapshot(&victim);
    let link = TmpFile::new("planted-link");
    std::os::unix::fs::symlink(&victim, &link.0).expect("plant symlink");
    if is_root() {
        // Planted by someone else, as an attacker would.
        let _ = std::os::unix::fs::lchown(&link.0, Some(65534), Some(65534));
    }
    let r = fix(&s, &["reopen", "1", "3"], Some(&reopen_body(&link.0))).ok();
    assert_eq!(
        snapshot(&victim),
        before,
        "the victim was written through the link"
    );
    // ELOOP from O_NOFOLLOW; EACCES when the kernel's protected_symlinks
    // refuses the link first (as root, with the link owned by nobody).
    let line = r.child_lines().join("\n");
    let want = format!("0 ok, 1 failed (fd 5 reopen {}: E", link.0.display());
    assert!(
        line.contains(&want) && (line.contains(": ELOOP)") || line.contains(": EACCES)")),
        "the refusal is reported: {line}\n{}",
        r.log
    );
}

/// Known gap (docs/RELIABILITY.md, "found"): `create` opens an existing file
/// of another user (no `O_EXCL`, no owner check), so a root program appends
/// its child's output to a file an attacker left in /tmp. Ignored until the
/// library refuses it (fs.protected_regular = 0 here, so the kernel does not).
#[test]
fn reopen_create_refuses_another_users_existing_file() {
    if !is_root() {
        eprintln!("SKIPPED: needs root to own a file as another user");
        return;
    }
    let s = Scratch::new("treopen-other");
    let victim = TmpFile::new("other-user");
    write_mode(&victim.0, "OTHER\n", 0o644);
    std::os::unix::fs::chown(&victim.0, Some(65534), Some(65534)).expect("chown");
    let before = snapshot(&victim.0);
    let r = fix(&s, &["reopen", "1", "3"], Some(&reopen_body(&victim.0))).ok();
    assert_eq!(
        snapshot(&victim.0),
        before,
        "another user's file was written:\n{}",
        r.log
    );
    assert!(
        r.child_lines().iter().any(|l| l.contains("1 failed")),
        "the refusal is reported:\n{}",
        r.log
    );
}

#[test]
fn reopen_create_of_a_fresh_file_is_the_control() {
    // Control: the same config on a path nobody planted creates the file and
    // the child's lines land in it, so the checks above can fail.
    let s = Scratch::new("treopen-ctl");
    let fresh = TmpFile::new("fresh-target");
    let r = fix(&s, &["reopen", "1", "3"], Some(&reopen_body(&fresh.0))).ok();
    let text = std::fs::read_to_string(&fresh.0).expect("created");
    assert_eq!(text.lines().count(), 3, "{text}\n{}", r.log);
    assert!(
        r.child_lines().iter().any(|l| l.contains("1 ok")),
        "{}",
        r.log
    );
}
