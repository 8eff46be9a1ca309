"""The unit tests mirror the source tree, so a reader finds a module's tests by its name.

`tests/unit/<package>/test_<module>.py` tests `src/fwsetup/<package>/<module>.py` (a top-level module:
`tests/unit/test_<module>.py`; a package's `__init__.py`: `test_<package>.py` in its folder), and a test of one
module by a concern is `test_<module>_<concern>.py` beside it. When a module moves, its tests move with it
(`git mv`): this test names each file that was left behind and where it goes. Helpers shared by several test
files are modules of their own (tests/unit/helpers/, tests/), never imported from another test file.
"""

from __future__ import annotations

import ast
from pathlib import Path

UNIT = Path(__file__).resolve().parent
SRC = UNIT.parents[1] / "src" / "fwsetup"

# Unit tests of something that is not a module of src/fwsetup. Keep this short: a test of a module goes to its
# mirrored place, even when it reaches the module through the CLI (then under tests/unit/cli/).
CROSS_CUTTING = {
    "test_layout.py": "this check: the layout of tests/unit itself",
    "test_gpu_check_script.py": "scripts/gpu-check, a script for lent GPU machines, not a module of src/fwsetup",
    "test_import_graph.py": "the layer contract of the whole of src/fwsetup (import-linter), not one module",
}


def _modules(package: Path) -> set[str]:
    """The names a test file in the mirror of `package` may start with: its modules, and its own name (its
    __init__.py) unless it is the top of fwsetup."""
    names = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    if package != SRC and (package / "__init__.py").is_file():
        names.add(package.name)
    return names


def _tests(name: str, module: str) -> bool:
    stem = name.removeprefix("test_").removesuffix(".py")
    return stem == module or stem.startswith(module + "_")


def _where_it_goes(test: Path) -> str:
    """Where a misplaced test file belongs: beside the module it is named after, wherever that module is now."""
    homes = []
    for package in [SRC, *sorted(p for p in SRC.rglob("*") if p.is_dir() and (p / "__init__.py").is_file())]:
        for module in _modules(package):
            if _tests(test.name, module):
                homes.append((len(module), package))
    if not homes:
        return (
            "no module of src/fwsetup has that name: rename it test_<module>.py or test_<module>_<concern>.py "
            "after the module it tests, in that module's mirrored folder"
        )
    longest = max(length for length, _ in homes)
    places = sorted(
        str((UNIT / package.relative_to(SRC) / test.name).relative_to(UNIT.parents[1]))
        for length, package in homes
        if length == longest
    )
    return f"move it (git mv) to {' or '.join(places)}, beside the module it tests"


def test_every_unit_test_file_is_at_the_mirror_of_the_module_it_tests() -> None:
    wrong = []
    for test in sorted(UNIT.rglob("test_*.py")):
        rel = test.relative_to(UNIT)
        if rel.parts[0] == "helpers":
            wrong.append(
                f"tests/unit/{rel}: tests/unit/helpers/ holds helpers, not tests; move it to its module's mirror"
            )
            continue
        if len(rel.parts) == 1 and test.name in CROSS_CUTTING:
            continue
        package = SRC.joinpath(*rel.parts[:-1])
        if not (package / "__init__.py").is_file() and package != SRC:
            wrong.append(
                f"tests/unit/{rel}: src/fwsetup/{rel.parent}/ is not a package of fwsetup; {_where_it_goes(test)}"
            )
        elif not any(_tests(test.name, module) for module in _modules(package)):
            wrong.append(
                f"tests/unit/{rel}: no module src/fwsetup/{rel.parent / test.name.removeprefix('test_')} "
                f"(or a prefix of its name) here; {_where_it_goes(test)}"
            )
    assert not wrong, "unit test files not at the mirror of the module they test:\n" + "\n".join(wrong)


def test_the_cross_cutting_list_names_files_that_exist() -> None:
    missing = [name for name in CROSS_CUTTING if not (UNIT / name).is_file()]
    assert not missing, f"CROSS_CUTTING in tests/unit/test_layout.py names files that are gone: {missing}"


def test_no_test_file_imports_another_and_no_test_folder_is_a_package() -> None:
    # With --import-mode=importlib (pyproject.toml) test files are not importable by their names, and
    # cli/test_doctor.py and test_doctor.py share one: shared helpers live in tests/unit/helpers/ or tests/.
    wrong = [
        f"{p.relative_to(UNIT.parent)}: test folders have no __init__.py" for p in UNIT.rglob("__init__.py")
    ]
    for test in sorted((UNIT.parent).rglob("test_*.py")):
        for node in ast.walk(ast.parse(test.read_text(), str(test))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            for name in names:
                if name.startswith(("tests.", "test_")) or ".test_" in name:
                    wrong.append(
                        f"{test.relative_to(UNIT.parents[1])}:{node.lineno} imports {name}: move what it "
                        "shares into a helper module (tests/unit/helpers/ or tests/)"
                    )
    assert not wrong, "\n".join(wrong)
