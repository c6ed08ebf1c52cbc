"""Requests per second of a minimal authenticated DRF endpoint, enforcement on versus off.

Two gunicorn servers (2 sync workers each, the project's gunicorn.conf.py without the access
log), both on PostgreSQL and Redis, serve `GET /bench/ping` (bench/urls.py: a DRF APIView
returning `{"ok": true}`):

- ON  (bench/settings_on.py): the real project settings. The read-only shield, rate limiting
  and API-key authentication (a key made with `manage.py create_api_client`; the view requires
  an authenticated caller).
- OFF (bench/settings_bare.py): the same settings without those three; the view is open.

The rules (`--scenario`):
- `ip` (the default): rule set (a), one `ip *` rule of 100 per minute. Every request comes
  through a trusted proxy (both servers run with TRUSTED_PROXIES=127.0.0.1/32) and carries an
  `X-Forwarded-For` that wrk varies per request over 10,000 addresses (198.18.0.0/18, a wrk
  Lua script), so the limiter counts 10,000 clients, one key each, as on the internet. No
  client reaches its limit in a run (a few requests each), so every response is a 200.
- `global`: one `global *` rule of 1,000,000,000 per minute, one counter for every request.

`wrk` (a separate process, loopback only) loads one server at a time, alternately
(ON OFF, OFF ON, ON OFF, ... so a drift of the machine hits both sides alike); the script
prints every run, the median of each side and ON/OFF of the medians (target >= 0.85), and the
median of the per-round ratios. Both sides get the same requests, X-API-Key and
X-Forwarded-For included.

Per run it also reads the CPU time the gunicorn workers (/proc) and the Redis server (INFO cpu)
used, per request: a figure that other load on the machine disturbs much less than req/s.

The script creates the PostgreSQL database if needed, migrates it, makes the rule and the key,
checks that ON really enforces (401 without the key, a `RateLimit` header with it, the client
found behind the proxy) and that OFF does not, and removes its Redis keys (prefix `vobench:`)
at the end.

    .venv/bin/python bench/http_overhead.py                    # 6 rounds of 5 s per side
    .venv/bin/python bench/http_overhead.py --rounds 4 --duration 15 --connections 16
    .venv/bin/python bench/http_overhead.py --scenario global  # one global * rule
    .venv/bin/python bench/http_overhead.py --breakdown --rounds 4   # + each feature removed

`--breakdown` adds four servers to attribute the cost: the project with one of the three
removed (bench/settings_bare.py with BENCH_REMOVE=shield|ratelimit|auth), and OFF plus one bare
Redis INCR per request (bench/incr_middleware.py), the floor of any counter kept in Redis.

Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/valhalla_ops_bench),
REDIS_URL (default redis://127.0.0.1:6379/3). Both must be loopback addresses.
"""

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common

WRK = "/usr/bin/wrk"
PING = "/bench/ping"
TARGET = 0.85
RULE_MAX = 1_000_000_000  # per 60 s, `global` scenario: matched by every request, never exceeded
IP_RULE_MAX = 100  # per 60 s, `ip` scenario: rule set (a)
ADDRESSES = 10_000
PROXY = "127.0.0.1/32"
# wrk: each request comes from the next of 10,000 client addresses, through the proxy.
VARY_CLIENT_LUA = """
local threads = 0
function setup(thread)
  thread:set("offset", threads * 3571)
  threads = threads + 1
end
function request()
  n = (n or offset) + 1
  local i = n % ADDRESSES
  wrk.headers["X-Forwarded-For"] = "198.18." .. math.floor(i / 256) .. "." .. (i % 256)
  return wrk.format()
end
""".replace("ADDRESSES", str(ADDRESSES))
STARTUP_SECONDS = 30.0


