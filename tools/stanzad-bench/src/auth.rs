//! SASL over the stream (RFC 6120 §6): PLAIN or SCRAM-SHA-1/256 (`stanzad::sasl::client`,
//! with the salted passwords cached: `salt_cache.rs`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use stanzad::sasl::client::{ScramClient, ScramClientError};
use stanzad::sasl::HashAlg;
use stanzad::xml::{Element, NS_SASL};

use crate::cli::Mech;
use crate::client::Stream;
use crate::ctx::Ctx;
use crate::error::{BenchError, Result};

/// Authenticates as `user` with `--mech` and `--password`.
pub async fn authenticate(stream: &mut Stream, ctx: &Ctx, user: &str, features: &Element) -> Result<()> {
    let offered = features
        .get_child("mechanisms", NS_SASL)
        .is_some_and(|m| m.children().any(|c| c.name() == "mechanism" && c.text().trim() == ctx.mech.name()));
    if !offered {
        return Err(BenchError::Sasl(format!("{} is not offered", ctx.mech.name())));
    }
    match ctx.mech {
        Mech::Plain => plain(stream, ctx, user).await,
        Mech::ScramSha1 => scram(stream, ctx, user, HashAlg::Sha1).await,
        Mech::ScramSha256 => scram(stream, ctx, user, HashAlg::Sha256).await,
    }
}

async fn plain(stream: &mut Stream, ctx: &Ctx, user: &str) -> Result<()> {
    let initial = format!("\0{user}\0{}", ctx.password);
    stream.send(ctx, auth_element("PLAIN", initial.as_bytes()).as_bytes()).await?;
    let answer = sasl_answer(stream, ctx).await?;
    match answer {
        Answer::Success(_) => Ok(()),
        Answer::Challenge(_) => Err(BenchError::Sasl("unexpected challenge to PLAIN".into())),
    }
}

async fn scram(stream: &mut Stream, ctx: &Ctx, user: &str, hash: HashAlg) -> Result<()> {
    let mut client = ScramClient::new(hash, user, &ctx.password).map_err(sasl_error)?;
    stream.send(ctx, auth_element(ctx.mech.name(), client.client_first().as_bytes()).as_bytes()).await?;
    let Answer::Challenge(server_first) = sasl_answer(stream, ctx).await? else {
        return Err(BenchError::Sasl("success before the SCRAM exchange".into()));
    };
    let client_final = client
        .client_final_with(&server_first, |hash, password, salt, i| ctx.salts.salted(hash, password, salt, i))
        .map_err(sasl_error)?;
    stream.send(ctx, response_element(client_final.as_bytes()).as_bytes()).await?;
    match sasl_answer(stream, ctx).await? {
        Answer::Success(data) => client.verify_server_final(&data).map_err(sasl_error),
        // Some servers send server-final as a challenge and expect an empty response.
        Answer::Challenge(data) => {
            client.verify_server_final(&data).map_err(sasl_error)?;
            stream.send(ctx, response_element(b"").as_bytes()).await?;
            match sasl_answer(stream, ctx).await? {
                Answer::Success(_) => Ok(()),
                Answer::Challenge(_) => Err(BenchError::Sasl("challenge after server-final".into())),
            }
        }
    }
}

fn sasl_error(e: ScramClientError) -> BenchError {
    BenchError::Sasl(e.to_string())
}

/// The server's step: decoded challenge or success data; a failure is an error.
enum Answer {
    Challenge(Vec<u8>),
    Success(Vec<u8>),
}

async fn sasl_answer(stream: &mut Stream, ctx: &Ctx) -> Result<Answer> {
    let el = stream.stanza(ctx, "SASL answer").await?;
    let data = || {
        let text = el.text();
        let text = text.trim();
        match text {
            "" | "=" => Ok(Vec::new()),
            _ => STANDARD.decode(text).map_err(|_| BenchError::Sasl("answer is not base64".into())),
        }
    };
    match el.name() {
        _ if !el.has_ns(NS_SASL) => Err(BenchError::Protocol(format!("unexpected <{}/> during SASL", el.name()))),
        "challenge" => Ok(Answer::Challenge(data()?)),
        "success" => Ok(Answer::Success(data()?)),
        "failure" => {
            let condition = el.children().find(|c| c.name() != "text").map_or("unknown", |c| c.name());
            Err(BenchError::Sasl(condition.to_owned()))
        }
        other => Err(BenchError::Protocol(format!("unexpected <{other}/> during SASL"))),
    }
}

fn auth_element(mechanism: &str, initial: &[u8]) -> String {
    format!("<auth xmlns='{NS_SASL}' mechanism='{mechanism}'>{}</auth>", encode(initial))
}

fn response_element(data: &[u8]) -> String {
    format!("<response xmlns='{NS_SASL}'>{}</response>", encode(data))
}

/// Base64, `=` for empty data (RFC 6120 §6.4.2).
fn encode(data: &[u8]) -> String {
    if data.is_empty() {
        return "=".into();
    }
    STANDARD.encode(data)
}
