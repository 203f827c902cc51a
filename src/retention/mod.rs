//! Message retention: the periodic sweep ([`sweep`]) that expires messages,
//! drops those of deleted senders and holds each inbox to its maximum.

pub mod sweep;
