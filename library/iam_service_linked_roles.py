#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Make sure AWS services' service-linked roles exist (project module; amazon.aws and community.aws have none)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: iam_service_linked_roles
short_description: Create the service-linked roles a stack needs before it first uses the services
description:
  - "A service-linked role is the account's one role of an AWS service (such as C(AWSServiceRoleForECS)). Most
    services create theirs on first use, but not always in time: in a new account, ECS's first C(CreateCluster)
    with capacity providers fails with I(Unable to assume the service linked role. Please verify that the ECS
    service linked role exists) while the role is being made. Creating it first avoids that."
  - Each role is read with one C(GetRole) by the name AWS gives it; a missing one costs one
    C(CreateServiceLinkedRole). A role made meanwhile by the service itself (the name is taken) is no change.
  - The roles are account-wide and may serve other stacks, so this module never deletes them.
  - Supports check mode and diff mode.
author:
  - airflow-ecs project
options:
  services:
    description: The services whose roles must exist, by service principal.
    type: list
    elements: str
    required: true
    choices: [ecs.amazonaws.com]
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - IAM actions used are iam:GetRole on each role's ARN and iam:CreateServiceLinkedRole (restrict it with the
    C(iam:AWSServiceName) condition).
"""

EXAMPLES = r"""
- name: Make ECS's service-linked role before the first cluster with capacity providers
  iam_service_linked_roles:
    services: [ecs.amazonaws.com]
"""

RETURN = r"""
roles:
  description: Each service's role after the run, by service principal (in check mode, what it would be).
  returned: always
  type: dict
  contains:
    name: {description: The role's name., type: str}
    arn: {description: The role's ARN; null in check mode before it exists., type: str}
    created: {description: Whether the run created it (or would, in check mode)., type: bool}
"""

import contextlib
from typing import Any

with contextlib.suppress(ImportError):
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible.module_utils.iam_read import read_role
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

# The name AWS gives each service's role (IAM user guide, "AWS services that work with IAM").
ROLE_NAMES = {"ecs.amazonaws.com": "AWSServiceRoleForECS"}


def ensure_role(module: AnsibleAWSModule, client: Any, service: str) -> dict[str, Any]:
    name = ROLE_NAMES[service]
    role = read_role(module, client, name)
    if role is not None:
        return {"name": name, "arn": role["Arn"], "created": False}
    if module.check_mode:
        return {"name": name, "arn": None, "created": True}
    try:
        role = client.create_service_linked_role(AWSServiceName=service, aws_retry=True)["Role"]
    except is_boto3_error_code(["InvalidInput", "EntityAlreadyExists"]) as e:
        # The service made it between our read and our call ("... has been taken in this account").
        role = read_role(module, client, name)
        if role is None:
            module.fail_json_aws(e, msg=f"Failed to create the service-linked role of {service}")
        return {"name": name, "arn": role["Arn"], "created": False}
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(
            e, msg=f"Failed to create the service-linked role of {service} (iam:CreateServiceLinkedRole)"
        )
    return {"name": role["RoleName"], "arn": role["Arn"], "created": True}


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={"services": {"type": "list", "elements": "str", "required": True, "choices": list(ROLE_NAMES)}},
        supports_check_mode=True,
    )
    client = module.client("iam", retry_decorator=jittered_backoff())
    roles = {service: ensure_role(module, client, service) for service in dict.fromkeys(module.params["services"])}
    created = sorted(role["name"] for role in roles.values() if role["created"])
    module.exit_json(
        changed=bool(created),
        roles=roles,
        diff={"before": {"missing": created}, "after": {"missing": []}},
    )


if __name__ == "__main__":
    main()
