"""What a build prints, as BuildEvents: the classic builder's JSON stream (parse_classic) and
`docker buildx build --progress=plain` output (parse_buildx). Pure."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from fwsetup.backends.engine import BuildEvent
from fwsetup.detect.docker_messages import is_build_error

_STEP_RE: Final = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_BUILDX_STEP_RE: Final = re.compile(r"^#(\d+) \[(?:[\w.-]+ )?\s*(\d+)/(\d+)\] (.*)$")


_ANSI_RE: Final = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def parse_classic(chunks: Iterator[Mapping[str, Any]]) -> Iterator[BuildEvent]:
    """The classic builder's JSON stream (docker-py decode=True) as BuildEvents."""
    step = 0
    image_id: str | None = None
    pending = ""  # the engine splits lines across chunks; a line is complete at its newline

    def lines_of(text: str) -> Iterator[BuildEvent]:
        nonlocal step, image_id
        # The classic builder wraps a step's stderr in ESC[91m ... ESC[0m: colour, not content.
        text = _ANSI_RE.sub("", text).rstrip()
        if not text.strip():
            return
        m = _STEP_RE.match(text)
        if m:
            step = int(m.group(1))
            yield BuildEvent(kind="step", text=m.group(3), step=step)
        elif text.strip() == "---> Using cache":
            yield BuildEvent(kind="cache", text="Using cache", step=step)
        elif text.startswith("Successfully built "):
            image_id = image_id or text.split()[-1]
        elif text.startswith((" ---> ", "Successfully tagged ", "Removing intermediate container")):
            return
        else:
            yield BuildEvent(kind="log", text=text, step=step or None)

    for chunk in chunks:
        if "error" in chunk or "errorDetail" in chunk:
            if pending:
                yield from lines_of(pending)
                pending = ""
            detail = chunk.get("errorDetail") or {}
            message = str(chunk.get("error") or detail.get("message") or "build failed").strip()
            yield BuildEvent(kind="error", text=_ANSI_RE.sub("", message), step=step or None)
            return
        aux = chunk.get("aux")
        if isinstance(aux, Mapping) and aux.get("ID"):
            image_id = str(aux["ID"])
        stream = chunk.get("stream")
        if not isinstance(stream, str):
            continue
        pending += stream
        *complete, pending = pending.split("\n")
        for line in complete:
            yield from lines_of(line)
    if pending:
        yield from lines_of(pending)
    if image_id:
        yield BuildEvent(kind="done", text=image_id, image_id=image_id)
    else:
        yield BuildEvent(
            kind="error", text="the engine ended the build without an image id", step=step or None
        )


def parse_buildx(lines: Iterator[str], iidfile: Path, returncode: Callable[[], int]) -> Iterator[BuildEvent]:
    """`docker buildx build --progress=plain` output as BuildEvents (vertex #N -> step N)."""
    seen: dict[int, int] = {}
    last_error = ""
    for raw in lines:
        text = raw.rstrip("\n")
        m = _BUILDX_STEP_RE.match(text)
        if m:
            vertex = int(m.group(1))
            seen.setdefault(vertex, len(seen) + 1)
            yield BuildEvent(kind="step", text=m.group(4), step=seen[vertex])
            continue
        m2 = re.match(r"^#(\d+) CACHED$", text)
        if m2 and int(m2.group(1)) in seen:
            yield BuildEvent(kind="cache", text="CACHED", step=seen[int(m2.group(1))])
            continue
        if re.match(r"^#\d+ (DONE|sha256:|naming|writing|exporting|resolve|transferring|load )", text):
            continue
        if is_build_error(text):
            last_error = text
        if text.strip():
            yield BuildEvent(kind="log", text=re.sub(r"^#\d+ [\d.]+ ", "", text))
    if returncode() != 0 or not iidfile.is_file():
        yield BuildEvent(kind="error", text=last_error or "docker buildx build failed")
        return
    image_id = iidfile.read_text().strip()
    yield BuildEvent(kind="done", text=image_id, image_id=image_id)
