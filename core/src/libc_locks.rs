//! The built-in profile of `[settings] libc_locks` (SPEC 8.3): glibc's
//! internal locks that its own `fork` leaves as they were, in the order
//! they are taken. Pure data; the library finds each one through the C
//! library's (or the loader's) symbol table or separate debug file.
//!
//! Read from glibc 2.36's source (Debian 12). `docs/libc-locks.md`
//! explains each entry, the order, and the locks knowingly left out.
//!
//! The order is glibc's own nesting, outermost first, so taking them in
//! this order can never wait on a thread that waits on a lock taken
//! earlier here:
//! - name-service entry points hold their lock around the whole lookup,
//!   which loads NSS modules (`dlopen`) and reads resolver state;
//! - `syslog` holds `syslog_lock` while it calls `localtime_r`
//!   (`tzset_lock`) and formats `%m` (`strerror` -> gettext);
//! - gettext takes `__libc_setlocale_lock` (read), then `_nl_state_lock`,
//!   `tree_lock`, its conversion lock, then `__gconv_lock`; `setlocale`
//!   takes `__libc_setlocale_lock` (write) and may load a gconv module;
//! - `__gconv_lock` is held while gconv modules are `dlopen`ed;
//! - the loader holds `_dl_load_lock` while it runs constructors and
//!   destructors (`dlclose` -> `__cxa_finalize` -> `__exit_funcs_lock`;
//!   a constructor may call `setenv`, `localtime`, `random` ...), and takes
//!   `_dl_load_write_lock` and `_dl_load_tls_lock` inside it;
//! - the rest are leaves: nothing else in this list is taken under them.

/// Which object defines the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    /// The C library, `libc.so.6`: found in its separate debug file.
    Libc,
    /// The dynamic loader: a field of its exported `_rtld_global`.
    Loader,
}

/// How the lock is laid out, and so how it is taken and reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `__libc_lock_t`: a futex word (0 free, 1 locked, 2 with waiters).
    Futex,
    /// `__libc_lock_recursive_t` / `_IO_lock_t`: futex word, count, owner.
    Recursive,
    /// `__libc_rwlock_t`: a `pthread_rwlock_t`.
    Rwlock,
    /// `__rtld_lock_recursive_t`: a recursive `pthread_mutex_t`.
    Mutex,
}

/// One lock of the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lock {
    pub object: Object,
    /// The source file that defines it, for statics whose name is shared
    /// (`random.c`'s `lock`); `None` for a unique name.
    pub file: Option<&'static str>,
    /// The symbol; a function-local static is `NAME.N` in the symbol table
    /// (any `N` is accepted: it changes between builds).
    pub name: &'static str,
    pub kind: Kind,
    /// Size in bytes on x86-64 (checked against the symbol's size).
    pub size: u64,
    /// What hangs in the child without it.
    pub guards: &'static str,
}

const fn libc(
    file: Option<&'static str>,
    name: &'static str,
    kind: Kind,
    guards: &'static str,
) -> Lock {
    let size = match kind {
        Kind::Futex => 4,
        Kind::Recursive => 16,
        Kind::Rwlock => 56,
        Kind::Mutex => 40,
    };
    Lock {
        object: Object::Libc,
        file,
        name,
        kind,
        size,
        guards,
    }
}

const fn nss(file: &'static str, guards: &'static str) -> Lock {
    libc(Some(file), "lock", Kind::Futex, guards)
}

const fn loader(name: &'static str, guards: &'static str) -> Lock {
    Lock {
        object: Object::Loader,
        file: None,
        name,
        kind: Kind::Mutex,
        size: 40,
        guards,
    }
}

