#!/usr/bin/python
"""Ask STS who we are; any fault comes back as one plain sentence, never a traceback."""

from __future__ import annotations

DOCUMENTATION = r"""
module: aws_endpoint_check
short_description: Check that the AWS endpoint answers and accepts the credentials
description:
  - Calls STS GetCallerIdentity once (with its own short timeouts) and returns the account.
  - Every fault (no answer, an answer that is not AWS's, an invalid endpoint URL, a missing profile,
    missing or refused credentials) fails with one sentence that says what to fix.
  - Read-only; supports check mode.
options:
  region: {description: AWS region., type: str, required: true}
  endpoint_url: {description: Endpoint instead of AWS's own (an emulator)., type: str}
  access_key: {description: Access key id; otherwise the usual boto3 chain., type: str, no_log: true}
  secret_key: {description: Secret access key., type: str, no_log: true}
  profile: {description: Named profile of the AWS config files., type: str}
  timeout: {description: Seconds to connect and to wait for the answer., type: int, default: 10}
  aws_config:
    description: Accepted with the shared connection settings and ignored (own timeout, 2 attempts).
    type: dict
"""

EXAMPLES = r"""
- name: Ask STS who we are
  aws_endpoint_check:
    region: us-east-1
  register: caller
"""

RETURN = r"""
account: {description: The account id., type: str, returned: success}
arn: {description: The caller's ARN., type: str, returned: success}
"""

import os
from typing import Any

from ansible.module_utils.basic import AnsibleModule

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
        ProfileNotFound,
        ReadTimeoutError,
    )
    from botocore.parsers import ResponseParserError
except ImportError:
    boto3 = None

REFUSED_CREDENTIALS = {"InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException", "ExpiredToken",
                       "InvalidAccessKeyId", "AuthFailure", "AccessDenied"}  # fmt: skip


def where(params: dict[str, Any]) -> str:
    return params["endpoint_url"] or f"AWS STS in {params['region']}"


def caller_identity(params: dict[str, Any]) -> dict[str, str]:
    """The STS answer, or a ValueError whose text is the sentence to show."""
    params = {**params, "profile": params["profile"] or os.environ.get("AWS_PROFILE") or None}
    if params["profile"] and params["access_key"]:
        raise ValueError(
            f"AWS_PROFILE {params['profile']!r} is set and the inventory passes access keys too: use one of them "
            "(unset AWS_PROFILE for the emulator inventory)"
        )
    try:
        session = boto3.session.Session(
            aws_access_key_id=params["access_key"],
            aws_secret_access_key=params["secret_key"],
            profile_name=params["profile"],
            region_name=params["region"],
        )
    except ProfileNotFound:
        raise ValueError(
            f"the AWS profile {params['profile']!r} (AWS_PROFILE) is not in ~/.aws/config or ~/.aws/credentials"
        ) from None
    config = Config(connect_timeout=params["timeout"], read_timeout=params["timeout"], retries={"max_attempts": 2})
    try:
        sts = session.client("sts", endpoint_url=params["endpoint_url"] or None, config=config)
        return sts.get_caller_identity()
    except ValueError as err:
        raise ValueError(f"the endpoint URL {params['endpoint_url']!r} is not valid ({err})") from None
    except (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError):
        raise ValueError(
            f"nothing answers at {where(params)} within {params['timeout']} s: check the endpoint URL, its port and "
            "network access (for the emulator: make emulator-start)"
        ) from None
    except ResponseParserError:
        raise ValueError(
            f"{where(params)} answered, but not as an AWS API does: check that the endpoint URL points at AWS or at "
            "the emulator"
        ) from None
    except (NoCredentialsError, PartialCredentialsError):
        raise ValueError(
            "no AWS credentials were found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        ) from None
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        if code in REFUSED_CREDENTIALS:
            raise ValueError(f"{where(params)} refused the credentials ({code}): they are wrong or expired") from None
        raise ValueError(f"{where(params)} answered GetCallerIdentity with {code}: {err}") from None


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "region": {"type": "str", "required": True},
            "endpoint_url": {"type": "str"},
            "access_key": {"type": "str", "no_log": True},
            "secret_key": {"type": "str", "no_log": True},
            "profile": {"type": "str"},
            "timeout": {"type": "int", "default": 10},
            # Accepted with the rest of the connection (aws_module_defaults) but not used: this check must
            # fail fast, with its own timeout and two attempts, where the other modules retry.
            "aws_config": {"type": "dict"},
        },
        supports_check_mode=True,
    )
    if boto3 is None:
        module.fail_json(msg="boto3 is missing from the Python that runs the AWS modules (ansible_python_interpreter)")
    try:
        identity = caller_identity(module.params)
    except ValueError as err:
        module.fail_json(msg=f"Cannot use the AWS endpoint: {err}.")
    module.exit_json(changed=False, account=identity["Account"], arn=identity["Arn"])


if __name__ == "__main__":
    main()
