//! From TCP connect to a bound resource (RFC 6120): stream headers, STARTTLS, SASL (see
//! `auth.rs`), stream restart, resource binding and, where a server still requires it, the
//! legacy session.

use stanzad::xml::framer::Frame;
use stanzad::xml::writer::escape;
use stanzad::xml::{Element, NS_BIND, NS_SESSION, NS_STREAM, NS_TLS};

use crate::client::Stream;
use crate::ctx::Ctx;
use crate::error::{BenchError, Result};
use crate::transport::Transport;
use crate::{auth, xmpp};

/// Connects connection number `conn`, logs in as the account at `offset` and binds
/// `--resource`. No presence is sent.
pub async fn login(ctx: &Ctx, offset: u64, conn: u64) -> Result<Stream> {
    let (mut stream, features) = connect(ctx, conn).await?;
    auth::authenticate(&mut stream, ctx, &ctx.localpart(offset), &features).await?;
    stream.framer.reset();
    let features = open(&mut stream, ctx).await?;
    bind(&mut stream, ctx, &features).await?;
    Ok(stream)
}

/// Logs in, sends initial presence, and waits for a ping's answer (so the server has
/// handled the presence): an available session.
pub async fn online(ctx: &Ctx, offset: u64, conn: u64) -> Result<Stream> {
    let mut stream = login(ctx, offset, conn).await?;
    let mut bytes = xmpp::PRESENCE.to_vec();
    bytes.extend_from_slice(&xmpp::ping("online", &ctx.domain));
    stream.send(ctx, &bytes).await?;
    stream.expect_result(ctx, "ping result", "online").await?;
    Ok(stream)
}

/// TCP, the first stream, and STARTTLS with `--starttls`: the stream ready for SASL (or
/// in-band registration) and its features.
pub async fn connect(ctx: &Ctx, conn: u64) -> Result<(Stream, Element)> {
    let tcp = ctx.within("connect", ctx.dialer.connect(conn)).await??;
    let mut stream = Stream::new(Transport::Plain(tcp));
    let features = open(&mut stream, ctx).await?;
    let Some(connector) = &ctx.tls else {
        if features.get_child("starttls", NS_TLS).is_some_and(|tls| tls.children().any(|c| c.name() == "required")) {
            return Err(BenchError::Protocol("the server requires STARTTLS (use --starttls)".into()));
        }
        return Ok((stream, features));
    };
    if features.get_child("starttls", NS_TLS).is_none() {
        return Err(BenchError::Tls("the server does not offer STARTTLS".into()));
    }
    stream.send(ctx, format!("<starttls xmlns='{NS_TLS}'/>").as_bytes()).await?;
    let answer = stream.stanza(ctx, "STARTTLS proceed").await?;
    if answer.name() != "proceed" {
        return Err(BenchError::Tls(format!("STARTTLS answered with <{}/>", answer.name())));
    }
    let Transport::Plain(tcp) = stream.into_transport() else {
        return Err(BenchError::Tls("already TLS".into()));
    };
    let tls = ctx.within("TLS handshake", crate::tls::upgrade(connector, &ctx.domain, tcp)).await?;
    let mut stream = Stream::new(tls.map_err(|e| BenchError::Tls(e.to_string()))?);
    let features = open(&mut stream, ctx).await?;
    Ok((stream, features))
}

/// Sends our stream header and reads the server's header and features.
pub async fn open(stream: &mut Stream, ctx: &Ctx) -> Result<Element> {
    stream.send(ctx, &xmpp::stream_header(&ctx.domain)).await?;
    match stream.frame(ctx, "stream header").await? {
        Frame::Header(header) if header.local_name == "stream" => {}
        _ => return Err(BenchError::Protocol("expected the server's stream header".into())),
    }
    let features = stream.stanza(ctx, "stream features").await?;
    if !features.is("features", NS_STREAM) {
        return Err(BenchError::Protocol(format!("expected stream features, got <{}/>", features.name())));
    }
    Ok(features)
}

/// Binds `--resource`, then establishes the legacy session if it is not optional.
async fn bind(stream: &mut Stream, ctx: &Ctx, features: &Element) -> Result<()> {
    if features.get_child("bind", NS_BIND).is_none() {
        return Err(BenchError::Protocol("no resource binding offered".into()));
    }
    let request = format!(
        "<iq type='set' id='bind'><bind xmlns='{NS_BIND}'><resource>{}</resource></bind></iq>",
        escape(&ctx.resource)
    );
    stream.send(ctx, request.as_bytes()).await?;
    let answer = stream.wait_for(ctx, "bind result", |el| xmpp::iq_outcome(el, "bind").is_some()).await?;
    let jid = answer.get_child("bind", NS_BIND).and_then(|b| b.children().find(|c| c.name() == "jid"));
    match (xmpp::iq_outcome(&answer, "bind"), jid) {
        (Some(true), Some(jid)) => stream.jid = jid.text(),
        _ => return Err(BenchError::Protocol(format!("bind failed: {}", xmpp::stanza_error(&answer)))),
    }
    let session = features.get_child("session", NS_SESSION);
    if session.is_some_and(|s| !s.children().any(|c| c.name() == "optional")) {
        let request = format!("<iq type='set' id='session'><session xmlns='{NS_SESSION}'/></iq>");
        stream.send(ctx, request.as_bytes()).await?;
        stream.expect_result(ctx, "session result", "session").await?;
    }
    Ok(())
}
