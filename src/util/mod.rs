//! Small helpers with no home of their own: wall-clock time in the units the
//! API speaks, and RFC 3339 rendering.

pub mod time;
