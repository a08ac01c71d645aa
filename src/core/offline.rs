//! Offline messages (XEP-0160, RFC 6121 §8.5.2.2.1): kept, in order, for an account with no
//! available resource, each stamped with when it arrived (XEP-0203), and delivered when it
//! next comes online with a non-negative priority. Entries are deleted only after the
//! client acknowledged them: the server never deletes first and sends second.

use super::delivery::{Outcome, Routed};
use crate::core::state::ServerState;
use crate::storage::offline::{Batch, OfflineMessage, Quota};
use crate::storage::roster::BlockList;
use crate::storage::StorageError;
use crate::xml::{el, writer, Element, ElementExt};
use crate::xmpp::error::{Condition, StanzaError};
use crate::xmpp::stanza::Stanza;
use xmpp_parsers::jid::BareJid;

pub use crate::xml::ns::DELAY as NS_DELAY;

/// What one account may keep waiting, offline and in flight together.
pub fn quota(state: &ServerState) -> Quota {
    let limits = &state.config.limits;
    Quota { messages: limits.offline_quota, bytes: limits.offline_quota_bytes }
}

/// Stores a message for `owner`; the sender gets `resource-constraint` over the quota.
pub async fn store(state: &ServerState, stanza: &Stanza, owner: &BareJid) -> Outcome {
    let mut message = stanza.element.clone();
    let stamp = xep0082(super::presence::unix_now());
    message.append_child(el("delay", NS_DELAY).with("from", owner.domain().as_str()).with("stamp", stamp));
    match state.store.push_offline(owner, &writer::to_bytes(&message), quota(state)).await {
        Ok(_) => Ok(Routed::Stored),
        Err(StorageError::QuotaExceeded(_)) => {
            tracing::info!(to = %owner, "offline quota reached, refusing message");
            Err(StanzaError::with_text(Condition::ResourceConstraint, "the recipient's offline storage is full"))
        }
        Err(e) => {
            tracing::error!(error = %e, "storing an offline message failed");
            state.storage_failed(&e);
            Err(StanzaError::new(Condition::InternalServerError))
        }
    }
}

/// The most one batch of stored messages handed to a client holds (the backlog, an XEP-0013
/// fetch): the next backlog batch follows its acknowledgement. Bounded in bytes as well,
/// so that large messages cannot make a batch the client's session cannot hold.
pub const BATCH: Batch = Batch { messages: 100, bytes: 1 << 20 };

/// A batch of the backlog sent and not yet acknowledged.
#[derive(Debug)]
pub struct Backlog {
    /// The id of the ping that follows the batch: its answer acknowledges the batch, since
    /// a client answers stanzas in the order they came.
    pub ack_id: String,
    pub seqs: Vec<u64>,
}

/// The next batch for `owner`, within `batch`: its stanzas and, if any, what the ping
/// `ack_id` that the caller sends after them acknowledges.
pub async fn next_batch(
    state: &ServerState,
    owner: &BareJid,
    ack_id: String,
    batch: Batch,
) -> (Vec<Vec<u8>>, Option<Backlog>) {
    let messages = match deliverable(state, owner, batch).await {
        Ok(messages) => messages,
        Err(e) => {
            tracing::error!(error = %e, "reading offline messages failed");
            state.storage_failed(&e);
            return (Vec::new(), None);
        }
    };
    if messages.is_empty() {
        return (Vec::new(), None);
    }
    let seqs = messages.iter().map(|m| m.seq).collect();
    (messages.into_iter().map(|m| m.stanza).collect(), Some(Backlog { ack_id, seqs }))
}

/// The oldest stored messages within `batch`. Those from a sender the owner has blocked
/// since they were stored are deleted instead (XEP-0191 §3.5: nothing of a blocked JID
/// reaches the user), so that they neither arrive nor hold up the queue.
pub async fn deliverable(
    state: &ServerState,
    owner: &BareJid,
    batch: Batch,
) -> Result<Vec<OfflineMessage>, StorageError> {
    loop {
        let messages = state.store.offline_batch(owner, batch).await?;
        // Nearly every account blocks nobody: its messages are not even looked at.
        let Some(list) = state.store.blocked(owner).await? else { return Ok(messages) };
        let (blocked, kept): (Vec<_>, Vec<_>) = messages.into_iter().partition(|m| sent_by_one_of(&list, m));
        if blocked.is_empty() {
            return Ok(kept);
        }
        tracing::debug!(messages = blocked.len(), "stored messages from blocked senders dropped");
        state.store.remove_offline(owner, &blocked.iter().map(|m| m.seq).collect::<Vec<_>>()).await?;
        if !kept.is_empty() {
            return Ok(kept);
        }
    }
}

