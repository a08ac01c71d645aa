//! The admin socket of the running server (what `stanzad adduser/passwd/deluser/users`
//! use): accounts change live, and a deleted account's sessions end.

use crate::support::{Mech, TestServer};
use stanzad::admin::{Request, Response};

fn adduser(jid: &str, password: &str) -> Request {
    Request::Adduser { jid: jid.to_owned(), password: password.to_owned() }
}

#[tokio::test]
async fn adduser_then_login_and_users_lists_it() {
    let server = TestServer::start().await;
    assert_eq!(server.admin(adduser("carol@localhost", "c-pw")).await, Response::Done);
    assert_eq!(server.admin(Request::Users).await, Response::Users(vec!["carol@localhost".to_owned()]));
    let mut client = server.session("carol", "c-pw", "r").await;
    client.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    client.expect("<iq type='result' id='p1' from='localhost' to='carol@localhost/r'/>").await;
}

#[tokio::test]
async fn adduser_refuses_foreign_domains_and_duplicates() {
    let server = TestServer::start().await;
    assert!(matches!(server.admin(adduser("x@example.net", "pw")).await, Response::Failed(_)));
    assert_eq!(server.admin(adduser("x@localhost", "pw")).await, Response::Done);
    assert!(matches!(server.admin(adduser("x@localhost", "other")).await, Response::Failed(_)));
}

#[tokio::test]
async fn passwd_changes_the_password() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "old").await;
    let request = Request::Passwd { jid: "alice@localhost".into(), password: "new".into() };
    assert_eq!(server.admin(request).await, Response::Done);
    let mut client = server.connect_open().await;
    let mut old = client.mechanism(Mech::ScramSha256, "alice", "old");
    assert_eq!(client.sasl(old.as_mut()).await, Err("not-authorized".to_owned()));
    client.authenticate(Mech::ScramSha256, "alice", "new").await.expect("new password");
}

/// RFC 6120 §4.9.3.17: a changed password ends the account's sessions with `reset`, so
/// whoever logged in with the old one is out at once; other accounts are untouched.
#[tokio::test]
async fn passwd_ends_live_sessions_with_reset() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "old").await;
    server.add_user("bob@localhost", "pw").await;
    let mut alice = server.session("alice", "old", "r").await;
    let mut bob = server.session("bob", "pw", "r").await;
    let request = Request::Passwd { jid: "alice@localhost".into(), password: "new".into() };
    assert_eq!(server.admin(request).await, Response::Done);
    alice.expect_stream_error("reset").await;
    bob.send("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>").await;
    bob.expect("<iq type='result' id='p' from='localhost' to='bob@localhost/r'/>").await;
}

#[tokio::test]
async fn deluser_ends_live_sessions_with_not_authorized() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "pw").await;
    let mut one = server.available("alice", "pw", "one", 0).await;
    let mut two = server.session("alice", "pw", "two").await;
    assert_eq!(server.admin(Request::Deluser { jid: "alice@localhost".into() }).await, Response::Done);
    one.expect_stream_error("not-authorized").await;
    two.expect_stream_error("not-authorized").await;
    let mut again = server.connect_open().await;
    let mut login = again.mechanism(Mech::ScramSha256, "alice", "pw");
    assert_eq!(again.sasl(login.as_mut()).await, Err("not-authorized".to_owned()));
}

/// A stream that authenticated before the account was deleted must not get a session
/// afterwards.
#[tokio::test]
async fn deluser_also_stops_an_authenticated_but_unbound_stream() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "pw").await;
    let mut client = server.authenticated("alice", "pw").await;
    assert_eq!(server.admin(Request::Deluser { jid: "alice@localhost".into() }).await, Response::Done);
    client
        .send(
            "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>",
        )
        .await;
    client.expect_stream_error("not-authorized").await;
}

fn passwd(jid: &str, password: &str) -> Request {
    Request::Passwd { jid: jid.to_owned(), password: password.to_owned() }
}

