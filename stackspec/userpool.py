"""The Cognito user pool and app client, as CreateUserPool / CreateUserPoolClient arguments.

The Auth component turns these into Pulumi arguments and local provisioning sends them to the emulator, so sign-in
works the same on AWS and on a laptop. No Pulumi import here.
"""

from __future__ import annotations

from typing import Any

AUTH_FLOWS = ("ALLOW_USER_PASSWORD_AUTH", "ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH")
"""The form signs in with USER_PASSWORD_AUTH over TLS (no SRP library runs as a static module without a build step);
SRP stays allowed for other clients; refresh tokens keep a session across reloads."""
PASSWORD_POLICY = {
    "MinimumLength": 12,
    "RequireUppercase": True,
    "RequireLowercase": True,
    "RequireNumbers": True,
    "RequireSymbols": False,
    "TemporaryPasswordValidityDays": 7,
}
"""Length over symbol rules (NIST SP 800-63B's advice); what an operator's temporary password must also meet."""
READ_ATTRIBUTES = ("email", "email_verified")
WRITE_ATTRIBUTES = ("email",)
"""What the app client may read and write, set explicitly: left unset, a client may write every writable attribute,
`email_verified` included, so a signed-in user could call UpdateUserAttributes to take any address as verified."""
VERIFY_BEFORE_UPDATE = ("email",)
"""A changed email takes effect only once its code is confirmed; until then the verified address stays in use."""


def user_pool_definition(name: str, *, allow_self_sign_up: bool) -> dict[str, Any]:
    """Email is the sign-in name and is verified by a code; recovery by verified email only."""
    return {
        "PoolName": name,
        "UsernameAttributes": ["email"],
        "AutoVerifiedAttributes": ["email"],
        "UsernameConfiguration": {"CaseSensitive": False},
        "Policies": {"PasswordPolicy": dict(PASSWORD_POLICY)},
        "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": not allow_self_sign_up},
        "AccountRecoverySetting": {"RecoveryMechanisms": [{"Name": "verified_email", "Priority": 1}]},
        "UserAttributeUpdateSettings": {"AttributesRequireVerificationBeforeUpdate": list(VERIFY_BEFORE_UPDATE)},
    }


def app_client_definition(
    pool_id: str, name: str, *, access_token_minutes: int, id_token_minutes: int, refresh_token_days: int
) -> dict[str, Any]:
    """A public client (a browser cannot keep a secret) that may write only the email. Sign-in, password reset and
    confirmation do not tell whether an email has an account (`PreventUserExistenceErrors`); sign-up does, as
    Cognito answers UsernameExistsException to an email that has one."""
    return {
        "UserPoolId": pool_id,
        "ClientName": name,
        "GenerateSecret": False,
        "ExplicitAuthFlows": list(AUTH_FLOWS),
        "PreventUserExistenceErrors": "ENABLED",
        "EnableTokenRevocation": True,
        "ReadAttributes": list(READ_ATTRIBUTES),
        "WriteAttributes": list(WRITE_ATTRIBUTES),
        "AccessTokenValidity": access_token_minutes,
        "IdTokenValidity": id_token_minutes,
        "RefreshTokenValidity": refresh_token_days,
        "TokenValidityUnits": {"AccessToken": "minutes", "IdToken": "minutes", "RefreshToken": "days"},
    }


def issuer(region: str, pool_id: str) -> str:
    """The `iss` of the pool's tokens, which API Gateway's JWT authorizer checks (and local mode likewise)."""
    return f"https://cognito-idp.{region}.amazonaws.com/{pool_id}"


def cognito_endpoint(region: str) -> str:
    """Cognito's user pools API in `region`: where the form signs in on AWS (the site's CSP allows it)."""
    return f"https://cognito-idp.{region}.amazonaws.com"
