"""Enforced IAM in the embedded emulator (EMBEDDED_AWS_ENFORCE_IAM=1).

Every request must then carry a key that exists in the emulator and be allowed by that identity's
policies (signatures are not verified: see _skip_signatures). The emulator's own admin user (key
`testing`/`testing`, as before) can do everything; any other identity — a deployer user made through
the IAM API with the project's policy — gets exactly what its policies allow.

moto evaluates a statement's Action and, for S3, its Resource (bucket and key ARNs); for every other
service it passes the resource "*", which no scoped Resource matches, and it evaluates Condition keys
only for trust policies. Every request counts as made over TLS (the endpoint stands for AWS's HTTPS one),
so a Deny that applies only when aws:SecureTransport is false (TLS-only bucket policies) denies nothing.
So that a scoped policy is judged on its actions instead of being denied
wholesale, a statement's Resource matches a request whose resource moto does not know, and identity
policy conditions are not evaluated. Resource scoping is checked against AWS's own service
authorization data instead (tests/unit/test_iam_policies.py).

With EMBEDDED_AWS_IAM_LOG=<file> every evaluated request is appended as one JSON line:
{"key": access key id, "principal": user or assumed-role ARN, "action": "service:Action",
"resource": ..., "allowed": bool}.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from typing import Any

import botocore.session
from moto import settings
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.exceptions import AccessDeniedError
from moto.iam.access_control import IAMPolicyStatement, IAMRequest, IAMRequestBase, PermissionResult
from moto.iam.models import iam_backends
from moto.moto_api._internal.models import MotoAPIBackend

ADMIN_USER = "embedded-aws-admin"
ADMIN_KEY = ("testing", "testing")
ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}

_log_lock = threading.Lock()
_enforced: list[bool] = []  # [True] once enable_from_environment() turned enforcement on

# Where the IAM action differs from "<signing name>:<operation>" (Service Authorization Reference).
SERVICE_PREFIXES = {"monitoring": "cloudwatch", "tagging": "tag"}
S3_ACTIONS = {
    "HeadBucket": "ListBucket",
    "ListBuckets": "ListAllMyBuckets",
    "ListObjects": "ListBucket",
    "ListObjectsV2": "ListBucket",
    "ListObjectVersions": "ListBucketVersions",
    "HeadObject": "GetObject",
    "DeleteObjects": "DeleteObject",
    "GetBucketEncryption": "GetEncryptionConfiguration",
    "PutBucketEncryption": "PutEncryptionConfiguration",
    "DeleteBucketEncryption": "PutEncryptionConfiguration",
    "GetPublicAccessBlock": "GetBucketPublicAccessBlock",
    "PutPublicAccessBlock": "PutBucketPublicAccessBlock",
    "DeletePublicAccessBlock": "PutBucketPublicAccessBlock",
    "GetBucketAccelerateConfiguration": "GetAccelerateConfiguration",
    "DeleteBucketTagging": "PutBucketTagging",
    "DeleteBucketOwnershipControls": "PutBucketOwnershipControls",
    "GetBucketRequestPayment": "GetBucketRequestPayment",
    "GetObjectAttributes": "GetObject",
    "GetObjectLockConfiguration": "GetBucketObjectLockConfiguration",
    "ListBucketInventoryConfigurations": "GetInventoryConfiguration",
}


@functools.cache
def _s3_routes() -> list[tuple[str, int, frozenset[str], str]]:
    """(method, path segments, required query keys and headers, operation) per S3 operation, most specific first."""
    model = botocore.session.get_session().get_service_model("s3")
    routes = []
    for name in model.operation_names:
        operation = model.operation_model(name)
        http = operation.http
        path, _, query = http["requestUri"].partition("?")
        markers = {part.split("=")[0] for part in query.split("&") if part and part.split("=")[0] != "x-id"}
        shape = operation.input_shape
        if shape is not None:  # required query parameters and headers tell same-path operations apart
            for member_name in shape.required_members:
                where = shape.members[member_name].serialization
                if where.get("location") in ("querystring", "header"):
                    markers.add(where["name"].lower())
        segments = path.strip("/").count("/") + 1 if path.strip("/") else 0
        routes.append((http["method"], segments, frozenset(markers), name))
    return sorted(routes, key=lambda route: -len(route[2]))


def s3_operation(method: str, path: str, headers: Any = ()) -> str | None:
    """The S3 operation of a path-style request (/bucket[/key][?query]), read from botocore's S3 model."""
    path_part, _, query = path.partition("?")
    names = {(header[0] if isinstance(header, tuple) else header).lower() for header in headers}
    present = {part.split("=")[0].lower() for part in query.split("&") if part} | names
    inner = path_part.strip("/")
    segments = min(inner.count("/") + 1, 2) if inner else 0
    for route_method, route_segments, markers, name in _s3_routes():
        if route_method == method and route_segments == segments and markers <= present:
            return name
    return None


