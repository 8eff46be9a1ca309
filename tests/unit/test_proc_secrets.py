"""Issue 9, item 4: index credentials never reach a log: fwsetup.proc.run_streamed redacts the log it writes
and the output it returns."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from index_secrets import INDEX, TOKEN, clean_pip_env

from fwsetup.proc import run_streamed

# `clean_pip_env` is an autouse fixture of the helper module: pytest finds it in this module's namespace
__all__ = ["clean_pip_env"]


def test_run_streamed_redacts_the_log_and_what_it_returns(tmp_path: Path) -> None:
    log = tmp_path / "install.log"
    seen: list[str] = []
    code = "import os; print('fetching', os.environ['UV_INDEX_URL'] + '/fakefw/'); print('bad token', os.environ['T'])"
    res = run_streamed(
        [sys.executable, "-c", code],
        env={**os.environ, "UV_INDEX_URL": INDEX, "T": TOKEN},
        log=log,
        timeout=60,
        on_line=seen.append,
    )
    assert res.ok
    for text in (log.read_text(), res.stderr, "\n".join(seen)):
        assert TOKEN not in text and "https://***@mirror.example/simple/fakefw/" in text
