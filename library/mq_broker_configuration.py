#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""An Amazon MQ for RabbitMQ configuration and the broker using its latest revision (project module)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mq_broker_configuration
short_description: Keep an Amazon MQ for RabbitMQ broker on a configuration whose latest revision holds given settings
description:
  - "Amazon MQ for RabbitMQ takes a few C(rabbitmq.conf) settings (Cuttlefish format) through a configuration,
    such as C(consumer_timeout), 30 minutes unless set (Amazon MQ developer guide, I(Configurable values for
    RabbitMQ on Amazon MQ)). C(community.aws.mq_broker_config) reads the broker's current configuration without
    checking for one, and C(community.aws.mq_broker) cannot name a configuration."
  - The configuration is found by name (C(ListConfigurations)) or created. Its latest revision's data is compared
    with I(data); a difference adds a revision (C(UpdateConfiguration)). The broker is then pointed at that
    revision (C(UpdateBroker)) unless it is already its current or pending one.
  - "A revision the broker does not run yet waits for the broker's next maintenance window, as AWS applies it,
    unless I(reboot) is true: then the broker is rebooted (C(RebootBroker)) to apply it now. A reboot of a
    single-instance broker is an outage of a few minutes; durable queues and persistent messages survive it."
  - Supports check mode and diff mode.
author:
  - airflow-ecs project
options:
  name:
    description: The configuration's name.
    type: str
    required: true
  engine_version:
    description: The broker's RabbitMQ engine version (a configuration is made for one).
    type: str
    required: true
  data:
    description: The settings, in Cuttlefish format (C(key = value) lines).
    type: str
    required: true
  broker_name:
    description:
      - The broker to keep on the latest revision. Without one, or before the broker exists, only the
        configuration is managed.
    type: str
  reboot:
    description: Reboot the broker when this run points it at a revision it does not run yet.
    type: bool
    default: false
  tags:
    description: Tags of a configuration this module creates.
    type: dict
    default: {}
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - Actions used are mq:ListConfigurations, mq:CreateConfiguration, mq:DescribeConfigurationRevision,
    mq:UpdateConfiguration, mq:ListBrokers, mq:DescribeBroker, mq:UpdateBroker and mq:RebootBroker (only with
    I(reboot)).
  - Amazon MQ cannot delete a configuration a broker uses; the configuration of a deleted broker stays
    (configurations cost nothing).
"""

EXAMPLES = r"""
- name: Acknowledgement timeout above the longest task
  mq_broker_configuration:
    name: airflow-broker
    engine_version: "3.13"
    data: "consumer_timeout = 21600000\n"
    broker_name: airflow-broker
"""

RETURN = r"""
configuration:
  description: The configuration's ID and its latest revision (null in check mode before it exists).
  returned: always
  type: dict
  contains:
    id: {description: The configuration ID., type: str}
    revision: {description: The latest revision number., type: int}
broker:
  description: Where the broker stands after the run; null without a broker.
  returned: always
  type: dict
  contains:
    current: {description: Whether the broker runs the latest revision., type: bool}
    pending: {description: Whether the latest revision waits for the maintenance window or a reboot., type: bool}
    rebooted: {description: Whether this run rebooted the broker., type: bool}
