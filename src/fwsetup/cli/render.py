"""Renderers several commands share: the one-line smoke summary and the stage progress on stderr."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fwsetup.ui import err_console, escape, state


def smoke_summary(report: Mapping[str, Any]) -> str:
    dev = report.get("device")
    if report.get("backend"):
        dev = f"{dev} ({report['backend']} backend)"
    extra = f", {report['distributed']}" if report.get("distributed") else ""
    return (
        f"{report.get('framework')} {report.get('version')}: {report.get('steps')} training steps on {dev}{extra}, "
        f"loss {report.get('loss_before')} → {report.get('loss_after')} "
        f"({report.get('seconds', '?')} s; import {report.get('import_seconds', '?')} s)"
    )


class StageProgress:
    """Progress on stderr: a rich spinner per stage on a terminal, one line per message elsewhere.

    `header`: the lines that open the display (what is being installed where), made and shown with the first
    progress message, or on leaving when there was none. Until then nothing of rich is loaded, so that the
    install's first commands start without waiting for it (install starts uv before it shows progress)."""

    def __init__(self, quiet: bool = False, header: Callable[[], Sequence[str]] | None = None) -> None:
        self.quiet = quiet
        self.header = header
        self.console: Any = None
        self.live = False
        self.status: Any = None
        self.stage: str | None = None
        self.t_stage = time.monotonic()

    def __enter__(self) -> StageProgress:
        return self

    def _open(self) -> None:
        if self.console is not None:
            return
        self.console = err_console()
        if self.header is not None and not state.quiet:
            for line in self.header():
                self.console.print(line)
        self.live = self.console.is_terminal and not self.quiet
        if self.live:
            self.status = self.console.status("starting", spinner="dots")
            self.status.__enter__()

    def __call__(self, stage: str, message: str) -> None:
        if self.quiet:
            return
        self._open()
        now = time.monotonic()
        if stage != self.stage and self.stage is not None and self.live:
            self.console.print(f"[green]✓[/] {self.stage} [dim]({now - self.t_stage:.1f} s)[/]")
        if stage != self.stage:
            self.stage, self.t_stage = stage, now
        if self.live:
            self.status.update(f"[bold]{escape(stage)}[/]: {escape(message)}")
        else:
            self.console.print(f"[bold]{escape(stage)}[/]: {escape(message)}")

    def __exit__(self, *exc: Any) -> None:
        self._open()
        if self.status is not None:
            self.status.__exit__(*exc)
            if exc[0] is None and self.stage is not None:
                self.console.print(
                    f"[green]✓[/] {self.stage} [dim]({time.monotonic() - self.t_stage:.1f} s)[/]"
                )
