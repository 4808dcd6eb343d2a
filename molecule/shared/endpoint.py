#!/usr/bin/env python3
"""The AWS endpoint of one molecule scenario: start, stop, probe, describe and list leftovers.

Every subcommand takes the scenario's state file (JSON, in $MOLECULE_EPHEMERAL_DIRECTORY) as its first
argument and prints one JSON document. The state file records what `start-*` started (kind, url, pid,
port, log, LocalStack home), so `stop` only ever stops what this scenario started.

    endpoint.py start-moto STATE           private moto server on a free loopback port
    endpoint.py start-localstack STATE     LocalStack Community (host mode) on a free port, or the
                                           endpoint in LOCALSTACK_ENDPOINT / AWS_ENDPOINT_URL
    endpoint.py stop STATE                 stop what start-* started, remove its state
    endpoint.py status STATE               {"up": true|false, ...}
    endpoint.py probe STATE                one call per service: which APIs this endpoint offers
    endpoint.py describe STATE [STACK]     the stack's resources, for verify.yml
    endpoint.py leftovers STATE            every resource a fresh account does not have

`describe` and `leftovers` read only the APIs given with --services (default: all of them).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

PROJECT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT / "tests"))  # the test harness's leftover listing (tests/stack_inventory.py)
from stack_inventory import CHECKS  # noqa: E402

sys.path.insert(0, str(PROJECT))
from embedded_aws.launcher import free_port, start_emulator  # noqa: E402

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
# LocalStack's venv is big (500 MB, ~80 s to build): one copy per checkout, in the git-ignored .state/.
LOCALSTACK_CACHE = PROJECT / ".state" / "localstack"

# One cheap read per service the roles use. A Pro-only LocalStack API answers HTTP 501 at once (botocore
# does not retry a 501), so one call decides; the Ansible modules would instead retry InternalFailure for
# minutes.
PROBES: dict[str, Callable[[Any], Any]] = {
    "sts": lambda c: c.get_caller_identity(),
    "ec2": lambda c: c.describe_availability_zones(),
    "iam": lambda c: c.list_roles(MaxItems=1),
    "logs": lambda c: c.describe_log_groups(limit=1),
    "secretsmanager": lambda c: c.list_secrets(MaxResults=1),
    "s3": lambda c: c.list_buckets(),
    "ecs": lambda c: c.list_clusters(maxResults=1),
    "rds": lambda c: c.describe_db_instances(MaxRecords=20),
    "servicediscovery": lambda c: c.list_namespaces(MaxResults=1),
    "elbv2": lambda c: c.describe_load_balancers(PageSize=1),
    "application-autoscaling": lambda c: c.describe_scalable_targets(ServiceNamespace="ecs", MaxResults=1),
    "mq": lambda c: c.list_brokers(MaxResults=1),
    "cloudwatch": lambda c: c.list_dashboards(),
    "sns": lambda c: c.list_topics(),
    "ecr": lambda c: c.describe_repositories(maxResults=1),
    "codebuild": lambda c: c.list_projects(),
    # The NAT instance's image: the public AMI parameter the network role reads.
    "ssm": lambda c: c.get_parameters(Names=["/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"]),
}


# --------------------------------------------------------------------------------------------- state


def read_state(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}


def write_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(path)


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).read()
        return True
    except OSError:
        return False


def pid_alive(pid: int | None, needle: str) -> bool:
    """The pid is alive and still the process we started (its command line contains `needle`)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return needle in cmdline


def client(state: dict[str, Any], service: str):
    return boto3.client(
        service,
        endpoint_url=state["url"],
        region_name=REGION,
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=60),
        **CREDENTIALS,
    )


