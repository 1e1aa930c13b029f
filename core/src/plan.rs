//! The validated config: what the library will do, in the order it will do
//! it. Building a [`Plan`] is all-or-nothing: the first problem rejects the
//! whole file, so a plan is never half applied.

use crate::error::ConfigError;
pub use crate::python::{PyWhat, PythonEntry};
use crate::raw::*;
pub use crate::raw::{
    FdActionKind, FdKind, HeldLocks, LibcLocks, LockKind, LockStrategy, LogFormat, OnError,
    OnTimeout, OpenFlag, Phase, VforkPolicy,
};
use std::net::IpAddr;
use std::ops::Range;
use toml::Spanned;

/// At most this many lock, call, zero and fd actions in one config: the
/// per-fork bookkeeping lives in fixed arrays, never on the heap.
pub const MAX_ACTIONS: usize = 128;
/// Longest `[child] name` the kernel keeps (`PR_SET_NAME`, 16 bytes with NUL).
pub const MAX_NAME: usize = 15;
/// Longest path a `reopen` target or a `log` file may have.
pub const MAX_PATH: usize = 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub file: String,
    pub settings: Settings,
    /// Lock, call, zero and fd actions in declaration order.
    pub actions: Vec<Action>,
    pub child: Option<ChildSettings>,
    /// `[[python]]` entries in declaration order (SPEC 8.7).
    pub python: Vec<PythonEntry>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Globs on the executable's basename or full path; empty = every program.
    pub programs: Vec<String>,
    pub on_error: OnError,
    pub log: LogDest,
    pub log_format: LogFormat,
    pub vfork: VforkPolicy,
    pub lock_timeout_ms: u32,
    pub handshake_timeout_ms: u32,
    /// SPEC 8.3: guard glibc's internal locks with this strategy.
    pub libc_locks: LibcLocks,
    /// SPEC 8.4: track every pthread lock and binary semaphore, and free
    /// (or first wait for) those another thread holds at the fork.
    pub held_locks: HeldLocks,
    /// Log each forked child's exit (SPEC 8.5).
    pub log_exits: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            programs: Vec::new(),
            on_error: OnError::Warn,
            log: LogDest::Off,
            log_format: LogFormat::Text,
            vfork: VforkPolicy::Passthrough,
            lock_timeout_ms: 100,
            handshake_timeout_ms: 0,
            libc_locks: LibcLocks::Off,
            held_locks: HeldLocks::Off,
            log_exits: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogDest {
    Off,
    Stderr,
    File(String),
}

impl LogDest {
    /// `off`, `stderr` or an absolute path; anything else is refused.
    pub fn parse(s: &str) -> Result<LogDest, String> {
        match s {
            "off" => Ok(LogDest::Off),
            "stderr" => Ok(LogDest::Stderr),
            p if p.starts_with('/') && p.len() <= MAX_PATH && !p.contains('\0') => {
                Ok(LogDest::File(p.to_string()))
            }
            _ => Err(format!(
                "log must be \"off\", \"stderr\" or an absolute path, not {s:?}"
            )),
        }
    }
}

/// Where an item was written: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Loc {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub kind: ActionKind,
    /// Globs narrowing `settings.programs`; empty = no narrowing.
    pub programs: Vec<String>,
    /// Where the action's table starts.
    pub loc: Loc,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ActionKind {
    Lock(LockSpec),
    Call(CallSpec),
    Zero(ZeroSpec),
    Fd(FdSpec),
}

impl ActionKind {
    /// The symbol this action names, if any.
    pub fn symbol(&self) -> Option<&SymbolRef> {
        match self {
            ActionKind::Lock(l) => Some(&l.symbol),
            ActionKind::Call(c) => Some(&c.symbol),
            ActionKind::Zero(z) => Some(&z.symbol),
            ActionKind::Fd(_) => None,
        }
    }
}

/// `name` (searched in every loaded object), `libfoo.so.1:name`, or
/// `libfoo.so.1:file.c:name` (a static defined in that source file, SPEC 8.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolRef {
    pub lib: Option<String>,
    /// The source file (`STT_FILE`) that defines the symbol; only with `lib`.
    pub file: Option<String>,
    pub name: String,
    pub optional: bool,
    /// Where the symbol string is, for "unknown symbol" errors found later.
    pub loc: Loc,
}

