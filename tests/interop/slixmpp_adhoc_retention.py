#!/usr/bin/env python3
"""Interop check of XEP-0050 ad-hoc commands with slixmpp's own plugin (xep_0050), through
a running stanzad: alice lists the server's commands, runs the archive retention command
with slixmpp's command workflow (execute, the form, complete), chooses a week, and reads
her choice back in a second run of the command; then she sets it back and cancels a run.

usage: slixmpp_adhoc_retention.py HOST PORT CERT_PATH [--direct-tls]
Account alice@localhost must exist with password 'alice-pw'.
Exits 0 on success, 1 otherwise; bounded by a 30 s timeout.
"""
import asyncio

from common import TlsClient, run_scenario

NODE = "urn:stanzad:mam:retention"


class Client(TlsClient):
    def __init__(self, jid, password, cert, direct_tls):
        super().__init__(jid, password, cert, direct_tls)
        for plugin in ("xep_0030", "xep_0004", "xep_0050"):
            self.register_plugin(plugin)
        self.ready = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", lambda _: self.ready.done() or self.ready.set_result(True))
        self.add_event_handler(
            "failed_auth",
            lambda _: self.ready.done() or self.ready.set_exception(RuntimeError(f"{jid}: auth failed")),
        )


def run_command(client, choose):
    """Runs the command through slixmpp's workflow: `choose(field)`, given the form's
    max_age field, says what to submit for it, or None to cancel. Resolves to (the form, the final command element)."""
    adhoc = client.plugin["xep_0050"]
    done = asyncio.get_event_loop().create_future()
    seen = {}

    def on_error(iq, _session):
        if not done.done():
            done.set_exception(RuntimeError(f"command error: {iq['error']['condition']} {iq}"))

    def on_finished(iq, _session):
        if not done.done():
            done.set_result((seen["form"], iq["command"]))

    def on_form(iq, session):
        form = iq["command"]["form"]
        seen["form"] = form
        try:
            value = choose(form.get_fields()["max_age"])
        except Exception as e:  # a failed check ends the scenario, not just this handler
            done.set_exception(e)
            return
        if value is None:
            session["next"] = on_finished
            adhoc.cancel_command(session)
            return
        reply = client.plugin["xep_0004"].make_form(ftype="submit")
        reply.add_field(var="FORM_TYPE", ftype="hidden", value=NODE)
        reply.add_field(var="max_age", value=value)
        session["payload"] = reply
        session["next"] = on_finished
        adhoc.complete_command(session)

    adhoc.start_command("localhost", NODE, {"next": on_form, "error": on_error})
    return done


async def main(host, port, cert, direct_tls):
    alice = Client("alice@localhost/retention", "alice-pw", cert, direct_tls)
    alice.connect(host=host, port=port)
    await asyncio.wait_for(alice.ready, 15)

    info = await alice.plugin["xep_0030"].get_info(jid="localhost")
    assert "http://jabber.org/protocol/commands" in info["disco_info"]["features"], info
    listed = await alice.plugin["xep_0050"].get_commands("localhost")
    nodes = [node for (_jid, node, _name) in listed["disco_items"]["items"]]
    assert nodes == [NODE], nodes

    def week(field):
        assert field["type"] == "list-single", field
        offered = [option["value"] for option in field["options"]]
        assert offered[:4] == ["server", "1d", "7d", "30d"], offered
        assert field["value"] == "server", field["value"]
        return "7d"

    _form, command = await asyncio.wait_for(run_command(alice, week), 10)
    assert command["status"] == "completed", command
    notes = command["notes"]
    assert notes and "1 week" in notes[0][1], notes

    def back_to_the_servers(field):
        assert field["value"] == "7d", field["value"]
        return "server"

    _form, command = await asyncio.wait_for(run_command(alice, back_to_the_servers), 10)
    assert command["status"] == "completed", command

    _form, command = await asyncio.wait_for(run_command(alice, lambda _field: None), 10)
    assert command["status"] == "canceled", command

    alice.disconnect()
    print("adhoc retention: ok")


if __name__ == "__main__":
    run_scenario(main)
