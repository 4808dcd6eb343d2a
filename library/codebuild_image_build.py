#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A container image built by a CodeBuild project from a recipe in S3, once per tag (project module)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: codebuild_image_build
short_description: Keep a CodeBuild image project and build an image tag that the repository lacks
description:
  - Makes sure an ECR repository holds the image O(image_tag), built by the CodeBuild project O(project), and
    returns its digest.
  - "The project is kept as given (S3 source with an inline buildspec, environment, service role, tags): one
    C(BatchGetProjects); C(CreateProject) when missing, C(UpdateProject) only when a field differs (a new
    recipe changes the source location and the C(IMAGE_TAG) variable). M(community.aws.codebuild_project) has
    no check mode and sends C(UpdateProject) on every run."
  - "The repository is asked for the tag with one C(DescribeImages). When it has it, nothing is built or
    uploaded. Otherwise the recipe zip O(source.content_base64) is put at O(source.bucket)/O(source.key)
    when that key is missing (C(HeadObject)), a build of this tag still running from an interrupted run is
    waited for (C(ListBuildsForProject), C(BatchGetBuilds)), or one is started (C(StartBuild), no overrides:
    the project carries everything), and C(BatchGetBuilds) is polled until the build ends. A build that ends
    C(FAILED), C(FAULT), C(STOPPED) or C(TIMED_OUT), or runs past O(wait_timeout), fails the module with its
    status, failed phase and CloudWatch Logs link."
  - In check mode nothing is uploaded, changed or started; the result says whether the run would build.
  - With O(state=absent) the project is deleted (C(DeleteProject)); images stay in the repository.
author:
  - airflow-ecs project
