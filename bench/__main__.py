"""``python -m bench``: run the benchmark suite, print its tables, write its JSON.

Every figure is a ratio of two designs measured side by side in this run, on
loopback only; nothing is compared with numbers from another run or machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import charts, report, suite

DEFAULT_JSON = Path(__file__).parent / "results" / "latest.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(suite.SIZES), default="full")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    parser.add_argument(
        "--only", default=",".join(suite.FIGURES),
        help=f"comma-separated figures among {','.join(suite.FIGURES)}",
    )
    args = parser.parse_args(argv)
    described = report.machine()
    figures = suite.run(
        suite.SIZES[args.size],
        tuple(name.strip() for name in args.only.split(",") if name.strip()),
        progress=lambda message: print(f"{message} ...", file=sys.stderr, flush=True),
    )
    print(report.render(figures, described))
    report.write_json(args.json, figures, described)
    print(f"JSON written to {args.json}", file=sys.stderr)
    for chart in charts.write(figures, args.json):
        print(f"chart written to {chart}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
