//! Small helpers with no home of their own: wall-clock time in the units the
//! API speaks, and RFC 3339 rendering; in test builds, the harness of the
//! parser fuzz tests ([`fuzz`]).

#[cfg(test)]
pub mod fuzz;
pub mod time;
