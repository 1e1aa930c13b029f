//! `programs`: which executable this process is.

use std::ffi::CStr;

/// What the process is: the names `programs` globs are matched against.
pub struct Program {
    /// The path given to execve (AT_EXECFN) and the resolved /proc/self/exe.
    pub paths: Vec<String>,
}

impl Program {
    pub fn matches_any(&self, globs: &[String]) -> bool {
        globs.is_empty()
            || globs.iter().any(|g| {
                self.paths.iter().any(|p| {
                    let base = p.rsplit('/').next().unwrap_or(p);
                    forkguard_core::glob::matches(g.as_bytes(), p.as_bytes())
                        || forkguard_core::glob::matches(g.as_bytes(), base.as_bytes())
                })
            })
    }
}

/// The executable's names: the path it was started with (AT_EXECFN), and
/// the resolved /proc/self/exe when patterns need it.
pub fn program(need_exe: bool) -> Program {
    let mut paths = Vec::new();
    // SAFETY: getauxval has no preconditions; AT_EXECFN is a C string or 0.
    let execfn = unsafe { crate::os::clib::getauxval(libc::AT_EXECFN) } as *const libc::c_char;
    if !execfn.is_null() {
        // SAFETY: the kernel put a NUL-terminated string there.
        paths.push(
            unsafe { CStr::from_ptr(execfn) }
                .to_string_lossy()
                .into_owned(),
        );
    }
    if need_exe {
        if let Ok(p) = std::fs::read_link("/proc/self/exe") {
            let p = p.to_string_lossy().into_owned();
            if !paths.contains(&p) {
                paths.push(p);
            }
        }
    }
    Program { paths }
}