impl std::fmt::Display for SymbolRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.lib, &self.file) {
            (Some(lib), Some(file)) => write!(f, "{lib}:{file}:{}", self.name),
            (Some(lib), None) => write!(f, "{lib}:{}", self.name),
            _ => f.write_str(&self.name),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LockSpec {
    pub symbol: SymbolRef,
    pub kind: LockKind,
    pub strategy: LockStrategy,
    pub timeout_ms: u32,
    pub on_timeout: OnTimeout,
    /// Bytes from the symbol's start to the lock (SPEC 8.1); checked
    /// against the symbol's size when it resolves.
    pub offset: Option<Offset>,
}

/// `offset = N` and where it was written (for errors found at resolution).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offset {
    pub bytes: u64,
    pub loc: Loc,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CallSpec {
    pub phase: Phase,
    pub symbol: SymbolRef,
    /// Integer arguments, in order (SPEC 8.8); empty = `void f(void)`.
    pub args: Vec<i64>,
}

/// At most this many `args` on a `[[call]]`: the integer argument registers
/// of the x86-64 System V convention.
pub const MAX_CALL_ARGS: usize = 6;

#[derive(Debug, Clone, PartialEq)]
pub struct ZeroSpec {
    pub symbol: SymbolRef,
    /// `offset` and `size`: zero `size` bytes from `offset` instead of the
    /// whole object (SPEC 8.1). `size` without `offset` starts at 0.
    pub offset: Option<Offset>,
    pub size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FdSpec {
    pub select: Selector,
    pub action: FdActionKind,
    /// `reopen` target, with `%p`, `%P`, `%%` still unexpanded.
    pub path: Option<String>,
    pub flags: Vec<OpenFlag>,
    pub mode: u32,
    /// Also leave the selected descriptors out of programs started with
    /// `posix_spawn`, `posix_spawnp`, `system` and `popen` (SPEC 8.5):
    /// `close` and `cloexec` only.
    pub spawn: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Selector {
    /// `fd` and `fds` together; empty = not selecting by number.
    pub fds: Vec<i32>,
    pub from: Option<i32>,
    pub kind: Option<FdKind>,
    pub path: Option<String>,
    pub peer: Option<Endpoint>,
    pub local: Option<Endpoint>,
    /// Never these fds. 0, 1 and 2 are excluded anyway unless named in `fds`.
    pub except: Vec<i32>,
}

impl Selector {
    /// Only a range of numbers: the child can use `close_range` on it.
    pub fn is_pure_range(&self) -> bool {
        self.from.is_some()
            && self.fds.is_empty()
            && self.kind.is_none()
            && self.path.is_none()
            && self.peer.is_none()
            && self.local.is_none()
    }
}

/// `host:port` of a TCP/UDP socket; `host` None means `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub host: Option<IpAddr>,
    pub port: u16,
}

impl Endpoint {
    /// `"127.0.0.1:6379"`, `"[::1]:5432"`, `"*:80"`, `"localhost:80"`.
    pub fn parse(s: &str) -> Result<Endpoint, String> {
        let bad = || format!("expected \"host:port\" or \"*:port\", not {s:?}");
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = match host {
            "*" => None,
            "localhost" => Some(IpAddr::from([127, 0, 0, 1])),
            h => match h.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
                // `[::1]:80`: brackets hold an IPv6 address, nothing else.
                Some(v6) => Some(IpAddr::V6(v6.parse().map_err(|_| bad())?)),
                // `::1:80` is ambiguous: IPv6 needs its brackets.
                None if h.contains(':') => {
                    return Err(format!(
                        "write an IPv6 address in brackets: \"[{h}]:{port}\""
                    ))
                }
                None => Some(IpAddr::V4(h.parse().map_err(|_| not_an_address(h, port))?)),
            },
        };
        Ok(Endpoint { host, port })
    }
}

/// The message for a host that is not an IP address: forkguard matches
/// the addresses the kernel reports and never resolves names (no DNS in a
/// child after fork, and a name can stand for several addresses).
fn not_an_address(host: &str, port: u16) -> String {
    let loopback = host.contains("localhost") || host.contains("loopback");
    if host.is_empty() || !host.bytes().any(|b| b.is_ascii_alphabetic()) {
        return format!(
            "expected \"host:port\" with an IP address, or \"*:{port}\" for any host, not {:?}",
            format!("{host}:{port}")
        );
    }
    if loopback {
        format!(
            "host names are not resolved ({host:?}): write \"127.0.0.1:{port}\" or \"[::1]:{port}\" (a client may connect over either), or \"*:{port}\" for any host"
        )
    } else {
        format!(
            "host names are not resolved ({host:?}): write the IP address the socket uses, or \"*:{port}\" for any host"
        )
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.host {
            None => write!(f, "*:{}", self.port),
            Some(IpAddr::V6(h)) => write!(f, "[{h}]:{}", self.port),
            Some(IpAddr::V4(h)) => write!(f, "{h}:{}", self.port),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChildSettings {
    pub parent_death_signal: Option<i32>,
    pub reset_signal_mask: bool,
    pub reset_signal_handlers: bool,
    pub new_session: bool,
    pub oom_score_adj: Option<i32>,
    pub name: Option<String>,
}

impl ChildSettings {
    pub fn is_empty(&self) -> bool {
        *self == ChildSettings::default()
    }
}

/// Validation context: the file name and its text, for locations.
pub(crate) struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
    /// Byte offset where each line starts: locations are looked up by
    /// binary search instead of rescanning the text for every action.
    line_starts: Vec<usize>,
}

impl Ctx<'_> {
    pub(crate) fn err(&self, span: Range<usize>, msg: impl Into<String>) -> ConfigError {
        ConfigError::at(self.file, self.text, span.start, msg)
    }
    pub(crate) fn loc(&self, span: Range<usize>) -> Loc {
        let at = span.start.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= at).max(1);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let col = self
            .text
            .get(start..at)
            .map_or(at - start, |t| t.chars().count())
            + 1;
        Loc { line, col }
    }
}

impl Plan {
    /// Parse and validate a whole config file. `file` is only used in messages.
    pub fn parse(file: &str, text: &str) -> Result<Plan, ConfigError> {
        if Plan::only_version(text) {
            return Ok(Plan {
                file: file.to_string(),
                settings: Settings::default(),
                actions: Vec::new(),
                child: None,
                python: Vec::new(),
            });
        }
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let cx = Ctx {
            file,
            text,
            line_starts,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start);
            ConfigError::at(file, text, at, e.message().trim_end().to_string())
        })?;
        if *raw.version.get_ref() != 1 {
            return Err(cx.err(
                raw.version.span(),
                "unsupported version (this forkguard reads version = 1)",
            ));
        }
        let settings = match raw.settings {
            Some(s) => settings(&cx, s.into_inner())?,
            None => Settings::default(),
        };

