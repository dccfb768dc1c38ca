"""The settings reference, generated from the settings model so it cannot drift from it.

:func:`render_default_toml` writes ``config/ocr-pipeline.toml`` (every key, its default and its
meaning); a test fails when the committed file differs from it. Regenerate with::

    python -m ocr_pipeline.config_reference > config/ocr-pipeline.toml
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ocr_pipeline.settings import PROJECT_ROOT, Settings

HEADER = """\
# ocr-pipeline settings. Precedence: defaults < this file < OCR_PIPELINE_* environment < flags.
# Environment names: OCR_PIPELINE_<SECTION>__<KEY>, e.g. OCR_PIPELINE_DETECT__BOX_THRESH=0.5.
# Relative paths are resolved from the current directory. Values below are the defaults.
# Generated from ocr_pipeline/settings.py by `python -m ocr_pipeline.config_reference`.
"""


def _toml_value(value: Any) -> str | None:
    """A default as a TOML literal; ``None`` for values TOML cannot hold (unset paths)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        items = [_toml_value(item) for item in value]
        return "[" + ", ".join(item for item in items if item is not None) + "]"
    if isinstance(value, Path):
        shown = value.relative_to(PROJECT_ROOT) if value.is_relative_to(PROJECT_ROOT) else value
        return json.dumps(shown.as_posix())
    return json.dumps(str(value), ensure_ascii=False)


def _key_lines(name: str, field: FieldInfo) -> list[str]:
    lines = [f"# {field.description}"] if field.description else []
    default = field.get_default(call_default_factory=True)
    literal = _toml_value(default)
    if literal is None:
        lines.append(f"# {name} = (unset)")
    elif isinstance(default, Path) and default.is_absolute():
        lines.append(f"# {name} = {literal}")  # machine-specific default: shown, not pinned
    else:
        lines.append(f"{name} = {literal}")
    return lines


def render_default_toml() -> str:
    """The default configuration file: every key with its default and description."""
    out = [HEADER]
    sections: list[tuple[str, type[BaseModel]]] = []
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            sections.append((name, annotation))
        else:
            out.extend(_key_lines(name, field))
            out.append("")
    for name, model in sections:
        out.append(f"[{name}]")
        if model.__doc__:
            out.append(f"# {model.__doc__.strip().splitlines()[0]}")
        for key, field in model.model_fields.items():
            out.extend(_key_lines(key, field))
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


if __name__ == "__main__":
    print(render_default_toml(), end="")
