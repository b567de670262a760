"""The data bucket's CORS rules, shared by the Storage component and local provisioning (no Pulumi import)."""

from __future__ import annotations

from typing import Any


def cors_rules(origins: list[str]) -> list[dict[str, Any]]:
    """The data bucket's CORS: the site origin(s) may POST presigned uploads, nothing else."""
    return [
        {
            "AllowedOrigins": origins,
            "AllowedMethods": ["POST"],
            "AllowedHeaders": ["*"],
            "ExposeHeaders": ["ETag"],
            "MaxAgeSeconds": 3600,
        }
    ]
