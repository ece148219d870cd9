from __future__ import annotations

from pathlib import Path

import pytest

from assistant import ConfigError, Settings


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
