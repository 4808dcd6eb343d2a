#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Manage one CloudWatch dashboard (project library module)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cloudwatch_dashboard
short_description: Create, update or delete a CloudWatch dashboard
description:
  - Creates, updates or deletes one CloudWatch dashboard. Neither amazon.aws nor community.aws has a module
    for dashboards.
  - The dashboard is read with C(GetDashboard). Its stored body and O(body) are compared as parsed JSON, so
    key order and whitespace do not count. Only when they differ, or the dashboard does not exist, is the
    whole body written with C(PutDashboard), as JSON with sorted keys.
  - CloudWatch checks the body when it is written. A body it refuses (C(InvalidParameterInput)) fails the
    module with the validation messages CloudWatch gave. Messages of a body it accepted are warnings (some
    widgets might not render); they are shown as warnings and returned in RV(validation_messages).
  - With O(state=absent) the dashboard is deleted with C(DeleteDashboards) when it exists. A dashboard that
    does not exist is fine.
  - Supports check mode and diff mode. In check mode nothing is changed; RV(dashboard) and the diff show
    the dashboard as it would be after the run.
author:
  - airflow-ecs project
options:
  name:
    description:
      - Name of the dashboard, for example V(airflow).
      - 1 to 255 characters from C(a-z), C(A-Z), C(0-9), C(-) and C(_). Any other name is refused before any
        AWS call.
    type: str
    required: true
  body:
    description:
      - The dashboard body as a dict, with its C(widgets) list and optionally C(start), C(end),
        C(periodOverride) and C(variables). See the CloudWatch documentation "Dashboard Body Structure and
        Syntax".
      - The body replaces the whole stored body; widgets that are not listed are removed.
      - A JSON string, for example a file read with the P(ansible.builtin.file#lookup) lookup, is accepted as well.
      - Required with O(state=present); not used with O(state=absent).
    type: dict
  state:
    description:
      - Whether the dashboard should exist.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - Dashboards are global to the account, not regional; the region only selects the API endpoint.
  - API calls per run are one C(GetDashboard) when nothing changes; plus one C(PutDashboard) and one more
    C(GetDashboard) (for the ARN and to check what was stored) when the body is written; plus one
    C(DeleteDashboards) when an existing dashboard is deleted.
seealso:
  - name: CloudWatch dashboard body structure and syntax
    description: The widgets and properties a body can hold.
    link: https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/CloudWatch-Dashboard-Body-Structure.html
"""

EXAMPLES = r"""
- name: Create the Airflow dashboard with one text and one metric widget
  cloudwatch_dashboard:
    name: airflow
    body:
      widgets:
        - type: text
          x: 0
          y: 0
          width: 24
          height: 2
          properties:
            markdown: "Made by Ansible (airflow-ecs); changes made in the console are overwritten."
        - type: metric
          x: 0
          y: 2
          width: 12
          height: 6
          properties:
            region: us-east-1
            title: Scheduler CPU
            metrics:
              - [AWS/ECS, CPUUtilization, ClusterName, airflow, ServiceName, scheduler]
  register: __dashboard

- name: Show the ARN of the dashboard
  ansible.builtin.debug:
    msg: "{{ __dashboard.dashboard.arn }}"

- name: Write the dashboard from a JSON file
  cloudwatch_dashboard:
    name: airflow
    body: "{{ lookup('ansible.builtin.file', 'dashboard.json') }}"

- name: Delete the dashboard (a missing one is fine)
  cloudwatch_dashboard:
    name: airflow
    state: absent
"""

RETURN = r"""
dashboard:
  description:
    - The dashboard after the run. In check mode, the dashboard as it would be after the run.
  returned: always
  type: dict
  contains:
    name:
      description: Name of the dashboard.
      type: str
      sample: airflow
    arn:
      description:
        - ARN of the dashboard.
        - Null with O(state=absent), and in check mode for a dashboard that does not exist yet.
      type: str
      sample: arn:aws:cloudwatch::123456789012:dashboard/airflow
    body:
      description: The body of the dashboard as a dict; V({}) with O(state=absent).
      type: dict
      sample: {"widgets": [{"type": "text", "x": 0, "y": 0, "width": 24, "height": 2,
               "properties": {"markdown": "Made by Ansible"}}]}
validation_messages:
  description:
    - The warnings C(PutDashboard) gave for the body it stored, each also shown as a warning of the task.
    - Empty when the body was not written (nothing to change, check mode, O(state=absent)).
  returned: always
  type: list
  elements: dict
  contains:
    data_path:
      description: Where in the body the message points to.
      type: str
      sample: /widgets/1/properties/metrics/0
    message:
      description: What CloudWatch found.
      type: str
      sample: Should NOT have additional properties
diff:
  description: The body of the dashboard before and after the run; V({}) when it does not exist.
  returned: in diff mode
  type: dict
  contains:
    before:
      description: The stored body before the run.
      type: dict
      sample: {"widgets": []}
    after:
      description: The body after the run.
      type: dict
      sample: {"widgets": [{"type": "text", "x": 0, "y": 0, "width": 24, "height": 2,
               "properties": {"markdown": "Made by Ansible"}}]}
"""

import contextlib
import json
import re
from typing import Any

with contextlib.suppress(ImportError):  # a missing botocore is reported by AnsibleAWSModule
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")
# GetDashboard answers ResourceNotFound (DashboardNotFoundError); some emulators say ResourceNotFoundException.
NOT_FOUND = ["ResourceNotFound", "ResourceNotFoundException"]


def argument_spec() -> dict[str, Any]:
    return dict(
        name=dict(type="str", required=True),
        body=dict(type="dict"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )


# --- Input ---------------------------------------------------------------------------------------


def check_name(module: AnsibleAWSModule) -> str:
    name = module.params["name"]
    if not NAME.fullmatch(name):
        module.fail_json(
            msg=f"Invalid dashboard name {name!r}. A name is 1 to 255 characters from a-z, A-Z, 0-9, '-' and '_'."
        )
    return name


# --- Reading -------------------------------------------------------------------------------------


def get_dashboard(module: AnsibleAWSModule, client: Any, name: str) -> dict | None:
    """The dashboard as GetDashboard returns it; None when it does not exist."""
    try:
        return client.get_dashboard(DashboardName=name, aws_retry=True)
    except is_boto3_error_code(NOT_FOUND):
        return None
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to read CloudWatch dashboard '{name}'")


def body_of(dashboard: dict | None) -> Any:
    """The stored body parsed ({} when there is no dashboard); the raw text if it is not JSON."""
    if dashboard is None:
        return {}
    try:
        return json.loads(dashboard.get("DashboardBody") or "{}")
    except ValueError:
        return dashboard["DashboardBody"]  # differs from any dict: the body is written again


def summary(name: str, dashboard: dict | None) -> dict[str, Any]:
    """The dashboard as returned in `dashboard`; `dashboard` is None for one that does not exist."""
    return {
        "name": name,
        "arn": (dashboard or {}).get("DashboardArn"),
        "body": body_of(dashboard),
    }


def quoted(messages: list[dict]) -> str:
    """Validation messages as one line: 'path: message; path: message'."""
    return "; ".join(f"{m.get('DataPath') or '/'}: {m.get('Message')}" for m in messages)


# --- Changing ------------------------------------------------------------------------------------


def put_dashboard(module: AnsibleAWSModule, client: Any, name: str, body: dict) -> list[dict]:
    """Write the whole body; return the validation messages (warnings) of a body CloudWatch accepted."""
    try:
        response = client.put_dashboard(
            DashboardName=name, DashboardBody=json.dumps(body, sort_keys=True), aws_retry=True
        )
    except is_boto3_error_code("InvalidParameterInput") as e:
        messages = e.response.get("dashboardValidationMessages") or []
        detail = quoted(messages) or e.response.get("Error", {}).get("Message", "no validation messages")
        module.fail_json_aws(e, msg=f"CloudWatch refused the body of dashboard '{name}': {detail}")
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to write CloudWatch dashboard '{name}'")
    return response.get("DashboardValidationMessages") or []


def delete_dashboard(module: AnsibleAWSModule, client: Any, name: str) -> None:
    try:
        client.delete_dashboards(DashboardNames=[name], aws_retry=True)
    except is_boto3_error_code(NOT_FOUND):
        return  # deleted meanwhile: that is what we wanted
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to delete CloudWatch dashboard '{name}'")


# --- States --------------------------------------------------------------------------------------


def ensure_present(module: AnsibleAWSModule, client: Any, name: str) -> dict[str, Any]:
    wanted = module.params["body"]
    current = get_dashboard(module, client, name)
    before = body_of(current)
    changed = current is None or before != wanted
    messages: list[dict] = []

    if not changed:
        dashboard = summary(name, current)
    elif module.check_mode:
        dashboard = {**summary(name, current), "body": wanted}
    else:
        messages = put_dashboard(module, client, name, wanted)
        stored = get_dashboard(module, client, name)  # PutDashboard returns no ARN: read it back
        if stored is None or body_of(stored) != wanted:
            # The API has no level per message: messages for a body that was not stored are its errors.
            why = f"validation messages: {quoted(messages)}" if messages else "changed by someone else meanwhile?"
            module.fail_json(msg=f"CloudWatch dashboard '{name}' does not hold the body just written ({why})")
        dashboard = summary(name, stored)
        for message in messages:
            module.warn(f"CloudWatch dashboard '{name}': {quoted([message])}")

    return {
        "changed": changed,
        "dashboard": dashboard,
        "validation_messages": [{"data_path": m.get("DataPath"), "message": m.get("Message")} for m in messages],
        "diff": {"before": before, "after": dashboard["body"]},
    }


def ensure_absent(module: AnsibleAWSModule, client: Any, name: str) -> dict[str, Any]:
    current = get_dashboard(module, client, name)
    if current is not None and not module.check_mode:
        delete_dashboard(module, client, name)
    return {
        "changed": current is not None,
        "dashboard": summary(name, None),
        "validation_messages": [],
        "diff": {"before": body_of(current), "after": {}},
    }


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        required_if=[("state", "present", ["body"])],
    )
    # Refuse bad input before any AWS call.
    name = check_name(module)

    client = module.client("cloudwatch", retry_decorator=jittered_backoff())
    if module.params["state"] == "present":
        result = ensure_present(module, client, name)
    else:
        result = ensure_absent(module, client, name)
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
