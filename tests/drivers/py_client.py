"""Interop driver: one side of a wormhole exchange using the Python library's Deferred API.

Usage: py_client.py --url URL --appid APPID (--allocate | --code CODE) [--messages N]
                    [--versions JSON]

Prints one JSON object per line on stdout, flushed as soon as known:
  {"code": ...}, {"verifier": hex}, {"versions": {...}}, {"received": [...]},
  {"closed": "happy"}  or  {"error": "<ExceptionClassName>", "message": ...}
It sends N messages "py0".."py{N-1}" right after the verifier and then reads N messages.
"""

import argparse
import json
import sys

from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import react

import wormhole
from wormhole.errors import WormholeError


def emit(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


@inlineCallbacks
def run(reactor, args):
    w = wormhole.create(args.appid, args.url, reactor, versions=json.loads(args.versions))
    if args.allocate:
        w.allocate_code(2)
    else:
        w.set_code(args.code)
    try:
        code = yield w.get_code()
        emit(code=code)
        verifier = yield w.get_verifier()
        emit(verifier=verifier.hex())
        versions = yield w.get_versions()
        emit(versions=versions)
        for i in range(args.messages):
            w.send_message(("py%d" % i).encode())
        got = []
        for _ in range(args.messages):
            m = yield w.get_message()
            got.append(m.decode("utf-8", "replace"))
        emit(received=got)
        mood = yield w.close()
        emit(closed=mood)
    except WormholeError as e:
        emit(error=type(e).__name__, message=str(e))
        try:
            yield w.close()
        except Exception as e2:  # the close result repeats the error
            emit(close_error=type(e2).__name__)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--appid", required=True)
    p.add_argument("--allocate", action="store_true")
    p.add_argument("--code")
    p.add_argument("--messages", type=int, default=3)
    p.add_argument("--versions", default="{}")
    args = p.parse_args()
    react(run, (args,))


if __name__ == "__main__":
    main()
