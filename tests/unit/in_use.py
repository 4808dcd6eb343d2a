"""A resource still in use, as AWS reports it: moto deletes VPC resources whatever depends on them."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError


class ModuleFailed(Exception):
    pass


class StubModule:
    """Just enough of AnsibleAWSModule to call a module's ensure_absent in this process."""

    check_mode = False
    _diff = False

    def __init__(self, params: dict) -> None:
        self.params = params

    def fail_json_aws(self, exception: Exception, msg: str, **kwargs: Any) -> None:
        raise ModuleFailed(f"{msg}: {exception}", kwargs)


class InUseClient:
    """The emulator's client, except that `operation` on `busy_id` (its `id_param`) fails with DependencyViolation."""

    def __init__(self, client: Any, operation: str, id_param: str, busy_id: str) -> None:
        self.client, self.operation, self.id_param, self.busy_id = client, operation, id_param, busy_id

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        def without_retry_flag(*args: Any, aws_retry: bool = False, **kwargs: Any) -> Any:
            if name == self.operation and kwargs.get(self.id_param) == self.busy_id:
                error = {"Error": {"Code": "DependencyViolation", "Message": f"{self.busy_id} has dependent objects"}}
                raise ClientError(error, name)
            return method(*args, **kwargs)

        return without_retry_flag
