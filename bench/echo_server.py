"""The baseline for the gateway figure: a bare ``websockets`` echo server.

Run in its own process (``python -m bench.echo_server``), as the gateway is,
so both serve from one process while the clients load from another.
"""

from __future__ import annotations

import asyncio
import sys

from websockets.asyncio.server import ServerConnection, serve


async def echo(socket: ServerConnection) -> None:
    async for message in socket:
        await socket.send(message)


async def main() -> None:
    async with serve(echo, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"ws://127.0.0.1:{port}/", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main())