        // Each table with where it starts, so the actions keep declaration order
        // across [[lock]], [[call]], [[zero]] and [[fd]].
        let mut actions: Vec<(usize, Action)> = Vec::new();
        for l in raw.lock {
            let at = l.span().start;
            actions.push((at, lock(&cx, &settings, l)?));
        }
        for c in raw.call {
            let at = c.span().start;
            actions.push((at, call(&cx, c)?));
        }
        for z in raw.zero {
            let at = z.span().start;
            actions.push((at, zero(&cx, z)?));
        }
        for f in raw.fd {
            let at = f.span().start;
            actions.push((at, fd(&cx, f)?));
        }
        actions.sort_by_key(|(at, _)| *at);
        if actions.len() > MAX_ACTIONS {
            let at = actions.get(MAX_ACTIONS).map_or(0, |(at, _)| *at);
            return Err(ConfigError::at(
                file,
                text,
                at,
                format!("too many actions (at most {MAX_ACTIONS})"),
            ));
        }
        let child = match raw.child {
            Some(c) => Some(child(&cx, c)?),
            None => None,
        };
        let mut python = Vec::new();
        for p in raw.python {
            if python.len() == MAX_ACTIONS {
                return Err(cx.err(
                    p.span(),
                    format!("too many [[python]] entries (at most {MAX_ACTIONS})"),
                ));
            }
            python.push(crate::python::python(&cx, p)?);
        }
        Ok(Plan {
            file: file.to_string(),
            settings,
            actions: actions.into_iter().map(|(_, a)| a).collect(),
            child,
            python,
        })
    }

    /// A file of nothing but blank lines, comments and `version = 1`: the
    /// empty plan (see [`only_version`]).
    pub fn only_version(text: &str) -> bool {
        only_version(text)
    }

    /// Nothing to do at any fork.
    pub fn is_empty(&self) -> bool {
        !self.settings.log_exits
            && self.actions.is_empty()
            && self.child.as_ref().is_none_or(|c| c.is_empty())
            && self.settings.libc_locks == LibcLocks::Off
            && self.settings.held_locks == HeldLocks::Off
            && self.python.is_empty()
    }
}

