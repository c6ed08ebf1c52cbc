"""Kill -9 soak: worker processes drain webhooks while one of them is killed every few seconds.

Used by the suite (small) and by bench/delivery_crash_soak.py (10,000 webhooks). The
receiver counts deliveries per `webhook-id` and checks that each body's `message_id` is the
id in the header, so a repeated delivery is recognisable as a duplicate.
"""

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class CountingReceiver:
    """A keep-alive HTTP/1.1 webhook receiver on 127.0.0.1, answering after `delay` seconds."""

    def __init__(self, delay: float = 0.0) -> None:
        self.lock = threading.Lock()
        self.received: Counter[str] = Counter()
        self.mismatched: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.note(self.headers.get("webhook-id", ""), body)
                if delay:
                    time.sleep(delay)
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a worker killed mid-request resets its connection: expected here

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def note(self, webhook_id: str, body: bytes) -> None:
        message_id = json.loads(body)["data"]["message_id"]
        with self.lock:
            self.received[webhook_id] += 1
            if message_id != webhook_id:
                self.mismatched.append(webhook_id)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class SoakResult:
    seconds: float
    kills: int
    received: Counter[str]
    mismatched: list[str]
    exit_codes: list[int | None] = field(default_factory=list)

    @property
    def deliveries(self) -> int:
        return sum(self.received.values())

    @property
    def duplicates(self) -> int:
        return sum(count - 1 for count in self.received.values())


def start_worker(env: dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, "manage.py", "run_worker", "--only", "notify", "--interval", "0.2"]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def soak(
    *,
    env: dict[str, str],
    receiver: CountingReceiver,
    pending: Callable[[], int],
    workers: int = 4,
    kill_every: float = 2.0,
    timeout: float = 300.0,
    seed: int = 7,
) -> SoakResult:
    """Run `workers` worker processes until `pending()` is 0, SIGKILLing one every
    `kill_every` seconds (and starting it again)."""
    chance = random.Random(seed)
    started = time.monotonic()
    processes = [start_worker(env) for _ in range(workers)]
    kills = 0
    try:
        next_kill = started + kill_every
        while pending() and time.monotonic() - started < timeout:
            time.sleep(0.1)
            if time.monotonic() >= next_kill:
                victim = chance.randrange(workers)
                processes[victim].send_signal(signal.SIGKILL)
                processes[victim].wait()
                processes[victim] = start_worker(env)
                kills += 1
                next_kill += kill_every
        seconds = time.monotonic() - started
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        codes = [wait(process) for process in processes]
    with receiver.lock:
        received = Counter(receiver.received)
        mismatched = list(receiver.mismatched)
    return SoakResult(seconds, kills, received, mismatched, codes)


def wait(process: subprocess.Popen) -> int | None:
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def worker_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}
    env["NOTIFY_WEBHOOK_ALLOWED_NETWORKS"] = "127.0.0.0/8"
    return env | extra
