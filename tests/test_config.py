from __future__ import annotations

from pathlib import Path

import pytest

from assistant import ConfigError, Settings
from assistant.encoders import serving_backend


def test_environment_overrides_defaults_and_arguments_override_environment() -> None:
    env = {"NEXUS_MODEL": "my-model", "NEXUS_TOP_K": "7", "NEXUS_INDEX_DIR": "/tmp/x"}
    settings = Settings.from_env(env)
    assert (settings.model, settings.top_k, settings.index_dir) == ("my-model", 7, Path("/tmp/x"))
    assert Settings.from_env(env, top_k=3, model=None).top_k == 3  # None means "flag not given"
    assert Settings.from_env({}).model == "all-MiniLM-L6-v2"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NEXUS_TOP_K": "many"}, "NEXUS_TOP_K='many' is not a valid int"),
        ({"NEXUS_OFFLINE": "perhaps"}, "NEXUS_OFFLINE='perhaps' is not a valid bool"),
        ({"NEXUS_MODE": "fuzzy"}, "mode must be one of hybrid, semantic, keyword"),
        ({"NEXUS_CHUNK_OVERLAP": "200"}, "chunk_overlap must be between 0 and half"),
        ({"NEXUS_TOP_K": "0"}, "top_k must be at least 1"),
        ({"NEXUS_KEYWORD_B": "1.5"}, "keyword_b in \\[0, 1\\]"),
        ({"NEXUS_KEYWORD_K1": "0"}, "keyword_k1 must be above 0"),
        ({"NEXUS_SPLIT_IDENTIFIERS": "yes"}, "split_identifiers must be one of none, mixed, all"),
    ],
)
def test_invalid_values_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_unknown_override_is_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        Settings.from_env({}, colour="blue")


def test_boolean_spellings() -> None:
    assert Settings.from_env({"NEXUS_OFFLINE": "no"}).offline is False
    assert Settings.from_env({"NEXUS_OFFLINE": "ON"}).offline is True


def test_backend_comes_from_the_environment_and_is_checked() -> None:
    assert Settings.from_env({"NEXUS_BACKEND": "onnx"}).backend == "onnx"
    assert Settings.from_env({"NEXUS_BACKEND": "onnx"}, backend="torch").backend == "torch"
    with pytest.raises(ConfigError, match="backend must be one of torch, onnx, onnx-int8"):
        Settings(backend="tensorrt")
    with pytest.raises(ConfigError, match="threads"):
        Settings(threads=-1)


@pytest.mark.parametrize(
    ("requested", "built_with", "served"),
    [
        ("onnx", "torch", "onnx"),  # fp32 vectors either way: the faster backend serves
        ("torch", "onnx", "torch"),
        ("torch", "onnx-int8", "onnx-int8"),  # int8 vectors need int8 queries
        ("onnx-int8", "torch", "onnx"),  # fp32 index: fp32 vectors on the runtime asked for
        ("onnx-int8", "onnx", "onnx"),
        ("onnx", "hash", "onnx"),  # unknown builders are left to the probe check
    ],
)
def test_queries_are_embedded_on_a_backend_matching_the_index(
    requested: str, built_with: str, served: str
) -> None:
    assert serving_backend(requested, built_with) == served


def test_model_exports_live_in_the_xdg_cache_unless_configured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert Settings().encoder_cache == tmp_path / "xdg" / "nexus" / "encoders"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert Settings().encoder_cache == Path.home() / ".cache" / "nexus" / "encoders"
    configured = Settings.from_env({"NEXUS_ENCODER_CACHE": str(tmp_path / "exports")})
    assert configured.encoder_cache == tmp_path / "exports"


def test_collections_are_named_index_folders_in_order() -> None:
    from assistant.config import parse_collections

    found = parse_collections(["hub=index", "django = /srv/dj"])
    assert list(found.items()) == [("hub", Path("index")), ("django", Path("/srv/dj"))]


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (["index"], "a collection is NAME=INDEX_DIR"),
        (["hub="], "a collection is NAME=INDEX_DIR"),
        (["../x=index"], "collection name '../x' must be letters"),
        (["hub=a", "hub=b"], "collection 'hub' is given twice"),
    ],
)
def test_a_malformed_collection_is_refused_with_the_form_it_needs(
    specs: list[str], message: str
) -> None:
    from assistant.config import parse_collections

    with pytest.raises(ConfigError, match=message):
        parse_collections(specs)
