//! The runtime's small building blocks, one of each: file locks ([`lock`]),
//! durable atomic JSON files ([`json`]), waiting for a condition with a
//! deadline ([`poll`]), reading processes from /proc ([`proc`]) and giving
//! back memory a long-lived process no longer needs ([`mem`]).

pub mod json;
pub mod lock;
pub mod mem;
pub mod poll;
pub mod proc;