const BIND: &str =
    "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>";

/// RFC 6120 §4.9.3.17: a changed password also ends, at once and with `reset`, a stream
/// that authenticated with the old one and has not bound a resource yet, as it ends bound
/// sessions: it is not left to wait for its client.
#[tokio::test]
async fn passwd_ends_an_authenticated_unbound_stream_at_once_with_reset() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "old").await;
    server.add_user("bob@localhost", "pw").await;
    let mut alice = server.authenticated("alice", "old").await;
    let mut bob = server.authenticated("bob", "pw").await;
    assert_eq!(server.admin(passwd("alice@localhost", "new")).await, Response::Done);
    alice.expect_stream_error("reset").await;
    assert_eq!(bob.bind(Some("r")).await, "bob@localhost/r", "other accounts are untouched");
}

/// The same between `<success/>` and the client's new stream header.
#[tokio::test]
async fn passwd_ends_a_stream_before_its_restart_after_sasl() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "old").await;
    let mut alice = server.connect_open().await;
    let mut login = alice.mechanism(Mech::ScramSha256, "alice", "old");
    alice.sasl(login.as_mut()).await.expect("login");
    assert_eq!(server.admin(passwd("alice@localhost", "new")).await, Response::Done);
    alice.reset_framer(); // the error comes on a new stream: its header first
    alice.expect_stream_error("reset").await;
}

/// A login whose SASL exchange began before the change (so it checks the old password)
/// and succeeds after it is revoked as well.
#[tokio::test]
async fn passwd_revokes_a_login_that_was_under_way() {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    let ns = crate::support::NS_SASL;
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "old").await;
    let mut alice = server.connect_open().await;
    let mut scram = alice.mechanism(Mech::ScramSha256, "alice", "old");
    let initial = STANDARD.encode(scram.initial());
    alice.send(&format!("<auth xmlns='{ns}' mechanism='SCRAM-SHA-256'>{initial}</auth>")).await;
    let challenge = alice.expect(&format!("<challenge xmlns='{ns}'>{{any}}</challenge>")).await;
    assert_eq!(server.admin(passwd("alice@localhost", "new")).await, Response::Done);
    let challenge = STANDARD.decode(challenge.text()).expect("base64");
    let response = STANDARD.encode(scram.response(&challenge).expect("SCRAM response"));
    alice.send(&format!("<response xmlns='{ns}'>{response}</response>")).await;
    alice.expect(&format!("<success xmlns='{ns}'>{{any}}</success>")).await;
    alice.reset_framer();
    alice.expect_stream_error("reset").await;
}

/// A stream that authenticated with the old password binds nothing afterwards.
#[tokio::test]
async fn a_stream_authenticated_with_the_old_password_cannot_bind() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "old").await;
    let mut alice = server.authenticated("alice", "old").await;
    assert_eq!(server.admin(passwd("alice@localhost", "new")).await, Response::Done);
    // The server may have closed the connection already.
    let _ = alice.try_send_bytes(BIND.as_bytes()).await;
    alice.expect_stream_error("reset").await;
}

/// Deletion ends an authenticated, unbound stream at once with `not-authorized`.
#[tokio::test]
async fn deluser_ends_an_authenticated_unbound_stream_at_once_with_not_authorized() {
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "pw").await;
    let mut alice = server.authenticated("alice", "pw").await;
    assert_eq!(server.admin(Request::Deluser { jid: "alice@localhost".into() }).await, Response::Done);
    alice.expect_stream_error("not-authorized").await;
}

