"""Recipes: the data in recipes/*.toml, never code. `schema` holds their types, `validate` checks one file's
data (every problem named by file and key), `load` reads the files (shipped, overlaid by a user's folder) and
keeps the validated set cached; `parsers` holds the cached PEP 440 / 508 parsers the rest shares.
Compatibility facts (CUDA -> minimum driver, ...) live in data/ (see compat.py)."""
