"""A small local conda channel of real conda packages, built by the tests themselves (see build.py)."""
