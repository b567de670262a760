"""Config parsing: defaults deploy out of the box, overrides reach the settings, bad values are refused clearly."""

from __future__ import annotations

from dataclasses import dataclass, fields

import pytest

from handlers import jobmodel
from handlers.config import ApiConfig, EnvConfig, LauncherConfig
from stackspec.settings import (
    MIB,
    StackSettings,
    api_config,
    config_key,
    launcher_config,
    settings_from_mapping,
    site_config,
)


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
        ("ebsKmsKeyArn", "arn:aws:kms:eu-west-1:123456789012:alias/ebs", "ebsKmsKeyArn must be a KMS key ARN"),
        ("ebsKmsKeyArn", "1234abcd-12ab-34cd-56ef-1234567890ab", "ebsKmsKeyArn must be a KMS key ARN"),
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
    site = site_config(settings, region="eu-west-1", user_pool_id="eu-west-1_pool", client_id="client")
    assert int(env["MAX_FILE_BYTES"]) == site["maxFileBytes"] == 3 * MIB
    assert int(env["MAX_TEXT_LENGTH"]) == site["maxTextLength"] == 99
    assert env["BUCKET"] == "bucket" and env["TABLE"] == "table"


def test_each_function_reads_back_the_config_its_environment_was_written_from() -> None:
    """Regression: a variable written under one name and read under another, or two fields swapped, reaches the
    function as a KeyError on its first call or as the wrong limit. Every value differs, so a swap shows."""
    settings = StackSettings(max_file_mb=3, max_text_length=99, upload_expiry_seconds=61, download_expiry_seconds=62,
                             max_active_jobs_per_user=7, max_concurrent_vms=5, job_timeout_minutes=11, retention_days=8)
    api = api_config("bucket", "table", settings)
    launcher = launcher_config("table", "lt-1", ["subnet-a", "subnet-b"], stack_tag="tag", settings=settings)
    for config, read_back in ((api, ApiConfig.from_env(api.to_env())),
                              (launcher, LauncherConfig.from_env(launcher.to_env()))):
        assert read_back == config
        assert len(set(config.to_env().values())) == len(config.to_env()), "two variables hold the same value"


STACK_VALUES = frozenset({"bucket", "table", "launch_template_id", "subnet_ids", "stack_tag"})
"""Handler config fields the stack makes (names, ids), not `pulumi config` keys."""


@pytest.mark.parametrize("kind", [ApiConfig, LauncherConfig])
def test_a_handler_config_field_has_the_name_of_its_settings_field(kind: type) -> None:
    """Regression: one value carried four names (`maxActiveJobsPerUser` -> `max_active_jobs_per_user` ->
    `max_active_jobs` -> `MAX_ACTIVE_JOBS_PER_USER`). Every field a handler reads from the stack's settings has the
    settings field's name, and its variable is that name in upper case."""
    settings = {f.name for f in fields(StackSettings)} | {"max_file_bytes"}  # max_file_mb in bytes
    renamed = {f.name for f in fields(kind)} - STACK_VALUES - settings
    assert not renamed, f"{kind.__name__} fields that are no settings field: {sorted(renamed)}"
    config = (api_config("b", "t", StackSettings()) if kind is ApiConfig
              else launcher_config("t", "lt", ["s"], stack_tag="tag", settings=StackSettings()))
    assert set(config.to_env()) == {f.name.upper() for f in fields(kind)}


def test_a_malformed_or_missing_variable_is_named() -> None:
    env = api_config("b", "t", StackSettings()).to_env()
    with pytest.raises(ValueError, match="MAX_TEXT_LENGTH must be a whole number"):
        ApiConfig.from_env({**env, "MAX_TEXT_LENGTH": "many"})
    with pytest.raises(KeyError, match="MAX_CONCURRENT_VMS"):
        ApiConfig.from_env({k: v for k, v in env.items() if k != "MAX_CONCURRENT_VMS"})
    launcher = launcher_config("t", "lt", ["s"], stack_tag="tag", settings=StackSettings()).to_env()
    with pytest.raises(ValueError, match="SUBNET_IDS names no subnet"):
        LauncherConfig.from_env({**launcher, "SUBNET_IDS": ""})


@dataclass(frozen=True)
class EveryKind(EnvConfig):
    name: str
    count: int
    enabled: bool
    ids: tuple[str, ...]


