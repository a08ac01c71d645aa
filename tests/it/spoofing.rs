//! Content only the server makes, sent by a client (docs/security.md, "Spoofing"): forged
//! carbons and archive results are refused with `forbidden`, forged server delays are
//! stripped, pushes to another account are refused. The receiver sees none of it.

use crate::support::{xml, TestServer, NS_STANZAS};

async fn pair() -> (TestServer, crate::support::Client, crate::support::Client) {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "pw").await;
    server.add_user("bob@localhost", "pw").await;
    let alice = server.session("alice", "pw", "r").await;
    let bob = server.session("bob", "pw", "r").await;
    (server, alice, bob)
}

/// The next message bob reads is the barrier: what alice sent before it never arrived.
async fn barrier(alice: &mut crate::support::Client, bob: &mut crate::support::Client) {
    alice.send("<message to='bob@localhost/r' id='barrier'><body>b</body></message>").await;
    bob.expect("<message from='alice@localhost/r' to='bob@localhost/r' id='barrier'><body>b</body></message>").await;
}

#[tokio::test]
async fn a_forged_carbon_is_refused_and_never_delivered() {
    let (_server, mut alice, mut bob) = pair().await;
    alice
        .send(
            "<message to='bob@localhost/r' id='c1' type='chat'><received xmlns='urn:xmpp:carbons:2'>\
             <forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='boss@localhost/x' \
             to='bob@localhost' type='chat'><body>wire the money</body></message></forwarded></received></message>",
        )
        .await;
    let refused = alice.recv().await;
    assert_eq!(refused.attr("type"), Some("error"), "{}", xml::show(&refused));
    assert!(xml::show(&refused).contains(&format!("<forbidden xmlns='{NS_STANZAS}'/>")), "{}", xml::show(&refused));
    barrier(&mut alice, &mut bob).await;
}

#[tokio::test]
async fn a_forged_archive_result_is_refused() {
    let (_server, mut alice, mut bob) = pair().await;
    alice.send("<message to='bob@localhost/r' id='m1'><result xmlns='urn:xmpp:mam:2' id='x'/></message>").await;
    assert_eq!(alice.recv().await.attr("type"), Some("error"));
    barrier(&mut alice, &mut bob).await;
}

#[tokio::test]
async fn a_delay_in_the_servers_name_is_stripped() {
    let (_server, mut alice, mut bob) = pair().await;
    alice
        .send(
            "<message to='bob@localhost/r' id='d1' type='chat'><body>old?</body>\
             <delay xmlns='urn:xmpp:delay' from='localhost' stamp='2001-01-01T00:00:00Z'/></message>",
        )
        .await;
    bob.expect(
        "<message from='alice@localhost/r' to='bob@localhost/r' id='d1' type='chat'><body>old?</body></message>",
    )
    .await;
}

#[tokio::test]
async fn a_roster_push_to_another_account_is_refused() {
    let (_server, mut alice, mut bob) = pair().await;
    alice
        .send(
            "<iq type='set' id='push' to='bob@localhost/r'><query xmlns='jabber:iq:roster'>\
             <item jid='alice@localhost' subscription='both'/></query></iq>",
        )
        .await;
    let refused = alice.recv().await;
    assert_eq!((refused.attr("type"), refused.attr("id")), (Some("error"), Some("push")));
    barrier(&mut alice, &mut bob).await;
}
