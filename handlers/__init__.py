"""Lambda handlers, packaged inline from this folder (standard library and boto3 only)."""
