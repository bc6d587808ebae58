"""Shared test setup.

This file's presence puts tests/ on sys.path (pytest's default import mode), so every test
can `import factories`: plain functions that build deals, actors and payloads (STYLE.md,
convention 14). Fixtures shared by all suites go here; keep it small.
"""
