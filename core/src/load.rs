//! Reading a config file the way sudo reads sudoers: through the opened
//! descriptor, refusing anything that is not a small regular file owned by
//! the user (or root) and writable only by its owner.

use crate::error::ConfigError;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

/// Larger files are refused before they are read (a config is a few KiB).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Who may own the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Normal mode: the real user or root.
    User { real_uid: u32 },
    /// Secure-execution mode (SPEC §7): root only.
    RootOnly { real_uid: u32 },
}

/// A config file's text, and whether its details may be shown to the user.
#[derive(Debug)]
pub struct Loaded {
    pub text: String,
    /// False when the file is neither the user's own nor world-readable: error
    /// messages then carry only a location, never a piece of the file.
    pub may_show: bool,
}

/// Open and read `path`, checking it through the descriptor (no races with a
/// rename between the check and the read).
pub fn read_config(path: &str, trust: Trust) -> Result<Loaded, ConfigError> {
    let opened = open_config(path, trust)?;
    read_opened(path, opened)
}

/// A config file opened and checked, not read yet.
#[derive(Debug)]
pub struct Opened {
    file: std::fs::File,
    md: std::fs::Metadata,
    may_show: bool,
}

impl Opened {
    /// The file's identity, for the plan cache.
    pub fn key(&self) -> cache::Key {
        cache::Key::of(&self.md)
    }

    /// Whether root owns the file: only such a file can have a plan cache
    /// entry (only root writes entries, and root only reads root's configs).
    pub fn root_owned(&self) -> bool {
        self.md.uid() == 0
    }

    /// The file's size in bytes.
    pub fn len(&self) -> u64 {
        self.md.len()
    }

    /// An empty file.
    pub fn is_empty(&self) -> bool {
        self.md.len() == 0
    }
}

/// Open `path` and check it through the descriptor: every refusal of
/// [`read_config`] except the size read and UTF-8 ones.
pub fn open_config(path: &str, trust: Trust) -> Result<Opened, ConfigError> {
    let fail = |m: String| ConfigError::file(path, m);
    let file = std::fs::OpenOptions::new()
        .read(true)
        // Non-blocking so a FIFO cannot hang the program; no-follow so a
        // planted symlink is refused; no controlling tty from a tty device.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => fail("refusing a symbolic link as config".into()),
            _ => fail(format!("cannot open: {}", strip_os(&e))),
        })?;
    let md = file
        .metadata()
        .map_err(|e| fail(format!("cannot stat: {}", strip_os(&e))))?;
    if !md.file_type().is_file() {
        let what = if md.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        return Err(fail(format!("refusing config: {what}")));
    }
    let (real_uid, root_only) = match trust {
        Trust::User { real_uid } => (real_uid, false),
        Trust::RootOnly { real_uid } => (real_uid, true),
    };
    let owner_ok = md.uid() == 0 || (!root_only && md.uid() == real_uid);
    if !owner_ok {
        return Err(fail(format!("refusing config owned by uid {}", md.uid())));
    }
    if md.mode() & 0o022 != 0 {
        return Err(fail("refusing config writable by group or others".into()));
    }
    if md.len() > MAX_CONFIG_BYTES {
        return Err(fail(format!(
            "refusing config larger than {MAX_CONFIG_BYTES} bytes"
        )));
    }
    let may_show = md.uid() == real_uid || md.mode() & 0o004 != 0;
    Ok(Opened { file, md, may_show })
}

/// Read a file [`open_config`] opened and checked.
pub fn read_opened(path: &str, opened: Opened) -> Result<Loaded, ConfigError> {
    let fail = |m: String| ConfigError::file(path, m);
    let Opened { file, md, may_show } = opened;
    let mut bytes = Vec::with_capacity(md.len() as usize);
    (&file)
        .take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("cannot read: {}", strip_os(&e))))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(fail(format!(
            "refusing config larger than {MAX_CONFIG_BYTES} bytes"
        )));
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Loaded { text, may_show }),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let valid = String::from_utf8_lossy(&e.as_bytes()[..at]).into_owned();
            Err(ConfigError::at(path, &valid, at, "invalid UTF-8"))
        }
    }
}

