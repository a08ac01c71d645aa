#!/usr/bin/env python3
"""Interop check of mobile-grade delivery with slixmpp's own plugins:
XEP-0198 (stream management with resumption) and XEP-0313 (message archive).

Alice enables resumable stream management; her connection is killed without a word
(transport.abort, as when a phone loses its network); Bob sends three messages; Alice
reconnects, slixmpp resumes the stream, and every message arrives exactly once. Then
Alice pages through her archive two at a time (RSM) and finds all of them, with the
XEP-0359 stanza-ids she was given on delivery.

usage: slixmpp_sm_mam.py HOST PORT CERT_PATH [--direct-tls]
Accounts alice@localhost / bob@localhost with passwords 'alice-pw' / 'bob-pw'.
"""
import asyncio

import slixmpp

from common import TlsClient, run_scenario


class Client(TlsClient):
    def __init__(self, jid, password, cert, direct_tls):
        super().__init__(jid, password, cert, direct_tls)
        for plugin in ("xep_0030", "xep_0059", "xep_0198", "xep_0313", "xep_0359"):
            self.register_plugin(plugin)
        loop = asyncio.get_event_loop()
        self.ready = loop.create_future()
        self.sm_enabled = loop.create_future()
        self.resumed = loop.create_future()
        self.messages = []
        self.stanza_ids = {}
        self.arrived = asyncio.Event()
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("sm_enabled", lambda _: self.sm_enabled.done() or self.sm_enabled.set_result(True))
        self.add_event_handler("session_resumed", lambda _: self.resumed.done() or self.resumed.set_result(True))
        self.add_event_handler("message", self.on_message)

    async def on_start(self, _event):
        self.send_presence()
        if not self.ready.done():
            self.ready.set_result(True)

    def on_message(self, msg):
        if msg["type"] == "chat" and msg["body"]:
            self.messages.append(msg["body"])
            stanza_id = msg.xml.find("{urn:xmpp:sid:0}stanza-id")
            if stanza_id is not None and stanza_id.get("by") == "alice@localhost":
                self.stanza_ids[msg["body"]] = stanza_id.get("id")
            self.arrived.set()


async def wait_for_messages(client, n, timeout):
    async def enough():
        while len(client.messages) < n:
            client.arrived.clear()
            await client.arrived.wait()

    await asyncio.wait_for(enough(), timeout)


async def main(host, port, cert, direct_tls):
    alice = Client("alice@localhost/phone", "alice-pw", cert, direct_tls)
    bob = Client("bob@localhost/laptop", "bob-pw", cert, direct_tls)
    for client in (alice, bob):
        client.connect(host=host, port=port)
    await asyncio.wait_for(asyncio.gather(alice.ready, bob.ready, alice.sm_enabled), 15)
    sm = alice.plugin["xep_0198"]
    assert sm.sm_id, "the server offered no resumption id"
    print("stream management enabled with resumption")

    bob.send_message(mto="alice@localhost", mbody="m0", mtype="chat")
    await wait_for_messages(alice, 1, 10)

    # The network goes: no </stream:stream>, no TCP goodbye the server could act on first.
    alice.transport.abort()
    await asyncio.sleep(0.5)
    for body in ("m1", "m2", "m3"):
        bob.send_message(mto="alice@localhost", mbody=body, mtype="chat")
    await asyncio.sleep(0.5)

    alice.connect(host=host, port=port)
    await asyncio.wait_for(alice.resumed, 15)
    await wait_for_messages(alice, 4, 10)
    await asyncio.sleep(1)  # anything duplicated would have arrived by now
    assert alice.messages == ["m0", "m1", "m2", "m3"], alice.messages
    print("resumed: every message once:", alice.messages)

    archived = []
    async for message in alice.plugin["xep_0313"].iterate(with_jid=slixmpp.JID("bob@localhost"), rsm={"max": 2}):
        archived.append((message["mam_result"]["id"], message["mam_result"]["forwarded"]["stanza"]["body"]))
    # Earlier scenarios chatted with the same accounts: ours are the last four.
    ours = archived[-4:]
    bodies = [body for _, body in ours]
    assert bodies == ["m0", "m1", "m2", "m3"], archived
    for archive_id, body in ours:
        assert alice.stanza_ids.get(body) == archive_id, (body, archive_id, alice.stanza_ids)
    print("archive paged two at a time; stanza-ids match:", bodies)

    # Backwards, one at a time (XEP-0059 `<before/>`), with slixmpp's own iterator: every
    # message, newest first (it stops early if a page claims to reach the end of the set).
    newest_first = []
    async for message in alice.plugin["xep_0313"].iterate(
        with_jid=slixmpp.JID("bob@localhost"), rsm={"max": 1}, reverse=True
    ):
        newest_first.append(message["mam_result"]["id"])
    assert newest_first == [archive_id for archive_id, _ in reversed(archived)], (newest_first, archived)
    print("archive paged backwards one at a time:", len(newest_first), "messages")

    for client in (alice, bob):
        client.disconnect()
    await asyncio.sleep(0.5)


if __name__ == "__main__":
    run_scenario(main, timeout=60)
