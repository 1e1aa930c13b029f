//! `forkguard audit --suggest OUT`: the audited processes append what they
//! saw at each fork (`src/actions/held/audit.rs`) to a scratch file, one
//! fact a line; this turns those lines into a config that guards it, and
//! writes it atomically (a temporary file in OUT's directory, renamed).
//!
//! Lines: `lock TYPE SYMBOL` (a lock in a global another thread held),
//! `unnamed TYPE NAME` (one on the heap or without a symbol), `libc TYPE
//! NAME` (one inside glibc), `fd listen`, `fd peer HOST:PORT`, `fd epoll`,
//! `openmp` (a live GNU OpenMP pool: SPEC 8.8's recipe).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

/// The config for these lines (always valid for `forkguard check`).
pub fn config(lines: &str, command: &str) -> String {
    let mut locks = BTreeSet::new();
    let mut unnamed = BTreeSet::new();
    let mut libc = BTreeSet::new();
    let mut listen = false;
    let mut epoll = false;
    let mut openmp = false;
    let mut peers = BTreeSet::new();
    for l in lines.lines() {
        let w: Vec<&str> = l.splitn(3, ' ').collect();
        match w.as_slice() {
            ["lock", ty, sym] if valid_type(ty) && valid_symbol(sym) => {
                locks.insert((sym.to_string(), ty.to_string()));
            }
            ["unnamed", _, name] => {
                unnamed.insert(name.to_string());
            }
            ["libc", _, name] => {
                libc.insert(name.to_string());
            }
            ["fd", "listen"] => listen = true,
            ["fd", "epoll"] => epoll = true,
            ["openmp"] => openmp = true,
            ["fd", "peer", p] if valid_peer(p) => {
                peers.insert(p.to_string());
            }
            _ => {}
        }
    }
    let mut out = String::new();
    out.push_str(&format!(
        "# Written by `forkguard audit --suggest` for: {}\nversion = 1\n",
        command.replace('\n', " ")
    ));
    if !unnamed.is_empty() || !libc.is_empty() {
        out.push_str("\n[settings]\n");
        for n in &unnamed {
            out.push_str(&format!("# held by another thread at a fork: {n}\n"));
        }
        for n in &libc {
            out.push_str(&format!(
                "# held by another thread at a fork, inside glibc: {n}\n"
            ));
        }
        if !libc.is_empty() {
            out.push_str("libc_locks = \"acquire\"\n");
        }
        if !unnamed.is_empty() {
            out.push_str("held_locks = \"acquire\"\n");
        }
    }
    for (sym, ty) in &locks {
        out.push_str(&format!(
            "\n[[lock]]\nsymbol = \"{sym}\"\ntype = \"{ty}\"\n"
        ));
    }
    if listen {
        out.push_str("\n[[fd]]\nselect = { kind = \"listen\" }\naction = \"cloexec\"\n");
    }
    for p in &peers {
        out.push_str(&format!(
            "\n[[fd]]\nselect = {{ kind = \"socket\", peer = \"{p}\" }}\naction = \"disconnect\"\n"
        ));
    }
    if epoll {
        out.push_str("\n[[fd]]\nselect = { kind = \"epoll\" }\naction = \"renew\"\n");
    }
    if openmp {
        out.push('\n');
        out.push_str(forkguard_core::recipes::openmp_entry());
    }
    out
}

fn valid_type(t: &str) -> bool {
    matches!(t, "mutex" | "rwlock" | "spinlock" | "semaphore")
}

/// A symbol as `[[lock]]` takes it: no quotes, spaces or control bytes.
fn valid_symbol(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:$@-".contains(c))
}

fn valid_peer(p: &str) -> bool {
    !p.is_empty()
        && p.chars()
            .all(|c| c.is_ascii_hexdigit() || ".:[]".contains(c))
}

/// Write `text` to `out` atomically.
pub fn write_atomically(out: &Path, text: &str) -> std::io::Result<()> {
    let dir = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, out).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_a_valid_config() {
        let lines =
            "lock mutex g_lock\nlock mutex g_lock\nunnamed mutex heap mutex taken in f (x+0x1)\n\
                     lock rwlock libfoo.so.1:rw\nfd listen\nfd peer 127.0.0.1:6379\nfd epoll\n\
                     lock mutex bad\"quote\njunk\n";
        let text = config(lines, "./prog");
        let plan = forkguard_core::plan::Plan::parse("s.toml", &text).unwrap();
        assert_eq!(
            plan.settings.held_locks,
            forkguard_core::plan::HeldLocks::Acquire
        );
        assert_eq!(plan.actions.len(), 5, "{text}");
        assert!(text.contains("symbol = \"g_lock\""));
        assert!(!text.contains("quote"));
    }

    #[test]
    fn glibc_locks_and_an_openmp_pool() {
        use forkguard_core::plan::{ActionKind, HeldLocks, LibcLocks};
        let text = config(
            "libc futex libc.so.6:setenv.c:envlock\nopenmp\nopenmp\n",
            "./prog",
        );
        let plan = forkguard_core::plan::Plan::parse("s.toml", &text).unwrap();
        assert_eq!(plan.settings.libc_locks, LibcLocks::Acquire, "{text}");
        assert_eq!(plan.settings.held_locks, HeldLocks::Off, "{text}");
        assert_eq!(plan.actions.len(), 1, "{text}");
        let ActionKind::Call(c) = &plan.actions[0].kind else {
            panic!("{text}")
        };
        assert_eq!(c.symbol.name, "omp_pause_resource_all");
        assert_eq!(c.args, [2]);
    }

    #[test]
    fn nothing_seen_is_an_empty_config() {
        let plan = forkguard_core::plan::Plan::parse("s.toml", &config("", "x")).unwrap();
        assert!(plan.is_empty());
    }
}
