"""filepipe local mode: record every AWS call of a local VM's Python processes (the worker, the `aws` shim).

On the `PYTHONPATH` of a local VM only when a `local.calls.CallLog` asks for it (`FILEPIPE_AWS_CALL_LOG` names the
file): each call's service, operation and parameters are appended to it as one JSON line, before the call is made.
Python imports `sitecustomize` at start-up; the user-data and the worker are not changed.
"""

import json
import os

_PATH = os.environ.get("FILEPIPE_AWS_CALL_LOG")

if _PATH:
    import botocore.client

    _make_api_call = botocore.client.BaseClient._make_api_call

    def _recorded(self, operation_name, api_params):  # type: ignore[no-untyped-def]
        line = {"service": self.meta.service_model.service_name, "operation": operation_name, "params": api_params}
        data = (json.dumps(line, default=repr) + "\n").encode("utf-8")
        descriptor = os.open(_PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(descriptor, data)
        finally:
            os.close(descriptor)
        return _make_api_call(self, operation_name, api_params)

    botocore.client.BaseClient._make_api_call = _recorded
