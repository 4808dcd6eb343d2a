"""Images on the local runtime (embedded_aws/registry.py, codebuild.py): a task runs its image's package set.

One emulator with the runtime on (enforced IAM) for the module. apache/airflow:3.3.2 runs the stock image's
package set, which lacks matplotlib (the ETL DAG's `analyze` imports it); the project image, built from the
recipe in image/ by a CodeBuild StartBuild into the emulator's ECR, has it. ECR images are pulled with the
execution role's credentials, RabbitMQ through an ECR pull-through cache rule, all judged by enforced IAM.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from emulator import start_emulator

from embedded_aws import image_env, registry

pytestmark = pytest.mark.xdist_group("local_images")

ACCOUNT = "123456789012"
REGISTRY = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
CLUSTER = "images"
REPOSITORY = "images/airflow"
BUCKET = "images-build"
PROJECT = "images-image"
STOCK = "apache/airflow:3.3.2"
ECS_TASKS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
CODEBUILD = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "codebuild.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
PULL = ["ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
IMPORT = ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"]
PUSH = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
]
BUILD_LOGS = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]


def policy(*statements: tuple[list[str], str]) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": actions, "Resource": resource} for actions, resource in statements
            ],
        }
    )


@pytest.fixture(scope="module")
def runtime() -> Iterator[dict]:
    # The environments the launcher builds before `make deploy` (cached): no task start waits on a cold build.
    image_env.stock_python_bin("3.3.2")
    image_env.recipe_python_bin(image_env.RECIPE_DIR)
    state = Path(tempfile.mkdtemp(prefix="airflow-images-"))
    state.chmod(0o755)
    emulator = start_emulator(state / "moto.log", runtime=True)
    try:
        ec2 = emulator.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})  # moto's ENIs need it
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName="tasks", Description="tasks", VpcId=vpc)["GroupId"]
        iam = emulator.client("iam")
        roles = {}
        execution_roles = {
            "execution": policy((PULL + IMPORT, "*")),
            "no-pull": policy((["ecr:GetAuthorizationToken", "ecr:GetDownloadUrlForLayer"], "*")),
            "no-import": policy((PULL, "*")),
        }
        for name, document in execution_roles.items():
            roles[name] = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(ECS_TASKS))["Role"]["Arn"]
            iam.put_role_policy(RoleName=name, PolicyName="pull", PolicyDocument=document)
        build_roles = {
            "image-build": policy(
                (BUILD_LOGS, "*"),
                (["s3:GetObject"], f"arn:aws:s3:::{BUCKET}/image/*"),
                (["ecr:GetAuthorizationToken", *PUSH], "*"),
            ),
            "image-build-no-s3": policy((BUILD_LOGS, "*"), (["ecr:GetAuthorizationToken", *PUSH], "*")),
        }
        for name, document in build_roles.items():
            roles[name] = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(CODEBUILD))["Role"]["Arn"]
            iam.put_role_policy(RoleName=name, PolicyName="build", PolicyDocument=document)
        emulator.client("s3").create_bucket(Bucket=BUCKET)
        emulator.client("ecr").create_repository(
            repositoryName=REPOSITORY, imageTagMutability="IMMUTABLE", imageScanningConfiguration={"scanOnPush": True}
        )
        emulator.client("ecs").create_cluster(clusterName=CLUSTER)
        network = {"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}}
        yield {"emulator": emulator, "network": network, "roles": roles}
    finally:
        emulator.stop()
        shutil.rmtree(state, ignore_errors=True)


def recipe_zip(changes: dict[str, bytes]) -> bytes:
    """The recipe zip the deploy uploads: image/'s three files, with `changes` instead where given."""
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        for name in ("Dockerfile", "requirements.txt", "requirements.lock"):
            archive.writestr(name, changes.get(name) or (image_env.RECIPE_DIR / name).read_bytes())
    return data.getvalue()