@pytest.mark.parametrize("enabled", [True, False])
def test_every_field_kind_reads_back_as_written(enabled: bool) -> None:
    """Regression: a bool written as `False` and read back as a non-empty string, which is true."""
    config = EveryKind(name="n", count=3, enabled=enabled, ids=("a", "b"))
    assert EveryKind.from_env(config.to_env()) == config
    assert config.to_env() == {"NAME": "n", "COUNT": "3", "ENABLED": str(enabled).lower(), "IDS": "a,b"}
    with pytest.raises(ValueError, match="ENABLED must be true or false"):
        EveryKind.from_env({**config.to_env(), "ENABLED": "yes"})


def test_site_config_names_the_pool_and_client_and_an_endpoint_only_where_given() -> None:
    """The form signs in with these; `endpoint` must be absent on AWS (the SDK default) and present locally."""
    settings = StackSettings(allow_self_sign_up=False)
    on_aws = site_config(settings, region="eu-west-1", user_pool_id="eu-west-1_pool", client_id="client")
    assert on_aws["auth"] == {"region": "eu-west-1", "userPoolId": "eu-west-1_pool", "clientId": "client"}
    assert on_aws["selfSignUp"] is False
    local = site_config(settings, region="us-east-1", user_pool_id="p", client_id="c", auth_endpoint="http://h:1")
    assert local["auth"]["endpoint"] == "http://h:1"


@pytest.mark.parametrize(("raw", "parsed"), [("true", True), ("False", False), (" TRUE ", True)])
def test_boolean_keys_read_true_and_false(raw: str, parsed: bool) -> None:
    assert settings_from_mapping({"allowSelfSignUp": raw}).allow_self_sign_up is parsed


@pytest.mark.parametrize("values", [
    {"allowSelfSignUp": "yes"}, {"maxActiveJobsPerUser": "0"}, {"accessTokenMinutes": "4"},
    {"idTokenMinutes": "1441"}, {"refreshTokenDays": "0"}, {"uploadGrantsPerHour": "0"},
    {"allowedEmailDomains": "Example.com"}, {"allowedEmailDomains": "example.com,@evil"},
    {"sesIdentityArn": "arn:aws:iam::123456789012:user/x", "emailFrom": "a@example.com"},
    {"emailFrom": "no address", "sesIdentityArn": "arn:aws:ses:eu-west-1:123456789012:identity/example.com"},
])
def test_account_settings_out_of_range_are_refused_naming_the_key(values: dict[str, str]) -> None:
    key = next(iter(values))
    with pytest.raises(ValueError, match=key):
        settings_from_mapping(values)


@pytest.mark.parametrize("values", [{"emailFrom": "a@example.com"},
                                    {"sesIdentityArn": "arn:aws:ses:eu-west-1:123456789012:identity/example.com"}])
def test_the_ses_sender_needs_both_its_address_and_its_identity(values: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="emailFrom and sesIdentityArn go together"):
        settings_from_mapping(values)


def test_protect_data_is_true_or_false_and_nothing_else() -> None:
    """Regression: `protectData yes` (or a typo) silently read as false, leaving prod's data unprotected."""
    assert settings_from_mapping({"protectData": "true", "alarmEmail": "ops@example.org"}).protect_data is True
    assert settings_from_mapping({"protectData": "False"}).protect_data is False
    with pytest.raises(ValueError, match="protectData must be true or false"):
        settings_from_mapping({"protectData": "yes"})


def test_retention_days_is_zero_or_a_number_of_days() -> None:
    """Regression: a negative retention reaching S3 (which rejects the lifecycle rule at deploy time)."""
    assert settings_from_mapping({"retentionDays": "30"}).retention_days == 30
    assert StackSettings().retention_days == 0, "by default nothing expires"
    with pytest.raises(ValueError, match="retentionDays"):
        settings_from_mapping({"retentionDays": "-1"})


def test_site_config_tells_the_form_the_retention() -> None:
    """Regression: the form promising to keep files forever while the stack deletes them after N days."""
    config = site_config(settings_from_mapping({"retentionDays": "9"}), region="r", user_pool_id="p", client_id="c")
    assert config["retentionDays"] == 9


def test_site_config_tells_the_page_the_job_states_from_the_model() -> None:
    """Regression: the page kept its own copy of the job states (states.js), which a new state or a change of what a
    state allows left behind."""
    config = site_config(StackSettings(), region="r", user_pool_id="p", client_id="c")
    assert config["jobStates"] == jobmodel.public_states()
