"""`make invite EMAIL=ada@example.com STACK=prod`: an operator creates a user of a stack whose self sign-up is off.

Cognito's AdminCreateUser with the email as the (verified) sign-in name: Cognito mails a temporary password, and
the page asks for a new one at the first sign-in. The pool is the stack's `userPoolId` output (`pulumi stack output
userPoolId --stack STACK`), or `--pool-id` to name it directly (tests, or without the Pulumi CLI). Credentials and
region come from the usual AWS environment; the region defaults to the pool id's own (`<region>_<id>`).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from stackspec.settings import EMAIL

StackOutput = Callable[[str, str], str]


class InviteError(Exception):
    """What to tell the operator, in one line."""


def pulumi_output(stack: str, name: str) -> str:
    """`pulumi stack output <name> --stack <stack>`."""
    try:
        done = subprocess.run(["pulumi", "stack", "output", name, "--stack", stack], capture_output=True, text=True,
                              check=False, timeout=120)
    except FileNotFoundError:
        raise InviteError("the Pulumi CLI is not installed: give the pool with --pool-id") from None
    if done.returncode != 0 or not done.stdout.strip():
        raise InviteError(f"cannot read output {name} of stack {stack!r}: {done.stderr.strip() or 'empty'}")
    return done.stdout.strip()


def pool_id_of(stack: str | None, pool_id: str | None, output: StackOutput = pulumi_output) -> str:
    if pool_id:
        return pool_id
    if not stack:
        raise InviteError("say which stack: STACK=dev|prod (or --pool-id)")
    return output(stack, "userPoolId")


def invite(cognito: Any, pool_id: str, email: str) -> str:
    """Create the user; Cognito mails the temporary password. Returns the new user's `sub`."""
    try:
        created = cognito.admin_create_user(
            UserPoolId=pool_id, Username=email, DesiredDeliveryMediums=["EMAIL"],
            UserAttributes=[{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}],
        )
    except ClientError as err:
        code = err.response["Error"]["Code"]
        if code == "UsernameExistsException":
            raise InviteError(f"{email} already has an account in pool {pool_id}") from None
        raise InviteError(f"Cognito refused: {code}: {err.response['Error'].get('Message', '')}") from None
    attributes = {a["Name"]: a["Value"] for a in created["User"].get("Attributes", [])}
    return str(attributes.get("sub", created["User"]["Username"]))


def checked_email(email: str | None) -> str:
    value = (email or "").strip()
    if not EMAIL.fullmatch(value):
        raise InviteError(f"EMAIL must be one email address, got {email!r}")
    return value


def main(argv: Sequence[str], output: StackOutput = pulumi_output) -> int:
    parser = argparse.ArgumentParser(prog="make invite", description=__doc__.split("\n\n")[0])
    parser.add_argument("--email", help="the new user's email (EMAIL=...)")
    parser.add_argument("--stack", help="the Pulumi stack (STACK=...)")
    parser.add_argument("--pool-id", help="the user pool id, instead of the stack's output")
    parser.add_argument("--region", help="default: the pool id's region")
    parser.add_argument("--endpoint-url", help=argparse.SUPPRESS)  # tests: an emulator
    args = parser.parse_args(argv)
    try:
        email = checked_email(args.email)
        pool_id = pool_id_of(args.stack, args.pool_id, output)
        region = args.region or pool_id.split("_", 1)[0]
        cognito = boto3.client("cognito-idp", region_name=region, endpoint_url=args.endpoint_url)
        sub = invite(cognito, pool_id, email)
    except (InviteError, BotoCoreError) as error:
        print(f"invite: {error}", file=sys.stderr)
        return 1
    print(f"Invited {email} (user {sub}) to pool {pool_id}: Cognito mails a temporary password; the page asks for "
          "a new one at the first sign-in.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
