//! XEP-0198 as the session sees it: `<enable/>`, `<r/>`, `<a/>`, and taking over a new
//! connection on `<resume/>`. The counting itself is in [`super::sm`].

use super::sm::{self, StreamManagement, TooHigh, Unacked};
use super::{Action, Session};
use crate::c2s::error::{StreamCondition, StreamEnd};
use crate::c2s::resume::{self, failed};
use crate::core::module;
use crate::core::state::ServerState;
use crate::xml::Element;
use tokio::time::Instant;

impl Session {
    pub(super) async fn on_stream_management(
        &mut self,
        state: &ServerState,
        element: &Element,
        now: Instant,
    ) -> Vec<Action> {
        match (element.name(), self.sm.is_some()) {
            ("enable", false) if state.config.stream_management.enabled => {
                self.enable_stream_management(state, element)
            }
            ("r", true) => {
                let h = self.sm.as_ref().map_or(0, |sm| sm.inbound);
                vec![Action::Send(format!("<a xmlns='{}' h='{h}'/>", sm::NS).into_bytes().into())]
            }
            ("a", true) => match element.attr("h").and_then(|h| h.parse::<u32>().ok()) {
                Some(h) => self.acknowledged(state, h, now).await,
                None => vec![Action::End(StreamEnd::error(StreamCondition::BadFormat, "<a/> without a valid h"))],
            },
            // Enabling twice, resuming a bound stream, or acknowledging without SM.
            ("enable" | "resume" | "r" | "a", _) => {
                vec![Action::Send(failed("unexpected-request", None).into_bytes().into())]
            }
            (other, _) => {
                let text = format!("<{other}/> is not a stream management element");
                vec![Action::End(StreamEnd::error(StreamCondition::UnsupportedStanzaType, text))]
            }
        }
    }

    /// XEP-0198 §3: counting starts now; with `resume`, a dead connection leaves the
    /// session waiting for its client instead of ending it.
    fn enable_stream_management(&mut self, state: &ServerState, element: &Element) -> Vec<Action> {
        let config = &state.config.stream_management;
        let mut sm = StreamManagement::new(config);
        let mut enabled = format!("<enabled xmlns='{}'", sm::NS);
        let wants_resume = matches!(element.attr("resume"), Some("true" | "1"));
        if let (true, Some(resumable)) = (wants_resume && config.resume_timeout_secs > 0, &self.resumable) {
            // The client may ask for less time than we offer, never for more.
            let asked = element.attr("max").and_then(|m| m.parse::<u64>().ok()).filter(|m| *m > 0);
            sm.resume_secs = asked.map_or(config.resume_timeout_secs, |m| m.min(config.resume_timeout_secs));
            let id = resume::new_id();
            resumable.registry.register(&id, self.bare.clone(), resumable.sender.clone());
            enabled.push_str(&format!(" id='{id}' resume='true' max='{}'", sm.resume_secs));
            sm.resume_id = Some(id);
        }
        enabled.push_str("/>");
        tracing::debug!(resumable = sm.resume_id.is_some(), "stream management enabled");
        self.sm = Some(sm);
        state.registry.set_managed(&self.jid, self.id);
        vec![Action::Send(enabled.into_bytes().into())]
    }

    async fn acknowledged(&mut self, state: &ServerState, h: u32, now: Instant) -> Vec<Action> {
        let Some(sm) = self.sm.as_mut() else { return Vec::new() };
        match sm.acknowledge(h) {
            Ok(released) => {
                forget(state, &released).await;
                let actions = self.paced_if_waiting(state).await;
                // A freed queue may have stanzas waiting for a question.
                self.track(actions, None, now)
            }
            Err(TooHigh { h, sent }) => {
                let text = format!("handled-count-too-high: h {h} but only {sent} stanzas were sent");
                vec![Action::End(StreamEnd::error(StreamCondition::UndefinedCondition, text))]
            }
        }
    }

