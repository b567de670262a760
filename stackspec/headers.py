"""The site's and the API's security headers, defined once: CloudFront's response headers policies on AWS
(`components.site`) and the local web server (`local.web`) both build theirs from here. Plain Python, no Pulumi:
local mode imports it.

Only `connect-src` differs between environments: besides the site itself the page talks to the data bucket that
receives the presigned POST and to Cognito to sign in (on AWS the bucket's S3 hosts and the region's Cognito
endpoint; locally the emulator, which serves both). HSTS is sent over HTTPS only (CloudFront); browsers ignore it
on plain HTTP, so local mode leaves it out.
"""

from __future__ import annotations

from collections.abc import Sequence

SELF = "'self'"
NONE = "'none'"
CSP_DIRECTIVES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("default-src", (SELF,)),
    ("script-src", (SELF,)),
    ("style-src", (SELF,)),
    ("img-src", (SELF, "data:")),
    ("font-src", (NONE,)),
    ("object-src", (NONE,)),
    ("base-uri", (NONE,)),
    ("form-action", (SELF,)),
    ("frame-ancestors", (NONE,)),  # works in a header only (a <meta> CSP ignores it)
)
"""Every directive but `connect-src`, which `content_security_policy` adds per environment."""
FRAME_OPTION = "DENY"
"""X-Frame-Options for browsers that predate `frame-ancestors`."""
REFERRER_POLICY = "no-referrer"
"""Job and upload URLs never leak to another site."""
HSTS_MAX_AGE_SECONDS = 31_536_000
"""One year, as CloudFront's managed SecurityHeadersPolicy sets it; no includeSubDomains/preload: the site's host
is a `cloudfront.net` name (or a custom domain whose other names this stack does not own)."""


def content_security_policy(connect_sources: Sequence[str]) -> str:
    """The CSP header value; `connect_sources` are the origins besides the site that the page may fetch from."""
    directives = (*CSP_DIRECTIVES, ("connect-src", (SELF, *connect_sources)))
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives)


def security_headers(connect_sources: Sequence[str], *, https: bool) -> dict[str, str]:
    """The headers a browser gets with every page and file of the site, as CloudFront's policy sends them."""
    headers = {
        "Content-Security-Policy": content_security_policy(connect_sources),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": FRAME_OPTION,
        "Referrer-Policy": REFERRER_POLICY,
    }
    if https:
        headers["Strict-Transport-Security"] = f"max-age={HSTS_MAX_AGE_SECONDS}"
    return headers


API_CONTENT_SECURITY_POLICY = f"default-src {NONE}; frame-ancestors {NONE}"
"""An API answer is data, never a document: opened in a tab it may load nothing and be framed by no one."""
API_CACHE_CONTROL = "no-store"
"""Answers under `/api/` are one user's private data: no browser or shared cache keeps them."""


def api_security_headers(*, https: bool) -> dict[str, str]:
    """The headers every answer under `/api/` carries, whoever made it (a handler, API Gateway, the authorizer):
    CloudFront's `/api/*` behaviour adds them on AWS, the local web server locally."""
    headers = {
        "Content-Security-Policy": API_CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": FRAME_OPTION,
        "Referrer-Policy": REFERRER_POLICY,
        "Cache-Control": API_CACHE_CONTROL,
    }
    if https:
        headers["Strict-Transport-Security"] = f"max-age={HSTS_MAX_AGE_SECONDS}"
    return headers
