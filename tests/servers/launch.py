"""What every launcher in this folder shares: the command line, the readiness line, and the guard
that ends the server when the test that started it is gone.

A launcher is run as `python3 tests/servers/NAME.py ADDRESS PORT [identity options]`. It binds only
ADDRESS (a 127.x loopback address), prints `READY ADDRESS PORT` on standard output once its socket
is bound, and exits when its standard input closes, when its parent dies, or after `--lifetime`
seconds, whichever comes first, so that no server outlives the test that started it.
"""

import argparse
import ctypes
import ipaddress
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1


def arguments(description):
    """The launcher's parser with the arguments every launcher takes; add identity options to it."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("address", help="the 127.x loopback address to bind")
    parser.add_argument("port", type=int)
    parser.add_argument("--lifetime", type=float, default=120.0, help="seconds before the server exits by itself")
    return parser


def parse(parser):
    """Parses the command line, refuses any address outside 127.0.0.0/8, and arms the guard."""
    args = parser.parse_args()
    if not ipaddress.ip_address(args.address) in ipaddress.ip_network("127.0.0.0/8"):
        parser.error(f"address {args.address}: only loopback (127.0.0.0/8) addresses are served")
    guard(args.lifetime)
    return args


def guard(lifetime):
    """Ends the process when its parent dies, when standard input closes, or after `lifetime` seconds."""
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the death signal was armed
        os._exit(3)

    def on_end_of_input():
        while os.read(0, 4096):  # unbuffered: a buffered reader would block interpreter shutdown
            pass
        os._exit(0)

    def on_lifetime():
        time.sleep(lifetime)
        print(f"lifetime of {lifetime}s reached", file=sys.stderr, flush=True)
        os._exit(4)

    threading.Thread(target=on_end_of_input, daemon=True).start()
    threading.Thread(target=on_lifetime, daemon=True).start()


def ready(address, port):
    """Tells the test that the server accepts requests on (address, port)."""
    print(f"READY {address} {port}", flush=True)


def _proc_net_address(address, port):
    """The local address as /proc/net/{tcp,udp} write it: little-endian hex IPv4, hex port."""
    packed = ipaddress.IPv4Address(address).packed
    return f"{int.from_bytes(packed, 'little'):08X}:{port:04X}"


def wait_bound(address, port, transport, timeout=30.0):
    """Waits until a socket of this process's kernel is bound to (address, port) without sending it
    anything: a TCP socket in LISTEN state or a bound UDP socket, read from /proc/net."""
    wanted = _proc_net_address(address, port)
    states = {"tcp": {"0A"}, "udp": {"07"}}[transport]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/net/{transport}") as table:
            for line in table.readlines()[1:]:
                fields = line.split()
                if fields[1] == wanted and fields[3] in states:
                    return
        time.sleep(0.05)
    sys.exit(f"{transport} {address}:{port} was not bound within {timeout}s")


def wait_forever():
    """Blocks the main thread; the guard ends the process."""
    threading.Event().wait()


MISSING = 77  # exit status that tells the test a package is not installed (as automake's "skip")


def require(module, package):
    """Imports `module`, or exits with status MISSING naming the pip package that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        print(f"MISSING {package}: {error}", file=sys.stderr, flush=True)
        sys.exit(MISSING)