@dataclass
class Server:
    name: str
    settings: str
    port: int
    remove: str = ""  # BENCH_REMOVE for bench/settings_bare.py
    app: str = "valhalla_ops.wsgi:application"
    incr: bool = False  # BENCH_INCR: one bare Redis INCR per request
    process: subprocess.Popen | None = None
    log_path: str = ""
    runs: list["WrkResult"] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class WrkResult:
    rps: float
    requests: int
    non_2xx: int
    socket_errors: str
    worker_cpu_us: float = 0.0  # gunicorn workers' CPU time per request
    redis_cpu_us: float = 0.0  # Redis server's CPU time per request


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6, help="OFF+ON pairs (default 6)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per server")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL", common.DEFAULT_DATABASE_URL)
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", common.DEFAULT_REDIS_URL)
    )
    parser.add_argument("--keep-keys", action="store_true", help="leave the vobench:* Redis keys")
    parser.add_argument(
        "--scenario",
        choices=["ip", "global"],
        default="ip",
        help="ip: rule set (a), ip * 100/min, 10,000 clients through a trusted proxy (default); "
        "global: one global * rule",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also run the project with each of the three removed (ON - shield, ...)",
    )
    args = parser.parse_args()
    if not 1 <= args.rounds <= 20 or not 1 <= args.duration <= 120:
        parser.error("--rounds must be 1..20 and --duration 1..120 seconds")
    return args


# --- set-up ----------------------------------------------------------------------------------


def prepare(scenario: str) -> str:
    """Migrate, leave the scenario's one rule, check the mode is normal; return a fresh API key."""
    from django.db import connections

    common.migrate_and_check_normal()
    if scenario == "ip":
        common.set_rules([("ip", "*")], max_requests=IP_RULE_MAX)
    else:
        common.set_rules([("global", "*")], max_requests=RULE_MAX)
    key = common.create_api_key("http_overhead")
    connections.close_all()
    return key


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(server: Server, env: dict[str, str], workers: int, scenario: str) -> None:
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (kept open for the server's lifetime)
        prefix="bench-gunicorn-", suffix=".log", delete=False
    )
    server.log_path = log.name
    server_env = {
        **env,
        "DJANGO_SETTINGS_MODULE": server.settings,
        "BIND": f"127.0.0.1:{server.port}",
        "WEB_CONCURRENCY": str(workers),
        "GUNICORN_THREADS": "1",
        "GUNICORN_MAX_REQUESTS": "0",
        "TRUSTED_PROXIES": PROXY if scenario == "ip" else "",
    }
    if server.remove:
        server_env["BENCH_REMOVE"] = server.remove
    if server.incr:
        server_env["BENCH_INCR"] = "1"
    command = [
        str(common.VENV_BIN / "gunicorn"),
        "--config",
        str(common.ROOT / "bench" / "gunicorn_conf.py"),
        "--worker-class",
        "sync",
        server.app,
    ]
    server.process = subprocess.Popen(
        command, cwd=common.ROOT, env=server_env, stdout=log, stderr=subprocess.STDOUT
    )


def wait_ready(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            break
        with contextlib.suppress(OSError):
            if fetch(server.url + "/healthz")[0] == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"{server.name} did not start; its log:\n{tail(server.log_path)}")


def stop(server: Server) -> None:
    process = server.process
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=25)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def tail(path: str, lines: int = 40) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- checks and load ------------------------------------------------------------------------


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def check_servers(on: Server, off: Server, key: str, scenario: str) -> None:
    """ON enforces (401 without a key, RateLimit with it); OFF answers anyone, no RateLimit."""
    with_key = {"X-API-Key": key}
    if scenario == "ip":
        with_key["X-Forwarded-For"] = "192.0.2.77"
    status, _, _ = fetch(on.url + PING)
    common.expect(status == 401, f"ON without a key: expected 401, got {status}")
    status, headers, body = fetch(on.url + PING, with_key)
    common.expect(status == 200 and json.loads(body) == {"ok": True}, f"ON with the key: {status}")
    common.expect("RateLimit" in headers, "ON: no RateLimit header, rate limiting is not running")
    if scenario == "ip":  # counted for the client behind the proxy, not for the proxy
        again = fetch(on.url + PING, with_key)[1]["RateLimit"]
        other = fetch(on.url + PING, {**with_key, "X-Forwarded-For": "192.0.2.78"})[1]
        common.expect(
            again.startswith(f"limit={IP_RULE_MAX}, remaining={IP_RULE_MAX - 2},")
            and other["RateLimit"].startswith(f"limit={IP_RULE_MAX}, remaining={IP_RULE_MAX - 1},"),
            f"ON: not counted per client behind the proxy: {again!r}, {other['RateLimit']!r}",
        )
    print(f"  ON : 401 without the key; 200 with it, RateLimit: {headers['RateLimit']}")
    status, headers, body = fetch(off.url + PING, with_key)
    common.expect(status == 200 and json.loads(body) == {"ok": True}, f"OFF: {status}")
    common.expect("RateLimit" not in headers, "OFF: a RateLimit header, rate limiting is running")
    print("  OFF: 200 without enforcement (no RateLimit header)")


