//! Per-device message state beyond sending and delivery: retention
//! ([`retention`]), the periodic sweep that expires messages and holds each
//! inbox to its maximum.

pub mod retention;
