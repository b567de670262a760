"""Site: the form's files in a private bucket behind CloudFront, which also routes `/api/*` to the HTTP API."""

from __future__ import annotations

import json
import mimetypes
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from components import iam
from components.buckets import private_bucket
from stackspec.headers import HSTS_MAX_AGE_SECONDS, api_security_headers, content_security_policy, security_headers
from stackspec.settings import API_PREFIX, StackSettings, site_config
from stackspec.userpool import cognito_endpoint

FRONTEND_DIR = Path(__file__).resolve().parent.parent / "frontend"
CONFIG_KEY = "config.json"
INDEX = "index.html"

# AWS managed policies, referenced by their fixed ids (CloudFront developer guide, "Use managed ... policies").
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST_HEADER = "b689b0a8-53d0-40ab-baf2-68738e2966ac"

SITE_ORIGIN_ID = "site"
API_ORIGIN_ID = "api"
ALL_METHODS = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]
READ_METHODS = ["GET", "HEAD"]
CACHE_CONTROL = "no-cache"
"""Browsers and CloudFront revalidate every file, so a new deploy shows at once (the files are small)."""
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".webmanifest": "application/manifest+json",
    ".txt": "text/plain; charset=utf-8",
}


@dataclass
class SiteArgs:
    api_endpoint: pulumi.Input[str]
    """The HTTP API's `https://...` endpoint."""
    settings: StackSettings
    user_pool_id: pulumi.Input[str]
    client_id: pulumi.Input[str]
    region: pulumi.Input[str]
    upload_origins: Sequence[pulumi.Input[str]]
    """The data bucket's origins the form POSTs files to: the CSP's `connect-src` allows them besides the site."""
    force_destroy: bool = True


