"""Finding the three CSV files of a directory (from a folder, or named one by one)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tickets.directory_import import CATEGORIES, DEPARTMENTS, FILES, ITEMS

# How a file's name tells which of the three it is (``items-2026.csv`` is the items).
PREFIXES = {CATEGORIES: "categor", DEPARTMENTS: "department", ITEMS: "item"}


class FilesNotFound(ValueError):
    pass


def directory_files(paths: Iterable[Path]) -> dict[str, Path]:
    """``categories.csv``/``departments.csv``/``items.csv`` → the path holding it: a single
    folder holding the three, or three files whose names start like them."""
    paths = list(paths)
    if len(paths) == 1 and paths[0].is_dir():
        found = {name: paths[0] / name for name in FILES}
        missing = [str(path) for path in found.values() if not path.is_file()]
        if missing:
            raise FilesNotFound(f"not found: {', '.join(missing)}")
        return found
    if len(paths) != 3:
        raise FilesNotFound(
            "give a folder holding categories.csv, departments.csv and items.csv,"
            " or the three files"
        )
    found = {}
    for path in paths:
        names = [n for n, prefix in PREFIXES.items() if path.name.lower().startswith(prefix)]
        if len(names) != 1 or names[0] in found:
            raise FilesNotFound(
                f"{path.name}: name the files categories*.csv, departments*.csv and items*.csv"
            )
        if not path.is_file():
            raise FilesNotFound(f"not found: {path}")
        found[names[0]] = path
    return found