/// A file of nothing but blank lines, comments and `version = 1` (a
/// placeholder config, or the reference config with everything commented
/// out): the empty plan, recognised line by line. The TOML parser spends
/// about 17 instructions on each byte of a comment, and every process of a
/// deployment reads its config. Anything else, including every file the
/// parser would reject (a control character in a comment, a second
/// `version`, another spelling of the value), goes to the parser, so errors
/// are reported exactly as before. `tests` and `core/tests/prop_parse.rs`
/// check it against the parser.
fn only_version(text: &str) -> bool {
    // One pass over the bytes (a commented-out reference config is a few
    // KiB): a line is blanks, then optionally `version = 1`, then
    // optionally a comment, then LF or CRLF.
    let b = text.as_bytes();
    let at = |i: usize| b.get(i).copied();
    let blanks = |mut i: usize| {
        while matches!(at(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        i
    };
    let mut version = false;
    let mut i = 0;
    while i < b.len() {
        i = blanks(i);
        if b.get(i..).is_some_and(|r| r.starts_with(b"version")) {
            if version {
                return false;
            }
            i = blanks(i + "version".len());
            if at(i) != Some(b'=') {
                return false;
            }
            i = blanks(i + 1);
            if at(i) != Some(b'1') {
                return false;
            }
            i = blanks(i + 1);
            version = true;
        }
        if at(i) == Some(b'#') {
            i += 1;
            // TOML allows no control character but tab in a comment; the
            // common byte costs two comparisons.
            while let Some(&c) = b.get(i) {
                if c < b' ' || c == 0x7f {
                    match c {
                        b'\t' => {}
                        b'\n' | b'\r' => break,
                        _ => return false,
                    }
                }
                i += 1;
            }
        }
        match at(i) {
            None => {}
            Some(b'\n') => i += 1,
            Some(b'\r') if at(i + 1) == Some(b'\n') => i += 2,
            // A lone CR, or anything else on the line: the parser decides.
            Some(_) => return false,
        }
    }
    version
}

fn settings(cx: &Ctx, s: RawSettings) -> Result<Settings, ConfigError> {
    let mut out = Settings::default();
    if let Some(p) = s.programs {
        out.programs = programs(cx, p)?;
    }
    out.on_error = s.on_error.unwrap_or_default();
    if let Some(log) = s.log {
        out.log = LogDest::parse(log.get_ref()).map_err(|m| cx.err(log.span(), m))?;
    }
    out.log_format = s.log_format.unwrap_or_default();
    out.vfork = s.vfork.unwrap_or_default();
    if let Some(t) = s.lock_timeout_ms {
        out.lock_timeout_ms = millis(cx, &t)?;
    }
    if let Some(t) = s.handshake_timeout_ms {
        out.handshake_timeout_ms = millis(cx, &t)?;
    }
    out.libc_locks = s.libc_locks.unwrap_or_default();
    out.held_locks = s.held_locks.unwrap_or_default();
    out.log_exits = s.log_exits.unwrap_or(false);
    Ok(out)
}

fn millis(cx: &Ctx, v: &Spanned<i64>) -> Result<u32, ConfigError> {
    match u32::try_from(*v.get_ref()) {
        Ok(ms) if ms <= 3_600_000 => Ok(ms),
        _ => Err(cx.err(v.span(), "milliseconds must be between 0 and 3600000")),
    }
}

fn programs(cx: &Ctx, p: Spanned<Vec<Spanned<String>>>) -> Result<Vec<String>, ConfigError> {
    let span = p.span();
    let list = p.into_inner();
    if list.is_empty() {
        return Err(cx.err(
            span,
            "programs is empty: no program would match; remove the key to match every program",
        ));
    }
    list.into_iter()
        .map(|g| {
            if g.get_ref().is_empty() || g.get_ref().contains('\0') {
                Err(cx.err(g.span(), "empty program pattern"))
            } else {
                Ok(g.into_inner())
            }
        })
        .collect()
}

fn symbol(cx: &Ctx, s: &Spanned<String>, optional: bool) -> Result<SymbolRef, ConfigError> {
    let text = s.get_ref();
    let bad = |m: &str| cx.err(s.span(), format!("{m}: {text:?}"));
    let parts: Vec<&str> = text.split(':').collect();
    let (lib, file, name) = match parts.as_slice() {
        [name] => (None, None, *name),
        [lib, name] => (Some(*lib), None, *name),
        [lib, file, name] => (Some(*lib), Some(*file), *name),
        _ => {
            return Err(bad(
                "expected \"name\", \"OBJECT:name\" or \"OBJECT:FILE:NAME\"",
            ))
        }
    };
    if lib.is_some_and(str::is_empty) {
        return Err(bad("empty library name before ':'"));
    }
    if file.is_some_and(|f| f.is_empty() || f.contains('\0')) {
        return Err(bad("empty source file name in OBJECT:FILE:NAME"));
    }
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'$' | b'@'))
        && !name.as_bytes()[0].is_ascii_digit();
    if !ok {
        return Err(bad("not a symbol name"));
    }
    Ok(SymbolRef {
        lib: lib.map(str::to_string),
        file: file.map(str::to_string),
        name: name.to_string(),
        optional,
        loc: cx.loc(s.span()),
    })
}

