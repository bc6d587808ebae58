"""dealroom run for real, for the tests, the benchmarks (bench/) and the fault checks (prove/):
scratch PostgreSQL databases, servers as real processes (`dealroom serve`, uvicorn) or in a
thread, each on a free port and waited for until /healthz answers, and people with tokens.

It is a package of its own beside `dealroom`, installed with it, so that all three import it
by name whatever the current directory or sys.path; `dealroom` never imports it.
"""
