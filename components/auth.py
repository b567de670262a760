"""Auth: the Cognito user pool people sign in to, and the public app client the form (and scripts) use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import iam
from components.functions import PythonFunction, python_function
from handlers.presignup import ENV_ALLOWED_EMAIL_DOMAINS
from stackspec.settings import NO_RESERVATION, StackSettings
from stackspec.userpool import app_client_definition, issuer, user_pool_definition

PRESIGNUP_TIMEOUT_SECONDS = 5
"""Cognito waits at most 5 seconds for a Lambda trigger; the check itself takes milliseconds."""


@dataclass
class AuthArgs:
    settings: StackSettings


class Auth(pulumi.ComponentResource):
    """A user pool with email sign-in, and an app client for USER_PASSWORD_AUTH, SRP and refresh tokens.

    `issuer` and `client_id` are what the HTTP API's JWT authorizer checks; the form reads them from `config.json`.
    """

    user_pool: aws.cognito.UserPool
    client: aws.cognito.UserPoolClient
    issuer: pulumi.Output[str]

    def __init__(self, name: str, args: AuthArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("filepipe:auth:Auth", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        settings = args.settings
        pool = user_pool_definition(f"{name}-users", allow_self_sign_up=settings.allow_self_sign_up)
        self.presignup = presignup_function(f"{name}-presignup", self, settings) if settings.allowed_email_domains \
            else None
        triggers = {"lambda_config": aws.cognito.UserPoolLambdaConfigArgs(pre_sign_up=self.presignup.function.arn)} \
            if self.presignup is not None else {}
        # Jobs and files are keyed by the pool's `sub`: a replaced pool would orphan every user's data, so a stack
        # that protects its data protects the pool too (Pulumi's `protect`, and Cognito's deletion protection).
        kept = pulumi.ResourceOptions(parent=self, protect=settings.protect_data)
        self.user_pool = aws.cognito.UserPool(
            f"{name}-users", **user_pool_args(pool), **pool_plan_args(protect=settings.protect_data), **triggers,
            **email_args(settings), opts=kept,
        )
        if self.presignup is not None:
            aws.lambda_.Permission(
                f"{name}-presignup-invoke", action="lambda:InvokeFunction", function=self.presignup.function.name,
                principal="cognito-idp.amazonaws.com", source_arn=self.user_pool.arn, opts=child)
        client = app_client_definition(
            "", f"{name}-web",
            access_token_minutes=settings.access_token_minutes,
            id_token_minutes=settings.id_token_minutes,
            refresh_token_days=settings.refresh_token_days,
        )
        self.client = aws.cognito.UserPoolClient(
            f"{name}-web", user_pool_id=self.user_pool.id, **app_client_args(client), opts=child
        )
        self.region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region
        self.issuer = pulumi.Output.all(self.region, self.user_pool.id).apply(lambda v: issuer(v[0], v[1]))
        self.register_outputs({"userPoolId": self.user_pool.id, "clientId": self.client.id, "issuer": self.issuer})


USER_POOL_TIER = "LITE"
"""Cognito's feature plan (pulumi-aws `user_pool_tier`: LITE, ESSENTIALS or PLUS), set so the bill does not depend
on a console default. Lite is the base plan (AWS: "start with the Lite plan, add advanced authentication and
authorization options with the Essentials plan"); the pool signs in with a password through its own API and uses
none of the advanced options (managed login, passwordless sign-in, threat protection)."""


def pool_plan_args(*, protect: bool) -> dict[str, Any]:
    """The pool's feature plan, and Cognito's deletion protection when the stack's data is protected."""
    return {"user_pool_tier": USER_POOL_TIER, "deletion_protection": "ACTIVE" if protect else "INACTIVE"}


def email_args(settings: StackSettings) -> dict[str, Any]:
    """Cognito's messages through the stack's SES identity (`emailFrom`, `sesIdentityArn`), or Cognito's own
    sender when they are unset. Cognito sends through SES with its service-linked role
    (AmazonCognitoIdpEmailServiceRolePolicy: ses:SendEmail, ses:SendRawEmail); the identity must be verified."""
    if not settings.ses_identity_arn:
        return {}
    return {"email_configuration": aws.cognito.UserPoolEmailConfigurationArgs(
        email_sending_account="DEVELOPER", from_email_address=settings.email_from,
        source_arn=settings.ses_identity_arn)}


def presignup_function(name: str, parent: pulumi.Resource, settings: StackSettings) -> PythonFunction:
    """`handlers.presignup` with the stack's `allowedEmailDomains`, and a role that may only write its logs."""
    return python_function(
        name, parent, module="presignup",
        environment={ENV_ALLOWED_EMAIL_DOMAINS: ",".join(settings.allowed_email_domains)},
        policy=iam.presignup_function_policy,
        log_retention_days=settings.log_retention_days,
        reserved_concurrency=NO_RESERVATION,
        timeout_seconds=PRESIGNUP_TIMEOUT_SECONDS,
        settings=settings,
    )


def user_pool_args(definition: dict[str, Any]) -> dict[str, Any]:
    """Pulumi arguments for `userpool.user_pool_definition` (CreateUserPool shape); the name is Pulumi's to choose."""
    policy = definition["Policies"]["PasswordPolicy"]
    return {
        "username_attributes": definition["UsernameAttributes"],
        "auto_verified_attributes": definition["AutoVerifiedAttributes"],
        "username_configuration": aws.cognito.UserPoolUsernameConfigurationArgs(
            case_sensitive=definition["UsernameConfiguration"]["CaseSensitive"]),
        "password_policy": aws.cognito.UserPoolPasswordPolicyArgs(
            minimum_length=policy["MinimumLength"],
            require_uppercase=policy["RequireUppercase"],
            require_lowercase=policy["RequireLowercase"],
            require_numbers=policy["RequireNumbers"],
            require_symbols=policy["RequireSymbols"],
            temporary_password_validity_days=policy["TemporaryPasswordValidityDays"],
        ),
        "admin_create_user_config": aws.cognito.UserPoolAdminCreateUserConfigArgs(
            allow_admin_create_user_only=definition["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"]),
        "account_recovery_setting": aws.cognito.UserPoolAccountRecoverySettingArgs(recovery_mechanisms=[
            aws.cognito.UserPoolAccountRecoverySettingRecoveryMechanismArgs(name=m["Name"], priority=m["Priority"])
            for m in definition["AccountRecoverySetting"]["RecoveryMechanisms"]
        ]),
        "user_attribute_update_settings": aws.cognito.UserPoolUserAttributeUpdateSettingsArgs(
            attributes_require_verification_before_updates=definition["UserAttributeUpdateSettings"][
                "AttributesRequireVerificationBeforeUpdate"]),
    }


def app_client_args(definition: dict[str, Any]) -> dict[str, Any]:
    """Pulumi arguments for `userpool.app_client_definition` (CreateUserPoolClient shape)."""
    units = definition["TokenValidityUnits"]
    return {
        "generate_secret": definition["GenerateSecret"],
        "explicit_auth_flows": definition["ExplicitAuthFlows"],
        "prevent_user_existence_errors": definition["PreventUserExistenceErrors"],
        "enable_token_revocation": definition["EnableTokenRevocation"],
        "read_attributes": definition["ReadAttributes"],
        "write_attributes": definition["WriteAttributes"],
        "access_token_validity": definition["AccessTokenValidity"],
        "id_token_validity": definition["IdTokenValidity"],
        "refresh_token_validity": definition["RefreshTokenValidity"],
        "token_validity_units": aws.cognito.UserPoolClientTokenValidityUnitsArgs(
            access_token=units["AccessToken"], id_token=units["IdToken"], refresh_token=units["RefreshToken"]),
    }
