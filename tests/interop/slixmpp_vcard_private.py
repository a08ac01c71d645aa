#!/usr/bin/env python3
"""Interop check of vcard-temp (XEP-0054), avatar hashes in presence (XEP-0153) and private
XML storage (XEP-0049) with slixmpp's own plugins, through a running stanzad.

alice publishes a vCard with a photo (xep_0054); bob reads it from her bare JID; alice's
client does not speak XEP-0153, so the server adds the photo's SHA-1 to the presence she
sends bob; alice stores bookmarks in private storage (xep_0048 over xep_0049), logs off,
and a second login of hers reads them back.

usage: slixmpp_vcard_private.py HOST PORT CERT_PATH [--direct-tls]
Accounts alice@localhost / bob@localhost must exist with passwords 'alice-pw' / 'bob-pw'.
Exits 0 on success, 1 otherwise; bounded by a 30 s timeout.
"""
import asyncio
import hashlib

from common import TlsClient, run_scenario

PHOTO = bytes(range(64))
ROOM = "council@conference.localhost"


class Client(TlsClient):
    def __init__(self, jid, password, cert, direct_tls):
        super().__init__(jid, password, cert, direct_tls)
        for plugin in ("xep_0030", "xep_0054", "xep_0049", "xep_0048"):
            self.register_plugin(plugin)
        loop = asyncio.get_event_loop()
        self.ready = loop.create_future()
        self.presences = asyncio.Queue()
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("presence_available", self.presences.put_nowait)
        self.add_event_handler(
            "failed_auth",
            lambda _: self.ready.done() or self.ready.set_exception(RuntimeError(f"{jid}: auth failed")),
        )

    async def on_start(self, _event):
        if not self.ready.done():
            self.ready.set_result(True)


async def login(jid, password, host, port, cert, direct_tls):
    client = Client(jid, password, cert, direct_tls)
    client.connect(host=host, port=port)
    await asyncio.wait_for(client.ready, 15)
    return client


async def main(host, port, cert, direct_tls):
    alice = await login("alice@localhost/laptop", "alice-pw", host, port, cert, direct_tls)
    bob = await login("bob@localhost/phone", "bob-pw", host, port, cert, direct_tls)

    vcard = alice.plugin["xep_0054"].make_vcard()
    vcard["FN"] = "Alice Liddell"
    vcard["NICKNAME"] = "alice"
    vcard["PHOTO"]["TYPE"] = "image/png"
    vcard["PHOTO"]["BINVAL"] = PHOTO
    await alice.plugin["xep_0054"].publish_vcard(vcard)
    got = await bob.plugin["xep_0054"].get_vcard("alice@localhost")
    assert got["vcard_temp"]["FN"] == "Alice Liddell", got
    assert got["vcard_temp"]["PHOTO"]["BINVAL"] == PHOTO, got
    print("vCard published and read by another account: ok")

    alice.send_presence(pto="bob@localhost/phone")
    while True:
        presence = await asyncio.wait_for(bob.presences.get(), 10)
        if presence["from"] == "alice@localhost/laptop":
            break
    photo = presence.xml.find("{vcard-temp:x:update}x/{vcard-temp:x:update}photo")
    assert photo is not None and photo.text == hashlib.sha1(PHOTO).hexdigest(), presence
    print("avatar hash added to presence: ok")

    bookmarks = alice.plugin["xep_0048"].stanza.Bookmarks()
    bookmarks.add_conference(ROOM, "al", autojoin=True)
    await alice.plugin["xep_0048"].set_bookmarks(bookmarks, method="xep_0049")
    alice.disconnect()
    await asyncio.sleep(0.5)
    again = await login("alice@localhost/phone", "alice-pw", host, port, cert, direct_tls)
    stored = await again.plugin["xep_0048"].get_bookmarks(method="xep_0049")
    conferences = stored["private"]["bookmarks"]["conferences"]
    assert [c["jid"] for c in conferences] == [ROOM], stored
    print("bookmarks in private storage, read at the next login: ok")
    for client in (again, bob):
        client.disconnect()
    await asyncio.sleep(0.5)


if __name__ == "__main__":
    run_scenario(main)
