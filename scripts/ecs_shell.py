"""`make shell SERVICE=scheduler`: a shell (or COMMAND) in a running task of a stack service, through ECS Exec.

Finds a RUNNING task of <stack>-<SERVICE> whose service has ECS Exec on (`ecs_exec_enabled`), then runs
`aws ecs execute-command --interactive` into its container (the AWS CLI and the Session Manager
plugin must be installed). The session's input and output are recorded in the data bucket under
ecs-exec/ and CloudTrail records who opened it. The stack name and region come from the inventory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
# Components that run as containers of another service's task (airflow_nodes_colocate): that service.
COLOCATED_IN = {"dag-processor": "scheduler", "triggerer": "scheduler"}
PLUGIN_DOCS = (
    "https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager-working-with-install-plugin.html"
)


def inventory_settings(inventory: str) -> tuple[str, str, bool]:
    """stack_name, aws_region and aws_is_emulator as the inventory (with the project's group_vars) sets them."""
    listed = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-inventory"), "-i", inventory, "--playbook-dir", str(ROOT),
         "--host", "localhost"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    hostvars = json.loads(listed.stdout)
    return (
        hostvars.get("stack_name", "airflow"),
        hostvars.get("aws_region", "us-east-1"),
        bool(hostvars.get("aws_is_emulator", False)),
    )


def service_of(ecs, cluster: str, stack: str, node: str) -> str:
    """The service whose task runs the node: its own, or the one it is a container of (airflow_nodes_colocate)."""
    own = f"{stack}-{node}"
    found = ecs.describe_services(cluster=cluster, services=[own])["services"]
    if node in COLOCATED_IN and not any(s["status"] == "ACTIVE" for s in found):
        return f"{stack}-{COLOCATED_IN[node]}"
    return own


def running_task(ecs, cluster: str, service: str) -> str:
    """The ARN of a RUNNING task of the service, which must have ECS Exec on."""
    described = ecs.describe_services(cluster=cluster, services=[service])["services"]
    if not described or described[0]["status"] != "ACTIVE":
        raise SystemExit(f"error: no service {service} in cluster {cluster}; SERVICE is a node name such as scheduler")
    if not described[0].get("enableExecuteCommand"):
        raise SystemExit(f"error: ECS Exec is off for {service}; set ecs_exec_enabled: true and deploy")
    arns = ecs.list_tasks(cluster=cluster, serviceName=service, desiredStatus="RUNNING")["taskArns"]
    tasks = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if arns else []
    running = [t["taskArn"] for t in tasks if t["lastStatus"] == "RUNNING"]
    if not running:
        raise SystemExit(f"error: {service} has no RUNNING task to open a shell in")
    return sorted(running)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make shell", description=__doc__.splitlines()[0])
    parser.add_argument("service", help="node name: api-server, scheduler, dag-processor, triggerer, worker, flower")
    parser.add_argument("--command", default="/bin/bash", help="what to run instead of an interactive bash")
    parser.add_argument("--inventory", default="inventories/aws")
    parser.add_argument("--stack", help="stack name (default: the inventory's stack_name)")
    parser.add_argument("--region", help="AWS region (default: the inventory's aws_region)")
    args = parser.parse_args(argv)
    stack, region, emulator = (
        (args.stack, args.region, False) if args.stack and args.region else inventory_settings(args.inventory)
    )
    if emulator:
        raise SystemExit(
            "error: ECS Exec is an AWS service the embedded emulator does not serve; there the tasks are local "
            "processes (their directories and logs: .state/emulator/runtime/tasks/). Use INVENTORY=inventories/aws"
        )
    stack, region = args.stack or stack, args.region or region
    missing = [tool for tool in ("aws", "session-manager-plugin") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(
            f"error: make shell needs {' and '.join(missing)} on PATH (the AWS CLI v2 and the Session Manager "
            f"plugin: {PLUGIN_DOCS})"
        )
    ecs = boto3.client("ecs", region_name=region)
    service = service_of(ecs, stack, stack, args.service)
    task = running_task(ecs, stack, service)
    command = ["aws", "ecs", "execute-command", "--region", region, "--cluster", stack, "--task", task,
               "--container", args.service, "--interactive", "--command", args.command]  # fmt: skip
    print(f"ECS Exec into {task.rsplit('/', 1)[-1]} ({service}, container {args.service}); the session is recorded",
          flush=True)  # fmt: skip
    os.execvp(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