/// `offset = N` / `size = N`: a byte count, 0 up to 2^31.
fn bytes(cx: &Ctx, v: &Spanned<i64>, key: &str) -> Result<Offset, ConfigError> {
    match u64::try_from(*v.get_ref()) {
        Ok(n) if n <= 1 << 31 => Ok(Offset {
            bytes: n,
            loc: cx.loc(v.span()),
        }),
        _ => Err(cx.err(
            v.span(),
            format!("{key} must be between 0 and 2147483648 bytes"),
        )),
    }
}

pub(crate) fn narrow(
    cx: &Ctx,
    p: Option<Spanned<Vec<Spanned<String>>>>,
) -> Result<Vec<String>, ConfigError> {
    p.map_or(Ok(Vec::new()), |p| programs(cx, p))
}

fn lock(cx: &Ctx, settings: &Settings, l: Spanned<RawLock>) -> Result<Action, ConfigError> {
    let loc = cx.loc(l.span());
    let l = l.into_inner();
    let timeout_ms = match &l.timeout_ms {
        Some(t) => millis(cx, t)?,
        None => settings.lock_timeout_ms,
    };
    Ok(Action {
        kind: ActionKind::Lock(LockSpec {
            symbol: symbol(cx, &l.symbol, l.optional)?,
            kind: l.kind,
            strategy: l.strategy,
            timeout_ms,
            on_timeout: l.on_timeout,
            offset: l
                .offset
                .as_ref()
                .map(|o| bytes(cx, o, "offset"))
                .transpose()?,
        }),
        programs: narrow(cx, l.programs)?,
        loc,
    })
}

fn call(cx: &Ctx, c: Spanned<RawCall>) -> Result<Action, ConfigError> {
    let loc = cx.loc(c.span());
    let c = c.into_inner();
    Ok(Action {
        kind: ActionKind::Call(CallSpec {
            phase: c.phase,
            symbol: symbol(cx, &c.symbol, c.optional)?,
            args: call_args(cx, c.args.as_ref())?,
        }),
        programs: narrow(cx, c.programs)?,
        loc,
    })
}

/// `args = [N, ...]`: at most six signed 64-bit integers.
fn call_args(
    cx: &Ctx,
    args: Option<&Spanned<Vec<Spanned<CallArg>>>>,
) -> Result<Vec<i64>, ConfigError> {
    let Some(args) = args else {
        return Ok(Vec::new());
    };
    let list = args.get_ref();
    if let Some(extra) = list.get(MAX_CALL_ARGS) {
        return Err(cx.err(
            extra.span(),
            format!(
                "at most {MAX_CALL_ARGS} args (the integer argument registers), not {}",
                list.len()
            ),
        ));
    }
    list.iter()
        .map(|v| match v.get_ref() {
            CallArg::Int(n) => Ok(*n),
            CallArg::OutOfRange(n) => Err(cx.err(
                v.span(),
                format!(
                    "{n} is out of range: args are signed 64-bit integers ({} to {})",
                    i64::MIN,
                    i64::MAX
                ),
            )),
            CallArg::Other(what) => Err(cx.err(
                v.span(),
                format!("args are signed 64-bit integers, not {what}"),
            )),
        })
        .collect()
}

