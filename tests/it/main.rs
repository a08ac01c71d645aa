//! Integration tests of stanzad: each test starts its own server in-process on
//! ephemeral ports and talks raw XML to it (see `support`), like conversation scripts.

mod support;

mod admin;
mod bind;
mod blocking;
mod carbons;
mod csi;
mod dialect;
mod flexible_offline;
mod framing;
mod iq;
mod last_activity;
mod mam;
mod offline;
mod presence_rfc6121;
mod roster;
mod routing;
mod sasl;
mod starttls;
mod stream_header;
mod stream_management;
mod subscriptions;
mod tokio_xmpp_chat;
mod vhosts;
