"""Pulumi components of filepipe, plus the settings module shared with local mode.

Importing this package must not import Pulumi: local mode uses `stackspec.settings` only.
"""
