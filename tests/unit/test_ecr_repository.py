"""library/ecr_repository.py against the emulator, through the real `ansible` CLI, its calls counted by the
weather proxy: create in check mode -> create -> unchanged re-run -> update -> delete (with images) -> again."""

from __future__ import annotations

import json
from typing import Any

from ansible_runner import run_counted
from emulator import Emulator

from embedded_aws.weather import WeatherProxy

MODULE = "ecr_repository"
NAME = "airflow/airflow"
TAGS = {"airflow-ecs:stack": "airflow", "owner": "data"}
POLICY = {
    "rules": [
        {
            "rulePriority": 1,
            "description": "keep the last 10 images",
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 10},
            "action": {"type": "expire"},
        }
    ]
}
ARGS = {
    "name": NAME,
    "scan_on_push": True,
    "image_tag_mutability": "IMMUTABLE",
    "lifecycle_policy": POLICY,
    "tags": TAGS,
}
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": "sha256:" + "0" * 64},
        "layers": [],
    }
)
READS = {"ecr DescribeRepositories": 1, "ecr GetLifecyclePolicy": 1, "ecr ListTagsForResource": 1}


def run(proxy: WeatherProxy, args: dict[str, Any], **kwargs: Any) -> tuple[dict[str, Any], dict[str, int]]:
    return run_counted(MODULE, proxy, args, **kwargs)


def in_aws(emulator: Emulator) -> dict[str, Any]:
    ecr = emulator.client("ecr")
    found = {}
    for repo in ecr.describe_repositories()["repositories"]:
        name = repo["repositoryName"]
        tags = ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]
        try:
            policy = json.loads(ecr.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"])
        except ecr.exceptions.LifecyclePolicyNotFoundException:
            policy = None
        found[name] = {
            "scan_on_push": repo["imageScanningConfiguration"]["scanOnPush"],
            "image_tag_mutability": repo["imageTagMutability"],
            "lifecycle_policy": policy,
            "tags": {tag["Key"]: tag["Value"] for tag in tags},
        }
    return found


WANTED = {NAME: {"scan_on_push": True, "image_tag_mutability": "IMMUTABLE", "lifecycle_policy": POLICY, "tags": TAGS}}


def test_create_in_check_mode_then_create_then_rerun_only_reads(proxy: WeatherProxy, clean_emulator: Emulator) -> None:
    planned, calls = run(proxy, ARGS, check=True, diff=True)
    assert planned["changed"] is True and planned["changes"] == ["created"], planned
    assert calls == {"ecr DescribeRepositories": 1}
    assert in_aws(clean_emulator) == {}

    created, calls = run(proxy, ARGS)
    assert created["changed"] is True, created
    assert created["repository"]["uri"].endswith(f".amazonaws.com/{NAME}")
    assert calls == {"ecr DescribeRepositories": 1, "ecr CreateRepository": 1, "ecr PutLifecyclePolicy": 1}
    assert in_aws(clean_emulator) == WANTED

    again, calls = run(proxy, ARGS, diff=True)
    assert again["changed"] is False and again["changes"] == [], again
    assert calls == READS
    assert again["repository"] == created["repository"]


def test_drift_is_put_back(proxy: WeatherProxy, clean_emulator: Emulator) -> None:
    run(proxy, ARGS)
    ecr = clean_emulator.client("ecr")
    arn = ecr.describe_repositories(repositoryNames=[NAME])["repositories"][0]["repositoryArn"]
    ecr.put_image_tag_mutability(repositoryName=NAME, imageTagMutability="MUTABLE")
    ecr.put_image_scanning_configuration(repositoryName=NAME, imageScanningConfiguration={"scanOnPush": False})
    ecr.delete_lifecycle_policy(repositoryName=NAME)
    ecr.tag_resource(resourceArn=arn, tags=[{"Key": "extra", "Value": "x"}])

    planned, calls = run(proxy, ARGS, check=True)
    assert sorted(planned["changes"]) == ["image_tag_mutability", "lifecycle_policy", "scan_on_push", "tags"]
    assert calls == READS

    fixed, calls = run(proxy, ARGS)
    assert fixed["changed"] is True
    assert calls == {
        **READS,
        "ecr PutImageScanningConfiguration": 1,
        "ecr PutImageTagMutability": 1,
        "ecr PutLifecyclePolicy": 1,
        "ecr UntagResource": 1,
    }
    assert in_aws(clean_emulator) == WANTED


def test_delete_with_images_then_again(proxy: WeatherProxy, clean_emulator: Emulator) -> None:
    run(proxy, ARGS)
    clean_emulator.client("ecr").put_image(repositoryName=NAME, imageManifest=MANIFEST, imageTag="3.3.2-0123456789ab")
    absent = {"name": NAME, "state": "absent"}
    refused, _ = run(proxy, absent)
    assert refused.get("failed") and "still holds images" in refused["msg"], refused

    planned, calls = run(proxy, {**absent, "force_delete": True}, check=True)
    assert planned["changed"] is True and NAME in in_aws(clean_emulator)
    deleted, calls = run(proxy, {**absent, "force_delete": True})
    assert deleted["changed"] is True and calls == {"ecr DeleteRepository": 1}
    assert in_aws(clean_emulator) == {}
    again, calls = run(proxy, {**absent, "force_delete": True})
    assert again["changed"] is False and calls == {"ecr DeleteRepository": 1}
