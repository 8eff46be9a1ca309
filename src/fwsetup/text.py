"""What fwsetup shows of text it did not write (file names, node names and fields read from files, a
program's output): one rule, `printable`, used by every place that prints such text (fwsetup.ui.escape).

A terminal acts on control characters: an escape sequence in a node's name (its file's stem, a "hostname"
field) could recolour, clear or retitle the terminal, move the cursor over earlier lines, or (with bidi
overrides) show text in another order than it is. Such characters are shown as their Python escapes
(`\\x1b`, `\\u202e`), so the name stays recognisable and tells apart from others; nothing reaches the
terminal raw. Lone surrogates (a file name that is not UTF-8, decoded with surrogateescape) are shown the
same way instead of failing to encode.
"""

from __future__ import annotations

__all__ = ["human_bytes", "printable"]


def printable(text: str, *, keep: str = "\n\t") -> str:
    """`text` with every character a terminal would act on or cannot show (control and format characters,
    line and paragraph separators, surrogates, unassigned code points: what `str.isprintable` rejects,
    apart from the characters in `keep`) replaced by its Python escape. Idempotent."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch in keep else ascii(ch)[1:-1] for ch in text)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit in ("B", "KB") else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
