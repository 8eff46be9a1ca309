"""fwsetup: set up deep-learning frameworks on a machine and prove they train."""

from __future__ import annotations

__version__ = "0.1.0"