def wrk(server: Server, key: str, args: argparse.Namespace, seconds: int) -> WrkResult:
    command = [
        WRK,
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-H",
        f"X-API-Key: {key}",
        *(["--script", args.lua] if args.lua else []),
        server.url + PING,
    ]
    workers = common.child_pids(server.process.pid) if server.process else []
    cpu_before = common.cpu_seconds(workers)
    redis_before = common.redis_cpu_seconds(args.redis_url)
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30)
    if done.returncode != 0:
        raise SystemExit(f"wrk failed: {done.stderr or done.stdout}")
    result = parse_wrk(done.stdout)
    if result.requests:
        cpu = common.cpu_seconds(workers) - cpu_before
        result.worker_cpu_us = cpu * 1e6 / result.requests
        redis_cpu = common.redis_cpu_seconds(args.redis_url) - redis_before
        result.redis_cpu_us = redis_cpu * 1e6 / result.requests
    return result


def parse_wrk(output: str) -> WrkResult:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:\s+(.*)", output)
    if rps is None or total is None:
        raise SystemExit(f"cannot read wrk's output:\n{output}")
    return WrkResult(
        rps=float(rps.group(1)),
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=errors.group(1).strip() if errors else "none",
    )


def measure(servers: list[Server], key: str, args: argparse.Namespace) -> None:
    """Every server once per round; the order rotates each round so drift hits all alike."""
    for server in servers:
        wrk(server, key, args, args.warmup)
    for number in range(1, args.rounds + 1):
        shift = (number - 1) % len(servers)
        order = servers[shift:] + servers[:shift]  # with two: ON OFF, OFF ON, ON OFF, ...
        for server in order:
            result = wrk(server, key, args, args.duration)
            server.runs.append(result)
            print(
                f"  round {number} {server.name:15}: {result.rps:7.1f} req/s  "
                f"CPU/request: workers {result.worker_cpu_us:5.0f} us, "
                f"redis {result.redis_cpu_us:4.1f} us  ({result.requests} requests, "
                f"non-2xx {result.non_2xx}, socket errors {result.socket_errors})"
            )
            if result.non_2xx:
                raise SystemExit(f"{server.name}: {result.non_2xx} responses were not 2xx")


def median_rps(server: Server) -> float:
    return statistics.median(r.rps for r in server.runs)


def median_cpu(server: Server) -> float:
    return statistics.median(r.worker_cpu_us + r.redis_cpu_us for r in server.runs)


def report(servers: list[Server]) -> None:
    on, off = servers[0], servers[1]
    print("\nmedians (CPU = gunicorn workers + Redis server, per request):")
    for server in servers:
        print(
            f"  {server.name:15} {median_rps(server):7.1f} req/s   CPU {median_cpu(server):5.0f} us"
            f"   / OFF: {common.ratio(median_rps(server), median_rps(off)):.3f}"
        )
    report_breakdown(servers)
    pairs = [b.rps / a.rps for a, b in zip(off.runs, on.runs, strict=True)]
    value = common.ratio(median_rps(on), median_rps(off))
    print(f"server CPU per request, ON - OFF: {median_cpu(on) - median_cpu(off):.0f} us")
    print(
        f"OFF/ON of the CPU per request: {common.ratio(median_cpu(off), median_cpu(on)):.3f} "
        "(the throughput ratio if the servers had the CPUs to themselves)"
    )
    print("ON/OFF per round: " + ", ".join(f"{p:.3f}" for p in pairs))
    print(f"ON/OFF (median of the rounds' ratios): {statistics.median(pairs):.3f}")
    print(f"ON/OFF (medians): {value:.3f}   target >= {TARGET}: {common.verdict(value, TARGET)}")


