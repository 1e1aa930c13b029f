//! The config file as written (SPEC §3), deserialised with spans so every
//! problem found later can point at its `LINE:COL`.
//!
//! `deny_unknown_fields` everywhere: a misspelt key is an error, not a
//! silently ignored line.

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub version: Spanned<i64>,
    #[serde(default)]
    pub settings: Option<Spanned<RawSettings>>,
    #[serde(default)]
    pub lock: Vec<Spanned<RawLock>>,
    #[serde(default)]
    pub fd: Vec<Spanned<RawFd>>,
    #[serde(default)]
    pub call: Vec<Spanned<RawCall>>,
    #[serde(default)]
    pub zero: Vec<Spanned<RawZero>>,
    #[serde(default)]
    pub child: Option<Spanned<RawChild>>,
    #[serde(default)]
    pub python: Vec<Spanned<crate::python::RawPython>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    pub programs: Option<Spanned<Vec<Spanned<String>>>>,
    pub on_error: Option<OnError>,
    pub log: Option<Spanned<String>>,
    pub log_format: Option<LogFormat>,
    pub vfork: Option<VforkPolicy>,
    pub lock_timeout_ms: Option<Spanned<i64>>,
    pub handshake_timeout_ms: Option<Spanned<i64>>,
    pub libc_locks: Option<LibcLocks>,
    pub held_locks: Option<HeldLocks>,
    pub log_exits: Option<bool>,
}

/// `[settings] libc_locks` (SPEC 8.3): glibc's own internal locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LibcLocks {
    #[default]
    Off,
    Reinit,
    Acquire,
}

