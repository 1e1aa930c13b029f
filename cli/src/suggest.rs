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
            out.push_str(&cxx_comment(n));
        }
        // SPEC 8.4: libc_locks whenever a lock inside glibc was held. The
        // comment says which of the profile's locks (SPEC 8.3) it is; one
        // the profile does not cover is a pthread lock the trackers saw,
        // which held_locks guards as well.
        let mut uncovered = false;
        for n in &libc {
            match libc_profile_entry(n) {
                Some(l) => {
                    out.push_str(&format!(
                        "# held by another thread at a fork, inside glibc: {n}\n\
                         #   libc_locks guards it: {}{} ({}), taken by {}\n",
                        l.file.map(|f| format!("{f}:")).unwrap_or_default(),
                        l.name,
                        kind_word(l.kind),
                        l.guards
                    ));
                }
                None => {
                    uncovered = true;
                    out.push_str(&format!(
                        "# held by another thread at a fork, inside glibc: {n}\n\
                         #   not one of the locks libc_locks guards by name: held_locks does\n"
                    ));
                }
            }
        }
        if !libc.is_empty() {
            out.push_str("libc_locks = \"acquire\"\n");
        }
        if !unnamed.is_empty() || uncovered {
            out.push_str("held_locks = \"acquire\"\n");
        }
    }
    for (sym, ty) in &locks {
        // `symbol` must stay the (mangled) name of the symbol table.
        out.push('\n');
        out.push_str(&cxx_comment(sym));
        out.push_str(&format!("[[lock]]\nsymbol = \"{sym}\"\ntype = \"{ty}\"\n"));
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

/// A comment line with the C++ names (demangled) of the mangled symbols
/// in `text` (`_ZN5Cache7refreshEv` -> `Cache::refresh()`); empty when
/// there are none. The library prints names as the symbol table has them.
fn cxx_comment(text: &str) -> String {
    let names: Vec<String> = text
        .split([' ', '(', ')', ':', '+', ','])
        .filter(|w| w.starts_with("_Z"))
        .filter_map(|w| {
            let sym = cpp_demangle::Symbol::new(w).ok()?;
            sym.demangle(&cpp_demangle::DemangleOptions::default()).ok()
        })
        .collect();
    if names.is_empty() {
        String::new()
    } else {
        format!("#   C++: {}\n", names.join(", "))
    }
}

/// The `libc_locks` profile's entry for a lock `forkguard audit` named
/// `libc.so.6:NAME` or `libc.so.6:FILE:NAME` (the whole symbol: not one
/// `+OFFSET` inside it, nor a heap or unnamed lock).
fn libc_profile_entry(name: &str) -> Option<&'static forkguard_core::libc_locks::Lock> {
    use forkguard_core::libc_locks::{name_matches, Object, LOCKS};
    let (obj, rest) = name.split_once(':')?;
    if !obj.starts_with("libc.so") || rest.contains(['+', ' ']) {
        return None;
    }
    let (file, sym) = match rest.split_once(':') {
        Some((f, s)) => (Some(f), s),
        None => (None, rest),
    };
    LOCKS.iter().find(|l| {
        l.object == Object::Libc
            && name_matches(sym, l.name)
            && match (l.file, file) {
                (Some(want), Some(f)) => want == f,
                // A name the profile gives without FILE is unique.
                (None, _) => true,
                (Some(_), None) => false,
            }
    })
}

fn kind_word(k: forkguard_core::libc_locks::Kind) -> &'static str {
    use forkguard_core::libc_locks::Kind;
    match k {
        Kind::Futex => "futex",
        Kind::Recursive => "recursive lock",
        Kind::Rwlock => "rwlock",
        Kind::Mutex => "mutex",
    }
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
    fn a_glibc_lock_is_named_from_the_libc_locks_profile() {
        use forkguard_core::plan::{HeldLocks, LibcLocks};
        let text = config(
            "libc futex libc.so.6:random.c:lock\nlibc rwlock libc.so.6:__libc_setlocale_lock\n",
            "./prog",
        );
        let plan = forkguard_core::plan::Plan::parse("s.toml", &text).unwrap();
        assert_eq!(plan.settings.libc_locks, LibcLocks::Acquire, "{text}");
        assert_eq!(plan.settings.held_locks, HeldLocks::Off, "{text}");
        assert!(
            text.contains("libc_locks guards it: random.c:lock (futex), taken by random"),
            "{text}"
        );
        assert!(
            text.contains(
                "libc_locks guards it: __libc_setlocale_lock (rwlock), taken by setlocale"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_glibc_lock_the_profile_does_not_cover_also_gets_held_locks() {
        use forkguard_core::plan::{HeldLocks, LibcLocks};
        for line in [
            "libc mutex static mutex taken in f (libc.so.6+0x10)",
            "libc mutex libc.so.6:random.c:lock+8",
            "libc mutex libc.so.6:other.c:lock",
        ] {
            let text = config(line, "./prog");
            let plan = forkguard_core::plan::Plan::parse("s.toml", &text).unwrap();
            assert_eq!(plan.settings.libc_locks, LibcLocks::Acquire, "{text}");
            assert_eq!(plan.settings.held_locks, HeldLocks::Acquire, "{text}");
            assert!(
                text.contains("not one of the locks libc_locks guards"),
                "{text}"
            );
        }
    }

    #[test]
    fn cxx_names_are_demangled_in_comments_and_kept_mangled_in_symbols() {
        let text = config(
            "unnamed mutex heap mutex taken in _ZN5Cache7refreshEv (held_cache+0x1a2f)\n\
             lock mutex libcache.so.1:_ZN5Cache7g_mutexE\n",
            "./prog",
        );
        forkguard_core::plan::Plan::parse("s.toml", &text).unwrap();
        assert!(text.contains("#   C++: Cache::refresh()\n"), "{text}");
        assert!(
            text.contains(
                "#   C++: Cache::g_mutex\n[[lock]]\nsymbol = \"libcache.so.1:_ZN5Cache7g_mutexE\""
            ),
            "{text}"
        );
        assert_eq!(cxx_comment("heap mutex taken in f (x+0x1)"), "");
    }

    #[test]
    fn nothing_seen_is_an_empty_config() {
        let plan = forkguard_core::plan::Plan::parse("s.toml", &config("", "x")).unwrap();
        assert!(plan.is_empty());
    }
}
