//! What RFC 6120 §11.1 forbids: restricted XML and input that is not (namespace-)well-formed.

use xmpp_parsers::minidom::rxml::Namespace;

use super::*;

// ---- restricted XML ----

#[tokio::test]
async fn rejects_doctype() {
    assert_err!(run(b"<?xml version='1.0'?><!DOCTYPE stream>").await.1, FramerError::RestrictedXml(_));
    assert_err!(run(b"<!DOCTYPE stream [<!ENTITY x 'boom'>]><stream:stream>").await.1, FramerError::RestrictedXml(_));
    assert_err!(error_after_header(b"<!DOCTYPE x>").await, FramerError::RestrictedXml(_));
}

#[tokio::test]
async fn rejects_processing_instructions() {
    assert_err!(run(b"<?xml version='1.0'?><?xml-stylesheet href='a'?>").await.1, FramerError::RestrictedXml(_));
    assert_err!(error_after_header(b"<?foo bar?>").await, FramerError::RestrictedXml(_));
    assert_err!(error_after_header(b"<message><?foo bar?></message>").await, FramerError::RestrictedXml(_));
}

#[tokio::test]
async fn rejects_comments() {
    assert_err!(run(b"<!-- hi --><stream:stream>").await.1, FramerError::RestrictedXml(_));
    assert_err!(error_after_header(b"<!-- hi -->").await, FramerError::RestrictedXml(_));
    assert_err!(
        error_after_header(b"<message><body>a<!-- hi -->b</body></message>").await,
        FramerError::RestrictedXml(_)
    );
}

// ---- not well-formed ----

#[tokio::test]
async fn late_xml_declaration_is_not_well_formed() {
    // XML 1.0 §2.8: the declaration may only open the document.
    assert_err!(error_after_header(b"<?xml version='1.0'?>").await, FramerError::NotWellFormed(_));
    assert_err!(error_after_header(b"<message><?xml version='1.0'?></message>").await, FramerError::NotWellFormed(_));
    assert_err!(run(b" <?xml version='1.0'?><stream>").await.1, FramerError::NotWellFormed(_));
    assert_err!(run(b"<?xml version='1.0'?><?xml version='1.0'?><stream>").await.1, FramerError::NotWellFormed(_));
}

#[tokio::test]
async fn other_encodings_are_unsupported() {
    for decl in [
        &b"<?xml version='1.0' encoding='ISO-8859-1'?><stream>"[..],
        b"<?xml version='1.0' encoding='UTF-16'?><stream>",
    ] {
        assert_err!(run(decl).await.1, FramerError::UnsupportedEncoding(_));
    }
}

#[tokio::test]
async fn rejects_bad_declarations() {
    for decl in [
        &b"<?xml version='1.1'?><stream>"[..],
        b"<?xml encoding='UTF-8'?><stream>",
        b"<?xml?><stream>",
        b"<?xml version='1.0' foo='bar'?><stream>",
        b"<?xml version='1.0' standalone='maybe'?><stream>",
        b"<?xml version=1.0?><stream>",
    ] {
        assert_err!(run(decl).await.1, FramerError::NotWellFormed(_));
    }
    let (frames, _) = run(b"<?xml version=\"1.0\" encoding=\"UTF-8\" standalone='yes' ?><stream>").await;
    assert_eq!(frames.len(), 1);
}