def start_build(
    runtime: dict, project: str, service_role: str, changes: dict[str, bytes] | None = None
) -> tuple[str, str]:
    """A CodeBuild project as the images role makes it (S3 recipe zip, IMAGE_* variables); (build id, tag)."""
    emulator = runtime["emulator"]
    recipe = image_env.recipe_hash(image_env.RECIPE_DIR)
    tag = f"3.3.2-{recipe[:12]}"
    key = f"image/{project}/recipe-{recipe[:12]}.zip"
    emulator.client("s3").put_object(Bucket=BUCKET, Key=key, Body=recipe_zip(changes or {}))
    codebuild = emulator.client("codebuild")
    codebuild.create_project(
        name=project,
        source={"type": "S3", "location": f"{BUCKET}/{key}", "buildspec": "version: 0.2\nphases: {}\n"},
        artifacts={"type": "NO_ARTIFACTS"},
        environment={
            "type": "LINUX_CONTAINER",
            "image": "aws/codebuild/standard:7.0",
            "computeType": "BUILD_GENERAL1_SMALL",
            "privilegedMode": True,
            "environmentVariables": [
                {"name": "IMAGE_REPOSITORY_URI", "value": f"{REGISTRY}/{REPOSITORY}"},
                {"name": "IMAGE_TAG", "value": tag},
                {"name": "BASE_IMAGE", "value": STOCK},
            ],
        },
        serviceRole=runtime["roles"][service_role],
    )
    return codebuild.start_build(projectName=project)["build"]["id"], tag


def wait_build(runtime: dict, build_id: str, timeout: float = 300) -> tuple[list[str], dict]:
    """Every buildStatus seen until the build ended, and the ended build."""
    codebuild = runtime["emulator"].client("codebuild")
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        build = codebuild.batch_get_builds(ids=[build_id])["builds"][0]
        seen.append(build["buildStatus"])
        if build["buildStatus"] != "IN_PROGRESS" or time.monotonic() > deadline:
            return seen, build
        time.sleep(0.2)


def build_log(runtime: dict, build: dict) -> str:
    events = (
        runtime["emulator"]
        .client("logs")
        .get_log_events(logGroupName=build["logs"]["groupName"], logStreamName=build["logs"]["streamName"])["events"]
    )
    return "\n".join(e["message"] for e in events)


@pytest.fixture(scope="module")
def project_image(runtime: dict) -> dict:
    """The project image built from image/ by CodeBuild: the build and `<registry>/<repository>@<digest>`."""
    build_id, tag = start_build(runtime, PROJECT, "image-build")
    seen, build = wait_build(runtime, build_id)
    described = (
        runtime["emulator"].client("ecr").describe_images(repositoryName=REPOSITORY, imageIds=[{"imageTag": tag}])
    )
    digest = described["imageDetails"][0]["imageDigest"] if build["buildStatus"] == "SUCCEEDED" else ""
    return {"build": build, "seen": seen, "tag": tag, "image": f"{REGISTRY}/{REPOSITORY}@{digest}"}


def run_and_wait(
    runtime: dict,
    family: str,
    image: str,
    command: list[str],
    *,
    execution_role: str = "execution",
    cpu_architecture: str = "X86_64",
) -> dict:
    emulator = runtime["emulator"]
    ecs = emulator.client("ecs")
    definition = ecs.register_task_definition(
        family=family,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        executionRoleArn=runtime["roles"][execution_role],
        runtimePlatform={"cpuArchitecture": cpu_architecture, "operatingSystemFamily": "LINUX"},
        containerDefinitions=[{"name": "main", "image": image, "memory": 512, "essential": True, "command": command}],
    )["taskDefinition"]["taskDefinitionArn"]
    arn = ecs.run_task(
        cluster=CLUSTER, taskDefinition=definition, launchType="FARGATE", networkConfiguration=runtime["network"]
    )["tasks"][0]["taskArn"]
    deadline = time.monotonic() + 90
    while True:
        task = ecs.describe_tasks(cluster=CLUSTER, tasks=[arn])["tasks"][0]
        if task["lastStatus"] == "STOPPED" or time.monotonic() > deadline:
            return task
        time.sleep(0.3)


def published(runtime: dict, task: dict) -> dict:
    """The task as the agent published it in runtime.json (rewritten within a reconcile after it stopped)."""
    deadline = time.monotonic() + 10
    while True:
        found = runtime["emulator"].runtime().get("tasks", {}).get(task["taskArn"].rsplit("/", 1)[-1], {})
        if found.get("lastStatus") == task["lastStatus"] or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def task_log(runtime: dict, task: dict) -> str:
    directory = Path(published(runtime, task)["directory"])
    return "".join(p.read_text() for p in (directory / "logs").glob("*.log"))


