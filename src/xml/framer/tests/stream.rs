//! Streams as they should be: the header, stanzas, keepalives, restarts, chunked input.

use xmpp_parsers::minidom::rxml::Namespace;

use super::*;

const HAPPY: &str = "<?xml version='1.0' encoding='utf-8'?>\
        <s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams' \
        to='example.com' from='juliet@example.com' id='abc' version='1.0' xml:lang='en'>\
        <message to='romeo@example.net/orchard' type='chat' id='m&amp;1' note=\"say &quot;hi&quot; &#x263A;\">\
        <body>a &amp; b &lt;c&gt; &#65;&#x42;&#x1F600; d</body>\
        <x:thing xmlns:x='urn:example:x' x:attr='v' plain='p'><x:inner>deep</x:inner></x:thing>\
        <other xmlns='urn:example:other'><child/></other>\
        <subject xml:lang='fr'>Bonjour</subject>\
        </message>\
        <presence/>\
        <iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>\
        </s:stream>";

fn check_happy(frames: &[Frame]) {
    assert_eq!(frames.len(), 5, "{frames:?}");
    let h = header(&frames[0]);
    assert_eq!(
        h,
        &StreamHeader {
            ns: Some(STREAM_NS.to_owned()),
            local_name: "stream".to_owned(),
            default_ns: Some("jabber:client".to_owned()),
            to: Some("example.com".to_owned()),
            from: Some("juliet@example.com".to_owned()),
            id: Some("abc".to_owned()),
            version: Some("1.0".to_owned()),
            lang: Some("en".to_owned()),
        }
    );

    let msg = stanza(&frames[1]);
    assert!(msg.is("message", "jabber:client"));
    assert_eq!(msg.attr("to"), Some("romeo@example.net/orchard"));
    assert_eq!(msg.attr("id"), Some("m&1"));
    assert_eq!(msg.attr("note"), Some("say \"hi\" \u{263A}"));
    let body = msg.get_child("body", "jabber:client").unwrap();
    assert_eq!(body.text(), "a & b <c> AB\u{1F600} d");
    assert_eq!(body.nodes().count(), 1, "text must be stitched into one node");
    let thing = msg.get_child("thing", "urn:example:x").unwrap();
    assert_eq!(thing.attr_ns("urn:example:x", "attr"), Some("v"));
    assert_eq!(thing.attr("plain"), Some("p"));
    assert_eq!(thing.attr("attr"), None);
    let inner = thing.get_child("inner", "urn:example:x").unwrap();
    assert_eq!(inner.text(), "deep");
    let other = msg.get_child("other", "urn:example:other").unwrap();
    assert!(other.has_child("child", "urn:example:other"));
    let subject = msg.get_child("subject", "jabber:client").unwrap();
    assert_eq!(subject.attr_ns(&Namespace::XML, "lang"), Some("fr"));

    assert!(stanza(&frames[2]).is("presence", "jabber:client"));
    let iq = stanza(&frames[3]);
    assert!(iq.is("iq", "jabber:client"));
    assert!(iq.has_child("query", "jabber:iq:roster"));
    assert_eq!(frames[4], Frame::Close);
}

#[tokio::test]
async fn happy_path() {
    let (frames, err) = run(HAPPY.as_bytes()).await;
    check_happy(&frames);
    assert_err!(err, FramerError::Eof);
}

#[tokio::test]
async fn after_close_next_returns_eof_without_reading() {
    let input = format!("{HEADER}</stream:stream><garbage");
    let mut framer = Framer::new(input.as_bytes(), LIMITS);
    assert!(matches!(framer.next().await, Ok(Frame::Header(_))));
    assert!(matches!(framer.next().await, Ok(Frame::Close)));
    assert_err!(framer.next().await, Err(FramerError::Eof));
}

#[tokio::test]
async fn one_byte_chunks() {
    let reader = Chunked::new(HAPPY, 1);
    let (frames, err) = run_with(Framer::new(reader, LIMITS)).await;
    check_happy(&frames);
    assert_err!(err, FramerError::Eof);
}

/// Names are what rxml (and minidom's writer) accept: without U+FDF0..U+FFFD, so that
/// every stanza the framer produces can be written again.
#[tokio::test]
async fn names_the_writer_cannot_write_are_refused() {
    for body in ["<a\u{FEFF}/>", "<a><b\u{FDF0}/></a>", "<a xmlns:p\u{FFFD}='urn:x'/>", "<a b\u{FEFF}='1'/>"] {
        let err = error_after_header(body.as_bytes()).await;
        assert_err!(err, FramerError::NotWellFormed(_));
    }
    let (frames, _) = run(format!("{HEADER}<a\u{F900}\u{FDCF}><b\u{10000}/></a\u{F900}\u{FDCF}>").as_bytes()).await;
    let el = stanza(&frames[1]);
    assert!(!crate::xml::writer::to_bytes(el).is_empty());
}