options:
  project:
    description: The CodeBuild project.
    type: dict
    required: true
    suboptions:
      name: {description: Project name., type: str, required: true}
      description: {description: Project description., type: str, default: ""}
      service_role:
        description: ARN of the role CodeBuild runs the build as. Required with O(state=present).
        type: str
      buildspec: {description: The inline buildspec (YAML text). Required with O(state=present)., type: str}
      environment_image:
        description: The build environment image.
        type: str
        default: aws/codebuild/amazonlinux-x86_64-standard:5.0
      compute_type: {description: The build compute type., type: str, default: BUILD_GENERAL1_MEDIUM}
      environment_type: {description: The build environment type., type: str, default: LINUX_CONTAINER}
      environment_variables:
        description: Plain environment variables of the build (name to value).
        type: dict
        default: {}
      timeout_in_minutes: {description: Minutes before CodeBuild stops a build., type: int, default: 60}
      tags: {description: Tags of the project (compared as a whole)., type: dict, default: {}}
  source:
    description: The recipe zip and where the project reads it. Required with O(state=present).
    type: dict
    suboptions:
      bucket: {description: S3 bucket., type: str, required: true}
      key:
        description: Object key; name it after the recipe's hash so a new recipe gets a new key.
        type: str
        required: true
      content_base64:
        description: The zip, base64; uploaded only when the key is missing and a build is needed.
        type: str
        required: true
  repository:
    description: The ECR repository name the build pushes to. Required with O(state=present).
    type: str
  image_tag:
    description: The tag the build pushes (the project's C(IMAGE_TAG)). Required with O(state=present).
    type: str
  wait_timeout:
    description: Seconds to wait for a build to end.
    type: int
    default: 3600
  poll_interval:
    description: Seconds between C(BatchGetBuilds) while a build runs.
    type: int
    default: 10
  state:
    description: V(present) keeps the project and builds a missing tag; V(absent) deletes the project.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - IAM actions used are codebuild:BatchGetProjects, codebuild:CreateProject, codebuild:UpdateProject,
    codebuild:DeleteProject, codebuild:ListBuildsForProject, codebuild:StartBuild, codebuild:BatchGetBuilds,
    ecr:DescribeImages, s3:GetObject (HeadObject) and s3:PutObject, and iam:PassRole on the service role.
"""

EXAMPLES = r"""
- name: Build the Airflow image of this recipe unless the repository has it
  codebuild_image_build:
    project:
      name: airflow-image
      service_role: arn:aws:iam::123456789012:role/airflow-image-build
      buildspec: "{{ lookup('file', 'buildspec.yml') }}"
      environment_variables:
        IMAGE_REPOSITORY_URI: 123456789012.dkr.ecr.us-east-1.amazonaws.com/airflow/airflow
        IMAGE_TAG: 3.3.2-0123456789ab
        BASE_IMAGE: apache/airflow:3.3.2
    source: {bucket: airflow-dags-123456789012-us-east-1, key: image/recipe-0123456789ab.zip, content_base64: "..."}
    repository: airflow/airflow
    image_tag: 3.3.2-0123456789ab
  register: __build
"""

RETURN = r"""
image_digest:
  description:
    - The digest of the image tagged O(image_tag); null in check mode when it would be built, or with O(state=absent).
  returned: always
  type: str
  sample: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
built:
  description: Whether the run built the image (in check mode, whether it would).
  returned: always
  type: bool
build:
  description: The build the run started or waited for (id, status, log link); empty when none.
  returned: always
  type: dict
project_changes:
  description: What the run did to the project, V(created), V(updated) with the differing fields, or V(deleted).
  returned: always
  type: list
  elements: str
msg:
  description: What the run did, such as C(would build airflow/airflow:3.3.2-0123456789ab) in check mode.
  returned: with O(state=present)
  type: str
uploaded:
  description: Whether the run put the recipe zip into S3 (in check mode, whether it would).
  returned: always
  type: bool
"""

import base64
import contextlib
import time
from typing import Any

with contextlib.suppress(ImportError):
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

ENDED_BADLY = ("FAILED", "FAULT", "STOPPED", "TIMED_OUT")


def wanted_project(module: AnsibleAWSModule) -> dict[str, Any]:
    """The project as CreateProject/UpdateProject take it (compared field by field with BatchGetProjects)."""
    spec = module.params["project"]
    source = module.params["source"]
    return {
        "name": spec["name"],
        "description": spec["description"],
        "source": {"type": "S3", "location": f"{source['bucket']}/{source['key']}", "buildspec": spec["buildspec"]},
        "artifacts": {"type": "NO_ARTIFACTS"},
        "environment": {
            "type": spec["environment_type"],
            "image": spec["environment_image"],
            "computeType": spec["compute_type"],
            # docker build inside the build container needs it
            "privilegedMode": True,
            "environmentVariables": [
                {"name": k, "value": str(v), "type": "PLAINTEXT"}
                for k, v in sorted(spec["environment_variables"].items())
            ],
        },
        "serviceRole": spec["service_role"],
        "timeoutInMinutes": spec["timeout_in_minutes"],
        "tags": [{"key": k, "value": str(v)} for k, v in sorted(spec["tags"].items())],
    }


def comparable(project: dict[str, Any]) -> dict[str, Any]:
    """The fields this module sets, normalised (order of variables and tags, absent vs empty)."""
    source = project.get("source", {})
    environment = project.get("environment", {})
    return {
        "description": project.get("description") or "",
        "source": {key: source.get(key) for key in ("type", "location", "buildspec")},
        "environment": {
            "type": environment.get("type"),
            "image": environment.get("image"),
            "computeType": environment.get("computeType"),
            "privilegedMode": bool(environment.get("privilegedMode")),
            "environmentVariables": sorted(
                (v["name"], str(v["value"]), v.get("type", "PLAINTEXT"))
                for v in environment.get("environmentVariables", [])
            ),
        },
        "serviceRole": project.get("serviceRole"),
        "timeoutInMinutes": int(project.get("timeoutInMinutes") or 60),
        "tags": sorted((t["key"], t["value"]) for t in project.get("tags") or []),
    }


def read_project(module: AnsibleAWSModule, client: Any, name: str) -> dict[str, Any] | None:
    try:
        projects = client.batch_get_projects(names=[name], aws_retry=True)["projects"]
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to read CodeBuild project '{name}'")
    return projects[0] if projects else None


def ensure_project(module: AnsibleAWSModule, client: Any) -> list[str]:
    wanted = wanted_project(module)
    current = read_project(module, client, wanted["name"])
    if current is None:
        changes = ["created"]
        method, what = client.create_project, "create"
    else:
        have, want = comparable(current), comparable(wanted)
        differing = [key for key in want if have[key] != want[key]]
        if not differing:
            return []
        changes = ["updated", *differing]
        method, what = client.update_project, "update"
    if not module.check_mode:
        try:
            method(aws_retry=True, **wanted)
        except (BotoCoreError, ClientError) as e:
            module.fail_json_aws(e, msg=f"Failed to {what} CodeBuild project '{wanted['name']}'")
    return changes


def image_digest(module: AnsibleAWSModule, client: Any, repository: str, tag: str) -> str | None:
    """The digest of repository:tag; None when the tag (or, in check mode, the repository) does not exist."""
    try:
        images = client.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}], aws_retry=True)
    except is_boto3_error_code("ImageNotFoundException"):
        return None
    except is_boto3_error_code("RepositoryNotFoundException") as e:  # pylint: disable=duplicate-except
        if module.check_mode:
            return None
        module.fail_json_aws(e, msg=f"ECR repository '{repository}' does not exist: it must be made before the build")
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to look up image {repository}:{tag}")
    details = images.get("imageDetails", [])
    return details[0]["imageDigest"] if details else None


def upload_source(module: AnsibleAWSModule) -> bool:
    source = module.params["source"]
    s3 = module.client("s3", retry_decorator=jittered_backoff())
    try:
        s3.head_object(Bucket=source["bucket"], Key=source["key"], aws_retry=True)
        return False
    except is_boto3_error_code(["404", "NoSuchKey", "NotFound"]):
        pass
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to look up the recipe s3://{source['bucket']}/{source['key']}")
    if module.check_mode:
        return True
    try:
        s3.put_object(
            Bucket=source["bucket"],
            Key=source["key"],
            Body=base64.b64decode(source["content_base64"]),
            ContentType="application/zip",
            ServerSideEncryption="AES256",
            aws_retry=True,
        )
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to upload the recipe to s3://{source['bucket']}/{source['key']}")
    return True


def summary(build: dict[str, Any]) -> dict[str, Any]:
    logs = build.get("logs", {})
    return {
        "id": build["id"],
        "status": build.get("buildStatus"),
        "current_phase": build.get("currentPhase"),
        "log_group": logs.get("groupName"),
        "log_stream": logs.get("streamName"),
        "log_link": logs.get("deepLink"),
    }


def failure_message(build: dict[str, Any], tag: str) -> str:
    """One message for a build that did not succeed: status, the failed phase and its reason, the log link."""
    failed = [p for p in build.get("phases", []) if p.get("phaseStatus") in ENDED_BADLY]
    phase = ""
    if failed:
        contexts = "; ".join(c.get("message", "") for c in failed[0].get("contexts", []) if c.get("message"))
        phase = f" in phase {failed[0].get('phaseType')}" + (f" ({contexts})" if contexts else "")
    link = build.get("logs", {}).get("deepLink") or "no CloudWatch Logs link (the build wrote no log)"
    return f"CodeBuild build {build['id']} of image tag {tag} ended {build.get('buildStatus')}{phase}; its log: {link}"


def running_build(module: AnsibleAWSModule, client: Any, project: str, tag: str) -> dict[str, Any] | None:
    """A build of this tag still running (left by an interrupted run), or None."""
    try:
        ids = client.list_builds_for_project(projectName=project, sortOrder="DESCENDING", aws_retry=True)["ids"][:10]
        builds = client.batch_get_builds(ids=ids, aws_retry=True)["builds"] if ids else []
    except is_boto3_error_code("ResourceNotFoundException"):
        return None
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to list the builds of CodeBuild project '{project}'")
    for build in builds:
        variables = {v["name"]: v.get("value") for v in build.get("environment", {}).get("environmentVariables", [])}
        if build.get("buildStatus") == "IN_PROGRESS" and variables.get("IMAGE_TAG") == tag:
            return build
    return None


def build_image(module: AnsibleAWSModule, client: Any, project: str, tag: str) -> dict[str, Any]:
    """Start (or join) the build of the tag and wait until it ends; fails unless it SUCCEEDED."""
    build = running_build(module, client, project, tag)
    if build is None:
        try:
            build = client.start_build(projectName=project, aws_retry=True)["build"]
        except (BotoCoreError, ClientError) as e:
            module.fail_json_aws(e, msg=f"Failed to start a build of CodeBuild project '{project}'")
    deadline = time.monotonic() + module.params["wait_timeout"]
    while build.get("buildStatus") == "IN_PROGRESS":
        if time.monotonic() > deadline:
            module.fail_json(
                msg=f"CodeBuild build {build['id']} of image tag {tag} was still {build.get('currentPhase')} after "
                f"{module.params['wait_timeout']} s (wait_timeout); its log: {build.get('logs', {}).get('deepLink')}",
                build=summary(build),
            )
        time.sleep(module.params["poll_interval"])
        try:
            build = client.batch_get_builds(ids=[build["id"]], aws_retry=True)["builds"][0]
        except (BotoCoreError, ClientError) as e:
            module.fail_json_aws(e, msg=f"Failed to read CodeBuild build {build['id']}")
    if build.get("buildStatus") != "SUCCEEDED":
        module.fail_json(msg=failure_message(build, tag), build=summary(build))
    return build


def main() -> None:
    project_options = dict(
        name=dict(type="str", required=True),
        description=dict(type="str", default=""),
        service_role=dict(type="str"),
        buildspec=dict(type="str"),
        environment_image=dict(type="str", default="aws/codebuild/amazonlinux-x86_64-standard:5.0"),
        compute_type=dict(type="str", default="BUILD_GENERAL1_MEDIUM"),
        environment_type=dict(type="str", default="LINUX_CONTAINER"),
        environment_variables=dict(type="dict", default={}),
        timeout_in_minutes=dict(type="int", default=60),
        tags=dict(type="dict", default={}),
    )
    source_options = dict(
        bucket=dict(type="str", required=True),
        key=dict(type="str", required=True),
        content_base64=dict(type="str", required=True),
    )
    module = AnsibleAWSModule(
        argument_spec=dict(
            project=dict(type="dict", required=True, options=project_options),
            source=dict(type="dict", options=source_options),
            repository=dict(type="str"),
            image_tag=dict(type="str"),
            wait_timeout=dict(type="int", default=3600),
            poll_interval=dict(type="int", default=10),
            state=dict(type="str", default="present", choices=["present", "absent"]),
        ),
        required_if=[("state", "present", ("source", "repository", "image_tag"))],
        supports_check_mode=True,
    )
    codebuild = module.client("codebuild", retry_decorator=jittered_backoff())
    name = module.params["project"]["name"]
    result: dict[str, Any] = {
        "image_digest": None,
        "built": False,
        "build": {},
        "project_changes": [],
        "uploaded": False,
    }

    if module.params["state"] == "absent":
        if read_project(module, codebuild, name) is not None:
            result["project_changes"] = ["deleted"]
            if not module.check_mode:
                try:
                    codebuild.delete_project(name=name, aws_retry=True)
                except (BotoCoreError, ClientError) as e:
                    module.fail_json_aws(e, msg=f"Failed to delete CodeBuild project '{name}'")
        module.exit_json(changed=bool(result["project_changes"]), **result)

    missing = [key for key in ("service_role", "buildspec") if not module.params["project"][key]]
    if missing:
        module.fail_json(msg=f"project needs {' and '.join(missing)} with state present. Nothing was changed.")
    repository, tag = module.params["repository"], module.params["image_tag"]
    ecr = module.client("ecr", retry_decorator=jittered_backoff())
    result["project_changes"] = ensure_project(module, codebuild)
    digest = image_digest(module, ecr, repository, tag)
    if digest is None:
        result["uploaded"] = upload_source(module)
        result["built"] = True
        if not module.check_mode:
            build = build_image(module, codebuild, name, tag)
            result["build"] = summary(build)
            digest = image_digest(module, ecr, repository, tag)
            if digest is None:
                module.fail_json(
                    msg=f"CodeBuild build {build['id']} SUCCEEDED but {repository} has no image tagged {tag}: the "
                    "buildspec must push $IMAGE_REPOSITORY_URI:$IMAGE_TAG",
                    **result,
                )
    result["image_digest"] = digest
    if module.check_mode and digest is None:
        result["msg"] = f"would build {repository}:{tag} (the repository has no image with that tag)"
    elif result["built"]:
        result["msg"] = f"built {repository}:{tag} as {digest} (build {result['build']['id']})"
    else:
        result["msg"] = f"{repository}:{tag} exists as {digest}: nothing to build"
    changed = bool(result["project_changes"]) or result["built"] or result["uploaded"]
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