#[tokio::test]
async fn rejects_bad_root() {
    assert_err!(
        run(b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>").await.1,
        FramerError::NotWellFormed(_)
    );
    assert_err!(run(b"</stream:stream>").await.1, FramerError::NotWellFormed(_));
    assert_err!(run(b"hello<stream>").await.1, FramerError::NotWellFormed(_));
    // Unbound root prefix.
    assert_err!(run(b"<stream:stream xmlns='jabber:client'>").await.1, FramerError::NotWellFormed(_));
}

#[tokio::test]
async fn rejects_undeclared_entity() {
    assert_err!(error_after_header(b"<message><body>&nbsp;</body></message>").await, FramerError::NotWellFormed(_));
    assert_err!(error_after_header(b"<message to='&nbsp;'/>").await, FramerError::NotWellFormed(_));
}

#[tokio::test]
async fn rejects_invalid_character_references() {
    for r in [
        "&#0;",
        "&#x0;",
        "&#xD800;",
        "&#xDFFF;",
        "&#xFFFE;",
        "&#xFFFF;",
        "&#x110000;",
        "&#1114112;",
        "&#x1;",
        "&#8;",
        "&#X41;",
        "&#;",
        "&#x;",
        "&#x-1;",
        "&#99999999999;",
        "&#12a;",
        "&a b;",
    ] {
        let body = format!("<message><body>{r}</body></message>");
        assert_err!(error_after_header(body.as_bytes()).await, FramerError::NotWellFormed(_));
        let attr = format!("<message to='{r}'/>");
        assert_err!(error_after_header(attr.as_bytes()).await, FramerError::NotWellFormed(_));
    }
}

#[tokio::test]
async fn rejects_raw_control_characters() {
    for c in ["\u{1}", "\u{0}", "\u{8}", "\u{B}", "\u{1F}", "\u{FFFE}", "\u{FFFF}"] {
        let body = format!("<message><body>a{c}b</body></message>");
        assert_err!(error_after_header(body.as_bytes()).await, FramerError::NotWellFormed(_));
        let attr = format!("<message to='a{c}b'/>");
        assert_err!(error_after_header(attr.as_bytes()).await, FramerError::NotWellFormed(_));
        let cdata = format!("<message><body><![CDATA[{c}]]></body></message>");
        assert_err!(error_after_header(cdata.as_bytes()).await, FramerError::NotWellFormed(_));
    }
}

#[tokio::test]
async fn rejects_invalid_utf8() {
    assert_err!(error_after_header(b"<message><body>\xff</body></message>").await, FramerError::NotWellFormed(_));
    assert_err!(error_after_header(b"<message to='\xc3\x28'/>").await, FramerError::NotWellFormed(_));
    assert_err!(error_after_header(b"<mess\xe2\x82age/>").await, FramerError::NotWellFormed(_));
    assert_err!(run(b"<stream \xff='1'>").await.1, FramerError::NotWellFormed(_));
}

#[tokio::test]
async fn rejects_duplicate_attributes() {
    assert_err!(error_after_header(b"<message to='a' to='b'/>").await, FramerError::NotWellFormed(_));
    assert_err!(
        error_after_header(b"<message xmlns='jabber:client' xmlns='jabber:client'/>").await,
        FramerError::NotWellFormed(_)
    );
    assert_err!(error_after_header(b"<message xmlns:a='u' xmlns:a='u'/>").await, FramerError::NotWellFormed(_));
    // Same expanded name through two prefixes bound to the same namespace.
    assert_err!(
        error_after_header(b"<message xmlns:a='urn:u' xmlns:b='urn:u' a:x='1' b:x='2'/>").await,
        FramerError::NotWellFormed(_)
    );
    assert_err!(error_after_header(b"<message xml:lang='en' xml:lang='fr'/>").await, FramerError::NotWellFormed(_));
}

#[tokio::test]
async fn rejects_unbound_prefixes() {
    assert_err!(error_after_header(b"<foo:message/>").await, FramerError::NotWellFormed(_));
    assert_err!(error_after_header(b"<message><foo:x/></message>").await, FramerError::NotWellFormed(_));
    assert_err!(error_after_header(b"<message foo:x='1'/>").await, FramerError::NotWellFormed(_));
    // Scope ends with the declaring element.
    assert_err!(
        error_after_header(b"<message><a xmlns:p='urn:p'/><p:b/></message>").await,
        FramerError::NotWellFormed(_)
    );
}

#[tokio::test]
async fn rejects_reserved_namespace_misuse() {
    for body in [
        &b"<message xmlns:p=''/>"[..],
        b"<message xmlns:xml='urn:other'/>",
        b"<message xmlns:xmlns='urn:other'/>",
        b"<message xmlns:p='http://www.w3.org/XML/1998/namespace'/>",
        b"<message xmlns='http://www.w3.org/2000/xmlns/'/>",
        b"<xmlns:message/>",
        b"<message xmlns:='urn:x'/>",
    ] {
        assert_err!(error_after_header(body).await, FramerError::NotWellFormed(_));
    }
    // Declaring xml to its own namespace is allowed.
    let input = format!("{HEADER}<message xmlns:xml='http://www.w3.org/XML/1998/namespace' xml:lang='en'/>");
    let (frames, _) = run(input.as_bytes()).await;
    assert_eq!(stanza(&frames[1]).attr_ns(&Namespace::XML, "lang"), Some("en"));
}

#[tokio::test]
async fn rejects_invalid_names() {
    for body in [
        &b"<1a/>"[..],
        b"<-a/>",
        b"<a:/>",
        b"<:a/>",
        b"<a:b:c xmlns:a='u'/>",
        b"< a/>",
        b"<message 1x='1'/>",
        b"<message a:b:c='1'/>",
        b"<message \"x\"='1'/>",
        b"<message><a/b/></message>",
    ] {
        assert_err!(error_after_header(body).await, FramerError::NotWellFormed(_));
    }
}

#[tokio::test]
async fn rejects_lt_in_attribute_value() {
    assert_err!(error_after_header(b"<message to='a<b'/>").await, FramerError::NotWellFormed(_));
    assert_err!(error_after_header(b"<message to=\"<\"></message>").await, FramerError::NotWellFormed(_));
}

#[tokio::test]
async fn accepts_gt_and_other_quote_in_attribute_value() {
    let input = format!("{HEADER}<message a='x>y\"z' b=\"'\"/>");
    let (frames, _) = run(input.as_bytes()).await;
    assert_eq!(stanza(&frames[1]).attr("a"), Some("x>y\"z"));
    assert_eq!(stanza(&frames[1]).attr("b"), Some("'"));
}

#[tokio::test]
async fn rejects_mismatched_end_tag() {
    assert_err!(error_after_header(b"<message></presence>").await, FramerError::NotWellFormed(_));
    assert_err!(error_after_header(b"<message><a><b></a></b></message>").await, FramerError::NotWellFormed(_));
    assert_err!(error_after_header(b"</stream>").await, FramerError::NotWellFormed(_));
    // Same namespace, different prefix: still a mismatch.
    assert_err!(error_after_header(b"<a:x xmlns:a='u' xmlns:b='u'></b:x>").await, FramerError::NotWellFormed(_));
}

#[tokio::test]
async fn rejects_malformed_attributes() {
    for body in [
        &b"<message to=a/>"[..],
        b"<message to/>",
        b"<message to>",
        b"<message to=/>",
        b"<message to='a'type='chat'/>",
        b"<message to='a' / >",
        b"<message to='a&b'/>",
        b"<message to='a&amp'/>",
    ] {
        assert_err!(error_after_header(body).await, FramerError::NotWellFormed(_));
    }
}

#[tokio::test]
async fn rejects_bad_character_data() {
    assert_err!(error_after_header(b"hello").await, FramerError::NotWellFormed(_));
    assert_err!(error_after_header(b"<presence/>x<presence/>").await, FramerError::NotWellFormed(_));
    assert_err!(error_after_header(b"&amp;").await, FramerError::NotWellFormed(_));
    assert_err!(error_after_header(b"<![CDATA[x]]>").await, FramerError::NotWellFormed(_));
    assert_err!(error_after_header(b"<message><body>a]]>b</body></message>").await, FramerError::NotWellFormed(_));
    assert_err!(error_after_header(b"<message><body>a & b</body></message>").await, FramerError::NotWellFormed(_));
    assert_err!(error_after_header(b"<message><!foo></message>").await, FramerError::NotWellFormed(_));
}
