"""Pulumi components of filepipe: one ComponentResource per concern (storage, network, compute, api, auth, site,
monitoring), wired in `__main__.py`. What they build from (settings, names, headers, CORS, triggers, the user pool's
definition) is plain Python in `stackspec/`, which local mode shares.
"""