def report_breakdown(servers: list[Server]) -> None:
    """With --breakdown: what each feature costs, and what one bare INCR per request costs."""
    on, off = servers[0], servers[1]
    for server in servers[2:]:
        if server.incr:
            print(
                f"  one bare INCR per request: {median_cpu(server) - median_cpu(off):5.0f} us of "
                f"CPU per request ('OFF + INCR' - OFF); (OFF + INCR) / OFF = "
                f"{common.ratio(median_rps(server), median_rps(off)):.3f}"
            )
            continue
        removed = server.name.removeprefix("ON - ")
        print(
            f"  cost of {removed:10}: {median_cpu(on) - median_cpu(server):5.0f} us of CPU per "
            f"request (ON - {server.name!r}); ON / ({server.name}) = "
            f"{common.ratio(median_rps(on), median_rps(server)):.3f}"
        )


def write_lua() -> str:
    with tempfile.NamedTemporaryFile(
        "w", prefix="bench-vary-client-", suffix=".lua", delete=False
    ) as script:
        script.write(VARY_CLIENT_LUA)
    return script.name


def make_servers(args: argparse.Namespace) -> list[Server]:
    servers = [
        Server("ON", "bench.settings_on", free_port()),
        Server("OFF", "bench.settings_bare", free_port(), remove="shield,ratelimit,auth"),
    ]
    if args.breakdown:
        for part in ("shield", "ratelimit", "auth"):
            servers.append(Server(f"ON - {part}", "bench.settings_bare", free_port(), part))
        everything = "shield,ratelimit,auth"
        servers.append(
            Server("OFF + INCR", "bench.settings_bare", free_port(), everything, incr=True)
        )
    return servers


def main() -> None:
    args = parse_args()
    env = common.bench_env(args.database_url, args.redis_url)
    print("bench/http_overhead.py")
    common.ensure_database(args.database_url)
    for line in common.machine(database_url=args.database_url, redis_url=args.redis_url):
        print("  " + line)
    print(f"  wrk: {WRK} -t{args.threads} -c{args.connections} -d{args.duration}s")
    print(f"  gunicorn: {args.workers} sync workers per server, access log off")
    if args.scenario == "ip":
        print(
            f"  rules: ip * {IP_RULE_MAX}/60s; X-Forwarded-For varied over {ADDRESSES} addresses, "
            f"TRUSTED_PROXIES={PROXY}"
        )
    else:
        print(f"  rules: global * {RULE_MAX}/60s")
    print(f"  load average: {common.load_average()}")
    common.setup_django("bench.settings_on", env)
    key = prepare(args.scenario)
    servers = make_servers(args)
    args.lua = write_lua() if args.scenario == "ip" else ""
    try:
        for server in servers:
            start(server, env, args.workers, args.scenario)
        for server in servers:
            wait_ready(server)
        check_servers(servers[0], servers[1], key, args.scenario)
        for server in servers[2:]:
            status = fetch(server.url + PING, {"X-API-Key": key})[0]
            common.expect(status == 200, f"{server.name}: {status}")
        measure(servers, key, args)
    finally:
        for server in servers:
            stop(server)
            with contextlib.suppress(OSError):
                os.unlink(server.log_path)
        if args.lua:
            os.unlink(args.lua)
        if not args.keep_keys:
            common.delete_bench_keys(args.redis_url)
    report(servers)
    print(f"load average at the end: {common.load_average()}")


if __name__ == "__main__":
    main()
