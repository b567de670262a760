"""What a filepipe stack is, in plain Python: config keys and limits, names, security headers, CORS, network layout,
event triggers and the user pool's definition.

The Pulumi components (`components/`) and local mode (`local/`) both build from here, so AWS and a laptop cannot
differ. This package must not import Pulumi; it may import `handlers` and `worker` (below it), never the reverse.
"""
