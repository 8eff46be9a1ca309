"""Fixtures shared by the unit tests."""

# `world`: two versions of a tiny wheel and its smoke test, in a clean pip configuration (helpers/venv_world.py),
# offered to every test that installs it; `fake_image_lock`: the image lock without an index (helpers/fake_lock.py).
# Helpers live in tests/unit/helpers/ and tests/ (pytest's pythonpath); no test module imports another.
from fake_lock import fake_image_lock
from venv_world import world

__all__ = ["fake_image_lock", "world"]
