//! RFC 6121 Appendix A, row by row: for each event, every state and its successor
//! (None where the RFC says "no state change").

use super::*;

/// Appendix A's names: "None", "None + Pending Out", ... "Both".
fn state(name: &str) -> State {
    let (sub, rest) = name.split_once(" + ").unwrap_or((name, ""));
    let subscription = match sub {
        "None" => Subscription::None,
        "To" => Subscription::To,
        "From" => Subscription::From,
        "Both" => Subscription::Both,
        other => panic!("unknown state {other}"),
    };
    State {
        subscription,
        pending_out: rest.contains("Out"),
        pending_in: rest.contains("In") || rest.contains("Out/In"),
    }
}

const STATES: [&str; 9] = [
    "None",
    "None + Pending Out",
    "None + Pending In",
    "None + Pending Out/In",
    "To",
    "To + Pending In",
    "From",
    "From + Pending Out",
    "Both",
];

/// Checks one table: `rows[i]` is the successor of `STATES[i]`, "" for no change.
fn table(event: Event, rows: [&str; 9]) {
    for (from, to) in STATES.iter().zip(rows) {
        let expected = (!to.is_empty()).then(|| state(to));
        assert_eq!(transition(state(from), event), expected, "{event:?} from {from}");
    }
}

#[test]
fn a_2_1_outbound_subscribe() {
    table(
        Event::OutSubscribe,
        ["None + Pending Out", "", "None + Pending Out/In", "", "", "", "From + Pending Out", "", ""],
    );
}

#[test]
fn a_2_2_inbound_subscribe() {
    table(
        Event::InSubscribe,
        ["None + Pending In", "None + Pending Out/In", "", "", "To + Pending In", "", "", "", ""],
    );
}

#[test]
fn a_3_1_outbound_subscribed() {
    table(Event::OutSubscribed, ["", "", "From", "From + Pending Out", "", "Both", "", "", ""]);
}

#[test]
fn a_3_2_inbound_subscribed() {
    table(Event::InSubscribed, ["", "To", "", "To + Pending In", "", "", "", "Both", ""]);
}

#[test]
fn a_4_1_outbound_unsubscribe_and_inbound_unsubscribed() {
    let rows = ["", "None", "", "None + Pending In", "None", "None + Pending In", "", "From", "From"];
    table(Event::OutUnsubscribe, rows);
    table(Event::InUnsubscribed, rows);
}

#[test]
fn a_4_2_inbound_unsubscribe_and_outbound_unsubscribed() {
    let rows = ["", "", "None", "None + Pending Out", "", "To", "None", "None + Pending Out", "To"];
    table(Event::InUnsubscribe, rows);
    table(Event::OutUnsubscribed, rows);
}
