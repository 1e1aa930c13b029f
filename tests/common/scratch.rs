//! Scratch directories (one per test, under the system temp dir), files
//! written with an exact mode, and copies of what another user must run or
//! read.

use super::trace::Trace;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh directory under the system temp dir, mode 0755 whatever the
/// umask, removed on drop (kept when `FGT_KEEP=1`, for debugging).
pub struct Scratch {
    pub dir: PathBuf,
    runs: AtomicU32,
}

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("fgt-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create scratch dir");
        // Tests that switch to another user (nobody, postgres) give it
        // configs, logs and copies from here: never 0700 from a umask.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod scratch dir");
        Scratch {
            dir,
            runs: AtomicU32::new(0),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Write a config file with mode 0644 (forkguard refuses group- or
    /// world-writable ones).
    pub fn config(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        write_mode(&p, text, 0o644);
        p
    }

    /// A copy of `src` (the library, a compiled fixture) that another user
    /// can run or read wherever the checkout is: the checkout may sit in a
    /// directory only root can enter (a clone in a `mktemp -d` directory,
    /// under /root). The copy is `for-others/NAME` here (0755, removed with
    /// the scratch dir); a second call for the same name returns the first
    /// copy. Panics, saying why, when other users cannot enter the scratch
    /// dir itself (a private `$TMPDIR`).
    pub fn for_others(&self, src: &Path) -> PathBuf {
        if let Err(why) = reachable_by_others(&self.dir) {
            panic!("{why}: set TMPDIR to a directory every user can enter (or unset it)");
        }
        let dir = self.path("for-others");
        let name = src.file_name().expect("a file name");
        let dst = dir.join(name);
        if dst.exists() {
            return dst;
        }
        fs::create_dir_all(&dir).expect("create for-others dir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        // Copy beside the final name, then rename: a process never runs a
        // half-written file.
        let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
        fs::copy(src, &tmp).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::rename(&tmp, &dst).expect("rename copy");
        dst
    }

    /// The trace file fixtures write to (`$FGT_TRACE`).
    pub fn trace_path(&self) -> PathBuf {
        self.path("trace")
    }

    /// Lines of the trace file, parsed (empty when it does not exist).
    pub fn trace(&self) -> Trace {
        Trace::read(&self.trace_path())
    }

    /// Remove the trace file (between runs in one scratch dir).
    pub fn reset_trace(&self) {
        let _ = fs::remove_file(self.trace_path());
    }

    pub(super) fn next_run(&self) -> u32 {
        self.runs.fetch_add(1, Ordering::Relaxed)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("FGT_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Ok when a user who is neither the owner nor in the group of any
/// directory on the way can enter `dir`: every ancestor, and `dir` itself,
/// has the search bit for others. The error names the first one that does not.
pub fn reachable_by_others(dir: &Path) -> Result<(), String> {
    let dir = fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for d in dir.ancestors() {
        let mode = fs::metadata(d)
            .map_err(|e| format!("{}: {e}", d.display()))?
            .permissions()
            .mode();
        if mode & 0o001 == 0 {
            return Err(format!(
                "other users cannot enter {} (mode {:o})",
                d.display(),
                mode & 0o7777
            ));
        }
    }
    Ok(())
}

/// Write `text` to `p` with exactly `mode` (umask does not apply).
pub fn write_mode(p: &Path, text: &str, mode: u32) {
    let _ = fs::remove_file(p);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(p)
        .unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
    f.write_all(text.as_bytes()).expect("write file");
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).expect("chmod");
}
