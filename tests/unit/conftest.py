"""Fixtures shared by the unit tests."""

# `world`: two versions of a tiny wheel and its smoke test, in a clean pip configuration. Defined beside the
# staged-install tests it was written for; offered here to every test that installs it.
from fake_lock import fake_image_lock
from test_install_staged import world

__all__ = ["fake_image_lock", "world"]
