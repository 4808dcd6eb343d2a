"""CodeBuild builds of the project image, run by the emulator as CodeBuild runs them.

moto's StartBuild records a build and its BatchGetBuilds reports every build SUCCEEDED at once. Here a
StartBuild of a project runs a `Build` in the server process: it assumes the project's service role
(which must trust codebuild.amazonaws.com; the credentials are minted in process, as credentials.py mints
task-role ones) and does every step with that role's credentials, judged by enforced IAM:

- PROVISIONING: the CloudWatch Logs group `/aws/codebuild/<project>` (or the project's logsConfig group)
  and the build's stream `<build uuid>`; every later step logs there;
- DOWNLOAD_SOURCE: S3 GetObject of the project's source location (`<bucket>/<key>` of a zip holding
  `Dockerfile`, `requirements.txt`, `requirements.lock`);
- PRE_BUILD: ECR GetAuthorizationToken; a BASE_IMAGE in the emulator's ECR (a pull-through cache
  repository) is pulled as a task pulls it (registry.Puller);
- BUILD: the recipe's environment, `image_env.recipe_python_bin(<unpacked source>)` (with the runtime on;
  with EMBEDDED_AWS_RUNTIME off nothing is built and the image is only a record);
- POST_BUILD: the push, as `docker push` makes it: BatchCheckLayerAvailability, InitiateLayerUpload,
  UploadLayerPart, CompleteLayerUpload, PutImage of an OCI image manifest into IMAGE_REPOSITORY_URI
  tagged IMAGE_TAG, annotated with `org.opencontainers.image.version` (IMAGE_TAG) and
  `dev.airflow-ecs.recipe-hash` (the recipe's hash).

BatchGetBuilds reports IN_PROGRESS with the current phase until the build ends, then SUCCEEDED, or FAILED
with the failing phase's context (`CLIENT_ERROR: ...`) and the error in the log stream. StopBuild stops a
running build between steps (STOPPED). UpdateProject (moto lacks it) changes a project's source,
environment and service role, as the deploy does before each build.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.codebuild.models import CodeBuildBackend
from moto.codebuild.responses import CodeBuildResponse
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.exceptions import ServiceException
from moto.core.utils import iso_8601_datetime_with_milliseconds
from moto.iam.models import iam_backends

from embedded_aws import credentials, registry

log = logging.getLogger("embedded_aws.codebuild")
CODEBUILD = "codebuild.amazonaws.com"
PHASES = ("PROVISIONING", "DOWNLOAD_SOURCE", "INSTALL", "PRE_BUILD", "BUILD", "POST_BUILD", "UPLOAD_ARTIFACTS",
          "FINALIZING")  # fmt: skip
RECIPE_FILES = ("Dockerfile", "requirements.txt", "requirements.lock")
BUILDS: dict[str, Build] = {}  # build id -> its run
_state = threading.Lock()  # a build's record changes under it; BatchGetBuilds copies it under it


class CodeBuildError(ServiceException):
    """A CodeBuild error answer (its own class: moto looks a moto exception's model up by its package)."""


class BuildFailed(Exception):
    """A step failed: str() is the phase context's message (also written to the build's log)."""


def service_role_credentials(role_arn: str, region: str) -> dict[str, str]:
    """STS AssumeRole of a role that trusts codebuild.amazonaws.com, made in process as CodeBuild makes it."""
    role = iam_backends[DEFAULT_ACCOUNT_ID]["aws"].get_role(role_arn.rsplit("/", 1)[-1])
    if not credentials.trusts(role.assume_role_policy_document, CODEBUILD):
        raise PermissionError(f"CodeBuild is not authorized to perform: sts:AssumeRole on {role_arn}")
    return credentials.assume_in_process(role, f"AWSCodeBuild-{int(time.time())}", region)


_endpoint = ["http://127.0.0.1:5000"]  # the server's own URL, set by install()


def endpoint_url() -> str:
    return _endpoint[0]


class Build(threading.Thread):
    def __init__(self, backend: CodeBuildBackend, project: Any, metadata: dict[str, Any]) -> None:
        super().__init__(name=f"codebuild-{metadata['id'][-8:]}", daemon=True)
        self.backend = backend
        self.project = project.project_metadata
        self.metadata = metadata
        self.region = backend.region_name
        self.keys: dict[str, str] = {}
        self.logs: Any = None
        self.stream: tuple[str, str] | None = None
        self.stop_requested = False
        self.variables = {
            v["name"]: v.get("value", "") for v in self.project.get("environment", {}).get("environmentVariables", [])
        }

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=endpoint_url(),
            region_name=self.region,
            aws_access_key_id=self.keys["AccessKeyId"],
            aws_secret_access_key=self.keys["SecretAccessKey"],
            aws_session_token=self.keys["Token"],
            config=Config(retries={"max_attempts": 2, "mode": "standard"}),
        )

    # -- the build's life ---------------------------------------------------------------------------

    def run(self) -> None:
        workdir = Path(tempfile.mkdtemp(prefix="codebuild-"))
        with _state:
            for phase in self.metadata["phases"]:
                phase.setdefault("phaseStatus", "SUCCEEDED")
                phase.setdefault("endTime", phase["startTime"])
                phase.setdefault("durationInSeconds", 0)
        status = "SUCCEEDED"
        try:
            for name in PHASES:
                if self.stop_requested:
                    status = "STOPPED"
                    break
                self.phase(name, workdir)
        except BuildFailed as failure:
            status = "FAILED"
            self.log(f"[Container] {now_text()} Phase complete: {self.metadata['currentPhase']} State: FAILED")
            self.log(f"[Container] {now_text()} Phase context status code: CLIENT_ERROR Message: {failure}")
        except Exception as exc:  # a fault of the emulator: still a finished build with a reason
            log.exception("build %s failed", self.metadata["id"])
            status = "FAULT"
            self.fail_phase(f"{type(exc).__name__}: {exc}", "SERVER_ERROR")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        self.finish(status)

    def phase(self, name: str, workdir: Path) -> None:
        began = time.monotonic()
        record = {"phaseType": name, "startTime": iso_8601_datetime_with_milliseconds()}
        with _state:
            self.metadata["phases"].append(record)
            self.metadata["currentPhase"] = name
        self.log(f"[Container] {now_text()} Entering phase {name}")
        try:
            getattr(self, name.lower(), lambda _: None)(workdir)
        except BuildFailed as failure:
            self.fail_phase(str(failure), "CLIENT_ERROR")
            raise
        with _state:
            record.update(
                phaseStatus="SUCCEEDED",
                endTime=iso_8601_datetime_with_milliseconds(),
                durationInSeconds=int(time.monotonic() - began),
            )
        self.log(f"[Container] {now_text()} Phase complete: {name} State: SUCCEEDED")

    def fail_phase(self, message: str, code: str) -> None:
        with _state:
            self.metadata["phases"][-1].update(
                phaseStatus="FAILED",
                endTime=iso_8601_datetime_with_milliseconds(),
                durationInSeconds=0,
                contexts=[{"statusCode": code, "message": message}],
            )

    def finish(self, status: str) -> None:
        stamp = iso_8601_datetime_with_milliseconds()
        with _state:
            self.metadata["phases"].append({"phaseType": "COMPLETED", "startTime": stamp})
            self.metadata.update(currentPhase="COMPLETED", buildStatus=status, buildComplete=True, endTime=stamp)
        self.log(f"[Container] {now_text()} Build {status}")

    # -- phases ---------------------------------------------------------------------------------------

    def provisioning(self, _: Path) -> None:
        try:
            self.keys = service_role_credentials(self.project["serviceRole"], self.region)
        except Exception as exc:
            raise BuildFailed(f"ACCESS_DENIED: the service role cannot be assumed: {exc}") from exc
        config = self.project.get("logsConfig", {}).get("cloudWatchLogs", {})
        if config.get("status") == "DISABLED":
            return
        group = config.get("groupName") or f"/aws/codebuild/{self.project['name']}"
        stream = self.metadata["id"].split(":", 1)[1]
        if config.get("streamName"):
            stream = f"{config['streamName']}/{stream}"
        self.logs = self.client("logs")
        try:
            # A group made beforehand (the deploy may create it) needs no logs:CreateLogGroup: the stream decides.
            with contextlib.suppress(ClientError):
                self.logs.create_log_group(logGroupName=group)
            self.logs.create_log_stream(logGroupName=group, logStreamName=stream)
        except ClientError as exc:
            self.logs = None
            raise BuildFailed(
                f"ACCESS_DENIED: Service role {self.project['serviceRole']} does not allow AWS CodeBuild to create "
                f"Amazon CloudWatch Logs log streams for build {self.metadata['arn']}. Error message: "
                f"{registry.error_text(exc)}"
            ) from exc
        self.stream = (group, stream)
        arn = f"arn:aws:logs:{self.region}:{DEFAULT_ACCOUNT_ID}:log-group:{group}:log-stream:{stream}"
        logs = {
            "groupName": group,
            "streamName": stream,
            "deepLink": f"https://console.aws.amazon.com/cloudwatch/home?region={self.region}#logEvent:group={group};"
            f"stream={stream}",
            "cloudWatchLogsArn": arn,
            "cloudWatchLogs": {"status": "ENABLED", "groupName": group},
            "s3Logs": {"status": "DISABLED", "encryptionDisabled": False},
        }
        with _state:
            self.metadata["logs"] = logs
        self.log(f"[Container] {now_text()} Running on CodeBuild (the embedded emulator's local runtime)")

    def download_source(self, workdir: Path) -> None:
        source = self.project.get("source", {})
        if source.get("type") != "S3":
            raise BuildFailed(f"the local runtime builds S3 sources only; the project's source is {source.get('type')}")
        bucket, _, key = str(source.get("location", "")).partition("/")
        self.log(f"[Container] {now_text()} Downloading source s3://{bucket}/{key}")
        try:
            data = self.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            raise BuildFailed(
                f"{registry.error_text(exc)} for primary source and source version arn:aws:s3:::{bucket}/{key}"
            ) from exc
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for member in archive.namelist():
                    if member in RECIPE_FILES:
                        (workdir / member).write_bytes(archive.read(member))
        except zipfile.BadZipFile as exc:
            raise BuildFailed(f"the source s3://{bucket}/{key} is not a zip archive: {exc}") from exc
        missing = [name for name in RECIPE_FILES if not (workdir / name).exists()]
        if missing:
            raise BuildFailed(f"the source s3://{bucket}/{key} lacks {', '.join(missing)}")

    def pre_build(self, _: Path) -> None:
        uri = self.variables.get("IMAGE_REPOSITORY_URI", "")
        host = registry.ECR_HOST.match(uri.split("/", 1)[0])
        if host is None or "/" not in uri or not self.variables.get("IMAGE_TAG"):
            raise BuildFailed(
                "Error while executing command: docker push $IMAGE_REPOSITORY_URI:$IMAGE_TAG. Reason: the project's "
                f"IMAGE_REPOSITORY_URI ({uri!r}) is not an ECR repository URI or IMAGE_TAG is not set"
            )
        self.log(
            f"[Container] {now_text()} Running command aws ecr get-login-password | docker login {uri.split('/')[0]}"
        )
        try:
            self.client("ecr").get_authorization_token()
        except ClientError as exc:
            raise BuildFailed(
                f"Error while executing command: aws ecr get-login-password. Reason: {registry.error_text(exc)}"
            ) from exc
        base = self.variables.get("BASE_IMAGE", "")
        if base and registry.ECR_HOST.match(base.split("/", 1)[0]):
            self.log(f"[Container] {now_text()} Pulling the base image {base}")
            try:
                registry.Puller(lambda: self.keys, endpoint_url()).resolve(base)
            except registry.CannotPull as exc:
                raise BuildFailed(f"Error while executing command: docker build. Reason: {exc}") from exc

    def build(self, workdir: Path) -> None:
        from embedded_aws import image_env  # noqa: PLC0415

        recipe = image_env.recipe_hash(workdir)
        self.variables["__RECIPE_HASH"] = recipe
        version = image_env.recipe_airflow_version(workdir)
        base = self.variables.get("BASE_IMAGE", "")
        match = registry.AIRFLOW_TAG.match(registry.parse(base).tag or "") if base else None
        if match is not None and match["version"] != version:
            raise BuildFailed(
                f"Error while executing command: docker build. Reason: BASE_IMAGE {base} is not Airflow {version}, "
                "the version the recipe's requirements.lock was made for"
            )
        self.log(f"[Container] {now_text()} docker build --build-arg BASE_IMAGE={base} (recipe {recipe[:12]})")
        if not os.environ.get("EMBEDDED_AWS_RUNTIME_DIR"):
            self.log(
                f"[Container] {now_text()} EMBEDDED_AWS_RUNTIME=off: no environment is built, the image is a record"
            )
            return
        began = time.monotonic()
        try:
            bin_dir = image_env.recipe_python_bin(workdir)
        except image_env.ImageEnvError as exc:
            raise BuildFailed(f"Error while executing command: docker build. Reason: {exc}") from exc
        self.log(f"[Container] {now_text()} Built the environment {bin_dir.parent} in {time.monotonic() - began:.1f} s")

    def post_build(self, workdir: Path) -> None:
        uri, tag = self.variables["IMAGE_REPOSITORY_URI"], self.variables["IMAGE_TAG"]
        repository = uri.split("/", 1)[1]
        ecr = self.client("ecr")
        self.log(f"[Container] {now_text()} Running command docker push {uri}:{tag}")
        layer = b"".join((workdir / name).read_bytes() for name in RECIPE_FILES)
        # A CodeBuild build is native: the image has its environment's architecture.
        architecture = "arm64" if self.project.get("environment", {}).get("type", "").startswith("ARM") else "amd64"
        config = json.dumps({"architecture": architecture, "os": "linux", "config": {"Labels": {}}}).encode()
        try:
            digests = {}
            registry.store_config_blob(config)
            for blob in (layer, config):
                digest = registry.sha256(blob)
                digests[blob] = digest
                found = ecr.batch_check_layer_availability(repositoryName=repository, layerDigests=[digest])
                if found.get("layers"):
                    continue
                upload = ecr.initiate_layer_upload(repositoryName=repository)["uploadId"]
                ecr.upload_layer_part(
                    repositoryName=repository,
                    uploadId=upload,
                    partFirstByte=0,
                    partLastByte=len(blob) - 1,
                    layerPartBlob=blob,
                )
                ecr.complete_layer_upload(repositoryName=repository, uploadId=upload, layerDigests=[digest])
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": registry.OCI_MANIFEST,
                    "config": {"mediaType": registry.OCI_CONFIG, "digest": digests[config], "size": len(config)},
                    "layers": [{"mediaType": registry.OCI_LAYER, "digest": digests[layer], "size": len(layer)}],
                    "annotations": {
                        registry.VERSION_ANNOTATION: tag,
                        registry.RECIPE_ANNOTATION: self.variables["__RECIPE_HASH"],
                    },
                },
                sort_keys=True,
            )
            pushed = ecr.put_image(
                repositoryName=repository,
                imageManifest=manifest,
                imageManifestMediaType=registry.OCI_MANIFEST,
                imageTag=tag,
                imageDigest=registry.sha256(manifest.encode()),
            )["image"]
        except ClientError as exc:
            raise BuildFailed(
                f"Error while executing command: docker push {uri}:{tag}. Reason: {registry.error_text(exc)}"
            ) from exc
        self.log(f"[Container] {now_text()} {tag}: digest: {pushed['imageId']['imageDigest']} size: {len(manifest)}")

    # -- logs -----------------------------------------------------------------------------------------

    def log(self, line: str) -> None:
        if self.logs is None or self.stream is None:
            return
        try:
            self.logs.put_log_events(
                logGroupName=self.stream[0],
                logStreamName=self.stream[1],
                logEvents=[{"timestamp": int(time.time() * 1000), "message": line}],
            )
        except ClientError as exc:  # CodeBuild keeps building when a log line cannot be sent
            log.warning("build %s: log: %s", self.metadata["id"], exc)


