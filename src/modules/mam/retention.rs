//! Retention: how long archived messages are kept. The server keeps them for
//! `archive.max_age`; an account may choose a shorter time for its own archive, through
//! an XEP-0050 command ([`RetentionCommand`]; XEP-0441 preferences have no such field). A
//! background task ([`enforce`]) deletes what is past either, at start and then
//! regularly, a turn at a time: appends never wait for it.

use crate::core::module::{Command, Soon};
use crate::core::state::ServerState;
use crate::storage::{on_blocking_pool, Storage, StorageError};
use crate::xml::ns::{DATA_FORMS, RETENTION_COMMAND};
use crate::xml::{el, Element, ElementExt};
use crate::xmpp::error::Condition;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use xmpp_parsers::jid::BareJid;

const DAY: u64 = 86_400;

/// What an account may choose: a form value, its label, and the time (seconds). Only
/// those shorter than the server's `archive.max_age` are offered.
pub const CHOICES: [(&str, &str, u64); 6] = [
    ("1d", "1 day", DAY),
    ("7d", "1 week", 7 * DAY),
    ("30d", "30 days", 30 * DAY),
    ("90d", "90 days", 90 * DAY),
    ("180d", "180 days", 180 * DAY),
    ("365d", "1 year", 365 * DAY),
];

/// The form value for "as long as the server keeps them".
const SERVER: &str = "server";

/// The longest wait between two expiry runs.
const EVERY_AT_MOST: Duration = Duration::from_secs(3600);

/// One walk at a time in this process, of whatever kind (the server's pass, an account's
/// new choice): each
/// walk takes maintenance's turn in its own queue place, so a group commit waits behind
/// one turn, not one per walk, and walks hold one thread of the blocking pool.
static ONE_WALK: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Expiry, at start and then every hour (every 24th of `archive.max_age` when that is
/// shorter, at least a minute apart): the server's retention, then each account's own.
pub async fn enforce(state: Arc<ServerState>) {
    let max_age = state.config.archive.max_age();
    let every = max_age.map_or(EVERY_AT_MOST, |age| (age / 24).clamp(Duration::from_secs(60), EVERY_AT_MOST));
    let mut ticks = tokio::time::interval(every);
    // A pass that overruns its period is followed by a full period, not at once.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Ok(_walk) = ONE_WALK.acquire().await else { return };
        if let Some(max_age) = max_age {
            expire_all(&state, max_age).await;
        }
        expire_chosen(&state, max_age).await;
    }
}

/// The stamp before which an archive kept for `max_age` has nothing.
fn cutoff(max_age: Duration) -> u64 {
    super::archive::now_micros().saturating_sub(max_age.as_micros() as u64)
}

async fn expire_all(state: &ServerState, max_age: Duration) {
    let (store, before) = (state.store.clone(), cutoff(max_age));
    // A long walk of an embedded store: on the blocking pool.
    match on_blocking_pool(async move { store.expire_archive(before).await }).await {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => {
            tracing::info!(
                messages = n,
                max_age_secs = max_age.as_secs(),
                "archived messages past archive.max_age deleted"
            )
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "archive expiry failed");
            state.storage_failed(&e);
        }
        Err(e) => tracing::error!(error = %e, "archive expiry task failed"),
    }
}

/// Each account's own retention, where it is shorter than the server's. An account whose
/// archive cannot be walked is logged and passed over: the others' go on.
async fn expire_chosen(state: &ServerState, max_age: Option<Duration>) {
    let store = state.store.clone();
    let expired = on_blocking_pool(async move {
        let (mut accounts, mut messages) = (0u64, 0u64);
        for (owner, secs) in store.archive_retentions().await? {
            let chosen = Duration::from_secs(secs);
            if max_age.is_some_and(|server| server <= chosen) {
                continue;
            }
            match store.expire_archive_of(&owner, cutoff(chosen)).await {
                Ok(n) => (accounts, messages) = (accounts + 1, messages + n),
                Err(e) => {
                    tracing::error!(account = %owner, error = %e, "archive expiry by the account's retention failed")
                }
            }
        }
        Ok::<_, StorageError>((accounts, messages))
    });
    match expired.await {
        Ok(Ok((_, 0))) => {}
        Ok(Ok((accounts, messages))) => {
            tracing::info!(accounts, messages, "archived messages past their owner's chosen retention deleted")
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "archive expiry by accounts' retention failed");
            state.storage_failed(&e);
        }
        Err(e) => tracing::error!(error = %e, "archive expiry task failed"),
    }
}

