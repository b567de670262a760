"""The API client the tests use: `local.client`, the same one the load script drives."""

from local.client import FINAL, create_job, submit, upload, wait_for_final

__all__ = ["FINAL", "create_job", "submit", "upload", "wait_for_final"]
