# Copyright 2026 the denio authors. MIT license.
# Echo server: a Python asyncio Protocol (the reference API denio ports).
# Usage: python3 bench/servers/py_asyncio.py [--uvloop]
import asyncio
import sys


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", 0)
    print("LISTENING", server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


if "--uvloop" in sys.argv:
    import uvloop

    uvloop.install()
asyncio.run(main())