/// Whether the sender of a stored message is one `owner` has blocked since.
pub async fn from_blocked(state: &ServerState, owner: &BareJid, message: &OfflineMessage) -> bool {
    matches!(state.store.blocked(owner).await, Ok(Some(list)) if sent_by_one_of(&list, message))
}

/// Whether a stored message's sender is on the block list (read from its start tag only).
fn sent_by_one_of(list: &BlockList, message: &OfflineMessage) -> bool {
    let from = crate::xml::start_tag_attr(&message.stanza, "from");
    let from = from.and_then(|f| xmpp_parsers::jid::Jid::new(&f).ok());
    from.is_some_and(|from| crate::core::privacy::on_list(list, &from))
}

/// The client acknowledged a batch: those entries go.
pub async fn acknowledged(state: &ServerState, owner: &BareJid, backlog: &Backlog) {
    if let Err(e) = state.store.remove_offline(owner, &backlog.seqs).await {
        tracing::error!(error = %e, "removing delivered offline messages failed");
        state.storage_failed(&e);
    }
}

/// XEP-0082 date-time in UTC: `1970-01-01T00:00:00Z`.
pub fn xep0082(unix: u64) -> String {
    let (days, secs) = (unix / 86_400, unix % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// The stored form of a serialised message: with its XEP-0203 delay, as offline messages
/// carry it (what an in-flight record holds, in case it ends up offline).
pub fn with_delay(owner: &BareJid, stamp: u64, stanza: &[u8]) -> Vec<u8> {
    let Some(close) = stanza.windows(10).rposition(|w| w == b"</message>") else {
        // A message without children: `<message .../>`.
        let end = stanza.len().saturating_sub(2);
        let mut out = stanza[..end].to_vec();
        out.extend_from_slice(b">");
        out.extend_from_slice(delay_tag(owner, stamp).as_bytes());
        out.extend_from_slice(b"</message>");
        return out;
    };
    let mut out = stanza[..close].to_vec();
    out.extend_from_slice(delay_tag(owner, stamp).as_bytes());
    out.extend_from_slice(&stanza[close..]);
    out
}

fn delay_tag(owner: &BareJid, stamp: u64) -> String {
    let stamp = xep0082(stamp);
    format!("<delay xmlns='{}' from='{}' stamp='{stamp}'/>", NS_DELAY, owner.domain())
}

/// Whether a stanza (in its routed form) came out of offline storage (our server's delay
/// stamp): such a stanza is still stored until the client acknowledges it.
pub fn is_from_storage(element: &Element, domain: &str) -> bool {
    // Any delay of ours, not only the first: a client's own delay may come before it.
    element.children().any(|d| d.is("delay", NS_DELAY) && d.attr("from") == Some(domain))
}

/// Whether an element is the answer to our acknowledgement ping.
pub fn is_ack(element: &Element, backlog: &Backlog) -> bool {
    element.name() == "iq"
        && matches!(element.attr("type"), Some("result" | "error"))
        && element.attr("id") == Some(backlog.ack_id.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_message_is_known_by_our_delay_wherever_it_is() {
        let element: Element = "<message xmlns='jabber:client'><delay xmlns='urn:xmpp:delay' from='bob@localhost/r' \
                                stamp='2020-01-01T00:00:00Z'/><delay xmlns='urn:xmpp:delay' from='localhost' \
                                stamp='2026-01-01T00:00:00Z'/></message>"
            .parse()
            .expect("xml");
        assert!(is_from_storage(&element, "localhost"));
        assert!(!is_from_storage(&element, "example.org"));
    }

    #[test]
    fn xep0082_dates() {
        assert_eq!(xep0082(0), "1970-01-01T00:00:00Z");
        assert_eq!(xep0082(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(xep0082(1_795_374_327), "2026-11-22T19:05:27Z");
        assert_eq!(xep0082(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn the_delay_goes_inside_the_message() {
        let owner = BareJid::new("a@example.org").expect("jid");
        let out = with_delay(&owner, 0, b"<message to='a@example.org'><body>x</body></message>");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.starts_with("<message to='a@example.org'><body>x</body><delay "), "{text}");
        assert!(text.ends_with("stamp='1970-01-01T00:00:00Z'/></message>"), "{text}");
        let empty = String::from_utf8(with_delay(&owner, 0, b"<message to='a@example.org'/>")).expect("utf-8");
        assert!(empty.starts_with("<message to='a@example.org'><delay "), "{empty}");
        assert!(empty.ends_with("</message>"), "{empty}");
    }
}
