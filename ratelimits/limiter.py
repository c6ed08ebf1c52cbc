"""Rate-limit decisions: fixed windows per counter, counted in one store round trip.

Windows are `window_seconds` long and aligned to the epoch, shifted per counter by a stable
hash of its name (CRC32, the same in every process) so they do not all roll over at once.

Use it from a script as well as from the middleware:

    rules = RuleSet.build([RateLimitRule(id=1, scope="ip", key="*", max_requests=100)])
    decision = check(rules, Identity(ip="192.0.2.7", path="/x"))
    decision.allowed, decision.headers()
"""

import math
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ratelimits.ruleset import Identity, Match, Rule, RuleSet
from ratelimits.store import EXCESS_GRACE, CounterStore, excess_ttl, get_store


def window_of(counter: str, window_seconds: int, now: float) -> tuple[int, float]:
    """(index, start) of the window of `counter` that contains `now` (seconds since the epoch)."""
    offset = zlib.crc32(counter.encode()) % window_seconds
    index = int((now - offset) // window_seconds)
    return index, float(index * window_seconds + offset)


@dataclass(slots=True)  # not frozen: frozen dataclasses are slow to build on the hot path
class Verdict:
    """One counter after this request was counted."""

    rule: Rule
    value: str
    count: int
    window_start: float
    window_end: float

    @property
    def remaining(self) -> int:
        return max(0, self.rule.max_requests - self.count)

    @property
    def exceeded(self) -> bool:
        return self.count > self.rule.max_requests

    def started_at(self) -> datetime:
        return datetime.fromtimestamp(self.window_start, tz=UTC)

    def ends_at(self) -> datetime:
        return datetime.fromtimestamp(self.window_end, tz=UTC)


@dataclass(slots=True)
class Decision:
    """Every matching counter; the strictest decides."""

    verdicts: list[Verdict]
    strictest: Verdict
    now: float

    @property
    def allowed(self) -> bool:
        return not self.strictest.exceeded

    @property
    def reset(self) -> int:
        """Whole seconds until the strictest counter's window ends (rounded up)."""
        return max(1, math.ceil(self.strictest.window_end - self.now))

    def headers(self) -> dict[str, str]:
        """The IETF draft fields: `RateLimit-Policy` for every matching rule, `RateLimit`."""
        if len(self.verdicts) == 1:
            policies: Iterable[str] = (self.strictest.rule.policy,)
        else:
            policies = dict.fromkeys(v.rule.policy for v in (self.strictest, *self.verdicts))
        limit = self.strictest.rule.max_requests
        return {
            "RateLimit-Policy": ", ".join(policies),
            "RateLimit": f"limit={limit}, remaining={self.strictest.remaining}, reset={self.reset}",
        }

    def body(self) -> dict[str, Any]:
        rule = self.strictest.rule
        return {
            "status_code": 429,
            "detail": f"Rate limit exceeded: {rule.max_requests} requests per "
            f"{rule.window_seconds} seconds ({rule.scope} {rule.key}). "
            f"Retry in {self.reset} seconds.",
            "rule": rule.as_dict(),
            "window_ends_at": self.strictest.ends_at().isoformat().replace("+00:00", "Z"),
        }


def decide(
    matches: list[Match], *, now: float | None = None, store: CounterStore | None = None
) -> Decision:
    """Count one request against every matching rule (one store call) and decide."""
    if now is None:
        now = time.time()
    if store is None:
        store = get_store()
    if len(matches) == 1:  # the common case, kept lean: it runs on every matching request
        match = matches[0]
        rule = match.rule
        key, ttl, start, report = _counter(match, now)
        (count,) = store.incr_many(
            [key], [ttl], [rule.max_requests], [report], rule.window_seconds + EXCESS_GRACE
        )
        verdict = Verdict(rule, match.value, count, start, start + rule.window_seconds)
        return Decision([verdict], verdict, now)
    planned = [_counter(match, now) for match in matches]
    counts = store.incr_many(
        [plan[0] for plan in planned],
        [plan[1] for plan in planned],
        [match.rule.max_requests for match in matches],
        [plan[3] for plan in planned],
        excess_ttl([match.rule.window_seconds for match in matches]),
    )
    verdicts = [
        Verdict(match.rule, match.value, count, plan[2], plan[2] + match.rule.window_seconds)
        for match, count, plan in zip(matches, counts, planned, strict=True)
    ]
    return Decision(verdicts, _strictest(verdicts), now)


def _counter(match: Match, now: float) -> tuple[str, int, float, str]:
    """The counter's name in its current window, its time to live, the window's start, and the
    report its excess goes to: the rule's window aligned to the epoch, the same for every
    counter of the rule (their own windows are shifted)."""
    rule = match.rule
    size = rule.window_seconds
    index, start = window_of(match.counter, size, now)
    report = f"{rule.id}:{size}:{int(now // size)}"
    return f"{match.counter}:{index}", int(start + size - now) + 2, start, report


def _strictest(verdicts: list[Verdict]) -> Verdict:
    """Over the limit: the longest wait. Otherwise: the fewest requests left."""
    if len(verdicts) == 1:
        return verdicts[0]
    exceeded = [v for v in verdicts if v.exceeded]
    if exceeded:
        return max(exceeded, key=lambda v: (v.window_end, -v.rule.max_requests))
    return min(verdicts, key=lambda v: (v.remaining, -v.window_end))


def check(
    rules: RuleSet,
    identity: Identity,
    *,
    now: float | None = None,
    store: CounterStore | None = None,
) -> Decision | None:
    """The decision for one request, or None when no rule applies (then nothing is counted)."""
    matches = rules.match(identity)
    if not matches:
        return None
    return decide(matches, now=now, store=store)


@dataclass(frozen=True, slots=True)
class CounterState:
    """A live counter read back from the store (for snapshots)."""

    rule: Rule
    value: str
    count: int
    window_start: float


def read_counters(rule: Rule, *, now: float | None = None) -> list[CounterState]:
    """The counters of `rule` in their current window (every value, for a `*` rule)."""
    now = time.time() if now is None else now
    states = []
    for name, count in get_store().counters(rule.counter_prefix):
        counter, _, index = name.rpartition(":")
        current, start = window_of(counter, rule.window_seconds, now)
        if index == str(current):
            value = counter[len(rule.counter_prefix) :]
            states.append(CounterState(rule, value, count, start))
    return states
