"""A TCP forwarder for fault tests: accepts on 127.0.0.1:LISTEN_PORT and copies bytes both ways
to 127.0.0.1:TARGET_PORT, one upstream connection per accepted one. It is its own process so a
test can freeze the path with SIGSTOP (the kernel still holds the sockets, nothing moves) and
thaw it with SIGCONT.

Usage: tcp_forwarder.py LISTEN_PORT TARGET_PORT   (prints "forwarding PORT" once listening)
"""

import asyncio
import sys


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except OSError:
            pass


async def main(listen_port, target_port):
    async def handle(r, w):
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            w.close()
            return
        await asyncio.gather(pipe(r, uw), pipe(ur, w))

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    print("forwarding %d" % server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