fn zero(cx: &Ctx, z: Spanned<RawZero>) -> Result<Action, ConfigError> {
    let loc = cx.loc(z.span());
    let z = z.into_inner();
    let offset = z
        .offset
        .as_ref()
        .map(|o| bytes(cx, o, "offset"))
        .transpose()?;
    let size = match (&z.size, &z.offset) {
        (Some(n), _) if *n.get_ref() == 0 => {
            return Err(cx.err(n.span(), "size must be at least 1 byte"))
        }
        (Some(n), _) => Some(bytes(cx, n, "size")?.bytes),
        (None, Some(o)) => {
            return Err(cx.err(
                o.span(),
                "[[zero]] with offset needs size = N (how many bytes to zero from there)",
            ))
        }
        (None, None) => None,
    };
    Ok(Action {
        kind: ActionKind::Zero(ZeroSpec {
            symbol: symbol(cx, &z.symbol, z.optional)?,
            offset,
            size,
        }),
        programs: narrow(cx, z.programs)?,
        loc,
    })
}

fn fd_number(cx: &Ctx, v: &Spanned<i64>) -> Result<i32, ConfigError> {
    match i32::try_from(*v.get_ref()) {
        Ok(n) if n >= 0 => Ok(n),
        _ => Err(cx.err(v.span(), "not a file descriptor number")),
    }
}

