"""Fixtures shared by the unit tests of the library modules."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from ansible_runner import ROOT
from emulator import Emulator

from embedded_aws.weather import Weather, WeatherProxy

NAMESPACE_NAME = "airflow.local"


@pytest.fixture
def vpc_id(clean_emulator: Emulator) -> str:
    """A VPC in a blank moto account."""
    return clean_emulator.client("ec2").create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]


@pytest.fixture
def namespace_id(clean_emulator: Emulator, vpc_id: str) -> str:
    """A private DNS namespace `airflow.local` in `vpc_id`, made with boto3 (moto finishes the operation at once)."""
    client = clean_emulator.client("servicediscovery")
    operation_id = client.create_private_dns_namespace(Name=NAMESPACE_NAME, Vpc=vpc_id)["OperationId"]
    return client.get_operation(OperationId=operation_id)["Operation"]["Targets"]["NAMESPACE"]


def load_source(name: str, path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # imports and @dataclass look the module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def load_library_module(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], ModuleType]:
    """Import a library/ module in this process, with the project's module_utils where Ansible puts them."""
    for util in (
        "aws_retry",
        "desired_tags",
        "iam_read",
        "tag_index",
        "servicediscovery",
        "ec2_batch",
        "batch_items",
    ):  # in dependency order
        load_source(f"ansible.module_utils.{util}", ROOT / "module_utils" / f"{util}.py", monkeypatch)
    return lambda name: load_source(f"library_{name}", ROOT / "library" / f"{name}.py", monkeypatch)


@pytest.fixture
def proxy(clean_emulator: Emulator) -> Iterator[WeatherProxy]:
    """The weather proxy in front of the blank emulator, counting the module's calls (no latency, no faults)."""
    counting = WeatherProxy(clean_emulator.url, Weather(latency_ms=0))
    yield counting
    counting.close()
