"""fwsetup.text: text shown to people (sizes)."""

from __future__ import annotations

from fwsetup.text import human_bytes


def test_human_bytes() -> None:
    assert human_bytes(512) == "512 B"
    assert human_bytes(2_500_000_000) == "2.5 GB"
    assert human_bytes(5_000_000_000_000_000) == "5000.0 TB"  # no unit past TB
