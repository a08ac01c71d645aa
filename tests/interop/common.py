"""What the interop scenarios share: the command line, the overall time limit, and a
slixmpp client that trusts the server's dev certificate and never sends plaintext."""
import asyncio
import ssl
import sys

import slixmpp


class TlsClient(slixmpp.ClientXMPP):
    """A slixmpp client over STARTTLS (or direct TLS) trusting only `cert`."""

    def __init__(self, jid, password, cert, direct_tls):
        super().__init__(jid, password)
        self.ssl_context = ssl.create_default_context(cafile=cert)
        self.enable_direct_tls = direct_tls
        self.enable_starttls = not direct_tls
        self.enable_plaintext = False


def run_scenario(main, timeout=30):
    """usage: SCRIPT HOST PORT CERT_PATH [--direct-tls]; exits 1 on any failure."""
    host, port, cert = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    direct = "--direct-tls" in sys.argv
    try:
        asyncio.run(asyncio.wait_for(main(host, port, cert, direct), timeout))
    except Exception as e:  # any failure is a red run
        print(f"FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
