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
