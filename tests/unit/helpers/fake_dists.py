"""Fake site-packages for framework inspection: a distribution's metadata and files written where an
interpreter would find them."""

from __future__ import annotations

import textwrap
from pathlib import Path


def write(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def dist(site: Path, name: str, version: str) -> None:
    write(site / f"{name}-{version}.dist-info" / "METADATA", f"Name: {name}\nVersion: {version}\n")
