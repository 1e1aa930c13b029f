//! The actions, one module per kind.

pub mod child;
pub mod fd;
pub mod lock;
pub mod zero;
