"""Auth: the Cognito user pool and app client, and the HTTP API's JWT authorizer on every route but health."""

from __future__ import annotations

import json

from handlers.routes import ROUTES
from tests.infra.conftest import REGION, Deployment

POOL = "aws:cognito/userPool:UserPool"
CLIENT = "aws:cognito/userPoolClient:UserPoolClient"
AUTHORIZER = "aws:apigatewayv2/authorizer:Authorizer"
ROUTE = "aws:apigatewayv2/route:Route"


def test_people_sign_in_with_a_verified_email_and_a_real_password(dev: Deployment) -> None:
    """Regression: usernames instead of emails, unverified addresses (anyone's email), or a weak password policy."""
    pool = dev.one(POOL).inputs
    assert pool["usernameAttributes"] == ["email"] and pool["autoVerifiedAttributes"] == ["email"]
    assert pool["usernameConfiguration"] == {"caseSensitive": False}
    policy = pool["passwordPolicy"]
    assert policy["minimumLength"] >= 12
    assert policy["requireUppercase"] and policy["requireLowercase"] and policy["requireNumbers"]
    assert pool["accountRecoverySetting"] == {"recoveryMechanisms": [{"name": "verified_email", "priority": 1}]}
    assert pool["adminCreateUserConfig"] == {"allowAdminCreateUserOnly": False}, "self sign-up is on by default"


def test_self_sign_up_can_be_turned_off(tuned: Deployment) -> None:
    """`allowSelfSignUp false`: only an operator creates users."""
    assert tuned.one(POOL).inputs["adminCreateUserConfig"] == {"allowAdminCreateUserOnly": True}


def test_the_app_client_is_public_and_its_sign_in_does_not_tell_whether_an_account_exists(dev: Deployment) -> None:
    """Regression: a client secret (a browser cannot keep one, so sign-in would fail), a flow the form does not use
    left open (ALLOW_ADMIN_USER_PASSWORD_AUTH would take IAM credentials), or sign-in errors that confirm emails.
    (Sign-up still does: Cognito answers UsernameExistsException by design.)"""
    client = dev.one(CLIENT).inputs
    assert client["userPoolId"] == "auth-users-id"
    assert client["generateSecret"] is False
    assert sorted(client["explicitAuthFlows"]) == [
        "ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_USER_PASSWORD_AUTH", "ALLOW_USER_SRP_AUTH"]
    assert client["preventUserExistenceErrors"] == "ENABLED"
    assert client["enableTokenRevocation"] is True


def test_a_user_can_write_only_their_email_and_only_once_it_is_verified(dev: Deployment) -> None:
    """Regression: with no write attributes set, the client could write every attribute, so a signed-in user could
    call UpdateUserAttributes with any address and `email_verified=true`, squatting on someone else's email."""
    client = dev.one(CLIENT).inputs
    assert client["writeAttributes"] == ["email"]
    assert sorted(client["readAttributes"]) == ["email", "email_verified"]
    pool = dev.one(POOL).inputs
    assert pool["userAttributeUpdateSettings"] == {"attributesRequireVerificationBeforeUpdates": ["email"]}
    assert "email" in pool["autoVerifiedAttributes"], "Cognito requires it of an attribute verified before update"


def test_token_lifetimes_come_from_config(dev: Deployment, tuned: Deployment) -> None:
    for deployment, (access, id_token, refresh) in ((dev, (60, 60, 30)), (tuned, (15, 20, 3))):
        client = deployment.one(CLIENT).inputs
        assert (client["accessTokenValidity"], client["idTokenValidity"], client["refreshTokenValidity"]) == (
            access, id_token, refresh)
        assert client["tokenValidityUnits"] == {"accessToken": "minutes", "idToken": "minutes",
                                                "refreshToken": "days"}


def test_the_authorizer_trusts_exactly_this_pool_and_client(dev: Deployment) -> None:
    """Regression: another pool's issuer, or no audience, would let tokens of any Cognito app in the region in."""
    authorizer = dev.one(AUTHORIZER).inputs
    assert authorizer["authorizerType"] == "JWT"
    assert authorizer["identitySources"] == ["$request.header.Authorization"]
    assert authorizer["jwtConfiguration"] == {
        "issuer": f"https://cognito-idp.{REGION}.amazonaws.com/auth-users-id", "audiences": ["auth-web-id"]}
    assert authorizer["apiId"] == "api-http-id"


