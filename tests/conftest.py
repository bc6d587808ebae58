"""Shared test setup.

tests/support/ holds the helpers every suite shares, imported by plain name (`import
factories`, `from people import add_user`); pyproject's pytest `pythonpath` puts it on
sys.path, and the project root too, for the `prove` scripts that tests/prove runs short.
The app fixtures of the HTTP and web suites come from support/appfixtures.py. Keep this
file small.
"""

import os

pytest_plugins = ["appfixtures"]

# The fault, fuzz and security checks of `make prove` / `make prove-quick` (DEALROOM_PROVE=1)
# start servers and databases of their own; the ordinary suite leaves them out.
collect_ignore = [] if os.environ.get("DEALROOM_PROVE") == "1" else ["prove"]
