"""library/codebuild_image_build.py against the emulator, through the real `ansible` CLI, its calls counted.

The emulator runs a StartBuild as CodeBuild does (embedded_aws/codebuild.py): the service role's
credentials fetch the recipe zip from S3 and push an image record tagged IMAGE_TAG into ECR; with the
local runtime off (these tests) no Python environment is built. So the whole path is real here: project
created in check mode (nothing made) -> created, recipe uploaded, image built, digest read -> a re-run only
reads -> a new recipe tag updates the project and builds once more -> a failing build names its status and
log link -> the project deleted, and again.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from ansible_runner import run_counted
from emulator import Emulator
from role_files import ROOT

from embedded_aws.weather import WeatherProxy

_spec = importlib.util.spec_from_file_location("airflow_ecs_images_filter", ROOT / "plugins" / "filter" / "images.py")
images = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(images)

MODULE = "codebuild_image_build"
ACCOUNT = "123456789012"
BUCKET = "airflow-dags-123456789012-us-east-1"
REPOSITORY = "airflow/airflow"
URI = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/{REPOSITORY}"
PROJECT = "airflow-image"
ROLE = "airflow-image-build"
RECIPE = ROOT / "image"
HASH = images.recipe_hash(RECIPE)
VERSION = images.recipe_airflow_version(RECIPE)
TAG = f"{VERSION}-{HASH[:12]}"
ZIP = images.recipe_zip_base64(RECIPE)
BUILDSPEC = "version: 0.2\nphases:\n  build:\n    commands: [docker build .]\n"


def args(tag: str = TAG, base: str = f"apache/airflow:{VERSION}", **changes: Any) -> dict[str, Any]:
    """What the images role passes."""
    return {
        "project": {
            "name": PROJECT,
            "description": "airflow Airflow image from image/",
            "service_role": f"arn:aws:iam::{ACCOUNT}:role/{ROLE}",
            "buildspec": BUILDSPEC,
            "environment_variables": {
                "IMAGE_REPOSITORY_URI": URI,
                "IMAGE_TAG": tag,
                "BASE_IMAGE": base,
                "RECIPE_HASH": HASH,
            },
            "tags": {"airflow-ecs:stack": "airflow"},
        },
        "source": {"bucket": BUCKET, "key": f"image/recipe-{tag[-12:]}.zip", "content_base64": ZIP},
        "repository": REPOSITORY,
        "image_tag": tag,
        "poll_interval": 1,
        "wait_timeout": 300,
    } | changes


@pytest.fixture
def stack(clean_emulator: Emulator) -> Emulator:
    """The bucket, the repository and the build role as the images role makes them before the build."""
    clean_emulator.client("s3").create_bucket(Bucket=BUCKET)
    clean_emulator.client("ecr").create_repository(repositoryName=REPOSITORY, imageTagMutability="IMMUTABLE")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "codebuild.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    iam = clean_emulator.client("iam")
    iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(trust))
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:*", "ecr:*", "logs:*"], "Resource": "*"}],
    }
    iam.put_role_policy(RoleName=ROLE, PolicyName="build", PolicyDocument=json.dumps(policy))
    return clean_emulator


def run(proxy: WeatherProxy, module_args: dict[str, Any], **kwargs: Any) -> tuple[dict[str, Any], dict[str, int]]:
    return run_counted(MODULE, proxy, module_args, **kwargs)


def tags_in_ecr(emulator: Emulator) -> dict[str, str]:
    details = emulator.client("ecr").describe_images(repositoryName=REPOSITORY)["imageDetails"]
    return {tag: image["imageDigest"] for image in details for tag in image.get("imageTags", [])}


def objects(emulator: Emulator) -> list[str]:
    return sorted(o["Key"] for o in emulator.client("s3").list_objects_v2(Bucket=BUCKET).get("Contents", []))


def project_variables(emulator: Emulator) -> dict[str, str]:
    project = emulator.client("codebuild").batch_get_projects(names=[PROJECT])["projects"][0]
    return {v["name"]: v["value"] for v in project["environment"]["environmentVariables"]}


def test_check_mode_then_build_then_rerun_only_reads(proxy: WeatherProxy, stack: Emulator) -> None:
    planned, calls = run(proxy, args(), check=True)
    assert planned["changed"] is True and planned["built"] is True and planned["uploaded"] is True, planned
    assert planned["project_changes"] == ["created"] and planned["image_digest"] is None
    assert planned["msg"] == f"would build {REPOSITORY}:{TAG} (the repository has no image with that tag)"
    assert calls == {"codebuild BatchGetProjects": 1, "ecr DescribeImages": 1, "s3 HEAD Object": 1}
    assert objects(stack) == [] and tags_in_ecr(stack) == {}
    assert stack.client("codebuild").batch_get_projects(names=[PROJECT])["projects"] == []

    built, calls = run(proxy, args())
    assert built["changed"] is True and built["built"] is True and built["uploaded"] is True, built
    assert built["build"]["status"] == "SUCCEEDED"
    assert built["image_digest"] == tags_in_ecr(stack)[TAG]
    assert objects(stack) == [f"image/recipe-{HASH[:12]}.zip"]
    assert calls["codebuild CreateProject"] == 1 and calls["codebuild StartBuild"] == 1
    assert calls["s3 PUT Object"] == 1 and calls["ecr DescribeImages"] == 2

    again, calls = run(proxy, args())
    assert again["changed"] is False and again["built"] is False and again["project_changes"] == [], again
    assert again["image_digest"] == built["image_digest"]
    assert calls == {"codebuild BatchGetProjects": 1, "ecr DescribeImages": 1}


def test_new_recipe_tag_updates_the_project_and_builds_once(proxy: WeatherProxy, stack: Emulator) -> None:
    run(proxy, args())
    new_tag = f"{VERSION}-aaaaaaaaaaaa"
    planned, calls = run(proxy, args(tag=new_tag), check=True)
    assert planned["project_changes"] == ["updated", "source", "environment"], planned
    assert project_variables(stack)["IMAGE_TAG"] == TAG  # check mode changed nothing

    built, calls = run(proxy, args(tag=new_tag))
    assert built["built"] is True and calls["codebuild UpdateProject"] == 1 and calls["codebuild StartBuild"] == 1
    assert project_variables(stack)["IMAGE_TAG"] == new_tag
    assert set(tags_in_ecr(stack)) == {TAG, new_tag}


def test_a_failed_build_names_its_status_phase_and_log_link(proxy: WeatherProxy, stack: Emulator) -> None:
    failed, _ = run(proxy, args(base="apache/airflow:2.10.5"))  # not the version the recipe is locked for
    assert failed.get("failed"), failed
    assert "ended FAILED in phase BUILD" in failed["msg"], failed["msg"]
    assert "its log: https://console.aws.amazon.com/cloudwatch/home?region=us-east-1#logEvent:group=" in failed["msg"]
    assert failed["build"]["status"] == "FAILED"
    assert tags_in_ecr(stack) == {}


def test_failure_message_of_an_aws_shaped_build() -> None:
    build = {
        "id": "airflow-image:1",
        "buildStatus": "TIMED_OUT",
        "phases": [
            {"phaseType": "PROVISIONING", "phaseStatus": "SUCCEEDED"},
            {
                "phaseType": "BUILD",
                "phaseStatus": "TIMED_OUT",
                "contexts": [{"statusCode": "BUILD_TIMEOUT", "message": "Build timed out"}],
            },
        ],
        "logs": {
            "deepLink": "https://console.aws.amazon.com/cloudwatch/home#logEvent:group=/aws/codebuild/airflow-image"
        },
    }
    loaded = _load_module()
    message = loaded.failure_message(build, TAG)
    assert message == (
        f"CodeBuild build airflow-image:1 of image tag {TAG} ended TIMED_OUT in phase BUILD (Build timed out); "
        "its log: https://console.aws.amazon.com/cloudwatch/home#logEvent:group=/aws/codebuild/airflow-image"
    )


def test_delete_the_project_then_again(proxy: WeatherProxy, stack: Emulator) -> None:
    run(proxy, args())
    absent = {"project": {"name": PROJECT}, "state": "absent"}
    planned, _ = run(proxy, absent, check=True)
    assert planned["changed"] is True and planned["project_changes"] == ["deleted"]
    deleted, calls = run(proxy, absent)
    assert deleted["changed"] is True and calls == {"codebuild BatchGetProjects": 1, "codebuild DeleteProject": 1}
    assert stack.client("codebuild").batch_get_projects(names=[PROJECT])["projects"] == []
    assert TAG in tags_in_ecr(stack)  # images stay
    again, calls = run(proxy, absent)
    assert again["changed"] is False and calls == {"codebuild BatchGetProjects": 1}


def _load_module() -> Any:
    import sys  # noqa: PLC0415

    from ansible_runner import ROOT as root  # noqa: PLC0415

    for util in ("aws_retry",):
        spec = importlib.util.spec_from_file_location(
            f"ansible.module_utils.{util}", root / "module_utils" / f"{util}.py"
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[f"ansible.module_utils.{util}"] = module
        spec.loader.exec_module(module)
    spec = importlib.util.spec_from_file_location(
        "library_codebuild_image_build", Path(root) / "library" / f"{MODULE}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
