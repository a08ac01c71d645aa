#!/usr/bin/env python3
"""Interop check: two slixmpp clients subscribe to each other's presence through a running
stanzad (RFC 6121 §3) using slixmpp's roster API, then see each other's presence come and go.

alice asks bob, bob approves and asks back, alice approves; both rosters must end at
subscription 'both'; each must see the other available; bob disconnects and alice must see
him go unavailable.

usage: slixmpp_subscribe.py HOST PORT CERT_PATH [--direct-tls]
Accounts alice@localhost / bob@localhost must exist with passwords 'alice-pw' / 'bob-pw';
a subscription left between them by an earlier run is cancelled first.
Exits 0 on success, 1 otherwise; bounded by a 30 s timeout.
"""
import asyncio


from common import TlsClient, run_scenario

ALICE = "alice@localhost"
BOB = "bob@localhost"


class Client(TlsClient):
    def __init__(self, jid, password, cert, direct_tls, peer):
        super().__init__(jid, password, cert, direct_tls)
        self.peer = peer
        # Decide on requests ourselves: no automatic approval, no automatic request back.
        self.roster.auto_authorize = None
        self.roster.auto_subscribe = False
        loop = asyncio.get_event_loop()
        self.ready = loop.create_future()
        self.requests = asyncio.Queue()
        self.changed = asyncio.Event()
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("presence_subscribe", self.on_subscribe)
        self.add_event_handler("changed_status", self.on_changed_status)
        self.add_event_handler("roster_update", lambda _: self.changed.set())
        self.add_event_handler(
            "failed_auth",
            lambda _: self.ready.done() or self.ready.set_exception(RuntimeError(f"{jid}: auth failed")),
        )

    async def on_start(self, _event):
        await self.get_roster()
        self.send_presence()
        if not self.ready.done():
            self.ready.set_result(True)

    def on_subscribe(self, presence):
        self.requests.put_nowait(presence["from"].bare)

    def on_changed_status(self, _presence):
        self.changed.set()

    def subscription(self):
        """Our roster's subscription state for the peer."""
        return self.client_roster[self.peer]["subscription"]

    def peer_resources(self):
        """The peer's resources we currently see as available."""
        return set(self.client_roster[self.peer].resources)

    async def until(self, what, predicate, seconds=10):
        """Waits for roster or presence changes until predicate() holds."""
        async def wait():
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

        try:
            await asyncio.wait_for(wait(), seconds)
        except asyncio.TimeoutError:
            raise RuntimeError(f"{self.boundjid}: timed out waiting for {what}") from None


async def reset(*clients):
    """Cancels whatever an earlier run left (unsubscribe + unsubscribed, RFC 6121 §3.2, §3.3)."""
    for client in clients:
        if client.subscription() != "none" or client.client_roster[client.peer]["pending_out"]:
            client.send_presence_subscription(pto=client.peer, ptype="unsubscribe")
            client.send_presence_subscription(pto=client.peer, ptype="unsubscribed")
    for client in clients:
        await client.until(
            "the old subscription to end",
            lambda c=client: c.subscription() == "none" and not c.client_roster[c.peer]["pending_out"],
        )


async def main(host, port, cert, direct_tls):
    alice = Client(f"{ALICE}/laptop", "alice-pw", cert, direct_tls, BOB)
    bob = Client(f"{BOB}/phone", "bob-pw", cert, direct_tls, ALICE)
    for client in (alice, bob):
        client.connect(host=host, port=port)
    await asyncio.wait_for(asyncio.gather(alice.ready, bob.ready), 15)
    print("both logged in")
    await reset(alice, bob)

    # alice asks; bob sees the request, approves it and asks back; alice approves.
    alice.send_presence_subscription(pto=BOB, ptype="subscribe")
    requester = await asyncio.wait_for(bob.requests.get(), 10)
    assert requester == ALICE, requester
    bob.send_presence_subscription(pto=ALICE, ptype="subscribed")
    bob.send_presence_subscription(pto=ALICE, ptype="subscribe")
    requester = await asyncio.wait_for(alice.requests.get(), 10)
    assert requester == BOB, requester
    alice.send_presence_subscription(pto=BOB, ptype="subscribed")
    print("requests approved both ways")

    await alice.until("alice's roster to say 'both'", lambda: alice.subscription() == "both")
    await bob.until("bob's roster to say 'both'", lambda: bob.subscription() == "both")
    print("both rosters: subscription='both'")

    await alice.until("bob/phone available", lambda: "phone" in alice.peer_resources())
    await bob.until("alice/laptop available", lambda: "laptop" in bob.peer_resources())
    print("each sees the other available")

    bob.disconnect()
    await alice.until("bob/phone unavailable", lambda: "phone" not in alice.peer_resources())
    print("alice saw bob go unavailable")
    alice.disconnect()
    await asyncio.sleep(0.5)


if __name__ == "__main__":
    run_scenario(main)
