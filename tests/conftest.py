"""Shared test setup.

This file's presence puts tests/ on sys.path (pytest's default import mode), so every test
can `import factories`: plain functions that build deals, actors and payloads (STYLE.md,
convention 14). Fixtures shared by all suites go here; keep it small.
"""

import os

# The fault, fuzz and security checks of `make prove` / `make prove-quick` (DEALROOM_PROVE=1)
# start servers and databases of their own; the ordinary suite leaves them out.
collect_ignore = [] if os.environ.get("DEALROOM_PROVE") == "1" else ["prove"]
