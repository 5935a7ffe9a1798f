#!/usr/bin/env python3
# Copyright 2026 the denio authors. MIT license.
"""Calls examples/stdio_jsonrpc_server.ts from CPython asyncio.

The server runs as a subprocess (asyncio.create_subprocess_exec with the deno
command) and is spoken to in the LSP framing: "Content-Length: N\\r\\n\\r\\n"
then N bytes of JSON. One request is written in two pieces with a pause in
between, two requests in one write, to check the server's framing.

    python3 examples/stdio_jsonrpc_client.py        # uses "deno" from PATH
    DENO=/path/to/deno python3 examples/stdio_jsonrpc_client.py
"""

import asyncio
import json
import os
import sys

SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "stdio_jsonrpc_server.ts")


def frame(message):
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


async def receive(stdout):
    header = await stdout.readuntil(b"\r\n\r\n")
    length = None
    for line in header.decode("ascii").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return json.loads(await stdout.readexactly(length))


async def main():
    deno = os.environ.get("DENO", "deno")
    proc = await asyncio.create_subprocess_exec(
        deno, "run", "--quiet", SERVER,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)

    async def call(message):
        proc.stdin.write(frame(message))
        await proc.stdin.drain()
        return await receive(proc.stdout)

    reply = await call({"jsonrpc": "2.0", "id": 1, "method": "add",
                        "params": [2, 3]})
    print("add(2, 3) =", reply["result"])

    # One request in two writes, the header cut in the middle.
    data = frame({"jsonrpc": "2.0", "id": 2, "method": "echo",
                  "params": {"text": "héllo"}})
    proc.stdin.write(data[:10])
    await proc.stdin.drain()
    await asyncio.sleep(0.05)
    proc.stdin.write(data[10:])
    await proc.stdin.drain()
    reply = await receive(proc.stdout)
    print("echo({text: héllo}) =", json.dumps(reply["result"],
                                              ensure_ascii=False))

    # A notification and two requests in one write.
    proc.stdin.write(
        frame({"jsonrpc": "2.0", "method": "echo", "params": ["ignored"]})
        + frame({"jsonrpc": "2.0", "id": 3, "method": "nope"})
        + frame({"jsonrpc": "2.0", "id": 4, "method": "add",
                 "params": {"a": "x"}}))
    await proc.stdin.drain()
    for _ in range(2):
        reply = await receive(proc.stdout)
        error = reply["error"]
        print(f"id {reply['id']}: error {error['code']} {error['message']}")

    proc.stdin.write(b"Content-Length: 7\r\n\r\n{oops!}")
    await proc.stdin.drain()
    reply = await receive(proc.stdout)
    print("parse error:", reply["error"]["code"], reply["id"])

    reply = await call({"jsonrpc": "2.0", "id": 5, "method": "shutdown"})
    print("shutdown() =", json.dumps(reply["result"]))
    proc.stdin.write(frame({"jsonrpc": "2.0", "method": "exit"}))
    await proc.stdin.drain()
    rest = await proc.stdout.read()
    code = await proc.wait()
    print(f"server exited with code {code}, {len(rest)} bytes after exit")
    return 0 if code == 0 and rest == b"" else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
