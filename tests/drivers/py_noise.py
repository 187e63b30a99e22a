"""Interop driver: one end of a Dilation L2/L3 connection, run by Python magic-wormhole 0.24.0's own
connection code (its framer, prologues, Noise set-up and record codec) over an in-memory transport.

Usage: py_noise.py (leader|follower) SHARED_KEY_HEX

The Noise PSK is derived from SHARED_KEY_HEX the way the Python Dilator does (HKDF, "dilation-v1").
Commands, one per line on stdin:
  in <hex>     bytes arriving from the peer (any split of prefix and frames)
  send <hex>   an encoded L3 record for Python to encrypt, frame and send
  quit         exit 0
After each command it prints, one per line, flushed:
  out <hex>    bytes Python wrote to the connection (its prefix, frames)
  rec <hex>    a record Python decrypted, re-encoded with Python's encode_record
  hs           the Noise handshake completed on Python's side
  ok           end of the answer to this command
On any exception it prints "err <ExceptionName> <message>" and exits 1.
Python itself (as the Follower) sends KCM right after the handshake, like its connection protocol.
"""

import sys

from twisted.internet.testing import StringTransport

from wormhole._key import derive_key
from wormhole._dilation import connection as conn
from wormhole._dilation.connector import build_noise, PROLOGUE_LEADER, PROLOGUE_FOLLOWER
from wormhole._dilation.roles import LEADER, FOLLOWER


def say(*parts):
    sys.stdout.write(" ".join(parts) + "\n")
    sys.stdout.flush()


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("leader", "follower"):
        say("err", "Usage", "py_noise.py (leader|follower) SHARED_KEY_HEX")
        return 2
    leader = sys.argv[1] == "leader"
    key = bytes.fromhex(sys.argv[2])

    noise = build_noise()
    noise.set_psks(derive_key(key, b"dilation-v1", 32))
    if leader:
        noise.set_as_initiator()
        outbound, inbound = PROLOGUE_LEADER, PROLOGUE_FOLLOWER
    else:
        noise.set_as_responder()
        outbound, inbound = PROLOGUE_FOLLOWER, PROLOGUE_LEADER

    transport = StringTransport()
    framer = conn._Framer(transport, outbound, inbound)
    record = conn._Record(framer, noise, LEADER if leader else FOLLOWER)
    if leader:
        record.set_role_leader()
    else:
        record.set_role_follower()

    def flush():
        data = transport.value()
        transport.clear()
        if data:
            say("out", data.hex())

    record.connectionMade()
    flush()
    say("ok")

    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        try:
            if cmd == "quit":
                return 0
            elif cmd == "in":
                for token in record.add_and_unframe(bytes.fromhex(arg)):
                    if isinstance(token, conn.Handshake):
                        say("hs")
                        if not leader:
                            record.send_record(conn.KCM())
                    else:
                        say("rec", conn.encode_record(token).hex())
            elif cmd == "send":
                record.send_record(conn.parse_record(bytes.fromhex(arg)))
            else:
                raise ValueError(f"unknown command {cmd!r}")
        except Exception as e:  # report every failure to the Rust side
            say("err", type(e).__name__, str(e).replace("\n", " "))
            return 1
        flush()
        say("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
