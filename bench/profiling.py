"""Where CPU goes: py-spy samples of the GIL-holding thread, grouped into named stages.

``--gil`` keeps only samples of the thread that holds the GIL, i.e. the CPU one
Python process can spend; a stage's share of those samples is its share of
that CPU. py-spy is a development requirement and needs permission to read
the target's memory (root, or ``ptrace`` allowed).
"""

from __future__ import annotations

import shutil
import signal
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from subprocess import DEVNULL, Popen

Buckets = Sequence[tuple[str, str]]
OTHER = "other (stacks py-spy caught mid-unwind; mostly botocore)"


def py_spy() -> str:
    found = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if found is None:
        raise SystemExit("py-spy is not installed: pip install -r requirements-dev.txt")
    return found


def start_sampling(pid: int, output: Path) -> Popen[bytes]:
    """Sample a running process until :func:`stop_sampling`."""
    return Popen(
        [py_spy(), "record", "--pid", str(pid), "--gil", "--rate", "250",
         "--format", "raw", "--output", str(output), "--nonblocking"],
        stdout=DEVNULL, stderr=DEVNULL,
    )


def stop_sampling(sampler: Popen[bytes]) -> None:
    sampler.send_signal(signal.SIGINT)
    sampler.wait(timeout=30)


def bucket_of(stack: str, buckets: Buckets) -> str:
    """The first bucket (in the given order) one of whose marker frames is on the stack."""
    names = [frame.split(" (")[0] for frame in stack.split(";")]
    for label, marker in buckets:
        if any(name.startswith(marker) for name in names):
            return label
    return OTHER


def breakdown(folded: Path, buckets: Buckets) -> tuple[int, Counter[str]]:
    shares: Counter[str] = Counter()
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        shares[bucket_of(stack, buckets)] += int(count)
    return sum(shares.values()), shares


def table(total: int, shares: Counter[str]) -> str:
    lines = [f"{total} samples of the GIL-holding thread", "", "| where | share of CPU |",
             "|---|---|"]
    lines += [f"| {label} | {count / total:.0%} |" for label, count in shares.most_common()]
    return "\n".join(lines)