def iam_action(request: IAMRequestBase, resource: str) -> tuple[str, str]:
    """The IAM action AWS would evaluate for this request, and its resource (moto names some otherwise)."""
    service, _, action = request._action.partition(":")
    if service == "s3":
        operation = s3_operation(request._method, request._path, request._headers)
        if operation:
            action = S3_ACTIONS.get(operation, operation)
        if operation == "DeleteObjects":  # AWS checks s3:DeleteObject on each key, moto sees the bucket
            resource = f"{resource}/*"
    return f"{SERVICE_PREFIXES.get(service, service)}:{action}", resource


def bootstrap_admin() -> None:
    """The admin user with the fixed key the tests and local tools sign with."""
    backend = iam_backends[DEFAULT_ACCOUNT_ID]["aws"]
    if ADMIN_USER in backend.users:
        return
    backend.create_user(region_name="us-east-1", user_name=ADMIN_USER)
    backend.put_user_policy(ADMIN_USER, "everything", json.dumps(ADMIN_POLICY))
    key = backend.create_access_key(ADMIN_USER)
    key.access_key_id, key.secret_access_key = ADMIN_KEY


def _denies_plain_http_only(statement: dict) -> bool:
    """A Deny whose one condition is aws:SecureTransport false (a TLS-only bucket policy). moto would apply it to
    every request (it denies when a condition cannot be evaluated), so no object could be read at all."""
    condition = {key: dict(values) for key, values in (statement.get("Condition") or {}).items()}
    secure = {str(v).lower() for v in _values(condition.pop("Bool", {}).pop("aws:SecureTransport", None))}
    return statement.get("Effect") == "Deny" and secure == {"false"} and not any(condition.values())


def _values(value: Any) -> list:
    return [] if value is None else value if isinstance(value, list) else [value]


def _patch_secure_transport() -> None:
    """Bucket policies are judged whether or not IAM is enforced: every request counts as one over TLS."""
    moto_permitted = IAMPolicyStatement.is_action_permitted

    def is_action_permitted(self: IAMPolicyStatement, action: str, *args: Any, **kwargs: Any) -> Any:
        if _denies_plain_http_only(self._statement):
            return PermissionResult.NEUTRAL  # the emulator's endpoint stands for AWS's, which is HTTPS
        return moto_permitted(self, action, *args, **kwargs)

    IAMPolicyStatement.is_action_permitted = is_action_permitted


def _patch_evaluation() -> None:
    moto_matches = IAMPolicyStatement._check_element_matches
    moto_permitted = IAMPolicyStatement.is_action_permitted

    def check_element_matches(self: IAMPolicyStatement, element: Any, value: str) -> bool:
        if element == "Resource" and value == "*":
            return True  # moto does not tell which resource a non-S3 request names
        return moto_matches(self, element, value)

    def is_action_permitted(self: IAMPolicyStatement, action: str, resource: str = "*", principal: Any = None,
                            incoming_condition_values: Any = None) -> Any:  # fmt: skip
        if principal is None and "Condition" in self._statement:
            self = IAMPolicyStatement({k: v for k, v in self._statement.items() if k != "Condition"})
        return moto_permitted(self, action, resource, principal, incoming_condition_values)

    IAMPolicyStatement._check_element_matches = check_element_matches
    IAMPolicyStatement.is_action_permitted = is_action_permitted