def test_every_route_but_health_needs_the_authorizer(dev: Deployment) -> None:
    """Regression: a route added without the authorizer would serve anyone's jobs to anyone."""
    routes = {r.inputs["routeKey"]: r.inputs for r in dev.of_type(ROUTE)}
    assert set(routes) == {route.key for route in ROUTES}
    for key, route in routes.items():
        if key == "GET /api/health":
            assert route["authorizationType"] == "NONE" and "authorizerId" not in route
        else:
            assert (route["authorizationType"], route["authorizerId"]) == ("JWT", "api-jwt-id"), key


def test_the_site_config_names_the_pool_and_client(dev: Deployment) -> None:
    """The form signs in against what config.json names: the stack's own pool and client, and no endpoint on AWS."""
    [config] = [o for o in dev.of_type("aws:s3/bucketObjectv2:BucketObjectv2") if o.inputs["key"] == "config.json"]
    auth = json.loads(config.inputs["content"])["auth"]
    assert auth == {"region": REGION, "userPoolId": "auth-users-id", "clientId": "auth-web-id"}


def test_the_pool_and_client_ids_are_exported(dev: Deployment) -> None:
    """`README` tells an operator to create users with these (`aws cognito-idp admin-create-user`)."""
    assert (dev.exports["userPoolId"], dev.exports["userPoolClientId"]) == ("auth-users-id", "auth-web-id")


def test_a_stack_that_protects_its_data_protects_its_user_pool(prod: Deployment, dev: Deployment) -> None:
    """Regression: jobs and files are keyed by the pool's `sub`; a deleted or replaced pool orphans every user's
    data. With `protectData` the pool has Cognito's deletion protection and Pulumi's `protect`; dev stays
    disposable."""
    pool = prod.one("aws:cognito/userPool:UserPool")
    assert pool.inputs["deletionProtection"] == "ACTIVE" and pool.options["protect"] is True
    pool = dev.one("aws:cognito/userPool:UserPool")
    assert pool.inputs["deletionProtection"] == "INACTIVE" and pool.options["protect"] is False


def test_the_user_pool_tier_is_set_to_lite(dev: Deployment, prod: Deployment) -> None:
    """The feature plan decides the price per user: set, not left to a default, and the cheapest (README's cost
    section says so)."""
    for deployment in (dev, prod):
        assert deployment.one("aws:cognito/userPool:UserPool").inputs["userPoolTier"] == "LITE"


def test_allowed_email_domains_are_enforced_by_a_pre_sign_up_trigger_that_may_only_log(tuned: Deployment) -> None:
    """`allowedEmailDomains`: Cognito calls `handlers.presignup` before each sign-up; its role may write its own
    logs and nothing else (it makes no AWS call), and only this pool may invoke it."""
    function = tuned.one("aws:lambda/function:Function", "auth-presignup").inputs
    assert function["handler"] == "handlers.presignup.handler"
    assert function["environment"]["variables"] == {"ALLOWED_EMAIL_DOMAINS": "example.org,example.net"}
    assert function["timeout"] <= 5, "Cognito waits at most 5 s for a trigger"
    arn = tuned.one("aws:lambda/function:Function", "auth-presignup").outputs["arn"]
    assert tuned.one(POOL).inputs["lambdaConfig"] == {"preSignUp": arn}
    policy = json.loads(tuned.one("aws:iam/rolePolicy:RolePolicy", "auth-presignup-policy").inputs["policy"])
    assert [s["Action"] for s in policy["Statement"]] == [["logs:CreateLogStream", "logs:PutLogEvents"]]
    permission = tuned.one("aws:lambda/permission:Permission", "auth-presignup-invoke").inputs
    assert (permission["principal"], permission["action"]) == ("cognito-idp.amazonaws.com", "lambda:InvokeFunction")
    assert permission["sourceArn"] == tuned.one(POOL).outputs["arn"]


def test_no_trigger_without_allowed_domains(dev: Deployment) -> None:
    assert "lambdaConfig" not in dev.one(POOL).inputs
    assert [f for f in dev.of_type("aws:lambda/function:Function") if f.name == "auth-presignup"] == []


def test_cognito_sends_through_the_stacks_ses_identity_when_configured(dev: Deployment, tuned: Deployment) -> None:
    """`emailFrom` + `sesIdentityArn`: codes and invitations go through SES (DEVELOPER) from the stack's verified
    identity; without them Cognito's own sender, which allows only a limited number of messages a day."""
    assert tuned.one(POOL).inputs["emailConfiguration"] == {
        "emailSendingAccount": "DEVELOPER", "fromEmailAddress": "filepipe <no-reply@example.org>",
        "sourceArn": "arn:aws:ses:eu-west-1:123456789012:identity/example.org"}
    assert "emailConfiguration" not in dev.one(POOL).inputs
