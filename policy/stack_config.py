"""The policy pack's config for one stack, from its `Pulumi.<stack>.yaml`: `python -m policy.stack_config dev`
prints the JSON that `pulumi preview --policy-pack policy --policy-pack-config <file>` reads (the Pulumi action's
`policyPackConfigs`). The pack runs apart from the program and cannot read the stack's config itself.

Run from the repository root with its virtualenv (it validates the stack's settings as the program does).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from stackspec.settings import PROJECT, StackSettings, config_key

ROOT = Path(__file__).resolve().parents[1]
BOUNDED_ROLES = "iam-roles-bounded"
"""`policy/rules.py`'s rule of the same name (that module imports only the policy SDK)."""


def pack_config(stack_file: Path) -> dict[str, Any]:
    """`{"iam-roles-bounded": {"rolePath": ..., "permissionsBoundary": ...}}`, empty strings when unset."""
    values = (yaml.safe_load(stack_file.read_text(encoding="utf-8")) or {}).get("config") or {}
    settings = StackSettings.from_config(lambda key: _plain(values.get(f"{PROJECT}:{key}")))
    return {BOUNDED_ROLES: {config_key("role_path"): settings.role_path,
                            config_key("permissions_boundary"): settings.permissions_boundary}}


def _plain(value: Any) -> str | None:
    """A YAML value as `pulumi config get` would print it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m policy.stack_config <stack>", file=sys.stderr)
        return 2
    stack_file = ROOT / f"Pulumi.{argv[0]}.yaml"
    if not stack_file.is_file():
        print(f"no stack file {stack_file.name}", file=sys.stderr)
        return 2
    try:
        config = pack_config(stack_file)
    except ValueError as err:  # the stack's settings are refused, as `pulumi preview` would refuse them
        print(f"{stack_file.name}: {err}", file=sys.stderr)
        return 2
    print(json.dumps(config))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
