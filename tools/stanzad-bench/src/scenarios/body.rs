//! Benchmark chat messages, written into a reused buffer without allocating, and read back
//! from the body with a byte scan.
//!
//! `<message to='PEER' type='chat' id='RUN-SEQ'><body>RUN TS SEQ xxx…</body></message>`:
//! RUN is the run's random tag (messages of other runs are told apart), TS the send time in
//! nanoseconds since the process's base instant, SEQ the sender's counter from 1.

use stanzad::xml::writer::escape;

/// The fixed parts of one sender's messages.
pub struct Template {
    head: Vec<u8>,
    middle: Vec<u8>,
    pad: Vec<u8>,
}

impl Template {
    /// Messages to `to`, bodies padded to `body_bytes` (or longer if the numbers need it).
    pub fn new(to: &str, run_tag: &str, body_bytes: usize) -> Self {
        Template {
            head: format!("<message to='{}' type='chat' id='{run_tag}-", escape(to)).into_bytes(),
            middle: format!("'><body>{run_tag} ").into_bytes(),
            pad: vec![b'x'; body_bytes],
        }
    }

    /// Appends message `seq` stamped `ts` to `buf`.
    pub fn push(&self, buf: &mut Vec<u8>, seq: u64, ts: u64) {
        buf.extend_from_slice(&self.head);
        push_u64(buf, seq);
        buf.extend_from_slice(&self.middle);
        let body_start = buf.len() - (self.middle.len() - "'><body>".len());
        push_u64(buf, ts);
        buf.push(b' ');
        push_u64(buf, seq);
        buf.push(b' ');
        let pad = self.pad.len().saturating_sub(buf.len() - body_start);
        buf.extend_from_slice(&self.pad[..pad]);
        buf.extend_from_slice(b"</body></message>");
    }
}

/// Decimal digits of `v`, without going through `fmt`.
fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

/// (TS, SEQ) of a body of this run; `None` for anything else.
pub fn parse(body: &str, run_tag: &str) -> Option<(u64, u64)> {
    let rest = body.strip_prefix(run_tag)?.strip_prefix(' ')?;
    let (ts, rest) = number(rest.as_bytes())?;
    let (seq, _) = number(rest.strip_prefix(b" ")?)?;
    Some((ts, seq))
}

/// A leading decimal number and what follows it.
fn number(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let len = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || len > 20 {
        return None;
    }
    let value = bytes[..len].iter().try_fold(0u64, |acc, d| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')))?;
    Some((value, &bytes[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use stanzad::xml::{Element, NS_CLIENT};

    #[test]
    fn messages_round_trip_through_xml() {
        let t = Template::new("b'2@localhost", "0badcafe", 100);
        let mut buf = Vec::new();
        t.push(&mut buf, 7, 123_456_789_012);
        t.push(&mut buf, u64::MAX, 0);
        let text = String::from_utf8(buf).expect("utf-8");
        let first = &text[..text.find("</message>").expect("end") + "</message>".len()];
        let el: Element = first.replace("<message ", "<message xmlns='jabber:client' ").parse().expect("xml");
        assert_eq!(el.attr("to"), Some("b'2@localhost"));
        assert_eq!(el.attr("id"), Some("0badcafe-7"));
        let body = el.get_child("body", NS_CLIENT).expect("body").text();
        assert_eq!(body.len(), 100);
        assert_eq!(parse(&body, "0badcafe"), Some((123_456_789_012, 7)));
        assert!(text.contains(&format!("0badcafe 0 {} ", u64::MAX)));
    }

    #[test]
    fn foreign_or_broken_bodies_are_not_ours() {
        assert_eq!(parse("0badcafe 12 3 xx", "0badcafe"), Some((12, 3)));
        assert_eq!(parse("0badcafe 12 3", "0badcafe"), Some((12, 3)));
        assert_eq!(parse("deadbeef 12 3 xx", "0badcafe"), None);
        assert_eq!(parse("0badcafe 12", "0badcafe"), None);
        assert_eq!(parse("0badcafe x 3", "0badcafe"), None);
        assert_eq!(parse("0badcafe 99999999999999999999 1", "0badcafe"), None, "overflow");
        assert_eq!(parse("hello", "0badcafe"), None);
    }
}
