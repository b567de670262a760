"""The README's "Deploy to AWS" section documents every config key with its real default and every step."""

from __future__ import annotations

import re
from dataclasses import fields

from components.settings import StackSettings, config_key
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
