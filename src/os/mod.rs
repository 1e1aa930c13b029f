//! The only doors to the kernel, the loader and libc: system calls
//! (`sys`), libc functions called by name (`clib`), fd and `/proc`
//! inspection (`fdinfo`), the fixed buffer (`buf`), symbol lookup
//! (`symbols`, `elf`), lazy binding (`lazy`) and the other threads'
//! state for `forkguard audit` (`threads`). Direct `libc::` function
//! calls appear only in `sys` and `clib`.
//!
//! `sys`, `clib`, `fdinfo` and `buf` run after the fork, in the child: no
//! allocation, no lock, no stdio, no formatting machinery, no panic (denied
//! for the folder in `lib.rs`). `elf`, `lazy` and `threads` run at load (and in the
//! parent) only, and are exempted where they are declared.

pub mod buf;
pub mod clib;
pub mod fdinfo;
pub mod symbols;
pub mod sys;
pub mod thread_words;

#[allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
pub mod elf;
#[allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
pub mod lazy;
#[allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
pub mod threads;
