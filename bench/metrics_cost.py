"""Microseconds per counter increment on the request path: single-process against multiprocess.

`RateLimitMiddleware` counts each allowed request with `_allowed.inc()`, a child of
`metrics.ratelimit_decisions` bound once at import. This times that call with the two value
classes prometheus-client offers, in the same process and interleaved round by round:

- single-process (no PROMETHEUS_MULTIPROC_DIR): a float behind a mutex, in memory.
- multiprocess (PROMETHEUS_MULTIPROC_DIR set): the same float, also written to this process's
  mmap file in the directory, after a pid check (a fork resets the files).

Both counters are built from the definition in `valhalla_ops/metrics.py` (name, help, labels).
Also timed: `.labels("allowed").inc()` (a label lookup per call, as the shield does for a
refused write) and an empty call, the cost of the timing loop itself. The ratio is the median of
the per-round ratios (the ratio of the medians in brackets).

    .venv/bin/python bench/metrics_cost.py                   # 9 rounds of 0.3 s per candidate
    .venv/bin/python bench/metrics_cost.py --rounds 15 --seconds 0.5 --dir .run/bench

No database, no Redis, no Django set-up: the mmap files go to a new temporary directory (or
`--dir`, which must not exist yet), removed at the end.
"""

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common

BUDGET_US = 5.0  # above this, multiprocess counting is worth a second look on the request path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (median)")
    parser.add_argument("--seconds", type=float, default=0.3, help="seconds per candidate/round")
    parser.add_argument("--max-ops", type=int, default=3_000_000, help="cap per candidate/round")
    parser.add_argument("--dir", type=Path, default=None, help="where the mmap files go")
    args = parser.parse_args()
    common.check_rounds(parser, args)
    if args.dir is not None and args.dir.exists():
        parser.error(f"--dir {args.dir} exists; give a new path (it is removed at the end)")
    return args


@contextmanager
def value_class(cls: Any, directory: Path | None) -> Iterator[None]:
    """Metrics created inside use `cls` for their values (and write to `directory`)."""
    from prometheus_client import values

    saved = values.ValueClass
    values.ValueClass = cls
    if directory is not None:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)  # read when the file is made
    try:
        yield
    finally:
        values.ValueClass = saved
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


def decisions_counter() -> Any:
    """A new counter defined exactly as `metrics.ratelimit_decisions`, on no registry."""
    from prometheus_client import Counter

    from valhalla_ops import metrics

    real = metrics.ratelimit_decisions
    return Counter(real._name, real._documentation, real._labelnames, registry=None)


def build(directory: Path) -> dict[str, Any]:
    from prometheus_client import values

    with value_class(values.MutexValue, None):
        single = decisions_counter()
        single_child = single.labels("allowed")
    with value_class(values.MultiProcessValue(), directory):
        multi = decisions_counter()
        multi_child = multi.labels("allowed")
    common.expect(not single_child._value._multiprocess, "the single-process value is mmapped")
    common.expect(multi_child._value._multiprocess, "the multiprocess value is not mmapped")
    return {"single": (single, single_child), "multi": (multi, multi_child)}


def candidates(counters: dict[str, Any]) -> dict[str, Callable[[], object]]:
    single, single_child = counters["single"]
    multi, multi_child = counters["multi"]
    return {
        "empty call (loop cost)": lambda: None,
        "single-process  _allowed.inc()": single_child.inc,
        "multiprocess    _allowed.inc()": multi_child.inc,
        "single-process  .labels().inc()": lambda: single.labels("allowed").inc(),
        "multiprocess    .labels().inc()": lambda: multi.labels("allowed").inc(),
    }


def check_files(directory: Path, child: Any) -> None:
    """Every increment of the multiprocess counter reached its file."""
    from prometheus_client.multiprocess import MultiProcessCollector

    files = [str(path) for path in directory.glob("counter_*.db")]
    on_disk = sum(
        sample.value
        for metric in MultiProcessCollector.merge(files)
        for sample in metric.samples
        if sample.labels == {"outcome": "allowed"}
    )
    common.expect(len(files) == 1, f"expected one counter file, found {files}")
    common.expect(on_disk > 0, "nothing was counted")
    common.expect(on_disk == child._value.get(), f"file {on_disk} != memory {child._value.get()}")


def report(rates: dict[str, common.Rate], names: list[str]) -> None:
    empty = rates[names[0]]
    print(f"\n  {'':32} {'us/call':>8} {'CPU us':>8} {'minus loop':>11}")
    for name in names:
        rate = rates[name]
        net = rate.us - empty.us
        print(f"  {name:32} {rate.us:8.3f} {rate.cpu_us:8.3f} {net:11.3f}")
    print("  ratios, multiprocess / single-process time per call (median of the per-round ratios)")
    for call, (single, multi) in {
        "_allowed.inc()": (names[1], names[2]),
        ".labels().inc()": (names[3], names[4]),
    }.items():
        paired = common.paired_ratio(rates[single], rates[multi])
        medians = common.ratio(rates[single].ops, rates[multi].ops)
        print(f"  {call:32} {paired:6.2f}x ({medians:5.2f}x)")
    multi_us = rates[names[2]].us
    verdict = "under" if multi_us <= BUDGET_US else "OVER"
    print(f"  multiprocess _allowed.inc(): {multi_us:.2f} us, {verdict} the {BUDGET_US} us budget")


def main() -> None:
    args = parse_args()
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the project's own counters stay in memory
    directory = args.dir or Path(tempfile.mkdtemp(prefix="metrics_cost-"))
    directory.mkdir(parents=True, exist_ok=True)
    print("bench/metrics_cost.py")
    for line in common.machine():
        print("  " + line)
    print(f"  prometheus-client: {version('prometheus-client')}")
    print(f"  load average: {common.load_average()}")
    print(f"  {args.rounds} interleaved rounds x {args.seconds} s (at most {args.max_ops} ops)")
    print(f"  multiprocess files in {directory}")
    try:
        counters = build(directory)
        jobs = candidates(counters)
        rates = common.interleaved(
            jobs, rounds=args.rounds, seconds=args.seconds, max_ops=args.max_ops
        )
        check_files(directory, counters["multi"][1])
        report(rates, list(jobs))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(f"\n  load average at the end: {common.load_average()}")


if __name__ == "__main__":
    main()
