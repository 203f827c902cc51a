//! The WebSocket side and the delivery of device events. In reading order:
//! the upgrade handshake ([`upgrade`]); one connection's session
//! ([`session`]) with WebSocket framing over monoio's owned-buffer I/O
//! ([`websocket`]), where it is in the mailbox ([`cursor`]) and envelopes
//! packed into frames ([`delivery`]); what a session waits on ([`signal`]). Events reach sessions through one seam,
//! [`events::EventBus`], implemented in-process by [`mesh_bus`]: the
//! device's owner shard keeps its [`presence`] in its [`hub`] and fans
//! each event out to the shards that hold the device's sockets. With
//! several relay nodes, [`cluster_bus`] also relays every event over Redis
//! ([`crate::pubsub`]) to the nodes that hold the device's sockets, as the
//! device's news on the wire ([`news_wire`]).
//!
//! A socket stays on the shard that accepted it. The mesh carries gateway
//! work only: presence, fan-out, and the server's shutdown signal.
//! Nothing here knows the node's state or the API above it.

pub mod cluster_bus;
pub mod cursor;
pub mod delivery;
pub mod events;
pub mod hub;
pub mod mesh_bus;
pub mod news_wire;
pub mod presence;
pub mod session;
pub mod signal;
pub mod upgrade;
pub mod websocket;