/// "Permission denied (os error 13)" -> "Permission denied".
fn strip_os(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Parse a loaded file into a plan; when the file's details may not be shown,
/// the message keeps its location and drops everything taken from the file.
pub fn plan(path: &str, loaded: &Loaded) -> Result<crate::Plan, ConfigError> {
    crate::Plan::parse(path, &loaded.text).map_err(|mut e| {
        if !loaded.may_show {
            e.msg = "invalid config (details hidden: you cannot read this file)".into();
        }
        e
    })
}

/// `on_error` of a file that did not validate: read leniently when the file
/// is at least TOML, else from a line `on_error = "abort"`. Lets `abort`
/// hold even for a file with a syntax error.
pub fn sniff_on_error(text: &str) -> crate::plan::OnError {
    use crate::plan::OnError;
    #[derive(serde::Deserialize)]
    struct Sniff {
        settings: Option<SniffSettings>,
    }
    #[derive(serde::Deserialize)]
    struct SniffSettings {
        on_error: Option<String>,
    }
    if let Ok(s) = toml::from_str::<Sniff>(text) {
        let abort = s
            .settings
            .and_then(|s| s.on_error)
            .is_some_and(|v| v == "abort");
        return if abort { OnError::Abort } else { OnError::Warn };
    }
    let abort = text.lines().any(|l| {
        let l: String = l.chars().filter(|c| !c.is_whitespace()).collect();
        l.starts_with("on_error=\"abort\"") || l.starts_with("on_error='abort'")
    });
    if abort {
        OnError::Abort
    } else {
        OnError::Warn
    }
}

/// A cache of one fact about a valid config file: its `[settings] programs`.
///
/// Parsing and validating a config costs a process a few hundred thousand
/// instructions at load, and most processes a config is loaded into are not
/// in its `programs`: with this fact cached, such a process opens and checks
/// the file (every refusal is still reported), reads one small cache file,
/// matches its name and stops, without reading or parsing the config.
///
/// Correctness: an entry is keyed by the config file's identity (device,
/// inode, size, mtime and ctime, through the opened descriptor) and by the
/// library's own identity (a rebuilt library may validate differently). Only
/// a file that parsed and validated is ever written, so an invalid file is
/// parsed, and its error reported, by every process. Timestamps come from a
/// coarse clock: a file changed twice within one tick, with the same size,
/// would keep its key. Entries are therefore only written for a file whose
/// mtime and ctime are at least [`SETTLE_SECS`] in the past, so any later
/// change moves its ctime (which no user can set back).
///
/// Security: only root writes entries, into [`DIR`] (on tmpfs: gone at
/// boot), which must be a directory owned by root and writable by no one
/// else; entries are read only when owned by root and not writable by group
/// or others. A non-root user can therefore neither write nor plant an entry,
/// and root processes only ever read root-owned configs (the ownership check
/// of [`open_config`] with a real uid of 0), so an entry only describes a file
/// root controls. The library uses the cache outside secure-execution mode
/// only, and not in check or audit mode.
pub mod cache {
    use std::io::{Read, Write};
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};

    /// Where entries live: one file per config file identity.
    pub const DIR: &str = "/run/forkguard";
    /// Entries are only written for files unchanged for this long.
    pub const SETTLE_SECS: i64 = 2;
    /// Larger entry files are ignored.
    const MAX_ENTRY_BYTES: u64 = 64 << 10;
    const MAGIC: &str = "forkguard-plan-cache 1";

    /// A file's identity: what changes when its contents can have changed.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Key {
        pub dev: u64,
        pub ino: u64,
        pub size: u64,
        pub mtime: (i64, i64),
        pub ctime: (i64, i64),
    }

    impl Key {
        pub fn of(md: &std::fs::Metadata) -> Key {
            Key {
                dev: md.dev(),
                ino: md.ino(),
                size: md.size(),
                mtime: (md.mtime(), md.mtime_nsec()),
                ctime: (md.ctime(), md.ctime_nsec()),
            }
        }

        fn line(&self) -> String {
            format!(
                "{} {} {} {}.{:09} {}.{:09}",
                self.dev,
                self.ino,
                self.size,
                self.mtime.0,
                self.mtime.1,
                self.ctime.0,
                self.ctime.1
            )
        }

        /// Whether the file has been left alone long enough to be cached:
        /// both timestamps at least SETTLE_SECS before `now` (unix seconds)
        /// and none in the future.
        pub fn settled(&self, now: i64) -> bool {
            let old = |t: (i64, i64)| t.0 <= now && now - t.0 >= SETTLE_SECS;
            old(self.mtime) && old(self.ctime)
        }

        /// The entry's file name in DIR: `plan-DEV-INO`, in hexadecimal.
        /// (Built by hand: every process with a config pays for it, and
        /// `format!` costs thousands of instructions.)
        pub fn file_name(&self) -> String {
            let mut s = String::with_capacity(40);
            s.push_str("plan-");
            push_hex(&mut s, self.dev);
            s.push('-');
            push_hex(&mut s, self.ino);
            s
        }
    }

    fn push_hex(s: &mut String, v: u64) {
        let digits = b"0123456789abcdef";
        let mut buf = [0u8; 16];
        let mut n = 0;
        let mut v = v;
        loop {
            buf[n] = digits[(v & 15) as usize];
            n += 1;
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        for &b in buf[..n].iter().rev() {
            s.push(b as char);
        }
    }

    /// An entry's bytes: magic, library identity, file identity, then each
    /// pattern as `LEN:BYTES` on its own line (patterns may hold newlines).
    pub fn encode(lib: &str, key: &Key, programs: &[String]) -> Vec<u8> {
        let mut out = format!(
            "{MAGIC}\n{}\n{}\n{}\n",
            lib.replace('\n', " "),
            key.line(),
            programs.len()
        );
        for p in programs {
            out.push_str(&format!("{}:{p}\n", p.len()));
        }
        out.into_bytes()
    }

    /// The programs of an entry, if it is well formed and made for this
    /// library and this file; `None` otherwise (the caller parses the file).
    pub fn decode(bytes: &[u8], lib: &str, key: &Key) -> Option<Vec<String>> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut rest = text;
        let mut line = || -> Option<&str> {
            let i = rest.find('\n')?;
            let l = &rest[..i];
            rest = &rest[i + 1..];
            Some(l)
        };
        if line()? != MAGIC || line()? != lib.replace('\n', " ") || line()? != key.line() {
            return None;
        }
        let n: usize = line()?.parse().ok()?;
        let mut programs = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            let colon = rest.find(':')?;
            let len: usize = rest[..colon].parse().ok()?;
            let body = rest.get(colon + 1..colon + 1 + len)?;
            if !rest[colon + 1 + len..].starts_with('\n') {
                return None;
            }
            programs.push(body.to_string());
            rest = &rest[colon + 2 + len..];
        }
        rest.is_empty().then_some(programs)
    }

    /// Whether `md` may be trusted as written by root: owned by root and
    /// writable by no one else.
    fn root_only(md: &std::fs::Metadata) -> bool {
        md.uid() == 0 && md.mode() & 0o022 == 0
    }

    /// The programs cached for `key` in `dir`, or `None` (no entry, an entry
    /// for another library or file version, or one not trusted). `lib` gives
    /// the library's identity; it is only asked for when an entry exists, so
    /// a miss costs one failed `open`.
    pub fn lookup(
        dir: &str,
        lib: impl FnOnce() -> Option<String>,
        key: &Key,
    ) -> Option<Vec<String>> {
        let name = key.file_name();
        let mut path = String::with_capacity(dir.len() + 1 + name.len());
        path.push_str(dir);
        path.push('/');
        path.push_str(&name);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .ok()?;
        let md = file.metadata().ok()?;
        if !md.file_type().is_file() || !root_only(&md) || md.len() > MAX_ENTRY_BYTES {
            return None;
        }
        let d = std::fs::symlink_metadata(dir).ok()?;
        if !d.is_dir() || !root_only(&d) {
            return None;
        }
        let mut bytes = Vec::with_capacity(md.len() as usize);
        (&file).take(MAX_ENTRY_BYTES).read_to_end(&mut bytes).ok()?;
        decode(&bytes, &lib()?, key)
    }

    /// Write the entry for `key` (replacing any) when the file is settled
    /// (see the module). The caller checks that it runs as root (real and
    /// effective uid 0): entries written by anyone else are never trusted.
    /// Failures are silent: the cache is an optimisation only.
    pub fn store(dir: &str, lib: &str, key: &Key, programs: &[String], now: i64) {
        if !key.settled(now) {
            return;
        }
        use std::os::unix::fs::PermissionsExt;
        if std::fs::DirBuilder::new().mode(0o755).create(dir).is_ok() {
            // Readable by every user whatever the umask of the first writer.
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
        }
        match std::fs::symlink_metadata(dir) {
            Ok(d) if d.is_dir() && root_only(&d) => {}
            _ => return,
        }
        let name = key.file_name();
        let tmp = format!("{dir}/.{name}.{}", std::process::id());
        let Ok(mut f) = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
        else {
            return;
        };
        let ok = f
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .is_ok()
            && f.write_all(&encode(lib, key, programs)).is_ok();
        drop(f);
        if !ok || std::fs::rename(&tmp, format!("{dir}/{name}")).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn key() -> Key {
            Key {
                dev: 0x803,
                ino: 1234,
                size: 5678,
                mtime: (1_700_000_000, 5),
                ctime: (1_700_000_001, 999_999_999),
            }
        }

        #[test]
        fn round_trip() {
            let p = vec![
                "myapp".to_string(),
                "a:b\nc".to_string(),
                String::new(),
                "é*".to_string(),
            ];
            let b = encode("lib 1 2", &key(), &p);
            assert_eq!(decode(&b, "lib 1 2", &key()), Some(p));
            assert_eq!(decode(&encode("l", &key(), &[]), "l", &key()), Some(vec![]));
        }

        #[test]
        fn another_file_or_library_misses() {
            let b = encode("lib", &key(), &["x".to_string()]);
            assert_eq!(decode(&b, "lib2", &key()), None);
            for k in [
                Key { size: 1, ..key() },
                Key { ino: 1, ..key() },
                Key { dev: 1, ..key() },
                Key {
                    mtime: (1_700_000_000, 6),
                    ..key()
                },
                Key {
                    ctime: (1_700_000_002, 999_999_999),
                    ..key()
                },
            ] {
                assert_eq!(decode(&b, "lib", &k), None);
            }
        }

        #[test]
        fn damaged_entries_miss() {
            let b = encode("lib", &key(), &["abc".to_string(), "de".to_string()]);
            for cut in 0..b.len() {
                assert_eq!(decode(&b[..cut], "lib", &key()), None, "cut at {cut}");
            }
            let mut extra = b.clone();
            extra.extend_from_slice(b"1:x\n");
            assert_eq!(decode(&extra, "lib", &key()), None);
            let bad = String::from_utf8(b).unwrap().replace("3:abc", "9:abc");
            assert_eq!(decode(bad.as_bytes(), "lib", &key()), None);
        }

        #[test]
        fn file_names_are_hexadecimal() {
            assert_eq!(key().file_name(), "plan-803-4d2");
            let k = Key {
                dev: 0,
                ino: u64::MAX,
                ..key()
            };
            assert_eq!(k.file_name(), "plan-0-ffffffffffffffff");
        }

        #[test]
        fn only_settled_files_are_cached() {
            let k = key(); // ctime 1_700_000_001
            assert!(!k.settled(1_700_000_001));
            assert!(!k.settled(1_700_000_002));
            assert!(k.settled(1_700_000_003));
            assert!(!k.settled(1_600_000_000), "a timestamp in the future");
        }

        #[test]
        fn untrusted_directory_or_entry_is_ignored() {
            let dir = std::env::temp_dir().join(format!("fg-cache-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir(&dir).unwrap();
            let d = dir.to_str().unwrap();
            let k = key();
            std::fs::write(dir.join(k.file_name()), encode("lib", &k, &["x".into()])).unwrap();
            use std::os::unix::fs::PermissionsExt;
            // World-writable directory: never trusted.
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
            assert_eq!(lookup(d, || Some("lib".into()), &k), None);
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            // Root (the effective uid) owns the directory it just made.
            use std::os::unix::fs::MetadataExt;
            if std::fs::metadata(&dir).unwrap().uid() == 0 {
                assert_eq!(
                    lookup(d, || Some("lib".into()), &k),
                    Some(vec!["x".to_string()])
                );
                // An entry writable by group: ignored.
                std::fs::set_permissions(
                    dir.join(k.file_name()),
                    std::fs::Permissions::from_mode(0o664),
                )
                .unwrap();
                assert_eq!(lookup(d, || Some("lib".into()), &k), None);
            } else {
                // Owned by a user, not root: ignored.
                assert_eq!(lookup(d, || Some("lib".into()), &k), None);
            }
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}
