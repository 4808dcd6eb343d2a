"""Role credentials the way ECS gives them to a task: the container credentials endpoint.

With EMBEDDED_AWS_CREDENTIALS_PORT=<port> and EMBEDDED_AWS_CREDENTIALS_TOKEN=<token>, the emulator
serves GET http://127.0.0.1:<port>/v2/credentials/<role name> (header Authorization: <token>) with
the JSON botocore's container provider reads (AccessKeyId, SecretAccessKey, Token, Expiration).
Credentials come from STS AssumeRole of that role, made in the emulator's own process as ECS makes it
for its tasks, and only for a role whose trust policy lets ecs-tasks.amazonaws.com assume it. A
process gets them with AWS_CONTAINER_CREDENTIALS_FULL_URI and AWS_CONTAINER_AUTHORIZATION_TOKEN, and
with enforced IAM every call it makes is judged by that role's policies.
"""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.iam.models import iam_backends
from moto.sts.models import sts_backends

ECS_TASKS = "ecs-tasks.amazonaws.com"
PREFIX = "/v2/credentials/"


def trusts(trust_policy: str, service: str) -> bool:
    """Whether the role's trust policy lets the AWS service principal `service` assume it."""
    for statement in json.loads(trust_policy).get("Statement", []):
        services = statement.get("Principal", {}).get("Service", [])
        services = [services] if isinstance(services, str) else services
        allows = statement.get("Effect") == "Allow" and "sts:AssumeRole" in str(statement.get("Action"))
        if allows and service in services:
            return True
    return False


def assume_in_process(role: Any, session_name: str, region: str) -> dict[str, str]:
    """STS AssumeRole of a moto role made in the emulator's process, as an AWS service makes it for its work."""
    assumed = sts_backends[DEFAULT_ACCOUNT_ID]["global"].assume_role(
        region_name=region,
        role_session_name=session_name[:64],
        role_arn=role.arn,
        policy=None,
        duration=3600,
        external_id=None,
    )
    return {
        "AccessKeyId": assumed.access_key_id,
        "SecretAccessKey": assumed.secret_access_key,
        "Token": assumed.session_token,
        "Expiration": assumed.expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def role_credentials(role_name: str, region: str = "us-east-1") -> dict[str, str]:
    """Task credentials for the role, or KeyError / PermissionError."""
    role = iam_backends[DEFAULT_ACCOUNT_ID]["aws"].get_role(role_name)
    if not trusts(role.assume_role_policy_document, ECS_TASKS):
        raise PermissionError(f"the trust policy of role {role_name} does not let {ECS_TASKS} assume it")
    return {"RoleArn": role.arn, **assume_in_process(role, f"ecs-task-{role_name}", region)}


def handler_for(token: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.headers.get("Authorization") != token:
                return self.answer(401, {"message": "missing or wrong authorization token"})
            if not self.path.startswith(PREFIX):
                return self.answer(404, {"message": f"credentials are served under {PREFIX}<role name>"})
            try:
                return self.answer(200, role_credentials(self.path.removeprefix(PREFIX)))
            except PermissionError as err:
                return self.answer(403, {"message": str(err)})
            except Exception as err:  # an unknown role: moto raises its own NoSuchEntity type
                return self.answer(404, {"message": f"no role {self.path.removeprefix(PREFIX)}: {err}"})

        def answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def start_from_environment() -> ThreadingHTTPServer | None:
    port = os.environ.get("EMBEDDED_AWS_CREDENTIALS_PORT")
    if not port:
        return None
    token = os.environ.get("EMBEDDED_AWS_CREDENTIALS_TOKEN") or ""
    if not token:
        raise SystemExit("EMBEDDED_AWS_CREDENTIALS_PORT needs EMBEDDED_AWS_CREDENTIALS_TOKEN (the token tasks present)")
    server = ThreadingHTTPServer(("127.0.0.1", int(port)), handler_for(token))
    threading.Thread(target=server.serve_forever, name="container-credentials", daemon=True).start()
    return server
