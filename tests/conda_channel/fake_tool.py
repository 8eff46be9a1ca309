"""A stand-in for the micromamba / conda command line, for tests on machines that have neither.

It speaks the part of their interface fwsetup uses (`--version`, `create --help`,
`create --yes --json --prefix P [--dry-run] [--relocate-prefix R] --override-channels --channel C... SPECS`,
CONDA_OVERRIDE_CUDA) and does the work with py-rattler, so what it creates is a real environment. Its
JSON imitates theirs: {"success", "dry_run", "actions": {"LINK": [...], "FETCH": [...], "PREFIX"}} and, on a
failed solve, micromamba's {"success": false, "solver_problems": [...]}. Every call is appended to
$FAKE_TOOL_LOG (argv and CONDA_OVERRIDE_CUDA) so tests can check what fwsetup ran.

Installed by `install_fake_tool(bin_dir, name, relocate=...)`: a script named micromamba or conda whose
`create --help` lists --relocate-prefix only when `relocate` is true (micromamba does, conda does not).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path


def install_fake_tool(bin_dir: Path, name: str, *, relocate: bool) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    exe = bin_dir / name
    exe.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent.parent)!r})\n"
        "from conda_channel.fake_tool import main\n"
        "import os\n"
        f"rc = main(sys.argv[1:], name={name!r}, relocate={relocate!r})\n"
        # py-rattler may abort while the interpreter finalizes (see fwsetup/backends/conda_rattler.py).
        "sys.stdout.flush(); sys.stderr.flush(); os._exit(rc)\n"
    )
    exe.chmod(0o755)
    return exe


def _record(r) -> dict:
    return {
        "name": r.name.normalized,
        "version": str(r.version),
        "build": str(r.build),
        "build_string": str(r.build),
        "build_number": r.build_number,
        "channel": r.channel,
        "subdir": r.subdir,
        "url": r.url,
        "fn": r.file_name,
        "md5": r.md5.hex() if r.md5 else None,
        "sha256": r.sha256.hex() if r.sha256 else None,
        "size": r.size,
    }


def main(argv: list[str], *, name: str, relocate: bool) -> int:
    log = os.environ.get("FAKE_TOOL_LOG")
    if log:
        with open(log, "a") as f:
            f.write(
                json.dumps(
                    {"tool": name, "argv": argv, "CONDA_OVERRIDE_CUDA": os.environ.get("CONDA_OVERRIDE_CUDA")}
                )
                + "\n"
            )
    if argv == ["--version"]:
        print("2.0.5" if name == "micromamba" else f"{name} 24.11.0")
        return 0
    if argv[:1] != ["create"]:
        print(f"{name}: only `create` is faked", file=sys.stderr)
        return 2
    if "--help" in argv:
        print(
            "Usage: create [OPTIONS] [specs...]\n  -p,--prefix TEXT\n  -c,--channel TEXT\n  --dry-run\n  --json"
        )
        if relocate:
            print("  --relocate-prefix TEXT   Path to the final prefix, written into the installed files")
        return 0
    prefix = relocate_to = None
    channels: list[str] = []
    specs: list[str] = []
    dry_run = as_json = False
    it = iter(argv[1:])
    for arg in it:
        if arg in ("--prefix", "-p"):
            prefix = next(it)
        elif arg in ("--channel", "-c"):
            channels.append(next(it))
        elif arg == "--relocate-prefix":
            if not relocate:
                print(f"{name}: unrecognized arguments: --relocate-prefix", file=sys.stderr)
                return 2
            relocate_to = next(it)
        elif arg == "--dry-run":
            dry_run = True
        elif arg == "--json":
            as_json = True
        elif arg in ("--yes", "-y", "--override-channels"):
            pass
        elif arg.startswith("-"):
            print(f"{name}: unknown option {arg}", file=sys.stderr)
            return 2
        else:
            specs.append(arg)
    import rattler

    cuda = os.environ.get("CONDA_OVERRIDE_CUDA")
    overrides = rattler.VirtualPackageOverrides(cuda=rattler.Override.string(cuda or ""))
    platform = str(rattler.Subdir.current())

    async def solve():
        return await rattler.solve(
            [rattler.Channel(c) for c in channels],
            specs,
            platforms=[platform, "noarch"],
            virtual_packages=list(rattler.VirtualPackage.detect(overrides)),
        )

    try:
        records = asyncio.run(solve())
    except Exception as exc:  # noqa: BLE001
        if as_json:
            print(json.dumps({"success": False, "solver_problems": [str(exc)]}))
        print(f"error    libmamba Could not solve for environment specs\n{exc}", file=sys.stderr)
        return 1
    out = {
        "success": True,
        "dry_run": dry_run,
        "prefix": prefix,
        "actions": {"LINK": [_record(r) for r in records], "FETCH": [], "PREFIX": prefix},
    }
    if not dry_run:
        if prefix and Path(prefix).exists() and any(Path(prefix).iterdir()):
            print(f"{name}: non-conda folder exists at prefix {prefix}", file=sys.stderr)
            return 1
        cache = os.environ.get("FAKE_TOOL_PKGS")
        asyncio.run(
            rattler.install(
                records,
                target_prefix=prefix,
                cache_dir=Path(cache) if cache else None,
                alternative_target_prefix=relocate_to,
                show_progress=False,
            )
        )
        if os.environ.get("FAKE_TOOL_BREAK_AFTER_CREATE"):
            print("simulated failure after linking", file=sys.stderr)
            return 1
    print(json.dumps(out))
    return 0