/// XEP-0198: a stream that authenticated with the old password cannot take over a session
/// waiting for resumption either.
#[tokio::test]
async fn a_stream_authenticated_with_the_old_password_cannot_resume() {
    const NS_SM: &str = "urn:xmpp:sm:3";
    let server = TestServer::start().await;
    server.add_user("alice@localhost", "old").await;
    let mut phone = server.session("alice", "old", "phone").await;
    phone.send(&format!("<enable xmlns='{NS_SM}' resume='true'/>")).await;
    let enabled = phone.expect(&format!("<enabled xmlns='{NS_SM}' id='{{any}}' resume='true' max='{{any}}'/>")).await;
    let id = enabled.attr("id").expect("a resumption id").to_owned();
    let mut stale = server.authenticated("alice", "old").await;
    drop(phone); // the connection is lost: the session waits for resumption
    assert_eq!(server.admin(passwd("alice@localhost", "new")).await, Response::Done);
    let _ = stale.try_send_bytes(format!("<resume xmlns='{NS_SM}' previd='{id}' h='0'/>").as_bytes()).await;
    stale.expect_stream_error("reset").await;
}

/// Accounts (and the generated certificate) survive a graceful restart.
#[tokio::test]
async fn accounts_survive_a_restart() {
    let server = TestServer::start_tls_required().await;
    server.add_user("alice@localhost", "pw").await;
    assert_eq!(server.admin(adduser("bob@localhost", "bob-pw")).await, Response::Done);
    let cert = std::fs::read(&server.cert_path).expect("certificate");
    let server = server.restart().await;
    assert_eq!(std::fs::read(&server.cert_path).expect("certificate"), cert, "the certificate is reused");
    server.session("alice", "pw", "r").await;
    server.session("bob", "bob-pw", "r").await;
    assert_eq!(
        server.admin(Request::Users).await,
        Response::Users(vec!["alice@localhost".to_owned(), "bob@localhost".to_owned()])
    );
}

/// Runs the real binary (asynchronously: the server under test shares this thread).
async fn adduser_from_file(file: &std::path::Path, server: &TestServer) -> std::process::Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_stanzad"))
        .args(["adduser", "--from-file"])
        .arg(file)
        .arg("--data-dir")
        .arg(&server.data_dir)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(std::time::Duration::from_secs(60), run)
        .await
        .expect("stanzad adduser finishes")
        .expect("run stanzad adduser")
}

/// `stanzad adduser --from-file FILE`, the real binary against the running server's admin
/// socket: every account of the file can log in; one bad line refuses the file.
#[tokio::test]
async fn adduser_from_file_creates_every_account_through_the_running_server() {
    let server = TestServer::start().await;
    let file = server.data_dir.with_file_name("accounts.txt");
    let lines: String = (1..=150).map(|i| format!("bench{i}@localhost pw{i}\n")).collect();
    std::fs::write(&file, format!("# accounts\n{lines}")).expect("write the file");
    let output = adduser_from_file(&file, &server).await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("150 accounts created"));
    let Response::Users(users) = server.admin(Request::Users).await else { panic!("users") };
    assert_eq!(users.len(), 150);
    server.session("bench150", "pw150", "r").await;

    std::fs::write(&file, "bench151@localhost\n").expect("write the file");
    let output = adduser_from_file(&file, &server).await;
    assert!(!output.status.success(), "a line without a password is refused");
}