def exit_codes(task: dict) -> list[int | None]:
    return [c.get("exitCode") for c in task["containers"]]


def test_the_stock_airflow_image_runs_its_own_package_set_which_lacks_matplotlib(runtime: dict) -> None:
    """What fails on AWS fails here: the stock image has pandas but not matplotlib, and runs no venv of ours."""
    lacking = run_and_wait(runtime, "stock-matplotlib", STOCK, ["python", "-c", "import matplotlib"])
    assert exit_codes(lacking) == [1], task_log(runtime, lacking)
    assert "ModuleNotFoundError: No module named 'matplotlib'" in task_log(runtime, lacking)
    having = run_and_wait(runtime, "stock-pandas", STOCK, ["python", "-c", "import sys, pandas; print(sys.prefix)"])
    assert exit_codes(having) == [0], task_log(runtime, having)
    assert task_log(runtime, having).strip() == str(image_env.stock_python_bin("3.3.2").parent)
    assert "stock apache/airflow:3.3.2" in published(runtime, having)["images"]["main"]


@pytest.mark.parametrize(
    "image", ["apache/airflow:3.3.2", "docker.io/apache/airflow:3.3.2", "docker.io/apache/airflow:3.3.2-python3.12"]
)
def test_docker_hub_airflow_references_resolve_to_the_stock_environment(image: str) -> None:
    resolved = registry.Puller(dict, "").resolve(image)
    assert (resolved.program, resolved.bin_dir) == ("airflow", image_env.stock_python_bin("3.3.2"))


@pytest.mark.parametrize(
    ("image", "detail"),
    [
        ("apache/airflow:latest", "tags only"),
        ("apache/airflow:2.0.0", "no stock package set"),
        ("nginx:1", "not found"),
    ],
)
def test_an_image_the_runtime_has_no_environment_for_cannot_be_pulled(image: str, detail: str) -> None:
    with pytest.raises(registry.CannotPull, match=f"^CannotPullContainerError: .*{detail}"):
        registry.Puller(dict, "").resolve(image)


def test_a_codebuild_build_pushes_the_project_image_which_runs_matplotlib(runtime: dict, project_image: dict) -> None:
    build, tag = project_image["build"], project_image["tag"]
    assert project_image["seen"][0] == "IN_PROGRESS" and build["buildStatus"] == "SUCCEEDED", build
    phases = {p["phaseType"]: p.get("phaseStatus") for p in build["phases"]}
    assert {phases[name] for name in ("DOWNLOAD_SOURCE", "BUILD", "POST_BUILD")} == {"SUCCEEDED"}, phases
    assert build["logs"]["groupName"] == f"/aws/codebuild/{PROJECT}"
    assert f"docker push {REGISTRY}/{REPOSITORY}:{tag}" in build_log(runtime, build)
    ecr = runtime["emulator"].client("ecr")
    pulled = ecr.batch_get_image(repositoryName=REPOSITORY, imageIds=[{"imageTag": tag}])["images"][0]
    annotations = json.loads(pulled["imageManifest"])["annotations"]
    assert annotations == {
        "org.opencontainers.image.version": tag,
        "dev.airflow-ecs.recipe-hash": image_env.recipe_hash(image_env.RECIPE_DIR),
    }
    task = run_and_wait(runtime, "project-matplotlib", project_image["image"], ["python", "-c", "import matplotlib"])
    assert exit_codes(task) == [0], (task.get("stoppedReason"), task_log(runtime, task))
    assert "project image" in published(runtime, task)["images"]["main"]


def test_a_build_has_its_environments_architecture_and_runs_only_on_tasks_of_it(
    runtime: dict, project_image: dict
) -> None:
    """CodeBuild builds natively: a LINUX_CONTAINER build is an amd64 image. An ARM64 task pulls it (the pull
    names no platform) but cannot execute its entrypoint, as on Fargate; multi-arch stock images run on both."""
    task = run_and_wait(
        runtime, "arm-on-amd64", project_image["image"], ["python", "-c", "print(1)"], cpu_architecture="ARM64"
    )
    assert exit_codes(task) == [255] and task["stoppedReason"] == "Essential container in task exited", task
    assert "exec /usr/bin/dumb-init: exec format error" in task_log(runtime, task)
    stock = run_and_wait(runtime, "arm-stock", STOCK, ["python", "-c", "print(1)"], cpu_architecture="ARM64")
    assert exit_codes(stock) == [0], (stock.get("stoppedReason"), task_log(runtime, stock))


