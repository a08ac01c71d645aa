#!/usr/bin/env python3
"""Interop check: two slixmpp clients log in to a running stanzad over STARTTLS
(trusting its dev certificate), exchange chat messages both ways, and log out.

usage: slixmpp_chat.py HOST PORT CERT_PATH [--direct-tls]
Accounts alice@localhost / bob@localhost must exist with passwords 'alice-pw' / 'bob-pw'.
Exits 0 when both messages arrived, 1 otherwise; bounded by a 30 s timeout.
"""
import asyncio


from common import TlsClient, run_scenario


class Client(TlsClient):
    def __init__(self, jid, password, cert, direct_tls):
        super().__init__(jid, password, cert, direct_tls)
        self.received = asyncio.get_event_loop().create_future()
        self.ready = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("failed_auth", lambda _: self.ready.done() or self.ready.set_exception(RuntimeError(f"{jid}: auth failed")))

    async def on_start(self, _event):
        self.send_presence()
        if not self.ready.done():
            self.ready.set_result(True)

    def on_message(self, msg):
        if msg["type"] in ("chat", "normal") and not self.received.done():
            self.received.set_result((str(msg["from"]), msg["body"]))


async def main(host, port, cert, direct_tls):
    alice = Client("alice@localhost/laptop", "alice-pw", cert, direct_tls)
    bob = Client("bob@localhost/phone", "bob-pw", cert, direct_tls)
    for client in (alice, bob):
        client.connect(host=host, port=port)
    await asyncio.wait_for(asyncio.gather(alice.ready, bob.ready), 15)
    print("both logged in; mechanism:", alice.plugin["feature_mechanisms"].mech.name)

    alice.send_message(mto="bob@localhost", mbody="hello bob", mtype="chat")
    sender, body = await asyncio.wait_for(bob.received, 10)
    assert sender == "alice@localhost/laptop", sender
    assert body == "hello bob", body
    bob.send_message(mto=sender, mbody="hi alice", mtype="chat")
    sender, body = await asyncio.wait_for(alice.received, 10)
    assert sender == "bob@localhost/phone", sender
    assert body == "hi alice", body
    print("chat both ways: ok")
    for client in (alice, bob):
        client.disconnect()
    await asyncio.sleep(0.5)


if __name__ == "__main__":
    run_scenario(main)
