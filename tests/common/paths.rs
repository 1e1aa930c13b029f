//! Where things are: the repository, the target dir, the library and the
//! CLI under test.

use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `$CARGO_TARGET_DIR` (relative to the root), else `target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                root().join(d)
            }
        }
        None => root().join("target"),
    }
}

/// The preload library under test: `$FORKGUARD_LIB`, else
/// `target/release/libforkguard.so`. Panics with a clear message if missing.
pub fn lib() -> PathBuf {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let p = match std::env::var_os("FORKGUARD_LIB") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => target_dir().join("release/libforkguard.so"),
        };
        assert!(
            p.is_file(),
            "forkguard library not found at {}: run `cargo build --release --workspace` \
             first, or point FORKGUARD_LIB at the built libforkguard.so",
            p.display()
        );
        fs::canonicalize(&p).expect("canonicalize library path")
    })
    .clone()
}

/// The `forkguard` command, next to the library.
pub fn cli() -> PathBuf {
    lib().with_file_name("forkguard")
}