class Site(pulumi.ComponentResource):
    """Private bucket + CloudFront with origin access control; `url` is the site's `https://` origin."""

    distribution: aws.cloudfront.Distribution
    url: pulumi.Output[str]

    def __init__(self, name: str, args: SiteArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("filepipe:site:Site", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        site = private_bucket(f"{name}-files", self, force_destroy=args.force_destroy)
        self.bucket = site.bucket
        for key, path in frontend_files().items():
            aws.s3.BucketObjectv2(
                f"{name}-file-{resource_suffix(key)}",
                bucket=self.bucket.id,
                key=key,
                source=pulumi.FileAsset(str(path)),
                content_type=content_type(key),
                cache_control=CACHE_CONTROL,
                opts=child,
            )
        aws.s3.BucketObjectv2(
            f"{name}-config",
            bucket=self.bucket.id,
            key=CONFIG_KEY,
            content=pulumi.Output.all(args.region, args.user_pool_id, args.client_id).apply(
                lambda auth: json.dumps(site_config(args.settings, region=auth[0], user_pool_id=auth[1],
                                                    client_id=auth[2]), indent=2)),
            content_type=content_type(CONFIG_KEY),
            cache_control=CACHE_CONTROL,
            opts=child,
        )

        access = aws.cloudfront.OriginAccessControl(
            f"{name}-oac",
            description="filepipe site bucket",
            origin_access_control_origin_type="s3",
            signing_behavior="always",
            signing_protocol="sigv4",
            opts=child,
        )
        sign_in = pulumi.Output.from_input(args.region).apply(cognito_endpoint)
        self.headers_policy = security_headers_policy(f"{name}-headers", [*args.upload_origins, sign_in], child)
        self.api_headers_policy = response_headers_policy(
            f"{name}-api-headers", "filepipe API: no-store, CSP default-src 'none', nosniff, frame and referrer "
            "policies, HSTS", api_security_headers(https=True), child)
        self.distribution = aws.cloudfront.Distribution(
            f"{name}-cdn",
            enabled=True,
            comment="filepipe form and API",
            default_root_object=INDEX,
            is_ipv6_enabled=True,
            http_version="http2and3",
            price_class="PriceClass_100",
            origins=[
                aws.cloudfront.DistributionOriginArgs(
                    origin_id=SITE_ORIGIN_ID,
                    domain_name=self.bucket.bucket_regional_domain_name,
                    origin_access_control_id=access.id,
                ),
                aws.cloudfront.DistributionOriginArgs(
                    origin_id=API_ORIGIN_ID,
                    domain_name=pulumi.Output.from_input(args.api_endpoint).apply(host_of),
                    custom_origin_config=aws.cloudfront.DistributionOriginCustomOriginConfigArgs(
                        http_port=80,
                        https_port=443,
                        origin_protocol_policy="https-only",
                        origin_ssl_protocols=["TLSv1.2"],
                    ),
                ),
            ],
            default_cache_behavior=aws.cloudfront.DistributionDefaultCacheBehaviorArgs(
                target_origin_id=SITE_ORIGIN_ID,
                viewer_protocol_policy="redirect-to-https",
                allowed_methods=READ_METHODS,
                cached_methods=READ_METHODS,
                cache_policy_id=CACHING_OPTIMIZED,
                response_headers_policy_id=self.headers_policy.id,
                compress=True,
            ),
            ordered_cache_behaviors=[
                aws.cloudfront.DistributionOrderedCacheBehaviorArgs(
                    path_pattern=f"{API_PREFIX}/*",
                    target_origin_id=API_ORIGIN_ID,
                    # An API client must not be redirected (a redirected POST loses its body): refuse plain HTTP.
                    viewer_protocol_policy="https-only",
                    allowed_methods=ALL_METHODS,
                    cached_methods=READ_METHODS,
                    cache_policy_id=CACHING_DISABLED,
                    origin_request_policy_id=ALL_VIEWER_EXCEPT_HOST_HEADER,
                    response_headers_policy_id=self.api_headers_policy.id,
                    compress=True,
                )
            ],
            restrictions=aws.cloudfront.DistributionRestrictionsArgs(
                geo_restriction=aws.cloudfront.DistributionRestrictionsGeoRestrictionArgs(restriction_type="none")
            ),
            viewer_certificate=aws.cloudfront.DistributionViewerCertificateArgs(cloudfront_default_certificate=True),
            opts=child,
        )
        aws.s3.BucketPolicy(
            f"{name}-files-policy",
            bucket=self.bucket.id,
            policy=iam.site_bucket_policy(self.bucket.arn, self.distribution.arn),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[site.public_access_block]),
        )
        self.url = pulumi.Output.concat("https://", self.distribution.domain_name)
        self.register_outputs({"url": self.url})


def security_headers_policy(name: str, connect_sources: Sequence[pulumi.Input[str]],
                            opts: pulumi.ResourceOptions) -> aws.cloudfront.ResponseHeadersPolicy:
    """`stackspec.headers.security_headers(..., https=True)` as CloudFront's response headers policy (local mode
    sends the same headers from the same definition). `connect_sources`: the origins the page talks to besides the
    site (the data bucket's upload hosts, Cognito)."""
    csp = pulumi.Output.all(*connect_sources).apply(lambda origins: content_security_policy(list(origins)))
    headers: dict[str, pulumi.Input[str]] = {**security_headers([], https=True), "Content-Security-Policy": csp}
    return response_headers_policy(name, "filepipe site: CSP, nosniff, frame and referrer policies, HSTS", headers,
                                   opts)


SECURITY_HEADER_NAMES = frozenset({"Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options",
                                   "Referrer-Policy", "Strict-Transport-Security"})
"""The headers a policy's security config sets; any other (`Cache-Control`) is one of its custom headers."""


def response_headers_policy(name: str, comment: str, headers: Mapping[str, pulumi.Input[str]],
                            opts: pulumi.ResourceOptions) -> aws.cloudfront.ResponseHeadersPolicy:
    """A response headers policy that sends `headers` (a definition from `stackspec.headers`, with HSTS), each
    with `override`: the policy wins over anything an origin sends."""
    if headers.get("X-Content-Type-Options") != "nosniff" or "Strict-Transport-Security" not in headers:
        raise ValueError("a CloudFront policy here always sends nosniff and HSTS")
    config = aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigArgs
    custom = [aws.cloudfront.ResponseHeadersPolicyCustomHeadersConfigItemArgs(header=header, value=value,
                                                                              override=True)
              for header, value in headers.items() if header not in SECURITY_HEADER_NAMES]
    return aws.cloudfront.ResponseHeadersPolicy(
        name,
        comment=comment,
        security_headers_config=config(
            content_security_policy=aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigContentSecurityPolicyArgs(
                content_security_policy=headers["Content-Security-Policy"], override=True),
            content_type_options=aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigContentTypeOptionsArgs(
                override=True),
            frame_options=aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigFrameOptionsArgs(
                frame_option=headers["X-Frame-Options"], override=True),
            referrer_policy=aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigReferrerPolicyArgs(
                referrer_policy=headers["Referrer-Policy"], override=True),
            strict_transport_security=aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigStrictTransportSecurityArgs(
                access_control_max_age_sec=HSTS_MAX_AGE_SECONDS, include_subdomains=False, preload=False,
                override=True),
        ),
        custom_headers_config=aws.cloudfront.ResponseHeadersPolicyCustomHeadersConfigArgs(items=custom)
        if custom else None,
        opts=opts,
    )


def frontend_files(root: Path = FRONTEND_DIR) -> dict[str, Path]:
    """Every file under `frontend/` by object key, skipping hidden files and `config.json` (generated instead)."""
    files = {}
    for path in sorted(root.rglob("*")):
        key = path.relative_to(root).as_posix()
        if not path.is_file() or any(part.startswith(".") for part in key.split("/")) or key == CONFIG_KEY:
            continue
        files[key] = path
    return files


def content_type(key: str) -> str:
    suffix = Path(key).suffix.lower()
    return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(key)[0] or "application/octet-stream"


def resource_suffix(key: str) -> str:
    """`js/app.js` -> `js-app.js`: a readable, stable resource name for an object key."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", key)


def host_of(endpoint: str) -> str:
    """`https://<id>.execute-api.<region>.amazonaws.com/` -> `<id>.execute-api.<region>.amazonaws.com`."""
    host = re.sub(r"^[a-z]+://", "", endpoint).split("/", 1)[0]
    if not host:
        raise ValueError(f"not an endpoint URL: {endpoint!r}")
    return host