/// RFC 6120 §11.6: U+FEFF is never a byte order mark in XMPP, so a stream that starts
/// with it has character data before the header, however the bytes arrive (quick-xml
/// drops a BOM that arrives whole in its first read). Likewise for other bytes that
/// cannot start a stream, even when invalid UTF-8 follows up to the end of the input.
/// Found by fuzz/framer_bytes (fuzz/regressions/framer_bytes/).
#[tokio::test]
async fn bad_stream_start_is_not_well_formed_in_any_chunking() {
    let mut bom = "\u{FEFF}".as_bytes().to_vec();
    bom.extend_from_slice(HEADER.as_bytes());
    for input in [bom, b"\xEF\xBB\xBFA?\xAB]>x\xB8".to_vec(), b"x\xFF".to_vec()] {
        for chunk in [1, 2, 3, 4, 1000] {
            let (frames, err) = run_with(Framer::new(Chunked::new(input.clone(), chunk), LIMITS)).await;
            assert!(frames.is_empty(), "chunk {chunk}: {frames:?}");
            assert_err!(err, FramerError::NotWellFormed(_));
        }
    }
    // Also after a stream restart.
    let mut input = HEADER.as_bytes().to_vec();
    input.extend_from_slice("<success/>\u{FEFF}".as_bytes());
    input.extend_from_slice(HEADER.as_bytes());
    let mut framer = Framer::new(&input[..], LIMITS);
    assert!(matches!(framer.next().await, Ok(Frame::Header(_))));
    assert!(matches!(framer.next().await, Ok(Frame::Stanza(_))));
    framer.reset();
    assert_err!(framer.next().await.map(|_| ()).unwrap_err(), FramerError::NotWellFormed(_));
}

#[tokio::test]
async fn duplex_with_small_writes() {
    let (client, server) = tokio::io::duplex(16);
    let writer = tokio::spawn(async move {
        let mut client = client;
        for (i, piece) in HAPPY.as_bytes().chunks(3).enumerate() {
            client.write_all(piece).await.unwrap();
            if i % 7 == 0 {
                tokio::task::yield_now().await;
            }
        }
        client.shutdown().await.unwrap();
    });
    let (frames, err) = run_with(Framer::new(server, LIMITS)).await;
    writer.await.unwrap();
    check_happy(&frames);
    assert_err!(err, FramerError::Eof);
}

#[tokio::test]
async fn header_without_declaration_or_default_namespace() {
    let input = b"<stream xmlns='http://etherx.jabber.org/streams' to='a'>";
    let (frames, err) = run(input).await;
    let h = header(&frames[0]);
    assert_eq!(h.ns.as_deref(), Some(STREAM_NS));
    assert_eq!(h.local_name, "stream");
    assert_eq!(h.default_ns.as_deref(), Some(STREAM_NS));
    assert_eq!(h.to.as_deref(), Some("a"));
    assert_eq!(h.lang, None);
    assert_err!(err, FramerError::Eof);

    // No namespace at all: reported, not judged.
    let (frames, _) = run(b"<stream>").await;
    let h = header(&frames[0]);
    assert_eq!(h.ns, None);
    assert_eq!(h.default_ns, None);
}

#[tokio::test]
async fn whitespace_keepalives_are_ignored() {
    let input = format!("{HEADER} \n\t\r\n <message/> \n \n<presence/>\n\n \t</stream:stream>");
    let (frames, err) = run(input.as_bytes()).await;
    assert_eq!(frames.len(), 4);
    assert!(stanza(&frames[1]).is("message", "jabber:client"));
    assert!(stanza(&frames[2]).is("presence", "jabber:client"));
    assert_eq!(frames[3], Frame::Close);
    assert_err!(err, FramerError::Eof);
}

#[tokio::test]
async fn long_idle_keepalives_do_not_exhaust_the_budget() {
    let limits = Limits { max_stanza_bytes: 100, ..LIMITS };
    let mut input = HEADER.as_bytes().to_vec();
    input.extend(std::iter::repeat_n(b' ', 200_000));
    input.extend_from_slice(b"<presence/>");
    let mut framer = Framer::new(Chunked::new(input, 1000), LIMITS);
    assert!(matches!(framer.next().await, Ok(Frame::Header(_))));
    framer.set_limits(limits);
    let p = framer.next().await.unwrap();
    assert!(stanza(&p).is("presence", "jabber:client"));
    assert_err!(framer.next().await, Err(FramerError::Eof));
}

#[tokio::test]
async fn whitespace_in_stanza_text_is_kept_and_line_ends_normalised() {
    let input = format!(
        "{HEADER}<message><body>  a\r\nb\rc\n &#xD; </body></message>\
             <message t='x\r\ny\tz&#x9;&#10;'/>"
    );
    let (frames, _) = run(input.as_bytes()).await;
    let body = stanza(&frames[1]).get_child("body", "jabber:client").unwrap();
    assert_eq!(body.text(), "  a\nb\nc\n \r ");
    assert_eq!(stanza(&frames[2]).attr("t"), Some("x y z\t\n"));
}