/// The profile, in acquisition order (outermost first).
pub const LOCKS: &[Lock] = &[
    // Name-service lookups: each holds its lock around the whole lookup.
    nss("gethstbynm.c", "gethostbyname"),
    nss("gethstbynm2.c", "gethostbyname2"),
    nss("gethstbyad.c", "gethostbyaddr"),
    nss("getsrvbynm.c", "getservbyname"),
    nss("getsrvbypt.c", "getservbyport"),
    nss("getprtname.c", "getprotobyname"),
    nss("getproto.c", "getprotobynumber"),
    nss("getpwnam.c", "getpwnam"),
    nss("getpwuid.c", "getpwuid"),
    nss("getgrnam.c", "getgrnam"),
    nss("getgrgid.c", "getgrgid"),
    libc(
        Some("syslog.c"),
        "syslog_lock",
        Kind::Futex,
        "syslog, openlog, closelog",
    ),
    libc(
        None,
        "__libc_setlocale_lock",
        Kind::Rwlock,
        "setlocale, gettext, strerror",
    ),
    libc(None, "_nl_state_lock", Kind::Rwlock, "textdomain, gettext"),
    libc(Some("dcigettext.c"), "tree_lock", Kind::Rwlock, "gettext"),
    libc(
        Some("dcigettext.c"),
        "lock",
        Kind::Futex,
        "gettext's charset conversion",
    ),
    libc(
        Some("finddomain.c"),
        "lock",
        Kind::Rwlock,
        "gettext's catalog list",
    ),
    libc(
        Some("loadmsgcat.c"),
        "lock",
        Kind::Recursive,
        "gettext's catalog loading",
    ),
    libc(Some("localealias.c"), "lock", Kind::Futex, "locale aliases"),
    libc(
        Some("getaddrinfo.c"),
        "lock",
        Kind::Futex,
        "getaddrinfo (gai.conf reload)",
    ),
    libc(
        Some("getnameinfo.c"),
        "lock",
        Kind::Futex,
        "getnameinfo (domain name)",
    ),
    libc(
        Some("check_pf.c"),
        "lock",
        Kind::Futex,
        "getaddrinfo (interface addresses)",
    ),
    libc(
        Some("res_hconf.c"),
        "lock",
        Kind::Futex,
        "host.conf handling",
    ),
    libc(
        Some("resolv_conf.c"),
        "lock",
        Kind::Futex,
        "the resolver (resolv.conf), getaddrinfo",
    ),
    libc(
        None,
        "__gconv_lock",
        Kind::Futex,
        "iconv_open, charset conversion",
    ),
    loader("_dl_load_lock", "dlopen, dlclose"),
    loader(
        "_dl_load_write_lock",
        "dlopen, dl_iterate_phdr, exception unwinding",
    ),
    loader("_dl_load_tls_lock", "dlopen, first use of dynamic TLS"),
    libc(
        Some("tzset.c"),
        "tzset_lock",
        Kind::Futex,
        "localtime, mktime, tzset, strftime",
    ),
    libc(
        Some("setenv.c"),
        "envlock",
        Kind::Futex,
        "setenv, unsetenv, putenv, clearenv",
    ),
    libc(
        Some("random.c"),
        "lock",
        Kind::Futex,
        "random, srandom, rand",
    ),
    libc(
        None,
        "__exit_funcs_lock",
        Kind::Futex,
        "atexit, exit, __cxa_finalize",
    ),
    libc(
        Some("iopopen.c"),
        "proc_file_chain_lock",
        Kind::Recursive,
        "popen, pclose",
    ),
    libc(
        Some("nss_module.c"),
        "nss_module_list_lock",
        Kind::Futex,
        "NSS module list",
    ),
    libc(
        Some("nss_action.c"),
        "nss_actions_lock",
        Kind::Futex,
        "NSS action lists",
    ),
    libc(Some("system.c"), "lock", Kind::Futex, "system"),
    libc(Some("fmtmsg.c"), "lock", Kind::Futex, "fmtmsg"),
];

/// Most locks the profile may list: the per-thread record of one fork is a
/// fixed array of this many bytes.
pub const MAX: usize = 48;
const _: () = assert!(LOCKS.len() <= MAX);

/// The package that ships the C library's debug symbols, for messages.
pub const DEBUG_PACKAGE: &str = "libc6-dbg";

/// Does the symbol-table name `sym` name the profile entry `name`?
/// `lock` matches `lock` and the function-local `lock.2`.
pub fn name_matches(sym: &str, name: &str) -> bool {
    match sym.strip_prefix(name) {
        Some("") => true,
        Some(rest) => rest
            .strip_prefix('.')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
        None => false,
    }
}