/// `[settings] held_locks` (SPEC 8.4): what to do with every pthread lock
/// and binary semaphore another thread holds at the fork.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum HeldLocks {
    #[default]
    Off,
    Reinit,
    Acquire,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    #[default]
    Warn,
    Abort,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum VforkPolicy {
    #[default]
    Passthrough,
    Fork,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLock {
    pub symbol: Spanned<String>,
    #[serde(rename = "type")]
    pub kind: LockKind,
    #[serde(default)]
    pub strategy: LockStrategy,
    pub timeout_ms: Option<Spanned<i64>>,
    #[serde(default)]
    pub on_timeout: OnTimeout,
    #[serde(default)]
    pub optional: bool,
    pub offset: Option<Spanned<i64>>,
    pub programs: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockKind {
    Mutex,
    Rwlock,
    Spinlock,
    Semaphore,
    Stdio,
    /// A 32-bit futex word (SPEC 8.2): glibc's `__libc_lock_t`, GLib's `GMutex`.
    Futex,
    /// glibc's `__libc_lock_recursive_t` / `_IO_lock_t` (a futex word, a
    /// count and the owner's thread pointer). Built-in profile only
    /// (`libc_locks`): not a value a config may write.
    #[serde(skip)]
    FutexRecursive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LockStrategy {
    #[default]
    Acquire,
    Reinit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnTimeout {
    #[default]
    Reinit,
    Fail,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFd {
    pub select: Spanned<RawSelect>,
    pub action: Spanned<FdActionKind>,
    pub path: Option<Spanned<String>>,
    pub flags: Option<Vec<Spanned<OpenFlag>>>,
    pub mode: Option<Spanned<i64>>,
    pub spawn: Option<Spanned<bool>>,
    pub programs: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSelect {
    pub fd: Option<Spanned<i64>>,
    pub fds: Option<Spanned<Vec<Spanned<i64>>>>,
    pub from: Option<Spanned<i64>>,
    pub kind: Option<Spanned<FdKind>>,
    pub path: Option<Spanned<String>>,
    pub peer: Option<Spanned<String>>,
    pub local: Option<Spanned<String>>,
    pub except: Option<Spanned<Vec<Spanned<i64>>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FdKind {
    File,
    Dir,
    Pipe,
    Socket,
    Listen,
    Tty,
    Epoll,
    Eventfd,
    Timerfd,
    Signalfd,
    Inotify,
    Memfd,
}

impl FdKind {
    pub fn name(self) -> &'static str {
        match self {
            FdKind::File => "file",
            FdKind::Dir => "dir",
            FdKind::Pipe => "pipe",
            FdKind::Socket => "socket",
            FdKind::Listen => "listen",
            FdKind::Tty => "tty",
            FdKind::Epoll => "epoll",
            FdKind::Eventfd => "eventfd",
            FdKind::Timerfd => "timerfd",
            FdKind::Signalfd => "signalfd",
            FdKind::Inotify => "inotify",
            FdKind::Memfd => "memfd",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FdActionKind {
    Close,
    Cloexec,
    Devnull,
    Reopen,
    Disconnect,
    Renew,
}

impl FdActionKind {
    pub fn name(self) -> &'static str {
        match self {
            FdActionKind::Close => "close",
            FdActionKind::Cloexec => "cloexec",
            FdActionKind::Devnull => "devnull",
            FdActionKind::Reopen => "reopen",
            FdActionKind::Disconnect => "disconnect",
            FdActionKind::Renew => "renew",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpenFlag {
    Append,
    Create,
    Truncate,
    Cloexec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCall {
    pub phase: Phase,
    pub symbol: Spanned<String>,
    /// Integer arguments (SPEC 8.8), checked in `plan::call_args`.
    pub args: Option<Spanned<Vec<Spanned<CallArg>>>>,
    #[serde(default)]
    pub optional: bool,
    pub programs: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Prepare,
    Parent,
    Child,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Prepare => "prepare",
            Phase::Parent => "parent",
            Phase::Child => "child",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawZero {
    pub symbol: Spanned<String>,
    #[serde(default)]
    pub optional: bool,
    pub offset: Option<Spanned<i64>>,
    pub size: Option<Spanned<i64>>,
    pub programs: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChild {
    pub parent_death_signal: Option<Spanned<SignalSpec>>,
    pub reset_signal_mask: Option<bool>,
    pub reset_signal_handlers: Option<bool>,
    pub new_session: Option<bool>,
    pub oom_score_adj: Option<Spanned<i64>>,
    pub name: Option<Spanned<String>>,
}

/// A signal given by name (`"TERM"`, `"SIGTERM"`) or by number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SignalSpec {
    Name(String),
    Number(i64),
}

/// One `[[call]] args` value as written: any TOML value is accepted here
/// so that `plan` can say what is wrong with it (a string, a float, an
/// integer beyond 64 bits) at its own location.
#[derive(Debug, Clone, PartialEq)]
pub enum CallArg {
    Int(i64),
    /// An integer outside the signed 64-bit range, as written.
    OutOfRange(String),
    /// Any other value: its TOML type.
    Other(&'static str),
}

impl<'de> Deserialize<'de> for CallArg {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = CallArg;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E>(self, v: i64) -> Result<CallArg, E> {
                Ok(CallArg::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<CallArg, E> {
                Ok(i64::try_from(v)
                    .map_or_else(|_| CallArg::OutOfRange(v.to_string()), CallArg::Int))
            }
            fn visit_i128<E>(self, v: i128) -> Result<CallArg, E> {
                Ok(i64::try_from(v)
                    .map_or_else(|_| CallArg::OutOfRange(v.to_string()), CallArg::Int))
            }
            fn visit_u128<E>(self, v: u128) -> Result<CallArg, E> {
                Ok(i64::try_from(v)
                    .map_or_else(|_| CallArg::OutOfRange(v.to_string()), CallArg::Int))
            }
            fn visit_f64<E>(self, _: f64) -> Result<CallArg, E> {
                Ok(CallArg::Other("a float"))
            }
            fn visit_bool<E>(self, _: bool) -> Result<CallArg, E> {
                Ok(CallArg::Other("a boolean"))
            }
            fn visit_str<E>(self, _: &str) -> Result<CallArg, E> {
                Ok(CallArg::Other("a string"))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<CallArg, A::Error> {
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(CallArg::Other("an array"))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, a: A) -> Result<CallArg, A::Error> {
                // A TOML date-time arrives as a one-key map.
                let _: serde::de::IgnoredAny =
                    serde::de::IgnoredAny::visit_map(serde::de::IgnoredAny, a)?;
                Ok(CallArg::Other("a table or date"))
            }
        }
        d.deserialize_any(V)
    }
}