/// The command that sets an account's retention (docs/delivery.md, docs/clients.md).
#[derive(Default)]
pub struct RetentionCommand {
    /// Accounts whose archive a walk is going through for their new choice, and whether
    /// they chose again meanwhile: one walk per account at a time, however often it
    /// submits.
    walks: Arc<parking_lot::Mutex<HashMap<BareJid, bool>>>,
}

impl Command for RetentionCommand {
    fn node(&self) -> &'static str {
        RETENTION_COMMAND
    }

    fn name(&self) -> &'static str {
        "Message archive retention"
    }

    fn form<'a>(&'a self, state: &'a ServerState, account: &'a BareJid) -> Soon<'a, Result<Element, Condition>> {
        Soon::later(async move {
            let chosen = state.store.archive_retention(account).await.map_err(super::storage_fault)?;
            Ok(form(state.config.archive.max_age(), chosen))
        })
    }

    fn check(&self, state: &ServerState, form: &Element) -> Result<(), String> {
        choice(state.config.archive.max_age(), form).map(drop)
    }

    fn submit<'a>(
        &'a self,
        state: &'a ServerState,
        account: &'a BareJid,
        form: &'a Element,
    ) -> Soon<'a, Result<String, String>> {
        Soon::later(self.submit(state, account, form))
    }
}

impl RetentionCommand {
    /// Stores the choice, then deletes what is past it at once (in the background: a big
    /// archive does not hold up the answer).
    async fn submit(&self, state: &ServerState, account: &BareJid, form: &Element) -> Result<String, String> {
        let max_age = state.config.archive.max_age();
        let choice = choice(max_age, form)?;
        let secs = choice.map(|(_, _, secs)| *secs);
        if let Err(e) = state.store.set_archive_retention(account, secs).await {
            tracing::error!(account = %account, error = %e, "storing an archive retention failed");
            state.storage_failed(&e);
            return Err("The choice could not be stored; nothing changed. Try again later.".into());
        }
        let Some((_, label, secs)) = choice else {
            tracing::info!(account = %account, "archive retention set back to the server's");
            return Ok(format!(
                "Archived messages are kept as long as the server keeps them: {}.",
                server_label(max_age)
            ));
        };
        tracing::info!(account = %account, max_age_secs = secs, "archive retention chosen");
        self.expire_now(state, account);
        Ok(format!("Archived messages are kept for {label}; older ones are being deleted."))
    }

    /// Walks `account`'s archive for the retention it chose, after any other walk (one at
    /// a time: [`ONE_WALK`]). A walk of this account already waiting or under way goes
    /// again once done, with the latest choice, instead.
    fn expire_now(&self, state: &ServerState, account: &BareJid) {
        {
            let mut walks = self.walks.lock();
            if let Some(again) = walks.get_mut(account) {
                *again = true;
                return;
            }
            walks.insert(account.clone(), false);
        }
        let (walks, store, owner) = (self.walks.clone(), state.store.clone(), account.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(_walk) = ONE_WALK.acquire().await {
                    let walked = on_blocking_pool(walk_chosen(store.clone(), owner.clone())).await;
                    if let Err(e) = walked {
                        tracing::error!(account = %owner, error = %e, "archive expiry task failed");
                    }
                }
                let mut pending = walks.lock();
                if pending.get(&owner) == Some(&true) {
                    pending.insert(owner.clone(), false);
                    continue;
                }
                pending.remove(&owner);
                return;
            }
        });
    }
}