def now_text() -> str:
    return time.strftime("%Y/%m/%d %H:%M:%S", time.gmtime())


# -- moto patches -------------------------------------------------------------------------------------


def start_build(self: CodeBuildBackend, project_name: str, source_version: str | None = None,
                artifact_override: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    if project_name not in self.codebuild_projects:
        raise CodeBuildError("ResourceNotFoundException", f"Project cannot be found: {project_name}")
    metadata = _moto_start_build(self, project_name, source_version, artifact_override)
    project = self.codebuild_projects[project_name]
    metadata["buildNumber"] = len(self.build_history[project_name])
    metadata["source"] = dict(project.project_metadata.get("source") or {})
    metadata["environment"] = dict(project.project_metadata.get("environment") or {})
    metadata["serviceRole"] = project.project_metadata["serviceRole"]
    metadata["initiator"] = "embedded-aws"
    build = Build(self, project, metadata)
    BUILDS[metadata["id"]] = build
    build.start()
    return metadata


def batch_get_builds(self: CodeBuildBackend, ids: list[str]) -> list[dict[str, Any]]:
    """The builds as their runs left them (moto marks every build SUCCEEDED when asked)."""
    with _state:
        return copy.deepcopy(
            [build for history in self.build_metadata_history.values() for build in history if build["id"] in ids]
        )


def stop_build(self: CodeBuildBackend, build_id: str) -> dict[str, Any] | None:
    run = BUILDS.get(build_id)
    if run is None:
        return _moto_stop_build(self, build_id)
    run.stop_requested = True  # the build stops before its next phase (STOPPED)
    run.join(timeout=5)
    with _state:
        return copy.deepcopy(run.metadata)


def update_project(self: CodeBuildResponse) -> Any:
    """UpdateProject: the fields the deploy changes (source, environment, service role, ...)."""
    from moto.core.responses import ActionResult  # noqa: PLC0415

    name = self._get_param("name")
    project = self.codebuild_backend.codebuild_projects.get(name)
    if project is None:
        raise CodeBuildError("ResourceNotFoundException", f"Project cannot be found: {name}")
    fields = {
        "description": "description",
        "source": "source",
        "artifacts": "artifacts",
        "environment": "environment",
        "serviceRole": "serviceRole",
        "timeoutInMinutes": "timeoutInMinutes",
        "queuedTimeoutInMinutes": "queuedTimeoutInMinutes",
        "logsConfig": "logsConfig",
        "tags": "tags",
        "sourceVersion": "sourceVersion",
        "cache": "cache",
    }
    for param, key in fields.items():
        value = self._get_param(param)
        if value is not None:
            project.project_metadata[key] = value
    role = project.project_metadata["serviceRole"]
    if not role.startswith("arn:"):
        project.project_metadata["serviceRole"] = f"arn:aws:iam::{self.current_account}:role/service-role/{role}"
    project.service_role = project.project_metadata["serviceRole"]
    if self._get_param("tags") is not None:
        project.tags = self._get_param("tags")
    project.project_metadata["lastModifiedDate"] = time.time()
    return ActionResult({"project": project.project_metadata})


_moto_start_build = CodeBuildBackend.start_build
_moto_stop_build = CodeBuildBackend.stop_build


def install(url: str) -> None:
    """Run every StartBuild (both modes: with the runtime off the build pushes the image record only)."""
    _endpoint[0] = url
    CodeBuildBackend.start_build = start_build  # type: ignore[method-assign]
    CodeBuildBackend.batch_get_builds = batch_get_builds  # type: ignore[method-assign]
    CodeBuildBackend.stop_build = stop_build  # type: ignore[method-assign]
    CodeBuildResponse.update_project = update_project  # type: ignore[attr-defined]