#[tokio::test]
async fn cdata_is_text() {
    let input = format!("{HEADER}<message><body>x<![CDATA[<a> & ]]>y</body></message>");
    let (frames, _) = run(input.as_bytes()).await;
    let body = stanza(&frames[1]).get_child("body", "jabber:client").unwrap();
    assert_eq!(body.text(), "x<a> & y");
    assert_eq!(body.nodes().count(), 1);
}

#[tokio::test]
async fn namespace_redeclaration_and_undeclaration() {
    let input = format!(
        "{HEADER}<message><a xmlns='urn:a'><b/><c xmlns=''><d/></c></a>\
             <p:e xmlns:p='urn:p'><p:f xmlns:p='urn:q'/></p:e><g/></message>"
    );
    let (frames, err) = run(input.as_bytes()).await;
    let msg = stanza(&frames[1]);
    let a = msg.get_child("a", "urn:a").unwrap();
    assert!(a.has_child("b", "urn:a"));
    let c = a.get_child("c", "").unwrap();
    assert!(c.has_child("d", ""));
    let e = msg.get_child("e", "urn:p").unwrap();
    assert!(e.has_child("f", "urn:q"));
    assert!(msg.has_child("g", "jabber:client"));
    assert_err!(err, FramerError::Eof);
}

#[tokio::test]
async fn reset_keeps_pipelined_bytes() {
    let input = format!(
        "{HEADER}<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>\
             <?xml version='1.0'?><stream:stream xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>\
             <iq type='set' id='bind'/>"
    );
    let mut framer = Framer::new(input.as_bytes(), LIMITS);
    assert!(matches!(framer.next().await, Ok(Frame::Header(_))));
    let auth = framer.next().await.unwrap();
    assert!(stanza(&auth).is("auth", "urn:ietf:params:xml:ns:xmpp-sasl"));
    assert!(framer.has_buffered_bytes(), "the new header was read ahead");
    framer.reset();
    assert!(framer.has_buffered_bytes());
    let h = framer.next().await.unwrap();
    assert_eq!(header(&h).to.as_deref(), Some("example.com"));
    let iq = framer.next().await.unwrap();
    assert!(stanza(&iq).is("iq", "jabber:client"));
    assert!(!framer.has_buffered_bytes());
    assert_err!(framer.next().await, Err(FramerError::Eof));
}

#[tokio::test]
async fn reset_tolerates_whitespace_before_new_declaration() {
    let input = format!("{HEADER}<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>\n  {HEADER}<presence/>");
    let mut framer = Framer::new(Chunked::new(input, 5), LIMITS);
    assert!(matches!(framer.next().await, Ok(Frame::Header(_))));
    assert!(matches!(framer.next().await, Ok(Frame::Stanza(_))));
    framer.reset();
    assert!(matches!(framer.next().await, Ok(Frame::Header(_))));
    let p = framer.next().await.unwrap();
    assert!(stanza(&p).is("presence", "jabber:client"));
}

#[tokio::test]
async fn has_buffered_bytes_and_into_inner() {
    // Nothing behind <starttls/>: safe to upgrade.
    let input = format!("{HEADER}<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    let mut framer = Framer::new(input.as_bytes(), LIMITS);
    assert!(!framer.has_buffered_bytes());
    assert!(matches!(framer.next().await, Ok(Frame::Header(_))));
    assert!(matches!(framer.next().await, Ok(Frame::Stanza(_))));
    assert!(!framer.has_buffered_bytes());
    let rest: &[u8] = framer.into_inner();
    assert!(rest.is_empty());

    // Injected plaintext behind <starttls/>: must be detected.
    let input = format!("{HEADER}<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><iq type='get'/>");
    let mut framer = Framer::new(input.as_bytes(), LIMITS);
    assert!(matches!(framer.next().await, Ok(Frame::Header(_))));
    assert!(matches!(framer.next().await, Ok(Frame::Stanza(_))));
    assert!(framer.has_buffered_bytes());
    assert!(framer.has_buffered_content());

    // A newline behind <starttls/> (go-xmpp clients send one) is whitespace, not content.
    let input = format!("{HEADER}<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\n \r\t");
    let mut framer = Framer::new(input.as_bytes(), LIMITS);
    assert!(matches!(framer.next().await, Ok(Frame::Header(_))));
    assert!(matches!(framer.next().await, Ok(Frame::Stanza(_))));
    assert!(framer.has_buffered_bytes());
    assert!(!framer.has_buffered_content());
}

#[tokio::test]
async fn get_mut_reaches_the_inner_reader() {
    let reader = Chunked::new(HEADER, 4096);
    let delivered = reader.delivered.clone();
    let mut framer = Framer::new(reader, LIMITS);
    assert!(matches!(framer.next().await, Ok(Frame::Header(_))));
    assert_eq!(framer.get_mut().pos, HEADER.len());
    assert_eq!(delivered.load(Ordering::Relaxed), HEADER.len());
}
