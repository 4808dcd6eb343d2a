"""ARNs take their partition from the caller, so a stack in a China or GovCloud region names its own resources.

preflight publishes `preflight_partition` from the caller's ARN (STS); the roles and the deployer policy
write `arn:{{ preflight_partition }}:...`, and the modules take it from botocore's endpoint data.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from role_files import ROOT

# A literal partition in what the roles and playbooks render (their READMEs may show examples).
LITERAL = re.compile(r"arn:aws:")


def rendered_files() -> list:
    return sorted(
        path
        for folder in ("roles", "playbooks")
        for path in (ROOT / folder).rglob("*")
        if path.suffix in {".yml", ".yaml", ".j2", ".json"} and path.is_file()
    ) + sorted(ROOT.glob("*.yml"))


def test_no_role_or_playbook_writes_a_literal_partition():
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in rendered_files()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if LITERAL.search(line) and not line.lstrip().startswith("#")
    ]
    assert found == [], "write arn:{{ preflight_partition }}: instead:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("region", "partition"),
    [("eu-west-1", "aws"), ("cn-north-1", "aws-cn"), ("cn-northwest-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")],
)
def test_modules_take_the_partition_of_their_region(region, partition, load_library_module):
    """The bucket ARNs s3_buckets and stack_live_checks ask the tagging index about."""
    module = SimpleNamespace(region=region)
    for name in ("s3_buckets", "stack_live_checks"):
        assert load_library_module(name).bucket_arn(module, "b") == f"arn:{partition}:s3:::b"
