"""Files shipped inside the package (package data), found with :mod:`importlib.resources`.

* ``models.toml``: the registry of pinned models (the default of ``models.registry``);
* ``confusables.toml``: the look-alike character table (the default of ``correct.confusables``);
* ``lexicons/NAME.txt``: lexicons that ``--lexicon NAME`` / ``correct.lexicons`` may name bare;
* ``ocr-pipeline.toml``: the generated reference configuration (every key at its default), a
  template to copy and edit; it is never read implicitly, since it only restates the defaults.

They are read from wherever the package is installed (a wheel in ``site-packages``, an editable
checkout), never from the current directory. Model weights are not package data: they live in
``models.dir`` (by default a per-user data folder).
"""

from __future__ import annotations

import atexit
import contextlib
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

REGISTRY = "models.toml"
CONFUSABLES = "confusables.toml"
DEFAULT_CONFIG = "ocr-pipeline.toml"
LEXICONS = "lexicons"
LEXICON_SUFFIX = ".txt"

_extracted = contextlib.ExitStack()
atexit.register(_extracted.close)


def _root() -> Traversable:
    return resources.files(__name__)


def _as_path(resource: Traversable) -> Path:
    """A real file-system path of a packaged file.

    From an ordinary installation this is the file itself; from a zip import the file is
    extracted to a temporary file that lives until the interpreter exits.
    """
    if isinstance(resource, Path):
        return resource
    return _extracted.enter_context(resources.as_file(resource))


def packaged_file(name: str) -> Path:
    """The path of a packaged file, e.g. ``packaged_file("models.toml")``.

    Args:
        name: a path relative to the resources folder, ``/``-separated (``lexicons/x.txt``).

    Raises:
        FileNotFoundError: the package holds no such file (a broken installation).
    """
    resource = _root().joinpath(*name.split("/"))
    if not resource.is_file():
        raise FileNotFoundError(
            f"packaged file {name} is missing from ocr_pipeline/resources; reinstall ocr-pipeline"
        )
    return _as_path(resource)


def registry_file() -> Path:
    """The packaged model registry, ``models.toml``."""
    return packaged_file(REGISTRY)


def confusables_file() -> Path:
    """The packaged look-alike table, ``confusables.toml``."""
    return packaged_file(CONFUSABLES)


def default_config_file() -> Path:
    """The packaged reference configuration, ``ocr-pipeline.toml`` (every key at its default)."""
    return packaged_file(DEFAULT_CONFIG)


def packaged_lexicons() -> dict[str, Path]:
    """The packaged lexicons by bare name (file name without ``.txt``), sorted by name."""
    folder = _root().joinpath(LEXICONS)
    if not folder.is_dir():
        return {}
    found = {
        entry.name.removesuffix(LEXICON_SUFFIX): entry
        for entry in folder.iterdir()
        if entry.is_file() and entry.name.endswith(LEXICON_SUFFIX)
    }
    return {name: _as_path(found[name]) for name in sorted(found)}


def resolve_lexicon(path: Path) -> Path:
    """A lexicon setting as a file: the path itself, or the packaged lexicon it names bare.

    A path that exists, or that has a folder part (``./x``, ``lexicons/x.txt``), is returned
    unchanged, so a user's file always wins. A bare name with no such file in the current
    directory (``business`` or ``business.txt``) names the packaged lexicon of that name.

    Args:
        path: the value of ``--lexicon`` or one of ``correct.lexicons``.

    Returns:
        The path to read; it may not exist (the reader reports that, see
        :func:`ocr_pipeline.correct.lexicon.read_lexicon`).
    """
    if path.exists() or len(path.parts) != 1:
        return path
    name = path.name.removesuffix(LEXICON_SUFFIX)
    return packaged_lexicons().get(name, path)
