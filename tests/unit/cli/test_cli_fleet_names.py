"""Node names come from files (a node file's stem, its "hostname" field) and reach the terminal in
`doctor --fleet DIR` and `plan NAME --host-profile DIR`: a name holding a terminal escape sequence, a bidi
override or bytes that are not UTF-8 is shown escaped (fwsetup.text.printable, through fwsetup.ui.escape),
never raw, and never fails to print."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from fwsetup.cli import main
from fwsetup.text import printable

FLEETS = Path(__file__).resolve().parents[2] / "fixtures" / "fleets"

# Clear the screen, retitle the terminal (OSC 0 ... BEL), then a right-to-left override.
CLEAR = "\x1b[2J\x1b[H"
TITLE = "\x1b]0;owned\x07"
RLO = "\u202e"


def _hostile_fleet(tmp_path: Path) -> Path:
    d = tmp_path / "fleet"
    d.mkdir()
    for f in (FLEETS / "old-driver").iterdir():
        shutil.copy(f, d / f.name)
    # The old-driver node (named in reasons and suggestions) gets an escape sequence in its file name...
    (d / "gpu-07.json").rename(d / f"gpu{CLEAR}-07.json")
    # ...another node names itself with a title sequence and a bidi override in its "hostname" field...
    raw = json.loads((d / "gpu-02.json").read_text())
    raw["hostname"] = f"gpu{TITLE}{RLO}-02"
    (d / "gpu-02.json").write_text(json.dumps(raw))
    # ...and a third one's file name is not UTF-8 (a surrogate once decoded).
    os.rename(os.fsencode(d / "gpu-03.json"), os.fsencode(d) + b"/gpu-\xff03.json")
    return d


def _assert_shown_escaped(text: str) -> None:
    for raw in ("\x1b", "\x07", RLO):
        assert raw not in text, repr(text)


def test_printable_rule() -> None:
    assert printable("gpu-07") == "gpu-07"
    assert printable(f"gpu{CLEAR}-07") == "gpu\\x1b[2J\\x1b[H-07"
    assert printable(f"a{RLO}b") == "a\\u202eb"
    assert printable("node-\udcff") == "node-\\udcff"
    assert printable("a\rb") == "a\\rb"  # a carriage return would overwrite the line
    assert printable("two\nlines\tkept") == "two\nlines\tkept"
    s = f"x{TITLE}\udcff"
    assert printable(printable(s)) == printable(s)


def test_doctor_fleet_shows_hostile_names_escaped(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    d = _hostile_fleet(tmp_path)
    code = main(["doctor", "--fleet", str(d)])
    out, err = capsys.readouterr()
    assert code == 1, err  # gpu-07's driver is the odd one out
    _assert_shown_escaped(out + err)
    assert "gpu\\x1b[2J\\x1b[H-07: 525.60.13" in " ".join(out.split())
    assert "gpu\\x1b]0;owned\\x07\\u202e-02" in out
    assert "gpu-\\udcff03" in out


def test_plan_for_a_fleet_shows_hostile_names_escaped(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    d = _hostile_fleet(tmp_path)
    code = main(["plan", "pytorch", "--gpu", "--host-profile", str(d)])
    out, err = capsys.readouterr()
    assert code == 0, err
    _assert_shown_escaped(out + err)
    # The node that holds the fleet back is named, escaped, in the reasons and the suggestion.
    assert "node gpu\\x1b[2J\\x1b[H-07, driver 525.60.13" in " ".join(out.split())


def test_error_naming_a_hostile_file_is_escaped(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    d = tmp_path / "fleet"
    d.mkdir()
    (d / f"bad{CLEAR}.json").write_text("{not json")
    code = main(["doctor", "--fleet", str(d)])
    _, err = capsys.readouterr()
    assert code == 2
    assert "\x1b" not in err and "bad\\x1b[2J" in err


def test_doctor_of_one_profile_shows_hostile_fields_escaped(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The same rule for a single machine's profile file: a GPU name and a distribution id from the file."""
    raw = json.loads((FLEETS / "old-driver" / "gpu-07.json").read_text())
    raw["nvidia"]["gpus"][0]["name"] = f"NVIDIA {CLEAR} H100"
    raw["os"]["distro_id"] = f"ubu{TITLE}ntu"
    (tmp_path / "p.json").write_text(json.dumps(raw))
    code = main(["doctor", "--host-profile", str(tmp_path / "p.json")])
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    _assert_shown_escaped(out + err)
    assert "NVIDIA \\x1b[2J\\x1b[H H100" in out and "ubu\\x1b]0;owned\\x07ntu" in out
