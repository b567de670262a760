"""Site: files and config.json in the private bucket, CloudFront origins and behaviours."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from components.site import (
    ALL_VIEWER_EXCEPT_HOST_HEADER,
    CACHING_DISABLED,
    FRONTEND_DIR,
    content_type,
    frontend_files,
    host_of,
)
from handlers.jobmodel import CANCELLABLE_STATES, FINAL_STATES, RETRYABLE_STATES, Status
from stackspec.headers import api_security_headers, security_headers
from stackspec.settings import API_PREFIX, site_config
from tests.infra.conftest import API_ID, REGION, Deployment

HEADERS_POLICY = "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy"
SITE_HEADERS = "site-headers"
API_HEADERS = "site-api-headers"


def objects(deployment: Deployment) -> dict[str, dict]:
    return {
        o.inputs["key"]: o.inputs
        for o in deployment.of_type("aws:s3/bucketObjectv2:BucketObjectv2")
        if o.inputs["bucket"] == "site-files-id"
    }


def distribution(deployment: Deployment) -> dict:
    return deployment.one("aws:cloudfront/distribution:Distribution").inputs


def test_every_frontend_file_is_uploaded_with_its_content_type(dev: Deployment) -> None:
    """Regression: a file left out (a new JS module) breaks the form on AWS only; `text/plain` for a module script
    makes the browser refuse to run it."""
    uploaded = objects(dev)
    on_disk = {p.relative_to(FRONTEND_DIR).as_posix() for p in FRONTEND_DIR.rglob("*") if p.is_file()
               and not any(part.startswith(".") for part in p.relative_to(FRONTEND_DIR).parts)}
    assert "index.html" in on_disk, "frontend/index.html is missing"
    assert set(uploaded) == on_disk | {"config.json"}
    for key, inputs in uploaded.items():
        if key == "config.json":
            continue
        assert Path(inputs["source"].path) == FRONTEND_DIR / key
        assert inputs["contentType"] == content_type(key)
    if any(key.endswith(".js") for key in uploaded):
        assert {inputs["contentType"] for key, inputs in uploaded.items() if key.endswith(".js")} == {
            "text/javascript; charset=utf-8"
        }


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("index.html", "text/html; charset=utf-8"),
        ("js/app.js", "text/javascript; charset=utf-8"),
        ("styles.css", "text/css; charset=utf-8"),
        ("config.json", "application/json"),
        ("favicon.svg", "image/svg+xml"),
        ("shot.PNG", "image/png"),
        ("blob.unknownext", "application/octet-stream"),
    ],
)
def test_content_types_by_extension(key: str, expected: str) -> None:
    """Regression: a wrong type for HTML/JS/CSS/SVG renders the site as text or blocks its scripts."""
    assert content_type(key) == expected


def test_hidden_files_and_a_stray_config_json_are_not_uploaded(tmp_path: Path) -> None:
    """Regression: `.DS_Store` or an editor swap file published; a hand-written `config.json` overriding the
    generated one (and the stack's real limits)."""
    (tmp_path / "js").mkdir()
    (tmp_path / ".git").mkdir()
    for name in ("index.html", "js/main.js", ".DS_Store", ".git/HEAD", "config.json"):
        (tmp_path / name).write_text("x", encoding="utf-8")
    assert sorted(frontend_files(tmp_path)) == ["index.html", "js/main.js"]


def test_config_json_carries_the_stacks_limits(tuned: Deployment) -> None:
    """Regression: the form checks a different size cap than the API enforces."""
    deployment = tuned
    config = objects(deployment)["config.json"]
    assert json.loads(config["content"]) == site_config(
        deployment.namespace["settings"], region=REGION, user_pool_id="auth-users-id", client_id="auth-web-id")
    assert json.loads(config["content"])["maxFileBytes"] == 25 * 1024 * 1024
    assert config["contentType"] == "application/json"


def test_config_json_carries_the_job_states_of_the_model(dev: Deployment) -> None:
    """Regression: the page copied the job states (which are final, cancellable, retryable) instead of reading them
    from the deployed config.json."""
    states = {state["name"]: state for state in json.loads(objects(dev)["config.json"]["content"])["jobStates"]}
    assert list(states) == [s.value for s in Status]
    assert {name for name, state in states.items() if state["final"]} == FINAL_STATES
    assert {name for name, state in states.items() if state["cancellable"]} == set(CANCELLABLE_STATES)
    assert {name for name, state in states.items() if state["retryable"]} == set(RETRYABLE_STATES)


def test_site_files_are_revalidated_after_each_deploy(dev: Deployment) -> None:
    """Regression: a cached old `index.html` or `config.json` keeps serving the previous deploy for a day."""
    assert {inputs.get("cacheControl") for inputs in objects(dev).values()} == {"no-cache"}


def test_site_origin_is_the_private_bucket_through_origin_access_control(dev: Deployment) -> None:
    """Regression: a website-endpoint or public-read origin exposes the bucket; no OAC means CloudFront gets 403."""
    oac = dev.one("aws:cloudfront/originAccessControl:OriginAccessControl")
    assert oac.inputs["originAccessControlOriginType"] == "s3"
    assert oac.inputs["signingBehavior"] == "always" and oac.inputs["signingProtocol"] == "sigv4"
    origins = {o["originId"]: o for o in distribution(dev)["origins"]}
    bucket = dev.one("aws:s3/bucket:Bucket", "site-files").outputs
    assert origins["site"]["domainName"] == bucket["bucketRegionalDomainName"]
    assert origins["site"]["originAccessControlId"] == f"{oac.name}-id"
    assert "customOriginConfig" not in origins["site"]


def test_api_origin_is_the_http_api_over_https(dev: Deployment) -> None:
    """Regression: an origin with the `https://` scheme left in is rejected; http-only would send requests in clear."""
    origins = {o["originId"]: o for o in distribution(dev)["origins"]}
    assert origins["api"]["domainName"] == f"{API_ID}.execute-api.eu-west-1.amazonaws.com"
    assert origins["api"]["customOriginConfig"]["originProtocolPolicy"] == "https-only"
    assert origins["api"]["customOriginConfig"]["originSslProtocols"] == ["TLSv1.2"]


def test_api_behaviour_passes_everything_through_uncached(dev: Deployment) -> None:
    """Regression: cached API answers show stale job status; forwarding the Host header makes API Gateway answer
    403; missing POST breaks uploads and jobs."""
    [behaviour] = distribution(dev)["orderedCacheBehaviors"]
    assert behaviour["pathPattern"] == "/api/*"
    assert behaviour["targetOriginId"] == "api"
    assert behaviour["cachePolicyId"] == CACHING_DISABLED
    assert behaviour["originRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST_HEADER
    assert {"GET", "POST", "OPTIONS"} <= set(behaviour["allowedMethods"])
    assert behaviour["viewerProtocolPolicy"] == "https-only"


def test_site_is_https_only_with_index_as_root(dev: Deployment) -> None:
    """Regression: plain-HTTP pages (form content readable on the wire); `/` answering 403 without a root object."""
    inputs = distribution(dev)
    assert inputs["enabled"] is True
    assert inputs["defaultRootObject"] == "index.html"
    default = inputs["defaultCacheBehavior"]
    assert default["targetOriginId"] == "site"
    assert default["viewerProtocolPolicy"] == "redirect-to-https"
    assert set(default["allowedMethods"]) == {"GET", "HEAD"}
    assert all(b["viewerProtocolPolicy"] in {"https-only", "redirect-to-https"}
               for b in [default, *inputs["orderedCacheBehaviors"]])


@pytest.mark.parametrize(
    ("endpoint", "host"),
    [
        ("https://abc123.execute-api.region-1.amazonaws.com", "abc123.execute-api.region-1.amazonaws.com"),
        ("https://abc123.execute-api.region-1.amazonaws.com/", "abc123.execute-api.region-1.amazonaws.com"),
        ("http://host.example/path", "host.example"),
    ],
)
def test_host_of_strips_scheme_and_path(endpoint: str, host: str) -> None:
    """Regression: CloudFront rejects an origin domain with a scheme or path."""
    assert host_of(endpoint) == host


def test_host_of_rejects_an_empty_endpoint() -> None:
    """Regression: an unresolved endpoint silently becomes an empty origin domain."""
    with pytest.raises(ValueError):
        host_of("https://")


def headers_sent_by(policy: dict) -> dict[str, str]:
    """The headers CloudFront adds to every response for a response headers policy's security config."""
    config = policy["securityHeadersConfig"]
    assert all(part["override"] is True for part in config.values()), "an origin's header could win over the policy"
    sts = config["strictTransportSecurity"]
    hsts = f"max-age={int(sts['accessControlMaxAgeSec'])}"  # the mocks' protobuf makes numbers floats
    hsts += "; includeSubDomains" if sts.get("includeSubdomains") else ""
    hsts += "; preload" if sts.get("preload") else ""
    custom = policy.get("customHeadersConfig", {}).get("items", [])
    assert all(item["override"] is True for item in custom), "an origin's header could win over the policy"
    return {
        **{item["header"]: item["value"] for item in custom},
        "Content-Security-Policy": config["contentSecurityPolicy"]["contentSecurityPolicy"],
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": config["frameOptions"]["frameOption"],
        "Referrer-Policy": config["referrerPolicy"]["referrerPolicy"],
        "Strict-Transport-Security": hsts,
    }


def test_the_site_sends_the_shared_security_headers(dev: Deployment) -> None:
    """Regression: the managed SecurityHeadersPolicy sent no CSP (the page had only a `<meta>` CSP, which cannot
    carry `frame-ancestors` and allowed every `https:` origin). The site's policy is the one definition local mode
    serves too, with HTTPS's HSTS."""
    policy = dev.one(HEADERS_POLICY, SITE_HEADERS)
    assert distribution(dev)["defaultCacheBehavior"]["responseHeadersPolicyId"] == f"{policy.name}-id"
    bucket = dev.one("aws:s3/bucket:Bucket", "storage-data").outputs
    uploads = [f"https://{bucket['bucketRegionalDomainName']}", f"https://{bucket['bucket']}.s3.amazonaws.com"]
    sign_in = f"https://cognito-idp.{REGION}.amazonaws.com"
    assert headers_sent_by(policy.inputs) == security_headers([*uploads, sign_in], https=True)


def test_every_api_answer_through_cloudfront_carries_the_shared_api_headers(dev: Deployment) -> None:
    """Regression: the `/api/*` behaviour had no response headers policy, so API answers (a handler's, API Gateway's
    own 401/404) came without nosniff, CSP, referrer policy or `Cache-Control: no-store`. Its policy is the API
    definition local mode sends too."""
    policy = dev.one(HEADERS_POLICY, API_HEADERS)
    (api,) = distribution(dev)["orderedCacheBehaviors"]
    assert api["pathPattern"] == f"{API_PREFIX}/*"
    assert api["responseHeadersPolicyId"] == f"{policy.name}-id"
    sent = headers_sent_by(policy.inputs)
    assert sent == api_security_headers(https=True)
    assert sent["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert sent["Cache-Control"] == "no-store"


def test_the_csp_lets_the_page_reach_only_itself_the_data_bucket_and_cognito(dev: Deployment) -> None:
    """`connect-src` is where a script injected into the page could send what it reads: the site, the data
    bucket's own hosts for the presigned POST, and the region's Cognito endpoint to sign in; no `https:` wildcard,
    no other bucket."""
    csp = dev.one(HEADERS_POLICY, SITE_HEADERS).inputs["securityHeadersConfig"][
        "contentSecurityPolicy"]["contentSecurityPolicy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    bucket = dev.one("aws:s3/bucket:Bucket", "storage-data").outputs["bucket"]
    connect = directives["connect-src"].split()
    assert connect[0] == "'self'" and len(connect) == 4
    assert connect[3] == f"https://cognito-idp.{REGION}.amazonaws.com"
    bucket_host = rf"https://{re.escape(bucket)}\.s3(\.[a-z0-9-]+)?\.amazonaws\.com"
    assert all(re.fullmatch(bucket_host, origin) for origin in connect[1:3])
    assert directives["frame-ancestors"] == "'none'"
    assert directives["default-src"] == "'self'" and "unsafe" not in csp


def test_the_page_declares_no_csp_of_its_own() -> None:
    """A `<meta>` CSP is enforced on top of the header's and cannot differ per environment, so it could only
    repeat the header or allow more; the one it had allowed every `https:` origin. The header is the definition."""
    page = (FRONTEND_DIR / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"<meta[^>]+http-equiv=[\"']?content-security-policy", page, re.I)
