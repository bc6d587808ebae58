"""Fault, load, soak, bad-input and security checks: each script prints a PASS/FAIL report.

Run from the project root with the venv's Python, e.g. `python -m prove.crash`.
Every target is 127.0.0.1; every loop is bounded in count and time.
"""