/// One walk of `owner`'s archive for the retention it chose now.
async fn walk_chosen(store: Arc<dyn Storage>, owner: BareJid) {
    let expired = match store.archive_retention(&owner).await {
        Ok(Some(secs)) => store.expire_archive_of(&owner, cutoff(Duration::from_secs(secs))).await,
        Ok(None) => Ok(0),
        Err(e) => Err(e),
    };
    match expired {
        Ok(0) => {}
        Ok(n) => tracing::info!(account = %owner, messages = n, "archived messages past the retention chosen deleted"),
        Err(e) => tracing::error!(account = %owner, error = %e, "archive expiry by the retention chosen failed"),
    }
}

/// The choices offered under the server's `max_age` (None: kept for ever).
fn offered(max_age: Option<Duration>) -> impl Iterator<Item = &'static (&'static str, &'static str, u64)> {
    CHOICES.iter().filter(move |(_, _, secs)| max_age.is_none_or(|server| *secs < server.as_secs()))
}

fn server_label(max_age: Option<Duration>) -> String {
    match max_age {
        Some(age) if age.as_secs() % DAY == 0 => {
            format!("As long as the server keeps them ({} days)", age.as_secs() / DAY)
        }
        Some(age) => format!("As long as the server keeps them ({} seconds)", age.as_secs()),
        None => "As long as the server keeps them (for ever)".into(),
    }
}

/// The form: one list, set to the account's current choice (XEP-0004 §3.2: `required`
/// before the value, the options after).
fn form(max_age: Option<Duration>, chosen: Option<u64>) -> Element {
    let option = |value: &str, label: &str| {
        el("option", DATA_FORMS).with("label", label).with_child(el("value", DATA_FORMS).with_text(value))
    };
    let current = chosen.and_then(|secs| offered(max_age).find(|(_, _, s)| *s == secs)).map_or(SERVER, |c| c.0);
    let mut field = el("field", DATA_FORMS)
        .with("var", "max_age")
        .with("type", "list-single")
        .with("label", "Keep my archived messages for")
        .with_child(el("required", DATA_FORMS))
        .with_child(el("value", DATA_FORMS).with_text(current))
        .with_child(option(SERVER, &server_label(max_age)));
    for (value, label, _) in offered(max_age) {
        field.append_child(option(value, label));
    }
    el("x", DATA_FORMS)
        .with("type", "form")
        // XEP-0004's schema: instructions, then the title, then the fields.
        .with_child(
            el("instructions", DATA_FORMS)
                .with_text("How long the server keeps your archived messages. Older ones are deleted within the hour."),
        )
        .with_child(el("title", DATA_FORMS).with_text("Message archive retention"))
        .with_child(
            el("field", DATA_FORMS)
                .with("var", "FORM_TYPE")
                .with("type", "hidden")
                .with_child(el("value", DATA_FORMS).with_text(RETENTION_COMMAND)),
        )
        .with_child(field)
}

/// What a submitted form chose: one of the times offered, or None for the server's.
fn choice(
    max_age: Option<Duration>,
    form: &Element,
) -> Result<Option<&'static (&'static str, &'static str, u64)>, String> {
    match chosen_value(form)?.as_str() {
        SERVER => Ok(None),
        value => match offered(max_age).find(|(v, _, _)| *v == value) {
            Some(choice) => Ok(Some(choice)),
            None => Err(format!("max_age: '{value}' is not one of the choices offered")),
        },
    }
}

