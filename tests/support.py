"""What several test modules (and the issue-9 battery) share: a recipe's [facts] table and a tiny wheel."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

# A recipe's [facts] table (the comparison FRAMEWORKS.md is made of), every key filled in.
FACTS = """
[facts]
developer = "fwsetup tests"
language = "Python"
platforms = ["Linux"]
interfaces = ["Python"]
autograd = "no"
pretrained = "no"
cnn = "no"
rnn = "no"
multi_gpu = "no"
multi_node = "no"
status = "active"
"""


def make_wheel(folder: Path, version: str, name: str = "fakefw", generator: str = "fwsetup-tests") -> Path:
    """A pure-Python wheel `name` `version` (its module holds __version__) with a RECORD of real hashes."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f'__version__ = "{version}"\n',
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": f"Wheel-Version: 1.0\nGenerator: {generator}\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    whl = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
    return whl