class _Endpoint:
    """What tests/stack_inventory.py expects of an emulator: a `client(service)` method."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    def client(self, service: str):
        return client(self.state, service)


# ------------------------------------------------------------------------------------------ lifecycle


def start_moto(state_file: Path) -> dict[str, Any]:
    state = read_state(state_file)
    if state.get("kind") == "moto" and status(state_file)["up"]:
        return {**state, "changed": False}
    stop(state_file)  # whatever an earlier run recorded but no longer answers
    # The one launcher (embedded_aws/launcher.py), runtime off: the scenarios check infrastructure only.
    # Own session: the server outlives this script and ansible-playbook; cleanup.yml stops it by pid.
    try:
        emulator = start_emulator(state_file.parent / "moto.log", runtime=False, detach=True)
    except RuntimeError as err:
        sys.exit(str(err))
    state = {"kind": "moto", "url": emulator.url, "port": emulator.port, "pid": emulator.pid,
             "log": str(state_file.parent / "moto.log")}  # fmt: skip
    write_state(state_file, state)
    return {**state, "changed": True}


def localstack_script() -> Path:
    """scripts/localstack-host.sh of this repository (LOCALSTACK_HOST_SCRIPT overrides)."""
    return Path(os.environ.get("LOCALSTACK_HOST_SCRIPT") or PROJECT / "scripts" / "localstack-host.sh")


def _localstack_env(home: Path, port: int | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LS_", "AWS_"))}
    env["LS_HOME"] = str(home)
    if port:
        env["LS_PORT"] = str(port)
    return env


def _install_localstack(script: Path) -> Path:
    """Build (once per checkout, under a lock) the LocalStack venv every run links to."""
    LOCALSTACK_CACHE.mkdir(parents=True, exist_ok=True)
    with (LOCALSTACK_CACHE / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = subprocess.run(
            ["bash", str(script), "install"],
            env=_localstack_env(LOCALSTACK_CACHE),
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        lines = [line for line in (proc.stdout + proc.stderr).splitlines() if "is ignored: it is neither" not in line]
        tail = "\n".join(lines[-15:])
        sys.exit(
            f"LocalStack could not be installed with {script} (it needs Python 3.13: set LS_PYTHON to one):\n{tail}"
        )
    return LOCALSTACK_CACHE / "venv"


def start_localstack(state_file: Path) -> dict[str, Any]:
    external = os.environ.get("LOCALSTACK_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL")
    if external:
        state = {"kind": "external", "url": external.rstrip("/")}
        write_state(state_file, state)
        return {**state, "changed": False}
    state = read_state(state_file)
    if state.get("kind") == "localstack" and status(state_file)["up"]:
        return {**state, "changed": False}
    stop(state_file)  # whatever an earlier run recorded but no longer answers
    script = localstack_script()
    if not script.is_file():
        sys.exit(f"LocalStack cannot be started: {script} is missing")
    venv = _install_localstack(script)
    # A private LS_HOME per run (pid file, log, LocalStack's files) that links to the shared venv, so a
    # LocalStack someone else runs with the default ~/.localstack-host is never touched.
    home = state_file.parent / "localstack"
    home.mkdir(parents=True, exist_ok=True)
    link = home / "venv"
    if not link.is_symlink():
        link.symlink_to(venv, target_is_directory=True)
    port = free_port()
    started = time.monotonic()
    proc = subprocess.run(
        ["bash", str(script), "start"],
        env=_localstack_env(home, port),
        capture_output=True,
        text=True,
        check=False,
    )
    pid_file = home / "localstack.pid"
    pid = int(pid_file.read_text()) if pid_file.is_file() else None
    state = {
        "kind": "localstack",
        "url": f"http://127.0.0.1:{port}",
        "port": port,
        "pid": pid,
        "home": str(home),
        "log": str(home / "localstack.log"),
        "script": str(script),
    }
    write_state(state_file, state)
    if proc.returncode != 0:
        stop(state_file)
        sys.exit(f"LocalStack did not start ({script} start):\n{proc.stdout}{proc.stderr}")
    return {**state, "changed": True, "seconds": round(time.monotonic() - started, 1)}


def stop(state_file: Path) -> dict[str, Any]:
    state = read_state(state_file)
    kind = state.get("kind")
    stopped = False
    if kind == "localstack":
        home = Path(state["home"])
        if pid_alive(state.get("pid"), "localstack.runtime.main"):
            subprocess.run(
                ["bash", state["script"], "stop"],
                check=False,
                env=_localstack_env(home, state["port"]),
                capture_output=True,
            )
            stopped = True
        shutil.rmtree(home, ignore_errors=True)  # the venv link goes, the shared venv stays
    elif kind == "moto" and pid_alive(state.get("pid"), "embedded_aws"):
        pid = state["pid"]
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not pid_alive(pid, "embedded_aws"):
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
        stopped = True
    if kind == "moto" and state.get("log"):
        Path(state["log"]).unlink(missing_ok=True)
    state_file.unlink(missing_ok=True)
    return {"changed": stopped, "stopped": kind if stopped else None}


def status(state_file: Path) -> dict[str, Any]:
    state = read_state(state_file)
    kind = state.get("kind")
    if kind == "moto":
        up = pid_alive(state.get("pid"), "embedded_aws") and answers(state["url"] + "/moto-api/")
    elif kind == "localstack":
        up = pid_alive(state.get("pid"), "localstack.runtime.main") and answers(state["url"] + "/_localstack/health")
    elif kind == "external":
        up = True
    else:
        up = False
    return {**state, "up": up}


# ------------------------------------------------------------------------------------------- queries


def probe(state_file: Path) -> dict[str, Any]:
    state = read_state(state_file)
    available, unavailable, account = [], {}, None
    for service, call in PROBES.items():
        try:
            answer = call(client(state, service))
            available.append(service)
            if service == "sts":
                account = answer["Account"]
        except ClientError as exc:
            status_code = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status_code == 501:
                unavailable[service] = exc.response.get("Error", {}).get("Message", "HTTP 501")
            else:  # the API exists; the call itself was refused (e.g. permissions)
                available.append(service)
        except BotoCoreError as exc:
            sys.exit(f"cannot probe {service} at {state.get('url')}: {exc}")
    return {"url": state.get("url"), "account": account, "available": available, "unavailable": unavailable}


def _tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def describe(state_file: Path, stack: str, services: list[str]) -> dict[str, Any]:
    """What verify.yml asserts on, limited to the services the endpoint offers."""
    state = read_state(state_file)
    out: dict[str, Any] = {"stack": stack}
    if "ec2" in services:
        ec2 = client(state, "ec2")
        vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:airflow-ecs:stack", "Values": [stack]}])["Vpcs"]
        out["vpcs"] = [{"id": v["VpcId"], "name": _tags(v).get("Name"), "cidr": v["CidrBlock"]} for v in vpcs]
        vpc_ids = [v["VpcId"] for v in vpcs] or ["vpc-none"]
        in_vpc = [{"Name": "vpc-id", "Values": vpc_ids}]
        out["subnets"] = sorted(
            (
                {"tier": _tags(s).get("airflow-ecs:tier"), "az": s["AvailabilityZone"], "cidr": s["CidrBlock"]}
                for s in ec2.describe_subnets(Filters=in_vpc)["Subnets"]
            ),
            key=lambda s: (s["tier"] or "", s["az"]),
        )
        out["internet_gateways"] = len(
            ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": vpc_ids}])[
                "InternetGateways"
            ]
        )
        out["nat_gateways"] = len(
            [
                n
                for n in ec2.describe_nat_gateways(Filters=in_vpc)["NatGateways"]
                if n["State"] in ("pending", "available")
            ]
        )
        # NAT instances (network_egress nat_instance, the default), running or starting.
        out["nat_instances"] = len(
            [
                i
                for r in ec2.describe_instances(Filters=[*in_vpc, {"Name": "tag:airflow-ecs:tier", "Values": ["nat"]}])[
                    "Reservations"
                ]
                for i in r["Instances"]
                if i["State"]["Name"] in ("pending", "running")
            ]
        )
        out["route_tables"] = sorted(
            _tags(t).get("Name", "")
            for t in ec2.describe_route_tables(Filters=in_vpc)["RouteTables"]
            if _tags(t).get("airflow-ecs:stack") == stack
        )
        out["security_groups"] = sorted(
            g["GroupName"] for g in ec2.describe_security_groups(Filters=in_vpc)["SecurityGroups"]
        )
    if "secretsmanager" in services:
        out["secrets"] = sorted(
            s["Name"]
            for s in client(state, "secretsmanager").list_secrets()["SecretList"]
            if s["Name"].startswith(f"{stack}/")
        )
    if "s3" in services:
        out["buckets"] = sorted(
            b["Name"] for b in client(state, "s3").list_buckets()["Buckets"] if b["Name"].startswith(f"{stack}-")
        )
    if "iam" in services:
        out["iam_roles"] = sorted(
            r["RoleName"] for r in client(state, "iam").list_roles()["Roles"] if r["RoleName"].startswith(f"{stack}-")
        )
    if "logs" in services:
        out["log_groups"] = sorted(
            g["logGroupName"]
            for g in client(state, "logs").describe_log_groups(logGroupNamePrefix=f"/ecs/{stack}/")["logGroups"]
        )
    if "rds" in services:
        out["db_instances"] = [
            {
                "id": d["DBInstanceIdentifier"],
                "engine": d["Engine"],
                "encrypted": d["StorageEncrypted"],
                "public": d["PubliclyAccessible"],
                "subnet_azs": sorted({s["SubnetAvailabilityZone"]["Name"] for s in d["DBSubnetGroup"]["Subnets"]}),
            }
            for d in client(state, "rds").describe_db_instances()["DBInstances"]
            if d["DBInstanceIdentifier"].startswith(f"{stack}-")
        ]
    if "servicediscovery" in services:
        sd = client(state, "servicediscovery")
        namespaces = [n for n in sd.list_namespaces()["Namespaces"] if n["Name"] == f"{stack}.internal"]
        route53 = client(state, "route53")
        out["namespaces"] = []
        for n in namespaces:
            zone_id = n.get("Properties", {}).get("DnsProperties", {}).get("HostedZoneId", "")
            zone = route53.get_hosted_zone(Id=zone_id.split("/")[-1]) if zone_id else {}
            out["namespaces"].append(
                {
                    "name": n["Name"],
                    "type": n["Type"],
                    "private_zone": zone.get("HostedZone", {}).get("Config", {}).get("PrivateZone"),
                    "vpcs": sorted(v["VPCId"] for v in zone.get("VPCs", [])),
                }
            )
        out["discovery_services"] = sorted(
            s["Name"]
            for n in namespaces
            for s in sd.list_services(Filters=[{"Name": "NAMESPACE_ID", "Values": [n["Id"]]}])["Services"]
        )
    if "ecs" in services:
        ecs = client(state, "ecs")
        clusters = ecs.describe_clusters(clusters=[stack])["clusters"]
        out["clusters"] = [
            {"name": c["clusterName"], "providers": sorted(c.get("capacityProviders", []))}
            for c in clusters
            if c["status"] == "ACTIVE"
        ]
        arns = ecs.list_services(cluster=stack)["serviceArns"] if out["clusters"] else []
        found = []
        for start in range(0, len(arns), 10):
            found += ecs.describe_services(cluster=stack, services=arns[start : start + 10])["services"]
        out["ecs_services"] = sorted(
            (
                {
                    "name": s["serviceName"],
                    "desired": s["desiredCount"],
                    "registries": len(s.get("serviceRegistries", [])),
                    "public_ip": s["networkConfiguration"]["awsvpcConfiguration"].get("assignPublicIp"),
                }
                for s in found
                if s["status"] == "ACTIVE"
            ),
            key=lambda s: s["name"],
        )
    if "elbv2" in services:
        elb = client(state, "elbv2")
        out["load_balancers"] = [
            {"name": lb["LoadBalancerName"], "scheme": lb["Scheme"], "azs": len(lb["AvailabilityZones"])}
            for lb in elb.describe_load_balancers()["LoadBalancers"]
            if lb["LoadBalancerName"].startswith(f"{stack}-")
        ]
        out["target_groups"] = sorted(
            t["TargetGroupName"]
            for t in elb.describe_target_groups()["TargetGroups"]
            if t["TargetGroupName"].startswith(f"{stack}-")
        )
    return out


# Which tests/stack_inventory.py check needs which API.
_CHECK_SERVICES = {
    "_ec2": "ec2",
    "_secrets": "secretsmanager",
    "_rds": "rds",
    "_ecs": "ecs",
    "_logs": "logs",
    "_iam": "iam",
    "_s3": "s3",
    "_cloud_map": "servicediscovery",
    "_elb": "elbv2",
    "_autoscaling": "application-autoscaling",
    "_mq": "mq",
}


def leftovers(state_file: Path, services: list[str]) -> dict[str, Any]:
    endpoint = _Endpoint(read_state(state_file))
    checks = [c for c in CHECKS if _CHECK_SERVICES.get(c.__name__, "") in services]
    return {"leftovers": [item for check in checks for item in check(endpoint)], "services": services}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "command", choices=["start-moto", "start-localstack", "stop", "status", "probe", "describe", "leftovers"]
    )
    parser.add_argument("state_file", type=Path)
    parser.add_argument("stack", nargs="?", default="airflow")
    parser.add_argument("--services", default=",".join(PROBES), help="comma-separated APIs to read (default: all)")
    args = parser.parse_args(argv)
    services = [s for s in args.services.split(",") if s]
    commands: dict[str, Callable[[], dict[str, Any]]] = {
        "start-moto": lambda: start_moto(args.state_file),
        "start-localstack": lambda: start_localstack(args.state_file),
        "stop": lambda: stop(args.state_file),
        "status": lambda: status(args.state_file),
        "probe": lambda: probe(args.state_file),
        "describe": lambda: describe(args.state_file, args.stack, services),
        "leftovers": lambda: leftovers(args.state_file, services),
    }
    print(json.dumps(commands[args.command](), indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
