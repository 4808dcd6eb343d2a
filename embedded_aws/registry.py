"""Container images the way ECS/Fargate pulls them, resolved to what runs on this machine.

A task's image reference decides its program and its Python environment:

- `apache/airflow:<version>[-pythonX.Y]` (also `docker.io/apache/airflow`): the stock image's package
  set for that version (`image_env.stock_python_bin`); `rabbitmq:<tag>` (also `library/rabbitmq`,
  `public.ecr.aws/docker/library/rabbitmq`): Debian's RabbitMQ;
- `<account>.dkr.ecr.<region>.amazonaws.com/<repository>(:tag|@sha256:digest)`: pulled from the
  emulator's ECR with the task's *execution role* credentials, as the Fargate agent pulls:
  GetAuthorizationToken, BatchGetImage, GetDownloadUrlForLayer for each layer, each judged by enforced
  IAM. A project image (manifest annotation `dev.airflow-ecs.recipe-hash`, pushed by a CodeBuild build)
  runs the environment that build made (`image_env.built_recipe_python_bin`); a repository under a
  pull-through cache rule's prefix runs its upstream image (resolved as above). On the first pull of an
  image through a rule, ECR imports it from the upstream registry and creates the repository when
  missing, which needs `ecr:BatchImportUpstreamImage` and `ecr:CreateRepository` for the execution role.
- anything else stops the task with `CannotPullContainerError`, as a pull that fails does.

`install()` adds to moto's ECR what the project uses and moto lacks: pull-through cache rules
(CreatePullThroughCacheRule, DescribePullThroughCacheRules, DeletePullThroughCacheRule, with the shapes,
validation and error codes of botocore's ECR model) and GetDownloadUrlForLayer. They are served in the
moto server process, so IAM enforcement judges them like any request.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.core.exceptions import ServiceException
from moto.ecr.models import ECRBackend, ecr_backends
from moto.ecr.responses import ECRResponse

from embedded_aws import iam, servers

RECIPE_ANNOTATION = "dev.airflow-ecs.recipe-hash"
VERSION_ANNOTATION = "org.opencontainers.image.version"
UPSTREAM_ANNOTATION = "dev.airflow-ecs.upstream"  # what a pull-through cache imported (emulator only)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

ECR_HOST = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com$")
DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")
AIRFLOW_TAG = re.compile(r"^(?P<version>\d+\.\d+\.\d+)(?:-python(?P<python>\d+\.\d+))?$")
DEFAULT_PYTHON = "3.12"  # apache/airflow's default Python

# Pull-through cache upstreams (CreatePullThroughCacheRule's upstreamRegistryUrl) -> upstreamRegistry.
UPSTREAM_REGISTRIES = {
    "public.ecr.aws": "ecr-public",
    "registry-1.docker.io": "docker-hub",
    "ghcr.io": "github-container-registry",
    "registry.gitlab.com": "gitlab-container-registry",
    "registry.k8s.io": "k8s",
    "quay.io": "quay",
    "cgr.dev": "chainguard",
}
NEEDS_CREDENTIALS = {"docker-hub", "github-container-registry", "gitlab-container-registry", "azure-container-registry"}
PREFIX_PATTERN = r"^([a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*\/?|ROOT)$"
CREDENTIAL_PATTERN = (
    r"^arn:aws(-\w+)*:secretsmanager:[a-zA-Z0-9-:]+:secret:ecr\-pullthroughcache\/[a-zA-Z0-9\/_+=.@-]+$"
)


_imports = threading.Lock()


class EcrError(ServiceException):
    """An ECR error answer (its own class: moto looks a moto exception's model up by its package)."""


class CannotPull(Exception):
    """The image cannot be pulled: str() is the task's stoppedReason, in ECS's words."""


@dataclass(frozen=True)
class Reference:
    registry: str  # host: docker.io, public.ecr.aws, <account>.dkr.ecr.<region>.amazonaws.com
    repository: str  # apache/airflow, library/rabbitmq, <stack>/airflow
    tag: str | None
    digest: str | None

    @property
    def ref(self) -> str:
        """What a pull names after the repository: the digest when there is one (Docker ignores the tag then)."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        return (
            f"{self.registry}/{self.repository}"
            + (f":{self.tag}" if self.tag else "")
            + (f"@{self.digest}" if self.digest else "")
        )


def parse(image: str) -> Reference:
    """An image reference read as Docker reads it (docker.io and library/ implied, tag `latest` by default)."""
    name, _, digest = image.partition("@")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = "docker.io", name
    repository, _, tag = path.rpartition(":") if ":" in path else (path, "", "")
    if registry in DOCKER_HUB:
        registry = "docker.io"
        if "/" not in repository:
            repository = f"library/{repository}"
    return Reference(registry, repository, tag or (None if digest else "latest"), digest or None)


@dataclass(frozen=True)
class RunnableImage:
    """What a container of this image runs here."""

    reference: str  # as the task definition names it
    program: str  # airflow | rabbitmq
    bin_dir: Path  # first in the container's PATH
    source: str  # one phrase: what it resolved to
    architecture: str | None = None  # Docker's name (amd64, arm64) of a single-platform image; None: multi-arch

    def runs_on(self, cpu_architecture: str) -> bool:
        """Whether a task of that runtimePlatform cpuArchitecture (X86_64, ARM64) can run this image."""
        return self.architecture is None or self.architecture == PLATFORMS.get(cpu_architecture, cpu_architecture)


# Docker's architecture name of each ECS runtimePlatform cpuArchitecture.
PLATFORMS = {"X86_64": "amd64", "ARM64": "arm64"}
# Image config blobs pushed in this process (moto's ECR keeps only their sizes): digest -> content. The
# Fargate agent reads a single-platform image's architecture from its config blob.
CONFIG_BLOBS: dict[str, bytes] = {}


def store_config_blob(blob: bytes) -> str:
    digest = sha256(blob)
    CONFIG_BLOBS[digest] = blob
    return digest


def config_architecture(manifest: dict[str, Any]) -> str | None:
    """The architecture in an image manifest's config blob, when this process holds the blob."""
    blob = CONFIG_BLOBS.get((manifest.get("config") or {}).get("digest", ""))
    return json.loads(blob).get("architecture") if blob else None


def not_found(image: str, detail: str) -> CannotPull:
    return CannotPull(
        f"CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref {image}: "
        f"{detail}"
    )


def public_image(ref: Reference, image: str) -> RunnableImage:
    """A Docker Hub or ECR Public image: apache/airflow of a version with a stock package set, or rabbitmq."""
    from embedded_aws import image_env  # noqa: PLC0415 - only the runtime builds environments

    official = ref.registry == "docker.io" or (
        ref.registry == "public.ecr.aws" and ref.repository.startswith("docker/library/")
    )
    name = ref.repository.removeprefix("docker/") if ref.registry == "public.ecr.aws" else ref.repository
    if official and name == "library/rabbitmq":
        return RunnableImage(image, "rabbitmq", Path(servers.RABBITMQ_BIN), "Debian's rabbitmq-server")
    if ref.registry == "docker.io" and ref.repository == "apache/airflow":
        match = AIRFLOW_TAG.match(ref.tag or "")
        if match is None:
            raise not_found(image, f"{image}: the local runtime runs apache/airflow:<version>[-pythonX.Y] tags only")
        version, python = match["version"], match["python"] or DEFAULT_PYTHON
        try:
            bin_dir = image_env.stock_python_bin(version, python)
        except image_env.ImageEnvError as exc:
            raise not_found(image, f"{image}: not found (no stock package set here: {exc})") from exc
        return RunnableImage(image, "airflow", Path(bin_dir), f"the stock apache/airflow:{version} package set")
    raise not_found(
        image,
        f"{image}: not found (the local runtime runs apache/airflow, rabbitmq and images of the emulator's ECR)",
    )


class Puller:
    """Pulls ECR images for one task with its execution role's credentials (`keys()`: AccessKeyId,
    SecretAccessKey, Token; PermissionError when there is no such role), as the Fargate agent does."""

    def __init__(self, keys: Callable[[], dict[str, str]], endpoint_url: str) -> None:
        self._keys = keys
        self._credentials: dict[str, str] | None = None
        self.endpoint_url = endpoint_url
        self._authorized: set[str] = set()  # registries it has a token for

    @property
    def credentials(self) -> dict[str, str]:
        if self._credentials is None:
            self._credentials = self._keys()
        return self._credentials

    def client(self, region: str) -> Any:
        keys = self.credentials
        return boto3.client(
            "ecr",
            endpoint_url=self.endpoint_url,
            region_name=region,
            aws_access_key_id=keys["AccessKeyId"],
            aws_secret_access_key=keys["SecretAccessKey"],
            aws_session_token=keys.get("Token"),
            config=Config(retries={"max_attempts": 2, "mode": "standard"}),
        )

    def resolve(self, image: str) -> RunnableImage:
        """The image as it runs here, or CannotPull with the reason ECS gives."""
        ref = parse(image)
        host = ECR_HOST.match(ref.registry)
        if host is None:
            return public_image(ref, image)
        return self.pull_ecr(ref, image, host["account"], host["region"])

    def pull_ecr(self, ref: Reference, image: str, account: str, region: str) -> RunnableImage:
        try:
            ecr = self.client(region)
        except PermissionError as exc:
            raise CannotPull(
                f"ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval "
                f"failed: unable to retrieve ecr registry auth: {exc}"
            ) from exc
        if ref.registry not in self._authorized:
            try:
                ecr.get_authorization_token(registryIds=[account])
            except ClientError as exc:
                raise CannotPull(
                    "ResourceInitializationError: unable to pull secrets or registry auth: execution resource "
                    "retrieval failed: unable to retrieve ecr registry auth: service call has been retried 3 time(s): "
                    f"{error_text(exc)}"
                ) from exc
            self._authorized.add(ref.registry)
        manifest = self.manifest(ecr, ref, image, account, region)
        for layer in manifest.get("layers", []):
            try:
                ecr.get_download_url_for_layer(
                    registryId=account, repositoryName=ref.repository, layerDigest=layer["digest"]
                )
            except ClientError as exc:
                raise forbidden(ref, image, f"blobs {layer['digest']}", exc) from exc
        annotations = manifest.get("annotations") or {}
        if annotations.get(RECIPE_ANNOTATION):
            built = project_image(image, annotations[RECIPE_ANNOTATION])
            return dataclasses.replace(built, architecture=config_architecture(manifest))
        if annotations.get(UPSTREAM_ANNOTATION):
            upstream = annotations[UPSTREAM_ANNOTATION]
            resolved = public_image(parse(upstream), image)
            return RunnableImage(image, resolved.program, resolved.bin_dir, f"{resolved.source} (via {upstream})")
        raise not_found(
            image,
            f"{image}: the image was not built by the project's CodeBuild recipe nor pulled through a cache rule, "
            "so the local runtime has no environment for it",
        )

    def manifest(self, ecr: Any, ref: Reference, image: str, account: str, region: str) -> dict[str, Any]:
        """BatchGetImage; through a pull-through cache rule, the upstream image imported first when missing."""
        image_id = {"imageDigest": ref.digest} if ref.digest else {"imageTag": ref.tag or "latest"}
        for attempt in (1, 2):
            try:
                answer = ecr.batch_get_image(registryId=account, repositoryName=ref.repository, imageIds=[image_id])
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "RepositoryNotFoundException":
                    raise forbidden(ref, image, f"manifests {ref.ref}", exc) from exc
                answer = {"images": [], "failures": [{"failureCode": "RepositoryNotFound"}]}
            if answer.get("images"):
                return json.loads(answer["images"][0]["imageManifest"])
            rule = matching_rule(account, region, ref.repository)
            if rule is None or attempt == 2:
                raise not_found(image, f"{image}: not found")
            self.import_upstream(ref, image, account, region, rule)
        raise AssertionError("unreachable")

    def import_upstream(self, ref: Reference, image: str, account: str, region: str, rule: dict[str, Any]) -> None:
        """ECR's pull through cache: the upstream image, cached in the repository (created when missing)."""
        upstream = upstream_reference(rule, ref)
        if ref.digest and not ref.tag:
            raise not_found(image, f"{image}: not found (a first pull through a cache rule names a tag)")
        backend = ecr_backends[account][region]
        resource = f"arn:aws:ecr:{region}:{account}:repository/{ref.repository}"
        creating = ref.repository not in backend.repositories
        try:
            if creating:
                iam.authorize(self.credentials, "ecr:CreateRepository", resource, region)
            iam.authorize(self.credentials, "ecr:BatchImportUpstreamImage", resource, region)
        except PermissionError as exc:
            raise CannotPull(
                f"CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref "
                f"{image}: pulling through the cache rule for prefix {rule['ecrRepositoryPrefix']} failed: {exc}"
            ) from exc
        public_image(parse(upstream), image)  # an upstream image the runtime cannot run is "not found" here too
        manifest, config, layer = upstream_manifest(upstream)
        with _imports:  # tasks starting together import once
            if ref.repository not in backend.repositories:
                backend.create_repository(ref.repository, None, None, None, None, None)
            repository = backend.repositories[ref.repository]
            repository.layers[layer] = repository.layers[config] = 1
            if not any(ref.tag in cached.image_tags for cached in repository.images):
                backend.put_image(ref.repository, manifest, ref.tag, OCI_MANIFEST, sha256(manifest.encode()))


def project_image(image: str, recipe_hash: str) -> RunnableImage:
    from embedded_aws import image_env  # noqa: PLC0415

    bin_dir = image_env.built_recipe_python_bin(recipe_hash)
    if bin_dir is None:
        raise not_found(
            image,
            f"{image}: the environment its CodeBuild build made (recipe {recipe_hash[:12]}) is not on this machine; "
            "run the build again",
        )
    return RunnableImage(image, "airflow", Path(bin_dir), f"the project image of recipe {recipe_hash[:12]}")


def forbidden(ref: Reference, image: str, what: str, exc: ClientError) -> CannotPull:
    return CannotPull(
        f"CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref {image}: "
        f"pulling from host {ref.registry} failed with status code [{what}]: 403 Forbidden: {error_text(exc)}"
    )


def error_text(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code')}: {error.get('Message')}"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def upstream_manifest(upstream: str) -> tuple[str, str, str]:
    """(OCI manifest, config digest, layer digest) standing for an upstream image in the cache."""
    config = sha256(f"config {upstream}".encode())
    layer = sha256(f"layer {upstream}".encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config, "size": 1},
        "layers": [{"mediaType": OCI_LAYER, "digest": layer, "size": 1}],
        "annotations": {UPSTREAM_ANNOTATION: upstream},
    }
    return json.dumps(manifest, sort_keys=True), config, layer


# -- pull-through cache rules -------------------------------------------------------------------------


def rules(backend: ECRBackend) -> dict[str, dict[str, Any]]:
    """The registry's pull-through cache rules by prefix (kept on the backend: a reset empties them)."""
    if not hasattr(backend, "pull_through_cache_rules"):
        backend.pull_through_cache_rules = {}  # type: ignore[attr-defined]
    return backend.pull_through_cache_rules  # type: ignore[attr-defined]


def matching_rule(account: str, region: str, repository: str) -> dict[str, Any] | None:
    found = rules(ecr_backends[account][region])
    for prefix in sorted(found, key=len, reverse=True):
        if prefix == "ROOT" or repository.startswith(prefix + "/"):
            return found[prefix]
    return None


def upstream_reference(rule: dict[str, Any], ref: Reference) -> str:
    """The upstream image a cached repository stands for: `ecr-public/docker/library/rabbitmq:4` ->
    `public.ecr.aws/docker/library/rabbitmq:4`."""
    prefix = rule["ecrRepositoryPrefix"]
    rest = ref.repository if prefix == "ROOT" else ref.repository[len(prefix) + 1 :]
    upstream_prefix = rule.get("upstreamRepositoryPrefix")
    if upstream_prefix and upstream_prefix != "ROOT":
        rest = f"{upstream_prefix}/{rest}"
    registry = rule["upstreamRegistryUrl"]
    if registry == "registry-1.docker.io" and "/" not in rest:
        rest = f"library/{rest}"
    return f"{registry}/{rest}:{ref.tag or 'latest'}"


def upstream_registry(url: str) -> str | None:
    if url in UPSTREAM_REGISTRIES:
        return UPSTREAM_REGISTRIES[url]
    if re.fullmatch(r"[a-z0-9]+\.azurecr\.io", url):
        return "azure-container-registry"
    if ECR_HOST.match(url):
        return "ecr"
    return None


def validation(name: str, value: str, constraint: str) -> EcrError:
    return EcrError(
        "ValidationException",
        f"1 validation error detected: Value '{value}' at '{name}' failed to satisfy constraint: {constraint}",
    )


def check_prefix(name: str, value: str) -> str:
    if not 2 <= len(value) <= 30:
        raise validation(name, value, "Member must have length between 2 and 30")
    if not re.match(PREFIX_PATTERN, value):
        raise validation(name, value, f"Member must satisfy regular expression pattern: {PREFIX_PATTERN}")
    return value.rstrip("/") if value != "ROOT" else value


def rule_view(rule: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in rule.items() if value is not None}


def create_pull_through_cache_rule(self: ECRResponse) -> Any:
    from moto.core.responses import ActionResult  # noqa: PLC0415

    backend = self.ecr_backend
    prefix = check_prefix("ecrRepositoryPrefix", self._get_param("ecrRepositoryPrefix") or "")
    url = self._get_param("upstreamRegistryUrl") or ""
    registry = upstream_registry(url)
    if registry is None:
        raise EcrError(
            "UnsupportedUpstreamRegistryException",
            f"The specified upstream registry {url} isn't supported; supported: {', '.join(UPSTREAM_REGISTRIES)}, "
            "<name>.azurecr.io, <account>.dkr.ecr.<region>.amazonaws.com",
        )
    named = self._get_param("upstreamRegistry")
    if named and named != registry:
        raise EcrError(
            "InvalidParameterException", f"The upstream registry URL {url} is not a {named} registry ({registry})"
        )
    credential = self._get_param("credentialArn")
    if credential is not None and not re.match(CREDENTIAL_PATTERN, credential):
        raise validation(
            "credentialArn", credential, f"Member must satisfy regular expression pattern: {CREDENTIAL_PATTERN}"
        )
    if registry in NEEDS_CREDENTIALS and not credential:
        raise EcrError(
            "InvalidParameterException",
            f"A credential ARN is required for the upstream registry {url} ({registry}): store the registry's "
            "credentials in a Secrets Manager secret named ecr-pullthroughcache/<name>",
        )
    if credential:
        from moto.secretsmanager.models import secretsmanager_backends  # noqa: PLC0415

        secrets = secretsmanager_backends[self.current_account][self.region]
        if not secrets.secrets.get(credential):
            raise EcrError(
                "SecretNotFoundException",
                f"The ARN of the secret specified in the pull through cache rule was not found: {credential}",
            )
    upstream_prefix = self._get_param("upstreamRepositoryPrefix")
    if upstream_prefix is not None:
        upstream_prefix = check_prefix("upstreamRepositoryPrefix", upstream_prefix)
    found = rules(backend)
    if prefix in found:
        raise EcrError(
            "PullThroughCacheRuleAlreadyExistsException",
            f"A pull through cache rule with the prefix '{prefix}' already exists in the registry with id "
            f"'{backend.account_id}'",
        )
    now = datetime.now(UTC)
    found[prefix] = {
        "ecrRepositoryPrefix": prefix,
        "upstreamRegistryUrl": url,
        "createdAt": now,
        "updatedAt": now,
        "registryId": backend.account_id,
        "upstreamRegistry": registry,
        "credentialArn": credential,
        "customRoleArn": self._get_param("customRoleArn"),
        "upstreamRepositoryPrefix": upstream_prefix,
    }
    view = rule_view(found[prefix])
    view.pop("updatedAt")
    return ActionResult(view)


def not_found_rule(prefix: str, registry_id: str) -> EcrError:
    return EcrError(
        "PullThroughCacheRuleNotFoundException",
        f"The pull through cache rule with the prefix '{prefix}' does not exist in the registry with id "
        f"'{registry_id}'",
    )


def describe_pull_through_cache_rules(self: ECRResponse) -> Any:
    from moto.core.responses import ActionResult  # noqa: PLC0415

    found = rules(self.ecr_backend)
    wanted = [check_prefix("ecrRepositoryPrefixes", p) for p in self._get_param("ecrRepositoryPrefixes") or []]
    for prefix in wanted:
        if prefix not in found:
            raise not_found_rule(prefix, self.ecr_backend.account_id)
    listed = [rule_view(found[p]) for p in (wanted or sorted(found))]
    return ActionResult({"pullThroughCacheRules": listed})


def delete_pull_through_cache_rule(self: ECRResponse) -> Any:
    from moto.core.responses import ActionResult  # noqa: PLC0415

    found = rules(self.ecr_backend)
    prefix = check_prefix("ecrRepositoryPrefix", self._get_param("ecrRepositoryPrefix") or "")
    if prefix not in found:
        raise not_found_rule(prefix, self.ecr_backend.account_id)
    view = rule_view(found.pop(prefix))
    for key in ("updatedAt", "upstreamRegistry"):
        view.pop(key, None)
    return ActionResult(view)


def get_download_url_for_layer(self: ECRResponse) -> Any:
    """A layer of an image in the repository (uploaded or named by a manifest), as ECR hands out its URL."""
    from moto.core.responses import ActionResult  # noqa: PLC0415

    name, digest = self._get_param("repositoryName"), self._get_param("layerDigest")
    repository = self.ecr_backend._get_repository(name, self._get_param("registryId"))
    known = set(getattr(repository, "layers", {}))
    for image in repository.images:
        manifest = json.loads(image.image_manifest)
        known |= {layer.get("digest") for layer in manifest.get("layers", [])}
    if digest not in known:
        raise EcrError("LayersNotFoundException", f"The layer {digest} does not exist in repository {name}")
    token = base64.urlsafe_b64encode(hashlib.sha256(f"{name}{digest}".encode()).digest()).decode()[:32]
    url = f"https://prod-{self.region}-starport-layer-bucket.s3.{self.region}.amazonaws.com/{name}/{digest}?X-Amz-Signature={token}"
    return ActionResult({"downloadUrl": url, "layerDigest": digest})


def install() -> None:
    """Serve the ECR operations moto lacks (both modes: the deploy creates rules with the runtime off too)."""
    ECRResponse.create_pull_through_cache_rule = create_pull_through_cache_rule  # type: ignore[attr-defined]
    ECRResponse.describe_pull_through_cache_rules = describe_pull_through_cache_rules  # type: ignore[attr-defined]
    ECRResponse.delete_pull_through_cache_rule = delete_pull_through_cache_rule  # type: ignore[attr-defined]
    ECRResponse.get_download_url_for_layer = get_download_url_for_layer  # type: ignore[method-assign]