fn fd(cx: &Ctx, f: Spanned<RawFd>) -> Result<Action, ConfigError> {
    let loc = cx.loc(f.span());
    let f = f.into_inner();
    let sel_span = f.select.span();
    let s = f.select.into_inner();
    let mut select = Selector::default();
    if let Some(n) = &s.fd {
        select.fds.push(fd_number(cx, n)?);
    }
    if let Some(list) = &s.fds {
        if list.get_ref().is_empty() {
            return Err(cx.err(list.span(), "fds is empty"));
        }
        for n in list.get_ref() {
            select.fds.push(fd_number(cx, n)?);
        }
    }
    if let Some(n) = &s.from {
        select.from = Some(fd_number(cx, n)?);
    }
    if let Some(list) = &s.except {
        for n in list.get_ref() {
            select.except.push(fd_number(cx, n)?);
        }
    }
    select.kind = s.kind.as_ref().map(|k| *k.get_ref());
    if let Some(p) = &s.path {
        if p.get_ref().is_empty() || p.get_ref().len() > MAX_PATH || p.get_ref().contains('\0') {
            return Err(cx.err(p.span(), "path pattern must be 1 to 1024 bytes"));
        }
        select.path = Some(p.get_ref().clone());
    }
    for (key, v, slot) in [
        ("peer", &s.peer, &mut select.peer),
        ("local", &s.local, &mut select.local),
    ] {
        if let Some(v) = v {
            *slot = Some(
                Endpoint::parse(v.get_ref())
                    .map_err(|m| cx.err(v.span(), format!("{key}: {m}")))?,
            );
        }
    }
    if select.fds.is_empty()
        && select.from.is_none()
        && select.kind.is_none()
        && select.path.is_none()
        && select.peer.is_none()
        && select.local.is_none()
    {
        return Err(cx.err(
            sel_span,
            "empty selector: give fd, fds, from, kind, path, peer or local",
        ));
    }
    if (select.peer.is_some() || select.local.is_some())
        && select
            .kind
            .is_some_and(|k| !matches!(k, FdKind::Socket | FdKind::Listen))
    {
        return Err(cx.err(
            sel_span,
            "peer/local select sockets, but kind is not \"socket\" or \"listen\"",
        ));
    }
    if select.peer.is_some() && select.kind == Some(FdKind::Listen) {
        return Err(cx.err(
            sel_span,
            "a listening socket has no peer: use local = \"host:port\" with kind = \"listen\"",
        ));
    }
    if let Some(from) = select.from {
        if !select.fds.is_empty() && select.fds.iter().all(|&n| n < from) {
            return Err(cx.err(sel_span, format!("fd/fds and from = {from} together select nothing (every fd named is below {from})")));
        }
    }
    if !select.fds.is_empty() && select.fds.iter().all(|n| select.except.contains(n)) {
        return Err(cx.err(
            sel_span,
            "every fd named in fd/fds is also in except: the selector matches nothing",
        ));
    }
    let from = select.from.unwrap_or(0);
    if !select.fds.is_empty()
        && select
            .fds
            .iter()
            .all(|n| *n < from || select.except.contains(n))
    {
        return Err(cx.err(
            sel_span,
            "every fd named in fd/fds is below from or in except: the selector matches nothing",
        ));
    }

    let action = *f.action.get_ref();
    let aspan = f.action.span();
    match action {
        FdActionKind::Disconnect => {
            if let Some(k) = select
                .kind
                .filter(|k| !matches!(k, FdKind::Socket | FdKind::Listen))
            {
                return Err(cx.err(
                    aspan,
                    format!(
                        "disconnect applies to sockets, not to kind = {:?}",
                        k.name()
                    ),
                ));
            }
        }
        FdActionKind::Renew => {
            match select.kind {
                Some(FdKind::Epoll | FdKind::Eventfd | FdKind::Timerfd | FdKind::Inotify) => {}
                Some(k) => {
                    return Err(cx.err(aspan, format!("renew applies to epoll, eventfd, timerfd and inotify, not to kind = {:?}", k.name())));
                }
                None => {
                    return Err(cx.err(aspan, "renew needs kind = \"epoll\", \"eventfd\", \"timerfd\" or \"inotify\" in select"));
                }
            }
        }
        _ => {}
    }
    let spawn = match &f.spawn {
        Some(v) if *v.get_ref() => {
            if !matches!(action, FdActionKind::Close | FdActionKind::Cloexec) {
                return Err(cx.err(
                    v.span(),
                    format!(
                        "spawn = true applies to action = \"close\" or \"cloexec\" only (a spawned program can only be started without a descriptor), not to action = {:?}",
                        action.name()
                    ),
                ));
            }
            true
        }
        _ => false,
    };
    let mut path = None;
    let mut flags = Vec::new();
    let mut mode = 0o600;
    if action == FdActionKind::Reopen {
        let p = f
            .path
            .as_ref()
            .ok_or_else(|| cx.err(aspan.clone(), "reopen needs a path"))?;
        let v = p.get_ref();
        if !v.starts_with('/') || v.len() > MAX_PATH || v.contains('\0') {
            return Err(cx.err(
                p.span(),
                "reopen path must be absolute and at most 1024 bytes",
            ));
        }
        check_percent(v).map_err(|m| cx.err(p.span(), m))?;
        path = Some(v.clone());
        for fl in f.flags.iter().flatten() {
            if !flags.contains(fl.get_ref()) {
                flags.push(*fl.get_ref());
            }
        }
        if let Some(m) = &f.mode {
            if !flags.contains(&OpenFlag::Create) {
                return Err(cx.err(m.span(), "mode is only used with flags = [\"create\"]"));
            }
            mode = match u32::try_from(*m.get_ref()) {
                Ok(v) if v <= 0o7777 => v,
                _ => return Err(cx.err(m.span(), "mode must be between 0 and 0o7777")),
            };
        }
    } else {
        let extra = [
            f.path.as_ref().map(|p| ("path", p.span())),
            f.flags
                .as_ref()
                .and_then(|v| v.first())
                .map(|p| ("flags", p.span())),
            f.mode.as_ref().map(|p| ("mode", p.span())),
        ];
        if let Some((key, span)) = extra.into_iter().flatten().next() {
            return Err(cx.err(span, format!("{key} is only used with action = \"reopen\"")));
        }
    }
    Ok(Action {
        kind: ActionKind::Fd(FdSpec {
            select,
            action,
            path,
            flags,
            mode,
            spawn,
        }),
        programs: narrow(cx, f.programs)?,
        loc,
    })
}

/// `%p`, `%P` and `%%` are the only escapes in a reopen path.
fn check_percent(p: &str) -> Result<(), String> {
    let mut it = p.chars();
    while let Some(c) = it.next() {
        if c == '%' && !matches!(it.next(), Some('p' | 'P' | '%')) {
            return Err("in a reopen path, % must be followed by p, P or %".into());
        }
    }
    Ok(())
}

