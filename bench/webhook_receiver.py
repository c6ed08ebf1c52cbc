"""A minimal HTTP/1.1 webhook receiver for the delivery benchmarks (loopback only).

It answers every POST with 200 after `--delay` seconds, keeps connections alive, and counts
requests by `webhook-id`. `GET /count` returns the count of requests and of distinct ids, and
`GET /duplicates` the ids seen more than once, one per line.
"""

import argparse
import asyncio
from collections import Counter

received: Counter[bytes] = Counter()


class Receiver(asyncio.Protocol):
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].decode("latin-1")
            lines = head.split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < head_end + 4 + length:
                return
            self.buffer = self.buffer[head_end + 4 + length :]
            self.handle(lines[0], headers)

    def handle(self, request_line: str, headers: dict[str, str]) -> None:
        method, path, _ = request_line.split(" ", 2)
        if method == "GET" and path == "/count":
            body = f"{sum(received.values())} {len(received)}".encode()
            self.respond(body)
            return
        if method == "GET" and path == "/duplicates":
            body = b"\n".join(key for key, count in received.items() if count > 1)
            self.respond(body)
            return
        received[headers.get("webhook-id", "").encode()] += 1
        if self.delay:
            asyncio.get_running_loop().call_later(self.delay, self.respond, b"ok")
        else:
            self.respond(b"ok")

    def respond(self, body: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n%s"
            % (len(body), body)
        )


async def serve(port: int, delay: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Receiver(delay), "127.0.0.1", port, backlog=1024)
    print(f"listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.delay))


if __name__ == "__main__":
    main()
