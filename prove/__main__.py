"""Run every check in full: `python -m prove` (`make prove`). Prints one verdict per check."""

from __future__ import annotations

import argparse
import os
import sys

from prove import crash, inputs, pgrestart, ratelimit, soak
from prove.cluster import PG_URL


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--soak-minutes", type=float, default=30)
    ap.add_argument("--examples", type=int, default=200)
    args = ap.parse_args()
    pg = os.environ.get("DEALROOM_TEST_DATABASE_URL", PG_URL)
    results = {
        "bad input and security": inputs.run(args.examples),
        "rate limits": ratelimit.run(3, 12, pg),
        "crash": crash.run(60, 8, pg),
        "postgres restart": pgrestart.run(10, 6),
        "soak": soak.run(args.soak_minutes, 6, 8, 10, pg),
    }
    print("\n== summary")
    for name, ok in results.items():
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}")
    sys.exit(0 if all(results.values()) else 1)


if __name__ == "__main__":
    main()
