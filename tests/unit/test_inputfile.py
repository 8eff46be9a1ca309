"""Issue 21, bad input files: a HostProfile, a node file or a recipe that is not a regular file of a sane size
(a FIFO, /dev/zero, a folder, a huge file), a "TOML bomb", a recipe with a UTF-8 byte order mark.

Each is exit 2 with one line that names the file and what it is, at once: nothing blocks (the FIFO cases run
under an alarm, so a regression fails instead of hanging the suite) and nothing is read without bound.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import FACTS

from fwsetup.cli import main
from fwsetup.inputfile import InputFileError, read_input

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NO_GPU = str(FIXTURES / "no-gpu.json")

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")


class Blocked(Exception):  # not an OSError (TimeoutError is one), so no `except OSError` eats it
    pass


@contextlib.contextmanager
def deadline(seconds: int = 10) -> Iterator[None]:
    """Fail (instead of hanging) when the block blocks."""

    def expired(_sig: int, _frame: object) -> None:
        signal.alarm(1)  # and again, should something catch it
        raise Blocked(f"blocked for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with deadline():
        code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, " ".join(err.split())


def one_clear_line(err: str) -> None:
    assert err.startswith("error: "), err
    assert "unexpected" not in err and "Traceback" not in err, err


def recipe(name: str = "fakefw") -> str:
    return (
        f'name = "{name}"\ntitle = "FakeFW"\nsmoke = "fakefw"\nimport_name = "fakefw"\ndistribution = "fakefw"\n'
        + FACTS
        + '\n[[builds]]\nversion = "1.0"\nvariant = "cpu"\npython = ">=3.8"\nos = ["linux"]\n'
        'arch = ["x86_64", "aarch64"]\nrequirements = ["fakefw==1.0"]\n'
    )


# -- fwsetup.inputfile -------------------------------------------------------------------------------------------


def test_read_input_refuses_what_is_not_a_regular_file_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with deadline(), pytest.raises(InputFileError, match=r"it is a named pipe \(FIFO\), not a regular file"):
        read_input(fifo, limit=1000)
    with pytest.raises(InputFileError, match="it is a folder, not a regular file"):
        read_input(tmp_path, limit=1000)
    if os.path.exists("/dev/zero"):
        with deadline(), pytest.raises(InputFileError, match="it is a character device, not a regular file"):
            read_input("/dev/zero", limit=1000)
    with pytest.raises(InputFileError, match="No such file or directory"):
        read_input(tmp_path / "none", limit=1000)


def test_read_input_refuses_a_file_larger_than_its_limit_before_reading_it(tmp_path: Path) -> None:
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate(64 << 30)  # sparse: 64 GiB that cost no disk, and must cost no memory either
    with pytest.raises(InputFileError, match=r"it is 64\.0 GiB, larger than the 1\.0 MiB such a file can be"):
        read_input(big, limit=1 << 20)
    small = tmp_path / "small"
    small.write_bytes(b"x" * 1000)
    assert read_input(small, limit=1000) == b"x" * 1000


# -- --host-profile and node files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["plan", "pytorch"], ["doctor", "--json"], ["profile"]])
def test_host_profile_fifo_is_refused_at_once(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "p.json"
    os.mkfifo(fifo)
    code, _out, err = run(capsys, *command, "--host-profile", str(fifo))
    assert code == 2, err
    one_clear_line(err)
    assert f"cannot read host profile {fifo}: it is a named pipe (FIFO), not a regular file." in err


def test_node_files_that_are_not_profiles_are_refused_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "node-b.json"
    os.mkfifo(fifo)
    huge = tmp_path / "node-c.json"
    with open(huge, "wb") as f:
        f.truncate(8 << 30)
    for other, what in ((fifo, "a named pipe (FIFO)"), (Path("/dev/zero"), "a character device")):
        code, _out, err = run(
            capsys, "plan", "pytorch", "--host-profile", NO_GPU, "--host-profile", str(other)
        )
        assert code == 2, err
        one_clear_line(err)
        assert f"{other}: it is {what}, not a regular file" in err
    code, _out, err = run(capsys, "plan", "pytorch", "--host-profile", NO_GPU, "--host-profile", str(huge))
    assert code == 2, err
    one_clear_line(err)
    assert "it is 8.0 GiB, larger than the 16.0 MiB such a file can be" in err


def test_deeply_nested_node_file_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deep = tmp_path / "node-d.json"
    deep.write_text('{"os": ' + "[" * 100_000 + "]" * 100_000 + "}")
    code, _out, err = run(capsys, "plan", "pytorch", "--host-profile", NO_GPU, "--host-profile", str(deep))
    assert code == 2, err
    one_clear_line(err)
    assert "nested deeper than" in err


# -- recipes -----------------------------------------------------------------------------------------------------


def user_recipes(tmp_path: Path) -> Path:
    d = tmp_path / "recipes"
    d.mkdir()
    return d


@pytest.mark.parametrize(
    ("bomb", "where"),
    [
        ("bomb = " + "[" * 100_000 + "]" * 100_000, "nested too deeply to parse"),
        ("bomb = " + "{a = " * 5_000 + "1" + "}" * 5_000, "nested too deeply to parse"),
        ("bomb = " + "[" * 40 + "]" * 40, "builds[0].bomb[0][0]"),
    ],
    ids=["arrays", "inline-tables", "under-the-recursion-limit"],
)
def test_toml_bomb_is_bad_input(
    bomb: str, where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = user_recipes(tmp_path)
    (d / "fakefw.toml").write_text(recipe() + bomb + "\n")
    code, _out, err = run(capsys, "--recipes", str(d), "plan", "fakefw", "--cpu")
    assert code == 2, err
    one_clear_line(err)
    assert f"{d / 'fakefw.toml'}" in err and where in err
    assert "nested" in err
    code, out, err = run(capsys, "recipes", "validate", str(d))
    assert code in (1, 2), err
    assert where in out + err and "unexpected" not in out + err


def test_recipe_with_a_utf8_byte_order_mark_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = user_recipes(tmp_path)
    (d / "fakefw.toml").write_bytes(b"\xef\xbb\xbf" + recipe().encode())
    code, out, err = run(capsys, "--recipes", str(d), "plan", "fakefw", "--cpu", "--json")
    assert code == 0, err
    assert '"framework": "fakefw"' in out
    code, out, err = run(capsys, "recipes", "validate", str(d))
    assert code == 0, out + err


@pytest.mark.parametrize("kind", ["fifo", "folder", "huge"])
def test_recipe_entry_that_is_not_a_regular_file_is_named_not_skipped(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = user_recipes(tmp_path)
    entry = d / "fakefw.toml"
    if kind == "fifo":
        os.mkfifo(entry)
        what = "it is a named pipe (FIFO), not a regular file"
    elif kind == "folder":
        entry.mkdir()
        what = "it is a folder, not a regular file"
    else:
        with open(entry, "wb") as f:
            f.truncate(8 << 30)
        what = "it is 8.0 GiB, larger than the 4.0 MiB such a file can be"
    code, out, err = run(capsys, "recipes", "validate", str(d))
    assert code in (1, 2), "a recipe folder whose recipe cannot be read was called valid"
    assert f"{entry}: cannot read recipe: {what}." in " ".join((out + err).split())
    code, _out, err = run(capsys, "--recipes", str(d), "plan", "fakefw", "--cpu")
    assert code == 2, err
    one_clear_line(err)
    assert what in err


if sys.platform == "win32":  # pragma: no cover
    pytestmark = pytest.mark.skip(reason="POSIX file kinds")
