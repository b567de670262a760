"""filepipe local mode: the AWS CLI inside a local VM (Amazon Linux 2023 ships AWS CLI v2).

Only what the user-data calls: `aws <service> <command> --option value ...`, each option passed to the boto3
operation of the same name (`--table-name` -> `TableName`), JSON values parsed. Exit status 254 on an AWS error,
as the real CLI, with its message on stderr.
"""

from __future__ import annotations

import json
import sys

import boto3
from botocore.exceptions import ClientError


def parameters(options: list[str]) -> dict[str, object]:
    if len(options) % 2 or not all(name.startswith("--") for name in options[::2]):
        raise SystemExit(f"aws (filepipe local shim): expected --option value pairs, got {options}")
    found: dict[str, object] = {}
    for name, value in zip(options[::2], options[1::2], strict=True):
        key = "".join(part.title() for part in name[2:].split("-"))
        found[key] = json.loads(value) if value.lstrip().startswith(("{", "[")) else value
    return found


def main(argv: list[str]) -> int:
    service, command, *options = argv
    operation = command.replace("-", "_")
    try:
        response = getattr(boto3.client(service), operation)(**parameters(options))
    except ClientError as err:
        print(f"An error occurred ({err.response['Error']['Code']}) when calling the {command} operation: "
              f"{err.response['Error'].get('Message', '')}", file=sys.stderr)
        return 254
    response.pop("ResponseMetadata", None)
    if response:
        print(json.dumps(response, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
