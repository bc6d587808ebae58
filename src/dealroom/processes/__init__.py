"""The built-in process files, shipped as package data in dealroom's own TOML format."""

from __future__ import annotations

from functools import cache
from importlib import resources

from dealroom.domain.loader import load_text
from dealroom.domain.model import Process

BUILTIN = ("rfq", "market", "offer", "negotiation")


@cache
def builtin(name: str) -> Process:
    """Load and check one built-in process; KeyError for an unknown name."""
    if name not in BUILTIN:
        raise KeyError(name)
    text = resources.files(__name__).joinpath(f"{name}.toml").read_text(encoding="utf-8")
    return load_text(text, source=f"dealroom/processes/{name}.toml")


def builtin_text(name: str) -> str:
    if name not in BUILTIN:
        raise KeyError(name)
    return resources.files(__name__).joinpath(f"{name}.toml").read_text(encoding="utf-8")