def test_an_execution_role_without_batch_get_image_cannot_pull_from_ecr(runtime: dict, project_image: dict) -> None:
    task = run_and_wait(runtime, "no-pull", project_image["image"], ["python", "-c", "pass"], execution_role="no-pull")
    assert task["stopCode"] == "TaskFailedToStart" and exit_codes(task) == [None], task
    assert task["stoppedReason"].startswith("CannotPullContainerError: "), task["stoppedReason"]
    assert "AccessDenied" in task["stoppedReason"] and "ecr:BatchGetImage" in task["stoppedReason"]


def test_a_missing_ecr_image_is_not_found(runtime: dict) -> None:
    task = run_and_wait(runtime, "missing", f"{REGISTRY}/{REPOSITORY}:no-such-tag", ["python", "-c", "pass"])
    assert task["stopCode"] == "TaskFailedToStart"
    assert task["stoppedReason"] == (
        "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref "
        f"{REGISTRY}/{REPOSITORY}:no-such-tag: {REGISTRY}/{REPOSITORY}:no-such-tag: not found"
    )


def test_rabbitmq_comes_through_a_pull_through_cache_rule(runtime: dict) -> None:
    """The first pull imports the upstream image and creates the repository, which the execution role must be
    allowed (ecr:BatchImportUpstreamImage, ecr:CreateRepository); a cached image needs only the pull actions."""
    ecr = runtime["emulator"].client("ecr")
    ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="ecr-public", upstreamRegistryUrl="public.ecr.aws")
    image = f"{REGISTRY}/ecr-public/docker/library/rabbitmq:4.1"
    denied = run_and_wait(runtime, "rabbit-no-import", image, ["true"], execution_role="no-import")
    assert denied["stopCode"] == "TaskFailedToStart", denied
    assert "CannotPullContainerError" in denied["stoppedReason"]
    assert "ecr:CreateRepository" in denied["stoppedReason"] and "AccessDenied" in denied["stoppedReason"]
    with pytest.raises(ClientError, match="RepositoryNotFoundException"):
        ecr.describe_repositories(repositoryNames=["ecr-public/docker/library/rabbitmq"])

    pulled = run_and_wait(runtime, "rabbit", image, ["true"])
    assert pulled["stopCode"] == "EssentialContainerExited" and exit_codes(pulled) == [0], pulled["stoppedReason"]
    assert "rabbitmq-server" in published(runtime, pulled)["images"]["main"]
    assert ecr.describe_images(repositoryName="ecr-public/docker/library/rabbitmq")["imageDetails"][0]["imageTags"] == [
        "4.1"
    ]
    cached = run_and_wait(runtime, "rabbit-cached", image, ["true"], execution_role="no-import")
    assert exit_codes(cached) == [0], cached

    other_tag = run_and_wait(
        runtime, "rabbit-new-tag", image.replace("4.1", "4.0"), ["true"], execution_role="no-import"
    )
    assert "ecr:BatchImportUpstreamImage" in other_tag["stoppedReason"], other_tag


def test_airflow_comes_through_a_docker_hub_pull_through_rule(runtime: dict) -> None:
    """A Docker Hub rule needs the registry's credentials in a Secrets Manager secret; its cached
    apache/airflow runs the stock package set."""
    emulator = runtime["emulator"]
    ecr = emulator.client("ecr")
    with pytest.raises(ClientError, match="InvalidParameterException"):
        ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="docker-hub", upstreamRegistryUrl="registry-1.docker.io")
    secret = emulator.client("secretsmanager").create_secret(
        Name="ecr-pullthroughcache/docker-hub", SecretString='{"username": "u", "accessToken": "t"}'
    )["ARN"]
    ecr.create_pull_through_cache_rule(
        ecrRepositoryPrefix="docker-hub", upstreamRegistryUrl="registry-1.docker.io", credentialArn=secret
    )
    image = f"{REGISTRY}/docker-hub/apache/airflow:3.3.2"
    task = run_and_wait(runtime, "hub-airflow", image, ["python", "-c", "import pandas, sys; print(sys.prefix)"])
    assert exit_codes(task) == [0], task.get("stoppedReason")
    assert task_log(runtime, task).strip() == str(image_env.stock_python_bin("3.3.2").parent)
    assert "via registry-1.docker.io/apache/airflow:3.3.2" in published(runtime, task)["images"]["main"]


