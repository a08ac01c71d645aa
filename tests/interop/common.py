"""What the interop scenarios share: the command line and the overall time limit."""
import asyncio
import sys


def run_scenario(main, timeout=30):
    """usage: SCRIPT HOST PORT CERT_PATH [--direct-tls]; exits 1 on any failure."""
    host, port, cert = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    direct = "--direct-tls" in sys.argv
    try:
        asyncio.run(asyncio.wait_for(main(host, port, cert, direct), timeout))
    except Exception as e:  # any failure is a red run
        print(f"FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
