"""The settings reference, generated from the settings model so it cannot drift from it.

:func:`render_default_toml` writes the packaged reference configuration
``ocr_pipeline/resources/ocr-pipeline.toml`` (every key, its default and its meaning; a template
to copy, see :func:`ocr_pipeline.resources.default_config_file`) and
:func:`render_reference_markdown` ``docs/configuration.md``; tests fail when the committed files
differ from them. Regenerate both from the repository root with::

    python -m ocr_pipeline.config_reference > ocr_pipeline/resources/ocr-pipeline.toml
    python -m ocr_pipeline.config_reference --markdown > docs/configuration.md

Defaults that depend on the machine (the per-user models folder, packaged file paths) are shown
by the text of their field's ``json_schema_extra[REFERENCE_DEFAULT]``, commented out in the TOML,
so the generated files are the same on every machine.
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ocr_pipeline.errors import ConfigError
from ocr_pipeline.settings import REFERENCE_DEFAULT, Settings

HEADER = """\
# ocr-pipeline settings. Precedence: defaults < this file < OCR_PIPELINE_* environment < flags.
# Environment names: OCR_PIPELINE_<SECTION>__<KEY>, e.g. OCR_PIPELINE_DETECT__BOX_THRESH=0.5.
# Relative paths are resolved from the current directory. Values below are the defaults.
# Copy this file, edit it and pass it with --config FILE (or OCR_PIPELINE_CONFIG=FILE).
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
        return json.dumps(value.as_posix(), ensure_ascii=False)
    return json.dumps(str(value), ensure_ascii=False)


def _reference_default(field: FieldInfo) -> str | None:
    """The text a machine-specific default is shown as, or None for an ordinary default."""
    extra = field.json_schema_extra
    if isinstance(extra, dict):
        shown = extra.get(REFERENCE_DEFAULT)
        if isinstance(shown, str):
            return shown
    return None


def _key_lines(name: str, field: FieldInfo) -> list[str]:
    lines = [f"# {field.description}"] if field.description else []
    shown = _reference_default(field)
    if shown is not None:
        lines.append(f"# {name} = {shown}")  # machine-specific default: described, not pinned
        return lines
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


def _sections() -> list[tuple[str, type[BaseModel] | None]]:
    """Top-level settings: ``(name, section model)``, model ``None`` for plain keys."""
    out: list[tuple[str, type[BaseModel] | None]] = []
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        is_section = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        out.append((name, annotation if is_section else None))  # type: ignore[arg-type]
    return out


def _type_name(field: FieldInfo) -> str:
    text = str(field.annotation).replace("typing.", "").replace("pathlib.", "")
    return text.removeprefix("<class '").removesuffix("'>")


def _reference_row(key: str, section: str | None, field: FieldInfo) -> str:
    default = (
        _reference_default(field)
        or _toml_value(field.get_default(call_default_factory=True))
        or "(unset)"
    )
    dotted = f"{section}.{key}" if section else key
    env = "OCR_PIPELINE_" + (f"{section.upper()}__{key.upper()}" if section else key.upper())
    meaning = field.description or ""
    return f"| `{dotted}` | `{_type_name(field)}` | `{default}` | `{env}` | {meaning} |"


def render_reference_markdown() -> str:
    """``docs/configuration.md``: every key with its type, default, environment name, meaning."""
    out = [
        "# Configuration reference",
        "",
        "Generated from `ocr_pipeline/settings.py` by `python -m ocr_pipeline.config_reference "
        "--markdown`; a test fails when this page and the settings model disagree.",
        "",
        "Precedence: defaults < the TOML file of `--config FILE` or `$OCR_PIPELINE_CONFIG` "
        "(none by default) < `OCR_PIPELINE_*` environment variables < command-line flags. "
        "The package ships this reference as a TOML file with every key at its default "
        "(`ocr_pipeline/resources/ocr-pipeline.toml` in the installed package), a template "
        "to copy and edit. "
        "`ocr-pipeline config show` prints the effective value of every key and where it came "
        "from; `ocr-pipeline config check FILE` validates a file.",
        "",
    ]
    header = ["| key | type | default | environment | meaning |", "| --- | --- | --- | --- | --- |"]
    plain = [name for name, model in _sections() if model is None]
    out += ["## Top level", "", *header]
    out += [_reference_row(name, None, Settings.model_fields[name]) for name in plain]
    out.append("")
    for name, model in _sections():
        if model is None:
            continue
        out += [f"## [{name}]", "", (model.__doc__ or "").strip().splitlines()[0], "", *header]
        out += [_reference_row(key, name, field) for key, field in model.model_fields.items()]
        out.append("")
    return "\n".join(out)


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def _env_keys(environ: dict[str, str]) -> set[str]:
    keys = set()
    for name in environ:
        if name.startswith("OCR_PIPELINE_") and name != "OCR_PIPELINE_CONFIG":
            keys.add(name.removeprefix("OCR_PIPELINE_").lower().replace("__", "."))
    return keys


def effective_config(
    settings: Settings,
    config_file: Path | None,
    overrides: dict[str, Any],
    environ: dict[str, str],
) -> list[tuple[str, Any, str]]:
    """Every key's effective value and its source: ``flag``, ``env``, ``file`` or ``default``.

    Raises:
        ConfigError: the config file is not valid TOML.

    """
    from_file: set[str] = set()
    if config_file is not None:
        try:
            from_file = set(_flatten(tomllib.loads(config_file.read_text(encoding="utf-8"))))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from exc
    from_flags = set(_flatten(overrides))
    from_env = _env_keys(environ)
    values = _flatten(settings.model_dump(mode="json"))
    rows = []
    for key, value in values.items():
        if key in from_flags:
            source = "flag"
        elif key in from_env:
            source = "env"
        elif key in from_file:
            source = f"file {config_file}"
        else:
            source = "default"
        rows.append((key, value, source))
    return rows


if __name__ == "__main__":
    print(
        render_reference_markdown() if "--markdown" in sys.argv else render_default_toml(), end=""
    )
