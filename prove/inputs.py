"""Bad input and security: runs tests/prove/test_fuzz_api.py (schemathesis over the whole
OpenAPI document, hypothesis-made hostile terms and messages) and tests/prove/test_security.py
(the authorization matrix of every route, bad tokens, tampered events) with more examples.

    python -m prove.inputs [--examples 200]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time


def run(examples: int = 200) -> bool:
    started = time.monotonic()
    env = {**os.environ, "DEALROOM_PROVE": "1", "DEALROOM_PROVE_EXAMPLES": str(examples)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=-ra --strict-markers",
           "tests/prove/test_fuzz_api.py", "tests/prove/test_security.py"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, timeout=3600, check=False, capture_output=True, text=True)
    tail = proc.stdout.strip().splitlines()[-8:]
    print("\n".join(tail))
    ok = proc.returncode == 0
    print(
        f"RESULT bad input and security ({examples} examples per case, "
        f"{time.monotonic() - started:.0f} s): {'PASS' if ok else 'FAIL'}"
    )
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--examples", type=int, default=200)
    sys.exit(0 if run(ap.parse_args().examples) else 1)


if __name__ == "__main__":
    main()
