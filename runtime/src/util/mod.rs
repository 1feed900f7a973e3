//! The runtime's small building blocks, one of each: file locks ([`lock`]),
//! durable atomic JSON files ([`json`]), waiting for a condition with a
//! deadline ([`poll`]) and reading processes from /proc ([`proc`]).

pub mod json;
pub mod lock;
pub mod poll;
pub mod proc;