def test_pull_through_cache_rule_api_answers_as_ecr(runtime: dict) -> None:
    emulator = runtime["emulator"]
    ecr = emulator.client("ecr")
    created = ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="quay-cache/", upstreamRegistryUrl="quay.io")
    assert (created["ecrRepositoryPrefix"], created["upstreamRegistry"], created["registryId"]) == (
        "quay-cache",
        "quay",
        ACCOUNT,
    )
    errors = {
        "PullThroughCacheRuleAlreadyExistsException": {
            "ecrRepositoryPrefix": "quay-cache",
            "upstreamRegistryUrl": "quay.io",
        },
        "UnsupportedUpstreamRegistryException": {"ecrRepositoryPrefix": "mine", "upstreamRegistryUrl": "example.com"},
        "ValidationException": {"ecrRepositoryPrefix": "Bad_Prefix", "upstreamRegistryUrl": "quay.io"},
        "InvalidParameterException": {"ecrRepositoryPrefix": "ghcr", "upstreamRegistryUrl": "ghcr.io"},
    }
    for code, arguments in errors.items():
        with pytest.raises(ClientError) as raised:
            ecr.create_pull_through_cache_rule(**arguments)
        assert raised.value.response["Error"]["Code"] == code, arguments
    described = ecr.describe_pull_through_cache_rules(ecrRepositoryPrefixes=["quay-cache"])["pullThroughCacheRules"]
    assert [(r["ecrRepositoryPrefix"], r["upstreamRegistryUrl"]) for r in described] == [("quay-cache", "quay.io")]
    with pytest.raises(ClientError, match="PullThroughCacheRuleNotFoundException"):
        ecr.describe_pull_through_cache_rules(ecrRepositoryPrefixes=["nope"])
    with pytest.raises(ClientError, match="PullThroughCacheRuleNotFoundException"):
        ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix="nope")
    assert ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix="quay-cache")["upstreamRegistryUrl"] == "quay.io"

    iam = emulator.client("iam")
    iam.create_user(UserName="reader")
    iam.put_user_policy(UserName="reader", PolicyName="read", PolicyDocument=policy((["ecr:Describe*"], "*")))
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    as_reader = boto3.client(
        "ecr",
        endpoint_url=emulator.url,
        region_name="us-east-1",
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
    )
    as_reader.describe_pull_through_cache_rules()
    with pytest.raises(ClientError, match=r"AccessDenied.*ecr:CreatePullThroughCacheRule"):
        as_reader.create_pull_through_cache_rule(ecrRepositoryPrefix="k8s", upstreamRegistryUrl="registry.k8s.io")


def test_a_build_whose_service_role_cannot_read_the_recipe_fails_with_access_denied(runtime: dict) -> None:
    build_id, _ = start_build(runtime, "no-s3-image", "image-build-no-s3")
    _, build = wait_build(runtime, build_id)
    assert build["buildStatus"] == "FAILED", build
    failed = [p for p in build["phases"] if p.get("phaseStatus") == "FAILED"]
    assert [p["phaseType"] for p in failed] == ["DOWNLOAD_SOURCE"]
    assert "AccessDenied" in failed[0]["contexts"][0]["message"]
    assert "AccessDenied" in build_log(runtime, build)


def test_a_build_of_a_recipe_whose_lock_is_stale_fails_naming_make_image_lock(runtime: dict) -> None:
    """requirements.txt changed without `make image-lock`: the build fails in BUILD and pushes nothing."""
    requirements = (image_env.RECIPE_DIR / "requirements.txt").read_bytes() + b"seaborn\n"
    build_id, _ = start_build(runtime, "stale-lock-image", "image-build", {"requirements.txt": requirements})
    _, build = wait_build(runtime, build_id)
    assert build["buildStatus"] == "FAILED", build
    failed = [p for p in build["phases"] if p.get("phaseStatus") == "FAILED"]
    assert [p["phaseType"] for p in failed] == ["BUILD"]
    assert "make image-lock" in failed[0]["contexts"][0]["message"]
    assert "make image-lock" in build_log(runtime, build)