"""

import base64
import contextlib
from typing import Any

with contextlib.suppress(ImportError):
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule


def normalized(data: str) -> str:
    """Cuttlefish settings compared line by line, without blank lines or surrounding blanks."""
    return "\n".join(line.strip() for line in data.splitlines() if line.strip()) + "\n"


def find_configuration(client: Any, name: str) -> dict[str, Any] | None:
    token = None
    while True:
        page = client.list_configurations(**({"NextToken": token} if token else {}), aws_retry=True)
        for configuration in page.get("Configurations", []):
            if configuration["Name"] == name:
                return configuration
        token = page.get("NextToken")
        if not token:
            return None


def find_broker(client: Any, name: str) -> dict[str, Any] | None:
    token = None
    while True:
        page = client.list_brokers(**({"NextToken": token} if token else {}), aws_retry=True)
        for summary in page.get("BrokerSummaries", []):
            if summary["BrokerName"] == name:
                return client.describe_broker(BrokerId=summary["BrokerId"], aws_retry=True)
        token = page.get("NextToken")
        if not token:
            return None


def revision_data(client: Any, configuration_id: str, revision: int) -> str:
    answer = client.describe_configuration_revision(
        ConfigurationId=configuration_id, ConfigurationRevision=str(revision), aws_retry=True
    )
    return base64.b64decode(answer.get("Data") or "").decode()


def ensure_configuration(module: AnsibleAWSModule, client: Any) -> tuple[dict[str, Any] | None, str, bool]:
    """(ID and latest revision, the data that revision held before the run, whether the run changed it)."""
    params = module.params
    wanted = normalized(params["data"])
    encoded = base64.b64encode(wanted.encode()).decode()
    found = find_configuration(client, params["name"])
    if found is None:
        if module.check_mode:
            return None, "", True
        created = client.create_configuration(
            Name=params["name"],
            EngineType="RABBITMQ",
            EngineVersion=params["engine_version"],
            AuthenticationStrategy="SIMPLE",
            Tags=params["tags"],
            aws_retry=True,
        )
        updated = client.update_configuration(ConfigurationId=created["Id"], Data=encoded, aws_retry=True)
        return {"id": created["Id"], "revision": updated["LatestRevision"]["Revision"]}, "", True
    revision = found["LatestRevision"]["Revision"]
    before = revision_data(client, found["Id"], revision)
    if normalized(before) == wanted:
        return {"id": found["Id"], "revision": revision}, before, False
    if module.check_mode:
        return {"id": found["Id"], "revision": revision + 1}, before, True
    updated = client.update_configuration(
        ConfigurationId=found["Id"], Data=encoded, Description="airflow-ecs", aws_retry=True
    )
    return {"id": found["Id"], "revision": updated["LatestRevision"]["Revision"]}, before, True


def ensure_broker(
    module: AnsibleAWSModule, client: Any, configuration: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, bool]:
    if not module.params["broker_name"]:
        return None, False
    broker = find_broker(client, module.params["broker_name"])
    if broker is None:
        return None, False
    applied = broker.get("Configurations") or {}
    wanted = (configuration or {}).get("id"), (configuration or {}).get("revision")

    def names(entry: dict[str, Any] | None) -> tuple[Any, Any]:
        return (entry or {}).get("Id"), (entry or {}).get("Revision")

    current = configuration is not None and names(applied.get("Current")) == wanted
    pending = configuration is not None and names(applied.get("Pending")) == wanted
    if current:
        return {"current": True, "pending": False, "rebooted": False}, False
    reboot = module.params["reboot"]
    if module.check_mode:
        return {"current": reboot, "pending": not reboot, "rebooted": reboot}, True
    changed = False
    if not pending:
        client.update_broker(
            BrokerId=broker["BrokerId"], Configuration={"Id": wanted[0], "Revision": wanted[1]}, aws_retry=True
        )
        changed = True
    if reboot:
        client.reboot_broker(BrokerId=broker["BrokerId"], aws_retry=True)
        return {"current": True, "pending": False, "rebooted": True}, True
    return {"current": False, "pending": True, "rebooted": False}, changed


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "engine_version": {"type": "str", "required": True},
            "data": {"type": "str", "required": True},
            "broker_name": {"type": "str"},
            "reboot": {"type": "bool", "default": False},
            "tags": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
    )
    client = module.client("mq", retry_decorator=jittered_backoff())
    try:
        configuration, before, revised = ensure_configuration(module, client)
        broker, moved = ensure_broker(module, client, configuration)
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to apply the Amazon MQ configuration {module.params['name']}")
    module.exit_json(
        changed=revised or moved,
        configuration=configuration,
        broker=broker,
        diff={"before": before, "after": normalized(module.params["data"])},
    )


if __name__ == "__main__":
    main()