/// The submitted `max_age` value (XEP-0004 §3.3: one value for a list-single).
fn chosen_value(form: &Element) -> Result<String, String> {
    let bad = |why: &str| why.to_owned();
    let field = |var: &str| form.children().find(|c| c.is("field", DATA_FORMS) && c.attr("var") == Some(var));
    let form_type = field("FORM_TYPE");
    let form_type = form_type.and_then(|f| f.get_child("value", DATA_FORMS)).map(|v| v.text());
    if form_type.is_some_and(|t| t != RETENTION_COMMAND) {
        return Err(bad("FORM_TYPE is not this command's"));
    }
    let field = field("max_age").ok_or_else(|| bad("max_age is required"))?;
    let mut values = field.children().filter(|c| c.is("value", DATA_FORMS));
    match (values.next(), values.next()) {
        (Some(value), None) => Ok(value.text().trim().to_owned()),
        _ => Err(bad("max_age takes one value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(form: &Element) -> Vec<String> {
        let field = form.children().find(|f| f.attr("var") == Some("max_age")).expect("max_age");
        field
            .children()
            .filter(|o| o.name() == "option")
            .filter_map(|o| o.get_child("value", DATA_FORMS))
            .map(|v| v.text())
            .collect()
    }

    fn current(form: &Element) -> String {
        let field = form.children().find(|f| f.attr("var") == Some("max_age")).expect("max_age");
        field.get_child("value", DATA_FORMS).expect("value").text()
    }

    #[test]
    fn only_choices_shorter_than_the_servers_are_offered() {
        let server = Some(Duration::from_secs(90 * DAY));
        assert_eq!(values(&form(server, None)), ["server", "1d", "7d", "30d"]);
        assert_eq!(values(&form(None, None)), ["server", "1d", "7d", "30d", "90d", "180d", "365d"]);
        assert_eq!(current(&form(server, Some(7 * DAY))), "7d");
        // A choice the server's limit since went under is the server's again.
        assert_eq!(current(&form(server, Some(180 * DAY))), "server");
        assert_eq!(current(&form(None, None)), "server");
    }

    fn submitted(xml: &str) -> Result<String, String> {
        chosen_value(&xml.parse().expect("xml"))
    }

    #[test]
    fn a_submission_carries_one_value_for_max_age() {
        let field =
            |inner: &str| format!("<x xmlns='jabber:x:data' type='submit'><field var='max_age'>{inner}</field></x>");
        assert_eq!(submitted(&field("<value> 7d </value>")).expect("one value"), "7d");
        for bad in ["", "<value>1d</value><value>7d</value>"] {
            assert!(submitted(&field(bad)).expect_err(bad).contains("one value"), "{bad}");
        }
        let none = "<x xmlns='jabber:x:data' type='submit'/>";
        assert!(submitted(none).expect_err("none").contains("required"));
        let other = "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:other</value></field>\
                     <field var='max_age'><value>1d</value></field></x>";
        assert!(submitted(other).expect_err("other form").contains("FORM_TYPE"));
    }

    /// Choices made while an account's walk waits for its turn make one more walk, not one
    /// each; once through, the account has no walk pending, and its old messages are gone.
    #[tokio::test]
    async fn choices_made_while_a_walk_waits_make_one_more_walk() {
        let state = crate::core::state::with_accounts(&["alice@localhost"]);
        let alice = BareJid::new("alice@localhost").expect("jid");
        let with = xmpp_parsers::jid::Jid::new("bob@localhost").expect("jid");
        let old = super::super::archive::now_micros() - 3 * DAY * 1_000_000;
        state.store.archive(&alice, &with, old, b"old").await.expect("archive");
        state.store.set_archive_retention(&alice, Some(DAY)).await.expect("retention");
        let command = RetentionCommand::default();
        let held = ONE_WALK.acquire().await.expect("the walk's permit");
        for _ in 0..3 {
            command.expire_now(&state, &alice);
        }
        assert_eq!(command.walks.lock().get(&alice), Some(&true), "one walk, to go once more");
        drop(held);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !command.walks.lock().is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "the walks never ended");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let left = state.store.query_archive(&alice, &crate::storage::archive::ArchiveQuery::all(10)).await;
        assert!(left.expect("query").messages.is_empty());
    }
}