fn child(cx: &Ctx, c: Spanned<RawChild>) -> Result<ChildSettings, ConfigError> {
    let c = c.into_inner();
    let mut out = ChildSettings {
        reset_signal_mask: c.reset_signal_mask.unwrap_or(false),
        reset_signal_handlers: c.reset_signal_handlers.unwrap_or(false),
        new_session: c.new_session.unwrap_or(false),
        ..Default::default()
    };
    if let Some(sig) = &c.parent_death_signal {
        let n = match sig.get_ref() {
            SignalSpec::Name(n) => crate::signal::parse(n),
            SignalSpec::Number(n) => i32::try_from(*n).ok().filter(|n| (1..=64).contains(n)),
        };
        out.parent_death_signal = Some(n.ok_or_else(|| {
            cx.err(
                sig.span(),
                "unknown signal (try \"TERM\", \"SIGKILL\" or a number from 1 to 64)",
            )
        })?);
    }
    if let Some(v) = &c.oom_score_adj {
        match i32::try_from(*v.get_ref()) {
            Ok(n) if (-1000..=1000).contains(&n) => out.oom_score_adj = Some(n),
            _ => return Err(cx.err(v.span(), "oom_score_adj must be between -1000 and 1000")),
        }
    }
    if let Some(n) = &c.name {
        let v = n.get_ref();
        if v.is_empty() || v.len() > MAX_NAME || v.contains('\0') {
            return Err(cx.err(n.span(), "name must be 1 to 15 bytes (the kernel keeps 15)"));
        }
        out.name = Some(v.clone());
    }
    Ok(out)
}

#[cfg(test)]
#[path = "plan_fd_tests.rs"]
mod fd_tests;

#[cfg(test)]
mod held_locks_tests {
    use super::{HeldLocks, Plan};

    #[test]
    fn held_locks_values() {
        let p = |t: &str| Plan::parse("f.toml", t);
        assert_eq!(
            p("version = 1").unwrap().settings.held_locks,
            HeldLocks::Off
        );
        for (v, want) in [
            ("off", HeldLocks::Off),
            ("reinit", HeldLocks::Reinit),
            ("acquire", HeldLocks::Acquire),
        ] {
            let plan = p(&format!("version = 1\n[settings]\nheld_locks = \"{v}\"\n")).unwrap();
            assert_eq!(plan.settings.held_locks, want);
            // Something to do at a fork, though there is no action.
            assert_eq!(plan.is_empty(), want == HeldLocks::Off, "{v}");
        }
    }

    #[test]
    fn held_locks_errors_point_at_the_value() {
        for bad in ["\"on\"", "\"Reinit\"", "true", "1"] {
            let e = Plan::parse(
                "f.toml",
                &format!("version = 1\n[settings]\nheld_locks = {bad}\n"),
            )
            .unwrap_err();
            assert_eq!((e.file.as_str(), e.line), ("f.toml", 3), "{bad}: {e}");
        }
    }
}

#[cfg(test)]
mod only_version_tests {
    /// The line-by-line path and the TOML parser agree: same plan when the
    /// fast path takes a file, and every other file goes to the parser.
    #[test]
    fn only_version_agrees_with_the_parser() {
        let empty = super::Plan {
            file: "f".into(),
            settings: super::Settings::default(),
            actions: Vec::new(),
            child: None,
            python: Vec::new(),
        };
        let taken = [
            "version = 1",
            "version = 1\n",
            "version=1",
            "\t version \t=\t 1 \t# v\n",
            "# reference config, all commented out\n\n#[[lock]]\n# symbol = \"x\"\nversion = 1\n# tail",
            "version = 1\r\n# crlf\r\n",
            "# é ü 你好 comments may be any text\nversion = 1",
        ];
        for t in taken {
            assert!(super::only_version(t), "{t:?}");
            // The parser, forced past the fast path by one more (empty)
            // table, must give the same plan.
            let full = format!("{t}\n[settings]\n");
            assert!(!super::only_version(&full));
            assert_eq!(super::Plan::parse("f", &full).unwrap(), empty, "{t:?}");
            assert_eq!(super::Plan::parse("f", t).unwrap(), empty, "{t:?}");
        }
        let refused = [
            "",
            "# no version\n",
            "version = 2",
            "version = 12",
            "version = 1.0",
            "version = +1",
            "versions = 1",
            "\"version\" = 1",
            "version = 1\nversion = 1",
            "version = 1 # bad \u{1} control",
            "version = 1\n# del \u{7f}",
            "version = 1\r",
            "version = 1\n[settings]",
            "\u{feff}version = 1",
        ];
        for t in refused {
            assert!(!super::only_version(t), "{t:?}");
        }
        // What the parser says of the refused ones stays its own.
        assert!(super::Plan::parse("f", "version = 1 # bad \u{1} control").is_err());
        assert!(super::Plan::parse("f", "version = 1\nversion = 1").is_err());
        assert!(super::Plan::parse("f", "version = 2").is_err());
    }
}
