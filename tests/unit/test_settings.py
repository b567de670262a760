"""Config parsing: defaults deploy out of the box, overrides reach the settings, bad values are refused clearly."""

from __future__ import annotations

import pytest

from components.settings import MIB, StackSettings, api_config, config_key, site_config


def test_defaults_need_no_config() -> None:
    settings = StackSettings.from_config({}.get)
    assert settings == StackSettings()
    assert settings.max_file_bytes == 10 * MIB


def test_overrides_are_parsed_by_type() -> None:
    config = {"instanceType": "t4g.small", "maxFileMb": "25", "extraOrigins": '["https://a.example", "https://b.example"]'}
    settings = StackSettings.from_config(config.get)
    assert settings.instance_type == "t4g.small"
    assert settings.max_file_bytes == 25 * MIB
    assert settings.extra_origins == ("https://a.example", "https://b.example")


def test_comma_separated_origins() -> None:
    settings = StackSettings.from_config({"extraOrigins": "https://a.example, https://b.example"}.get)
    assert settings.extra_origins == ("https://a.example", "https://b.example")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("maxFileMb", "0", "maxFileMb must be between 1 and 5120"),
        ("maxFileMb", "6000", "maxFileMb must be between 1 and 5120"),
        ("maxFileMb", "ten", "maxFileMb must be a whole number"),
        ("maxConcurrentVms", "0", "maxConcurrentVms must be at least 1"),
        ("jobTimeoutMinutes", "-3", "jobTimeoutMinutes must be at least 1"),
    ],
)
def test_bad_values_are_refused_with_the_key_named(key: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StackSettings.from_config({key: value}.get)


def test_config_key_is_camel_case() -> None:
    assert config_key("max_concurrent_vms") == "maxConcurrentVms"
    assert config_key("instance_type") == "instanceType"


def test_api_config_and_site_config_carry_the_same_limits() -> None:
    settings = StackSettings(max_file_mb=3, max_text_length=99)
    env = api_config("bucket", "table", settings).to_env()
    site = site_config(settings)
    assert int(env["MAX_FILE_BYTES"]) == site["maxFileBytes"] == 3 * MIB
    assert int(env["MAX_TEXT_LENGTH"]) == site["maxTextLength"] == 99
    assert env["BUCKET_NAME"] == "bucket" and env["TABLE_NAME"] == "table"
