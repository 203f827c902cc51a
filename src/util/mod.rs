//! Small helpers with no home of their own, below every other layer:
//! wall-clock time in the units the API speaks and RFC 3339 rendering
//! ([`time`]), CIDR blocks ([`cidr`]) and the CPUs we may use ([`cpus`]);
//! in test builds, the harness of the parser fuzz tests ([`fuzz_harness`]:
//! proptest settings, a counting allocator, a scripted stream).

pub mod cidr;
pub mod cpus;
#[cfg(test)]
pub mod fuzz_harness;
pub mod time;
