//! `run` and `audit`: set up the environment and exec the program. The
//! command never forks: the program replaces it, so its exit status is the
//! program's own, and forkguard's hooks never apply to this binary.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

pub enum Mode {
    Run,
    Audit,
    /// Audit, then write a config to this file: the program runs as a
    /// child of the command, which waits for it (the only mode that forks).
    Suggest(String),
}

/// The library: `FORKGUARD_LIB`, else `libforkguard.so` next to this binary.
pub fn library() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(forkguard_core::ENV_LIB).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        let p = std::path::absolute(&p).map_err(|e| format!("FORKGUARD_LIB: {e}"))?;
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "'{}': no such library (FORKGUARD_LIB)",
                p.display()
            ))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
    let p = exe
        .parent()
        .unwrap_or(Path::new("/"))
        .join("libforkguard.so");
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "'{}': library not found (set FORKGUARD_LIB)",
            p.display()
        ))
    }
}

fn absolute(p: &str) -> Result<String, String> {
    std::path::absolute(p)
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|e| format!("'{p}': {e}"))
}

pub fn exec(
    mode: Mode,
    config: Option<&str>,
    log: Option<&str>,
    format: Option<&str>,
    cmd: &[String],
) -> ExitCode {
    let fail = |m: String| {
        eprintln!("forkguard: {m}");
        ExitCode::from(2)
    };
    let lib = match library() {
        Ok(l) => l,
        Err(m) => return fail(m),
    };
    let Some((prog, args)) = cmd.split_first() else {
        return fail("no command given".into());
    };
    let mut c = Command::new(prog);
    c.args(args);
    let preload = match std::env::var("LD_PRELOAD") {
        Ok(old) if !old.trim().is_empty() => format!("{} {old}", lib.display()),
        _ => lib.display().to_string(),
    };
    c.env("LD_PRELOAD", preload);
    if let Some(cfg) = config {
        match absolute(cfg) {
            Ok(p) => c.env(forkguard_core::ENV_CONFIG, p),
            Err(m) => return fail(m),
        };
    }
    if let Some(log) = log {
        let dest = if log.starts_with('/') || log == "off" || log == "stderr" {
            log.to_string()
        } else {
            match absolute(log) {
                Ok(p) => p,
                Err(m) => return fail(m),
            }
        };
        c.env(forkguard_core::ENV_LOG, dest);
    }
    if let Some(f) = format {
        c.env(forkguard_core::ENV_LOG_FORMAT, f);
    }
    // `run` honours FORKGUARD_DISABLE (SPEC 2: it turns every phase off), so
    // a wrapper script can switch forkguard off without being edited;
    // `audit` (with or without --suggest) changes nothing anyway and needs
    // the library on.
    if !matches!(mode, Mode::Run) {
        c.env_remove(forkguard_core::ENV_DISABLE);
        if log.is_none() {
            c.env(forkguard_core::ENV_LOG, "stderr");
        }
    }
    match &mode {
        Mode::Run => {}
        Mode::Audit => {
            c.env(forkguard_core::ENV_AUDIT, "1");
        }
        Mode::Suggest(out) => return suggest(c, out, cmd),
    }
    let err = c.exec();
    eprintln!("forkguard: '{prog}': {}", strip_os(&err));
    match err.kind() {
        std::io::ErrorKind::NotFound => ExitCode::from(127),
        _ => ExitCode::from(126),
    }
}

/// `audit --suggest OUT`: run the program with a scratch file for what the
/// audited processes see, wait, write the config.
fn suggest(mut c: Command, out: &str, cmd: &[String]) -> ExitCode {
    let data = std::env::temp_dir().join(format!("forkguard-suggest-{}", std::process::id()));
    let _ = std::fs::remove_file(&data);
    c.env(
        forkguard_core::ENV_AUDIT,
        format!("suggest:{}", data.display()),
    );
    let status = match c.status() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("forkguard: '{}': {}", cmd[0], strip_os(&e));
            return ExitCode::from(if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            });
        }
    };
    let lines = std::fs::read_to_string(&data).unwrap_or_default();
    let _ = std::fs::remove_file(&data);
    let text = crate::suggest::config(&lines, &cmd.join(" "));
    match crate::suggest::write_atomically(Path::new(out), &text) {
        Ok(()) => eprintln!("forkguard: wrote {out}"),
        Err(e) => {
            eprintln!("forkguard: '{out}': {}", strip_os(&e));
            return ExitCode::from(2);
        }
    }
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => ExitCode::from(c as u8),
        (None, Some(sig)) => ExitCode::from(128u8.wrapping_add(sig as u8)),
        _ => ExitCode::from(1),
    }
}

pub fn strip_os(e: &std::io::Error) -> String {
    let s = e.to_string();
    s.find(" (os error")
        .map_or(s.clone(), |i| s[..i].to_string())
}