/// The profile's cache: the C library's lock addresses (link-time values,
/// `None` for one its debug file lacks) for one build of it, so a process
/// need not read the 4 MB debug file. Kept next to the plan cache, trusted
/// the same way (written by root only).
pub mod cache {
    const MAGIC: &str = "forkguard-libc-locks 1";
    /// Larger files are ignored.
    pub const MAX_BYTES: u64 = 4096;

    /// The file name for the C library with this build-id (hex).
    pub fn file_name(build_id: &str) -> String {
        format!("libc-locks-{build_id}")
    }

    /// One value a line, in the order of the profile's C library locks.
    pub fn encode(build_id: &str, values: &[Option<u64>]) -> Vec<u8> {
        let mut out = format!("{MAGIC}\n{build_id}\n{}\n", values.len());
        for v in values {
            match v {
                Some(v) => out.push_str(&format!("{v:x}\n")),
                None => out.push_str("-\n"),
            }
        }
        out.into_bytes()
    }

    /// The values, if the entry is well formed and made for this build
    /// with `n` locks.
    pub fn decode(bytes: &[u8], build_id: &str, n: usize) -> Option<Vec<Option<u64>>> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines = text.split_terminator('\n');
        if lines.next()? != MAGIC || lines.next()? != build_id {
            return None;
        }
        if lines.next()?.parse::<usize>().ok()? != n {
            return None;
        }
        let mut out = Vec::with_capacity(n);
        for l in lines.by_ref().take(n) {
            out.push(match l {
                "-" => None,
                v => Some(u64::from_str_radix(v, 16).ok()?),
            });
        }
        (out.len() == n && lines.next().is_none() && text.ends_with('\n')).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_round_trip() {
        let v = vec![Some(0x1d57f8), None, Some(0)];
        let e = cache::encode("93ac", &v);
        assert_eq!(cache::decode(&e, "93ac", 3), Some(v.clone()));
        assert_eq!(cache::decode(&e, "93ad", 3), None);
        assert_eq!(cache::decode(&e, "93ac", 2), None);
        assert_eq!(cache::decode(&e[..e.len() - 1], "93ac", 3), None);
        let mut bad = e.clone();
        bad.extend_from_slice(b"7\n");
        assert_eq!(cache::decode(&bad, "93ac", 3), None);
        assert_eq!(
            cache::decode(b"forkguard-libc-locks 1\n93ac\n1\nzz\n", "93ac", 1),
            None
        );
    }

    #[test]
    fn each_lock_is_listed_once() {
        for (i, a) in LOCKS.iter().enumerate() {
            for b in &LOCKS[i + 1..] {
                assert!(
                    (a.object, a.file, a.name) != (b.object, b.file, b.name),
                    "{a:?} twice"
                );
            }
        }
    }

    #[test]
    fn order_follows_glibc_nesting() {
        let at = |file: Option<&str>, name: &str| {
            LOCKS
                .iter()
                .position(|l| l.file == file && l.name == name)
                .unwrap()
        };
        // syslog -> localtime; gettext -> setlocale lock; dlopen -> ctors.
        assert!(at(Some("syslog.c"), "syslog_lock") < at(Some("tzset.c"), "tzset_lock"));
        assert!(at(Some("syslog.c"), "syslog_lock") < at(None, "__libc_setlocale_lock"));
        assert!(at(None, "__libc_setlocale_lock") < at(None, "_nl_state_lock"));
        assert!(at(None, "__gconv_lock") < at(None, "_dl_load_lock"));
        assert!(at(Some("gethstbynm.c"), "lock") < at(Some("resolv_conf.c"), "lock"));
        assert!(at(Some("gethstbynm.c"), "lock") < at(None, "_dl_load_lock"));
        assert!(at(None, "_dl_load_lock") < at(None, "_dl_load_write_lock"));
        assert!(at(None, "_dl_load_lock") < at(None, "__exit_funcs_lock"));
        assert!(at(None, "_dl_load_lock") < at(Some("setenv.c"), "envlock"));
    }

    #[test]
    fn local_static_names() {
        assert!(name_matches("lock", "lock"));
        assert!(name_matches("lock.2", "lock"));
        assert!(!name_matches("lock.", "lock"));
        assert!(!name_matches("lock.x", "lock"));
        assert!(!name_matches("lockx", "lock"));
        assert!(!name_matches("envlock", "lock"));
    }
}
