//! The end of the input, I/O errors, and the size, depth and attribute limits.

use super::*;
use crate::xml::framer::machine::MAX_NAMESPACE_BYTES;

// ---- EOF ----

#[tokio::test]
async fn eof_everywhere_is_eof() {
    assert_err!(run(b"").await.1, FramerError::Eof);
    assert_err!(run(b"<?xml version='1.0'?>").await.1, FramerError::Eof);
    assert_err!(run(b"<stream:str").await.1, FramerError::Eof);
    assert_err!(error_after_header(b"").await, FramerError::Eof);
    assert_err!(error_after_header(b"<message><bo").await, FramerError::Eof);
    assert_err!(error_after_header(b"<message to='abc").await, FramerError::Eof);
    assert_err!(error_after_header(b"<message>text").await, FramerError::Eof);
    assert_err!(error_after_header(b"<message>&am").await, FramerError::Eof);
    assert_err!(error_after_header(b"<message><!-- x").await, FramerError::Eof);
    assert_err!(error_after_header(b"<message><![CDATA[x").await, FramerError::Eof);
}

#[tokio::test]
async fn io_errors_are_passed_through() {
    struct Failing;
    impl AsyncRead for Failing {
        fn poll_read(self: Pin<&mut Self>, _cx: &mut Context<'_>, _buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset")))
        }
    }
    let mut framer = Framer::new(Failing, LIMITS);
    match framer.next().await {
        Err(FramerError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
        other => panic!("unexpected {other:?}"),
    }
    assert_err!(framer.next().await, Err(FramerError::Eof));
}

// ---- limits ----

#[tokio::test]
async fn huge_single_attribute_fails_early() {
    let limits = Limits { max_stanza_bytes: 4096, ..LIMITS };
    let mut prefix = HEADER.as_bytes().to_vec();
    prefix.extend_from_slice(b"<message to='");
    let delivered = Arc::new(AtomicUsize::new(0));
    let reader = Endless { prefix, pos: 0, fill: b'a', delivered: delivered.clone() };
    let (frames, err) = run_with(Framer::new(reader, limits)).await;
    assert_eq!(frames.len(), 1);
    assert_err!(err, FramerError::PolicyViolation(_));
    let n = delivered.load(Ordering::Relaxed);
    assert!(n <= HEADER.len() + 4096 + 2 * READ_BUFFER_CAPACITY, "read {n} bytes");
}

#[tokio::test]
async fn huge_text_run_and_huge_header_fail_early() {
    let limits = Limits { max_stanza_bytes: 4096, ..LIMITS };
    let mut prefix = HEADER.as_bytes().to_vec();
    prefix.extend_from_slice(b"<message><body>");
    let delivered = Arc::new(AtomicUsize::new(0));
    let reader = Endless { prefix, pos: 0, fill: b'x', delivered: delivered.clone() };
    let (_, err) = run_with(Framer::new(reader, limits)).await;
    assert_err!(err, FramerError::PolicyViolation(_));
    assert!(delivered.load(Ordering::Relaxed) <= HEADER.len() + 4096 + 2 * READ_BUFFER_CAPACITY);

    // Endless stream header.
    let delivered = Arc::new(AtomicUsize::new(0));
    let reader = Endless { prefix: b"<stream:stream to='".to_vec(), pos: 0, fill: b'x', delivered: delivered.clone() };
    let (frames, err) = run_with(Framer::new(reader, limits)).await;
    assert!(frames.is_empty());
    assert_err!(err, FramerError::PolicyViolation(_));
    assert!(delivered.load(Ordering::Relaxed) <= 4096 + READ_BUFFER_CAPACITY);

    // Endless whitespace before the root is not a keepalive.
    let reader = Endless {
        prefix: b"<?xml version='1.0'?>".to_vec(),
        pos: 0,
        fill: b' ',
        delivered: Arc::new(AtomicUsize::new(0)),
    };
    let (_, err) = run_with(Framer::new(reader, limits)).await;
    assert_err!(err, FramerError::PolicyViolation(_));
}

#[tokio::test]
async fn stanza_size_limit_is_exact() {
    let limits = Limits { max_stanza_bytes: 100, ..LIMITS };
    let make = |len: usize| {
        // <message to='…'/> is 16 bytes plus the value.
        let value = "a".repeat(len - 16);
        format!("<message to='{value}'/>")
    };
    assert_eq!(make(100).len(), 100);
    let input = format!("{HEADER}{}{}", make(100), make(101));
    let header_len = HEADER.len();
    let limits_with_header = Limits { max_stanza_bytes: header_len.max(100), ..limits };
    let mut framer = Framer::new(input.as_bytes(), limits_with_header);
    assert!(matches!(framer.next().await, Ok(Frame::Header(_))));
    framer.set_limits(limits);
    assert!(matches!(framer.next().await, Ok(Frame::Stanza(_))));
    assert_err!(framer.next().await, Err(FramerError::PolicyViolation(_)));

    // Same with a non-empty element, size counted up to its end tag.
    let body = "<message><body>0123456789</body></message>";
    let input = format!("{HEADER}{body}");
    for (limit, ok) in [(body.len(), true), (body.len() - 1, false)] {
        let mut framer = Framer::new(input.as_bytes(), limits_with_header);
        assert!(matches!(framer.next().await, Ok(Frame::Header(_))));
        framer.set_limits(Limits { max_stanza_bytes: limit, ..limits });
        let res = framer.next().await;
        if ok {
            assert!(matches!(res, Ok(Frame::Stanza(_))), "{res:?}");
        } else {
            assert_err!(res, Err(FramerError::PolicyViolation(_)));
        }
    }
}

#[tokio::test]
async fn header_size_limit() {
    let limits = Limits { max_stanza_bytes: HEADER.len() - 1, ..LIMITS };
    let (_, err) = run_with(Framer::new(HEADER.as_bytes(), limits)).await;
    assert_err!(err, FramerError::PolicyViolation(_));
    let limits = Limits { max_stanza_bytes: HEADER.len(), ..LIMITS };
    let (frames, err) = run_with(Framer::new(HEADER.as_bytes(), limits)).await;
    assert_eq!(frames.len(), 1);
    assert_err!(err, FramerError::Eof);
}

#[tokio::test]
async fn long_namespaces_and_memory_amplification_are_refused() {
    let long = "u".repeat(MAX_NAMESPACE_BYTES + 1);
    let stanza = format!("<message><x xmlns='{long}'/></message>");
    assert_err!(error_after_header(stanza.as_bytes()).await, FramerError::PolicyViolation(_));
    // Within the byte limit, but each small element copies a 1 KiB namespace.
    let ns = "u".repeat(MAX_NAMESPACE_BYTES);
    let stanza = format!("<message><x xmlns='{ns}'>{}</x></message>", "<y/>".repeat(12_000));
    assert!(stanza.len() < LIMITS.max_stanza_bytes);
    assert_err!(error_after_header(stanza.as_bytes()).await, FramerError::PolicyViolation(_));
    // An ordinary stanza with many children is fine.
    let stanza = format!("<message><body>{}</body></message>", "<b>x</b>".repeat(500));
    let mut input = HEADER.as_bytes().to_vec();
    input.extend_from_slice(stanza.as_bytes());
    let (frames, err) = run(&input).await;
    assert_eq!(frames.len(), 2, "header and stanza");
    assert!(matches!(err, FramerError::Eof), "{err:?}");
}

#[tokio::test]
async fn depth_limit() {
    let limits = Limits { max_depth: 3, ..LIMITS };
    let ok = format!("{HEADER}<message><a><b/></a><c>x</c></message>");
    let (frames, err) = run_with(Framer::new(ok.as_bytes(), limits)).await;
    assert_eq!(frames.len(), 2);
    assert_err!(err, FramerError::Eof);

    for deep in ["<message><a><b><c/></b></a></message>", "<message><a><b><c></c></b></a></message>"] {
        let input = format!("{HEADER}{deep}");
        let (frames, err) = run_with(Framer::new(input.as_bytes(), limits)).await;
        assert_eq!(frames.len(), 1);
        assert_err!(err, FramerError::PolicyViolation(_));
    }

    let zero = Limits { max_depth: 0, ..LIMITS };
    let input = format!("{HEADER}<presence/>");
    let (_, err) = run_with(Framer::new(input.as_bytes(), zero)).await;
    assert_err!(err, FramerError::PolicyViolation(_));
}

#[tokio::test]
async fn attribute_count_limit() {
    let limits = Limits { max_attributes: 4, ..LIMITS };
    let input = format!(
        "{HEADER}<message a='1' b='2' c='3' xmlns='jabber:client'/>\
             <message a='1' b='2' c='3' d='4' e='5'/>"
    );
    let (frames, err) = run_with(Framer::new(input.as_bytes(), limits)).await;
    assert_eq!(frames.len(), 2);
    assert_err!(err, FramerError::PolicyViolation(_));

    let input = format!("{HEADER}<message><x a='1' b='2' c='3' d='4' e='5'/></message>");
    let (_, err) = run_with(Framer::new(input.as_bytes(), limits)).await;
    assert_err!(err, FramerError::PolicyViolation(_));
}

#[tokio::test]
async fn set_limits_switches_budget() {
    let small = Limits { max_stanza_bytes: 1024, ..LIMITS };
    let big_value = "a".repeat(50_000);
    let input = format!("{HEADER}<message to='{big_value}'/>");
    let (_, err) = run_with(Framer::new(input.as_bytes(), small)).await;
    assert_err!(err, FramerError::PolicyViolation(_));

    let mut framer = Framer::new(input.as_bytes(), small);
    assert!(matches!(framer.next().await, Ok(Frame::Header(_))));
    framer.set_limits(LIMITS);
    let m = framer.next().await.unwrap();
    assert_eq!(stanza(&m).attr("to").map(str::len), Some(50_000));
}