    /// Whether a stream that ended this way leaves the session waiting for a resumption:
    /// only a connection that died or went silent, never a closed or refused stream.
    pub fn resumable(&self, end: &StreamEnd) -> bool {
        let lost = matches!(end, StreamEnd::Io(_) | StreamEnd::Error(StreamCondition::ConnectionTimeout, _));
        lost && self.sm.as_ref().is_some_and(|sm| sm.resume_id.is_some())
    }

    /// Whether the client enabled stream management (what it did not acknowledge is
    /// kept by the session, not taken back from the writer).
    pub fn managed(&self) -> bool {
        self.sm.is_some()
    }

    /// How long a lost connection may wait for its client.
    pub fn resume_window(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.sm.as_ref().map_or(0, |sm| sm.resume_secs))
    }

    /// The `<failed/>` for a resumption claiming `h`, if `h` is impossible (more than we
    /// sent): checked before the current connection, if any, is given up.
    pub fn refuse_resumption(&self, h: u32) -> Option<String> {
        let sm = self.sm.as_ref()?;
        sm.can_acknowledge(h).err().map(|_| failed("undefined-condition", Some(sm.inbound)))
    }

    /// The connection is gone; the session waits for a resumption.
    pub fn detach(&mut self, state: &ServerState) {
        self.detached = true;
        let unwritable = state.modules.session_event(module::SessionEvent::Hibernated, &mut self.slots);
        if !unwritable.is_empty() {
            // Nothing can be written without a connection: a module's mistake.
            tracing::error!(stanzas = unwritable.len(), "a module wrote to a hibernating session; dropped");
        }
    }

    /// XEP-0198 §5: the client got `h` of our stanzas. Returns `<resumed/>`, every stanza it
    /// did not get, then presence held meanwhile; or the `<failed/>` when `h` is impossible.
    pub async fn resume(&mut self, state: &ServerState, h: u32, now: Instant) -> Result<Vec<Action>, String> {
        let Some(sm) = self.sm.as_mut() else { return Err(failed("unexpected-request", None)) };
        // Its `h` would acknowledge what the client sent; with a broken store that may not
        // be on disk: nothing is said of it.
        if state.flusher.failure().is_some() {
            return Err(failed("internal-server-error", None));
        }
        let released = sm.acknowledge(h).map_err(|_| failed("undefined-condition", Some(sm.inbound)))?;
        forget(state, &released).await;
        let id = sm.resume_id.clone().unwrap_or_default();
        let resumed = format!("<resumed xmlns='{}' h='{}' previd='{id}'/>", sm::NS, sm.inbound);
        let mut actions = vec![Action::Send(resumed.into_bytes().into())];
        actions.extend(sm.unacked.iter().map(|u| Action::Send(u.bytes.clone())));
        sm.reattached(now);
        self.last_inbound = now;
        self.ping = None;
        self.detached = false;
        // Modules first (CSI: a resumed stream is active): what they held is older than
        // what was held while detached.
        let modules = state.modules.session_event(module::SessionEvent::Resumed, &mut self.slots);
        let mut due: Vec<Action> = modules.into_iter().map(|bytes| Action::Write(bytes.into())).collect();
        due.extend(self.release_held());
        due.extend(self.paced_if_waiting(state).await);
        actions.extend(self.track(due, None, now));
        Ok(actions)
    }

    /// What waited for room (initial presence's stanzas, the backlog), now that the
    /// client acknowledged some.
    async fn paced_if_waiting(&mut self, state: &ServerState) -> Vec<Action> {
        match self.waits_for_room {
            true => self.send_paced(state).await,
            false => Vec::new(),
        }
    }

    /// What the client never acknowledged, when the session ends for good.
    pub fn take_unacked(&mut self) -> Vec<Unacked> {
        self.sm.as_mut().map(|sm| sm.take_unacked()).unwrap_or_default()
    }
}

/// Acknowledged messages leave in-flight storage.
async fn forget(state: &ServerState, released: &[Unacked]) {
    let keys: Vec<u64> = released.iter().filter_map(|u| u.inflight).collect();
    if !keys.is_empty() {
        super::forget_inflight(state, &keys).await;
    }
}
