//! The WebSocket side: the upgrade handshake ([`upgrade`]), WebSocket
//! framing over monoio's owned-buffer I/O with tungstenite's frame codec
//! ([`websocket`]), per-device events and presence ([`events`]), packing
//! envelopes into frames ([`delivery`]) and one connection's session
//! ([`session`]).
//!
//! A socket stays on the shard that accepted it. The device's owner shard
//! keeps the device's presence (which shards hold sessions of it) and sends
//! those sessions events over the mesh; a session then reads its mailbox
//! itself and writes the frames.

pub mod delivery;
pub mod events;
pub mod session;
pub mod upgrade;
pub mod websocket;
