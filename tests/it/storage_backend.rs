//! The storage backend comes from the configuration (`[storage] backend`, sled by
//! default): a server in memory serves like one on sled, keeps nothing on disk and
//! forgets everything at a restart; an unknown backend is refused before anything starts.

use crate::support::daemon::serve_refused;
use crate::support::{xml, Client, Mech, TestServer, NS_CLIENT, NS_PING, TIMEOUT};
use stanzad::config::Config;
use stanzad::server::Server;
use xmpp_parsers::jid::BareJid;

const PW: &str = "pw";

/// Pings the server; its answer must be the next thing `client` reads.
async fn sync(client: &mut Client) {
    client.send(&format!("<iq type='get' id='sync' to='localhost'><ping xmlns='{NS_PING}'/></iq>")).await;
    let to = client.jid().to_owned();
    client.expect(&format!("<iq type='result' id='sync' from='localhost' to='{to}'/>")).await;
}

fn chat(id: &str) -> String {
    format!("<message to='bob@localhost' type='chat' id='{id}'><body>{id}</body></message>")
}

/// Logs in, delivers a live message, stores one for an account that is offline and hands
/// it over at its next login, where the client's acknowledgement removes it: all without
/// a store on disk. After a restart, nothing is left, not even the accounts.
#[tokio::test]
async fn a_server_in_memory_delivers_live_and_offline_and_forgets_at_restart() {
    let server = TestServer::with(|c| c.storage.backend = "memory".into()).await;
    server.add_user("alice@localhost", PW).await;
    server.add_user("bob@localhost", PW).await;
    let mut alice = server.available("alice", PW, "laptop", 0).await;
    let mut bob = server.available("bob", PW, "phone", 0).await;
    alice.send(&chat("live")).await;
    bob.expect(
        "<message to='bob@localhost' from='alice@localhost/laptop' type='chat' id='live'><body>live</body></message>",
    )
    .await;

    bob.log_off().await;
    alice.send(&chat("later")).await;
    sync(&mut alice).await;
    let store = server.server().state.store.clone();
    let bob_jid = BareJid::new("bob@localhost").expect("jid");
    assert_eq!(store.offline_count(&bob_jid).await.expect("count"), 1, "stored while Bob is away");

    let mut bob = server.session("bob", PW, "phone").await;
    bob.send("<presence/>").await;
    let (mut stored, mut ack) = (None, None);
    while ack.is_none() {
        let element = bob.recv().await;
        if element.is("message", NS_CLIENT) {
            stored = Some(element);
        } else if element.is("iq", NS_CLIENT) && element.attr("type") == Some("get") {
            ack = element.attr("id").map(str::to_owned);
        }
    }
    xml::assert_matches(
        &stored.expect("the stored message, before the acknowledgement ping"),
        "<message to='bob@localhost' from='alice@localhost/laptop' type='chat' id='later'><body>later</body>\
         <delay xmlns='urn:xmpp:delay' from='localhost' stamp='{any}'/></message>",
    );
    let ack = ack.expect("the acknowledgement ping");
    bob.send(&format!("<iq type='result' id='{ack}' to='localhost'/>")).await;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while store.offline_count(&bob_jid).await.expect("count") > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the acknowledged message is still stored");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(!server.data_dir.join("db").exists(), "nothing was written for sled");
    drop((alice, bob));

    let server = server.restart().await;
    let mut client = server.connect_open().await;
    let login = client.authenticate(Mech::ScramSha256, "alice", PW).await;
    assert_eq!(login, Err("not-authorized".to_owned()), "the accounts went with the process");
}

/// `[storage] backend` names a backend the server has, or nothing starts: the error says
/// which setting is wrong and what it may be, from the command line and in-process alike.
#[tokio::test]
async fn an_unknown_backend_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let printed = serve_refused(dir.path(), "[storage]\nbackend = \"postgres\"\n");
    assert!(
        printed.contains("invalid setting storage.backend")
            && printed.contains("\"postgres\"")
            && printed.contains("sled"),
        "{printed}"
    );
    assert!(!dir.path().join("data").exists(), "refused before the data directory was made");

    let mut config = Config { data_dir: dir.path().join("in-process"), ..Config::default() };
    config.storage.backend = "Memory".into();
    let refused = Server::start(config).await.err().map(|e| e.to_string());
    assert!(refused.as_ref().is_some_and(|e| e.contains("storage.backend") && e.contains("\"Memory\"")), "{refused:?}");
    assert!(!dir.path().join("in-process").exists());
}
