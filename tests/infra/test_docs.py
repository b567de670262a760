"""The README's "Deploy to AWS" section documents every config key with its real default and every step."""

from __future__ import annotations

import re
from dataclasses import fields

from stackspec.settings import StackSettings, config_key
from tests.infra.conftest import ROOT

ROW = re.compile(r"^\| `(?P<key>[A-Za-z]+)` \| (?P<default>[^|]+) \|", re.MULTILINE)


def deploy_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Deploy to AWS")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def documented_defaults() -> dict[str, str]:
    text = deploy_section()
    return {m["key"]: m["default"].strip() for m in ROW.finditer(text)}


def shown(value: object) -> str:
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        return "(none)" if not value else ", ".join(f"`{v}`" for v in value)
    if value == "":
        return "(none)"
    return f"`{value}`"


def test_config_table_lists_every_key_with_its_default() -> None:
    """Regression: a key added to StackSettings but not documented, or a default changed in code only."""
    defaults = StackSettings()
    expected = {config_key(f.name): shown(getattr(defaults, f.name)) for f in fields(StackSettings)}
    assert documented_defaults() == expected


def test_deploy_steps_are_all_there() -> None:
    """Regression: a step a new user needs (credentials, stack init, destroy) dropped from the guide."""
    text = deploy_section()
    for step in ("get.pulumi.com", "aws sts get-caller-identity", "pulumi stack init dev", "pulumi config set",
                 "pulumi up", "pulumi stack output siteUrl", "pulumi destroy"):
        assert step in text, step


def setup_section() -> str:
    text = deploy_section()
    start = text.index("### Set up review and deploy")
    end = text.find("\n### ", start + 1)
    return text[start:end if end != -1 else len(text)]


def test_setup_names_every_variable_and_secret_the_workflows_read() -> None:
    """Regression: a workflow reading `vars.X` or `secrets.Y` that the set-up steps never tell anyone to create,
    so the first preview fails on an empty role ARN or token."""
    workflows = "".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / ".github").rglob("*.yml")))
    names = set(re.findall(r"\b(?:vars|secrets)\.([A-Z_]+)", workflows))
    assert names >= {"AWS_REGION", "AWS_PREVIEW_ROLE_ARN", "AWS_DEV_DEPLOY_ROLE_ARN", "AWS_PROD_DEPLOY_ROLE_ARN",
                     "PULUMI_ACCESS_TOKEN", "SMOKE_EMAIL", "SMOKE_PASSWORD"}
    missing = [name for name in sorted(names) if f"`{name}`" not in setup_section()]
    assert not missing, missing


def test_setup_sets_every_key_the_ci_identity_program_reads() -> None:
    """Regression: a config key of deploy/ci-identity (e.g. `subjectPrefix`) missing from the set-up steps."""
    program = (ROOT / "deploy" / "ci-identity" / "__main__.py").read_text(encoding="utf-8")
    keys = set(re.findall(r"config\.(?:get|require)\(\"([A-Za-z]+)\"\)", program))
    assert "subjectPrefix" in keys
    missing = [key for key in sorted(keys) if key not in setup_section()]
    assert not missing, missing