def _skip_signatures() -> None:
    """Keys must exist and policies apply, but signatures are not recomputed: moto computes some REST
    requests' signatures differently from botocore (Route 53 GetHostedZone, Amazon MQ ListBrokers), which
    would refuse valid calls."""
    IAMRequestBase.check_signature = lambda self: None


# Actions AWS authorizes together with another one on the same request (Service Authorization Reference):
# BatchGetSecretValue needs GetSecretValue on each secret it returns.
ALSO_AUTHORIZED = {"secretsmanager:BatchGetSecretValue": "secretsmanager:GetSecretValue"}


def _patch_actions(log_path: str | None) -> None:
    """Evaluate the IAM actions AWS would (ALSO_AUTHORIZED too), and log every decision when asked to."""
    moto_check = IAMRequestBase.check_action_permitted

    def check_one(self: IAMRequestBase, resource: str) -> None:
        allowed = False
        try:
            moto_check(self, resource)
            allowed = True
        finally:
            if log_path:
                line = {"key": self._access_key._access_key_id, "principal": self._access_key.arn,
                        "action": self._action, "resource": resource, "allowed": allowed}  # fmt: skip
                with _log_lock, open(log_path, "a") as log:
                    log.write(json.dumps(line) + "\n")

    def check_action_permitted(self: IAMRequestBase, resource: str) -> None:
        self._action, resource = iam_action(self, resource)
        check_one(self, resource)
        if self._action in ALSO_AUTHORIZED:
            self._action = ALSO_AUTHORIZED[self._action]
            check_one(self, resource)

    IAMRequestBase.check_action_permitted = check_action_permitted


def _patch_reset() -> None:
    moto_reset = MotoAPIBackend.reset

    def reset(self: MotoAPIBackend) -> None:
        moto_reset(self)
        bootstrap_admin()  # a wiped account keeps its admin, or nothing could sign a request again

    MotoAPIBackend.reset = reset


def authorize(keys: dict[str, str], action: str, resource: str = "*", region: str = "us-east-1") -> None:
    """Judge `action` for the identity of `keys` (AccessKeyId, Token) as a request would be judged, for what
    AWS authorizes without an API call of its own (ECR's BatchImportUpstreamImage on a pull through a
    cache rule); logged like a request. PermissionError with AWS's AccessDenied message when denied."""
    if not _enforced:
        return
    service, _, operation = action.partition(":")
    headers = {
        "Authorization": f"AWS4-HMAC-SHA256 Credential={keys['AccessKeyId']}/20260101/{region}/{service}/aws4_request, "
        "SignedHeaders=host, Signature=0"
    }
    if keys.get("Token"):
        headers["X-Amz-Security-Token"] = keys["Token"]
    request = IAMRequest(DEFAULT_ACCOUNT_ID, "POST", "/", {}, b"", headers, operation)
    try:
        request.check_action_permitted(resource)
    except AccessDeniedError as err:
        raise PermissionError(f"AccessDeniedException: {err.message}") from err


def enable_from_environment() -> bool:
    """Judge every request as one over TLS; turn enforcement on when EMBEDDED_AWS_ENFORCE_IAM=1 (returned)."""
    if os.environ.get("EMBEDDED_AWS_ENFORCE_IAM") != "1":
        _patch_secure_transport()
        return False
    _patch_evaluation()
    _patch_secure_transport()  # around _patch_evaluation's, which drops the conditions it must see
    _skip_signatures()
    _patch_reset()
    _patch_actions(os.environ.get("EMBEDDED_AWS_IAM_LOG"))
    bootstrap_admin()
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    _enforced.append(True)
    return True