/// A deleted account's contacts lose their subscriptions with it (RFC 6121 §2.5.2) and
/// then the account itself from their rosters (a push `remove`): a new account of the same
/// name inherits none of them, neither presence nor roster state.
#[tokio::test]
async fn a_recreated_account_inherits_no_subscription() {
    use crate::roster::kit::*;
    let server = server_with(&["alice", "bob", "carol"]).await;
    let mut alice = login_alone(&server, "alice", "a").await;
    let mut bob = login_alone(&server, "bob", "b").await;
    subscribe(&mut alice, &mut bob, &mut []).await;
    subscribe(&mut bob, &mut alice, &mut []).await;
    // carol asks bob, who never answers.
    let mut carol = login_alone(&server, "carol", "c").await;
    carol.send("<presence type='subscribe' to='bob@localhost'/>").await;
    drain(&mut carol).await;
    drain(&mut bob).await;
    drain(&mut alice).await;
    assert_eq!(server.admin(Request::Deluser { jid: "bob@localhost".into() }).await, Response::Done);
    drop(bob);
    assert_eq!(server.admin(adduser("bob@localhost", PW)).await, Response::Done);
    let (mut new_bob, before) = login(&server, "bob", "new").await;
    assert!(before.is_empty(), "the new bob got:\n{}", list(&before));
    assert!(roster_items(&mut new_bob).await.is_empty());
    expect_drained(
        &mut alice,
        &[
            unavailable_of("bob@localhost/b", "alice@localhost"),
            sub_stanza("unsubscribed", "bob@localhost", "alice@localhost"),
            sub_stanza("unsubscribe", "bob@localhost", "alice@localhost"),
            push("alice@localhost/a", "<item jid='bob@localhost' subscription='remove'/>"),
        ],
    )
    .await;
    expect_drained(
        &mut carol,
        &[
            sub_stanza("unsubscribed", "bob@localhost", "carol@localhost"),
            push("carol@localhost/c", "<item jid='bob@localhost' subscription='remove'/>"),
        ],
    )
    .await;
    assert!(roster_item(&mut alice, "bob@localhost").await.is_none());
    assert!(roster_item(&mut carol, "bob@localhost").await.is_none());
}

/// `stanzad deluser` with the server stopped (the real binary, whose admin socket nobody
/// answers) takes the running server's path: the account leaves every roster that holds
/// it, its contacts' and a pre-approval's alike. A new account of that name inherits
/// nothing: bob's roster no longer has it, no presence goes either way, and carol's old
/// pre-approval does not approve its request.
#[tokio::test]
async fn deluser_with_the_server_stopped_leaves_every_roster() {
    use crate::roster::kit::*;
    use crate::support::daemon::{self, Daemon};
    let dir = tempfile::tempdir().expect("temporary directory");
    for user in ["alice", "bob", "carol"] {
        daemon::adduser(dir.path(), &format!("{user}@localhost"));
    }
    let server = Daemon::start(dir.path(), 0).await;
    let mut alice = server.session("alice", "a").await;
    let mut bob = server.session("bob", "b").await;
    let mut carol = server.session("carol", "c").await;
    befriend(&mut bob, &mut alice, &mut []).await;
    carol.send("<presence type='subscribed' to='alice@localhost'/>").await; // a pre-approval (RFC 6121 §3.4)
    assert!(roster_item(&mut carol, "alice@localhost").await.is_some());
    for mut client in [alice, bob, carol] {
        drain(&mut client).await;
        client.send("</stream:stream>").await;
        client.expect_closed().await;
    }
    server.stop();
    daemon::deluser(dir.path(), "alice@localhost");
    daemon::adduser(dir.path(), "alice@localhost");

    let server = Daemon::start(dir.path(), 1).await;
    let mut bob = server.session("bob", "b").await;
    assert!(roster_items(&mut bob).await.is_empty(), "bob's roster still holds alice");
    let before = online(&mut bob).await;
    assert!(before.is_empty(), "bob learned at login:\n{}", list(&before));
    let mut alice = server.session("alice", "a").await;
    assert!(roster_items(&mut alice).await.is_empty());
    let before = online(&mut alice).await;
    assert!(before.is_empty(), "the new alice learned at login:\n{}", list(&before));
    assert_quiet(&mut bob).await;
    let mut carol = server.session("carol", "c").await;
    assert!(roster_items(&mut carol).await.is_empty(), "carol's pre-approval stayed");
    online(&mut carol).await;
    alice.send("<presence type='subscribe' to='carol@localhost'/>").await;
    let asked = item("carol@localhost", "none", true);
    expect_drained(&mut alice, &[push("alice@localhost/a", &asked)]).await; // no `subscribed`
    expect_drained(&mut carol, &[sub_stanza("subscribe", "alice@localhost", "carol@localhost")]).await;
    let item = roster_item(&mut alice, "carol@localhost").await.expect("alice asked carol");
    assert_item(&item, "<item jid='carol@localhost' subscription='none' ask='subscribe'/>");
}
