//! The doors to the kernel, the loader and libc.

pub mod buf;
pub mod clib;
pub mod elf;
pub mod fdinfo;
pub mod lazy;
pub mod symbols;
pub mod sys;
