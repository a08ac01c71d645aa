//! Integration tests of stanzad: each test starts its own server in-process on
//! ephemeral ports and talks raw XML to it (see `support`), like conversation scripts.

mod support;

mod admin;
mod bind;
mod blocking;
mod carbons;
mod crash;
mod csi;
mod dialect;
mod disk_full;
mod flexible_offline;
mod framing;
mod fuzz_corpus;
mod iq;
mod last_activity;
mod layers;
mod limits;
mod mam;
mod offline;
mod presence_rfc6121;
mod private;
mod retention;
mod roster;
mod routing;
mod sasl;
mod spoofing;
mod starttls;
mod storage_backend;
mod stream_header;
mod stream_management;
mod subscriptions;
mod tokio_xmpp_chat;
mod vcard;
mod vhosts;
