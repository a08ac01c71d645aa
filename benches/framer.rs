//! The framer's parsing rate: a stream header, 10 000 small chat messages and the
//! closing tag, read from memory (no sockets). One iteration parses the whole stream;
//! the throughput is in stanzas.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use stanzad::config::Config;
use stanzad::xml::framer::{Frame, Framer, Limits};
use std::hint::black_box;

const MESSAGES: usize = 10_000;

fn stream() -> Vec<u8> {
    let mut input = String::from(
        "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xml:lang='en' \
         xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
    );
    for n in 0..MESSAGES {
        input.push_str(&format!("<message to='b@localhost' type='chat' id='{n}'><body>hello {n}</body></message>"));
    }
    input.push_str("</stream:stream>");
    input.into_bytes()
}

/// The limits of an authenticated session, from the default configuration.
fn limits() -> Limits {
    let l = Config::default().limits;
    Limits { max_stanza_bytes: l.max_stanza_bytes, max_depth: l.max_depth, max_attributes: l.max_attributes }
}

/// Parses the whole stream; returns the number of stanzas.
async fn parse(input: &[u8], limits: Limits) -> usize {
    let mut framer = Framer::new(input, limits);
    let mut stanzas = 0;
    loop {
        match framer.next().await.expect("well-formed stream") {
            Frame::Header(header) => {
                black_box(header);
            }
            Frame::Stanza(element) => {
                black_box(element);
                stanzas += 1;
            }
            Frame::Close => return stanzas,
        }
    }
}

fn framer(c: &mut Criterion) {
    let input = stream();
    let limits = limits();
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    assert_eq!(rt.block_on(parse(&input, limits)), MESSAGES, "every message framed");

    let mut group = c.benchmark_group("framer");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.bench_function("chat_messages", |b| b.iter(|| rt.block_on(parse(black_box(&input), limits))));
    group.finish();
}

criterion_group!(benches, framer);
criterion_main!(benches);
