"""ECS, ELB and Cloud Map state the way AWS reports it, written by the local agent instead of invented by moto.

moto 5.2 answers RunTask with a task that is RUNNING and advances itself to STOPPED with exit code 0,
builds one container from the first container definition, and fixes a service's counts and
deployments at create/update time. With the runtime on (`install()`), the agent owns that state:

- a new task starts PROVISIONING with one container per container definition (no exit code, health
  UNKNOWN); only the agent moves it on (`set_status`), describe no longer advances it;
- StopTask sets desiredStatus STOPPED and the reason; the agent stops the processes and reports STOPPED; a
  task it does not know is InvalidParameterException "The referenced task was not found." (moto: HTTP 500);
- UpdateService keeps the counts the agent wrote (moto sets runningCount = desiredCount);
- DeleteService leaves the service DRAINING until the agent has stopped its tasks (then INACTIVE);
- DescribeTargetHealth reports what the agent's health checks saw;
- Cloud Map refuses to delete a service that still has instances, as AWS does (ResourceInUse).

In both modes ListTasks honours serviceName, a private DNS namespace's hosted zone is associated with
its VPC, CreateService keeps its deploymentConfiguration, healthCheckGracePeriodSeconds and
enableExecuteCommand (moto drops them; it keeps them only from an update), and RunTask honours its
clientToken (a retried call starts nothing new) and, with EMBEDDED_AWS_IAM_PROPAGATION_SECONDS=N,
refuses a role created less than N seconds ago as ECS refuses a role IAM has not propagated yet. With
the runtime off (`install_api_only()`), nothing runs: a service reports every deployment COMPLETED with
runningCount = desiredCount at once, so a deploy that waits for steady state does not wait there.

Pinned to moto 5.2.5 (requirements.lock); tests/integration/test_local_agent.py checks this layer through the API.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.ecs import exceptions as ecs_exceptions
from moto.ecs import models as ecs
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.elbv2 import models as elbv2
from moto.iam.models import iam_backends
from moto.route53.models import route53_backends
from moto.servicediscovery import models as servicediscovery
from moto.servicediscovery import responses as servicediscovery_responses
from moto.utilities.utils import get_partition

_installed: list[bool] = []  # [True] once install() patched moto
# target group ARN -> target id -> (state, reason, description), written by the agent.
TARGET_HEALTH: dict[str, dict[str, tuple[str, str | None, str | None]]] = {}


def now() -> datetime:
    return datetime.now(UTC)


def _container(task_definition: ecs.TaskDefinition, definition: dict[str, Any]) -> ecs.Container:
    container = ecs.Container(task_definition)
    container.name = definition.get("name")
    container.image = definition.get("image")
    container.cpu = definition.get("cpu", 0)
    container.memory = definition.get("memory")
    container.environment = definition.get("environment")
    container.command = definition.get("command")
    container.last_status = "PENDING"
    container.exitCode = None
    container.health_status = "UNKNOWN" if definition.get("healthCheck") else None
    container.reason = None
    return container


def _keep_service_settings() -> None:
    create_service = EC2ContainerServiceResponse.create_service

    def create(self: EC2ContainerServiceResponse) -> Any:
        result = create_service(self)
        cluster, name = self._get_param("cluster", "default"), self._get_param("serviceName")
        service = self.ecs_backend._get_service(cluster, name)
        configuration = self._get_param("deploymentConfiguration")
        if configuration:
            service.deployment_configuration = configuration
        # moto drops it at create; UpdateService sets the attribute, which DescribeServices then reports.
        grace = self._get_param("healthCheckGracePeriodSeconds")
        if grace is not None:
            service.health_check_grace_period_seconds = grace
        if self._get_param("enableExecuteCommand"):
            service.enable_execute_command = True
        return result

    EC2ContainerServiceResponse.create_service = create


def _list_tasks_of_a_service() -> None:
    """ListTasks with serviceName lists that service's tasks only (moto ignores the filter)."""
    list_tasks = ecs.EC2ContainerServiceBackend.list_tasks

    def listed(self: ecs.EC2ContainerServiceBackend, *args: Any, **kwargs: Any) -> list[ecs.Task]:
        # moto's order: cluster, container instance, family, started by, service name, desired status
        positional = list(args)
        if len(positional) > 4:
            service_name, positional[4] = positional[4], None
        else:
            service_name = kwargs.pop("service_name", None)
        tasks = list_tasks(self, *positional, **kwargs)
        if not service_name:
            return tasks
        return [task for task in tasks if task.group == f"service:{service_name.rsplit('/', 1)[-1]}"]

    ecs.EC2ContainerServiceBackend.list_tasks = listed


def _bind_private_namespaces() -> None:
    """A private DNS namespace's hosted zone is associated with its VPC, as Cloud Map does (moto leaves
    the zone without VPCs, so a namespace bound to the wrong VPC could not be told apart)."""
    create_namespace = servicediscovery.ServiceDiscoveryBackend.create_private_dns_namespace

    def create(self: servicediscovery.ServiceDiscoveryBackend, name: str, *args: Any, **kwargs: Any) -> str:
        operation_id = create_namespace(self, name, *args, **kwargs)
        namespace = next(n for n in self.namespaces.values() if n.name == name)
        zone_id = namespace.dns_properties["HostedZoneId"]
        route53 = route53_backends[self.account_id][get_partition(self.region_name)]
        route53.associate_vpc_with_hosted_zone(zone_id, namespace.vpc, self.region_name)
        return operation_id

    servicediscovery.ServiceDiscoveryBackend.create_private_dns_namespace = create


def _list_services_as_aws() -> None:
    """ListServices applies its NAMESPACE_ID filter and answers ServiceSummary items, with InstanceCount and
    without NamespaceId, and CreateService refuses an unknown namespace, as Cloud Map does (moto ignores the
    filter, answers whole services and creates a service in any namespace id)."""
    summary_keys = (
        "Id",
        "Arn",
        "Name",
        "Type",
        "Description",
        "DnsConfig",
        "HealthCheckConfig",
        "HealthCheckCustomConfig",
        "CreateDate",
    )

    def listed(self: servicediscovery_responses.ServiceDiscoveryResponse) -> str:
        wanted: set[str] = set()
        for item in json.loads(self.body or "{}").get("Filters") or []:
            if item.get("Name") == "NAMESPACE_ID":
                wanted = set(item.get("Values") or [])
        summaries = []
        for service in self.servicediscovery_backend.list_services():
            if wanted and service.namespace_id not in wanted:
                continue
            full = service.to_json()
            summary = {key: full[key] for key in summary_keys if full.get(key) is not None}
            summaries.append({**summary, "InstanceCount": len(service.instances)})
        return json.dumps({"Services": summaries})

    servicediscovery_responses.ServiceDiscoveryResponse.list_services = listed

    create_service = servicediscovery.ServiceDiscoveryBackend.create_service

    def create(self: servicediscovery.ServiceDiscoveryBackend, name: str, namespace_id: str, *args: Any, **kwargs: Any):
        self.get_namespace(namespace_id)  # NamespaceNotFound, as Cloud Map answers (moto creates the service)
        return create_service(self, name, namespace_id, *args, **kwargs)

    servicediscovery.ServiceDiscoveryBackend.create_service = create


def _unpropagated_role(backend: ecs.EC2ContainerServiceBackend, task_definition: str) -> str | None:
    """A role of the task definition younger than EMBEDDED_AWS_IAM_PROPAGATION_SECONDS, as ECS cannot assume yet."""
    seconds = float(os.environ.get("EMBEDDED_AWS_IAM_PROPAGATION_SECONDS") or 0)
    if not seconds:
        return None
    definition = backend.describe_task_definition(task_definition)
    roles = iam_backends[backend.account_id]["aws"]
    for arn in (getattr(definition, "task_role_arn", None), getattr(definition, "execution_role_arn", None)):
        role = next((r for r in roles.roles.values() if r.arn == arn), None) if arn else None
        if role is not None and (now() - role.create_date.replace(tzinfo=UTC)).total_seconds() < seconds:
            return arn
    return None


def _patch_run_task() -> None:
    """RunTask honours its clientToken (ECS idempotency) and, optionally, IAM's propagation delay."""
    run_task = EC2ContainerServiceResponse.run_task
    started: dict[tuple[str, str], Any] = {}

    def run(self: EC2ContainerServiceResponse) -> Any:
        token = self._get_param("clientToken")
        key = (self.current_account, token or "")
        if token and key in started:
            return started[key]
        young = _unpropagated_role(self.ecs_backend, self._get_param("taskDefinition"))
        if young:
            raise ecs_exceptions.InvalidParameterException(
                f"ECS was unable to assume the role '{young}' that was provided for this task. Please verify that "
                "the role being passed has the proper trust relationship and permissions and that your IAM user "
                "has permissions to pass this role."
            )
        result = run_task(self)
        if token:
            started[key] = result
        return result

    EC2ContainerServiceResponse.run_task = run


def install_api_only() -> None:
    """Without the runtime: services are steady as soon as they are created or updated."""
    _keep_service_settings()
    _bind_private_namespaces()
    _list_services_as_aws()
    _list_tasks_of_a_service()
    _patch_run_task()
    service_init = ecs.Service.__init__

    def steady(service: ecs.Service, definition: str | None) -> None:
        service.running_count, service.pending_count = service.desired_count, 0
        for deployment in service.deployments:
            deployment.update(runningCount=service.desired_count, pendingCount=0, rolloutState="COMPLETED")
            deployment.update(desiredCount=service.desired_count, taskDefinition=definition)
            deployment["rolloutStateReason"] = f"ECS deployment {deployment['id']} completed."

    def init(self: ecs.Service, *args: Any, **kwargs: Any) -> None:
        service_init(self, *args, **kwargs)
        steady(self, self.task_definition)

    update_service = ecs.EC2ContainerServiceBackend.update_service

    def update(self: ecs.EC2ContainerServiceBackend, properties: dict[str, Any]) -> ecs.Service:
        service = update_service(self, properties)
        steady(service, self.describe_task_definition(service.task_definition).arn)
        return service

    ecs.Service.__init__ = init
    ecs.EC2ContainerServiceBackend.update_service = update


def install() -> None:
    """Patch moto's ECS, ELBv2 and Cloud Map models (once per process)."""
    if _installed:
        return
    _installed.append(True)
    _keep_service_settings()
    _bind_private_namespaces()
    _list_services_as_aws()
    _list_tasks_of_a_service()
    _patch_run_task()
    _patch_tasks()
    _patch_services()
    _patch_target_health()
    _patch_discovery()


def _patch_tasks() -> None:
    task_init = ecs.Task.__init__

    def init(self: ecs.Task, *args: Any, **kwargs: Any) -> None:
        task_init(self, *args, **kwargs)
        definition = kwargs.get("task_definition") or args[1]
        self.local_status = "PROVISIONING"
        self.containers = [_container(definition, d) for d in definition.container_definitions]
        self.created_at = now()
        self.health_status = "UNKNOWN"
        self.cpu = definition.cpu
        self.memory = definition.memory
        self.stop_code = None
        self.started_at = self.stopped_at = self.stopping_at = self.pull_started_at = None

    def get_status(self: ecs.Task) -> str | None:
        local = getattr(self, "local_status", None)
        return local if local is not None else ecs.ManagedState.status.fget(self)  # type: ignore[attr-defined]

    def put_status(self: ecs.Task, value: str) -> None:
        if getattr(self, "local_status", None) is None:  # a task from before install(): moto's own
            self.status = value

    ecs.Task.__init__ = init
    ecs.Task.last_status = property(get_status, put_status)

    stop_task = ecs.EC2ContainerServiceBackend.stop_task

    def stop(self: ecs.EC2ContainerServiceBackend, cluster_str: str, task_str: str, reason: str) -> ecs.Task:
        try:
            task = stop_task(self, cluster_str, task_str, reason)
        except JsonRESTError:
            raise
        except Exception as exc:  # moto: a bare Exception (HTTP 500) for a task it does not know; ECS answers this
            # (the AwsEcsExecutor's health check stops a task id that does not exist and expects exactly it)
            raise ecs_exceptions.InvalidParameterException("The referenced task was not found.") from exc
        if task.local_status not in (None, "STOPPED"):
            task.stopping_at = task.stopping_at or now()
            task.stop_code = task.stop_code or "UserInitiated"
        return task

    ecs.EC2ContainerServiceBackend.stop_task = stop


def _patch_services() -> None:
    update_service = ecs.EC2ContainerServiceBackend.update_service

    def update(self: ecs.EC2ContainerServiceBackend, properties: dict[str, Any]) -> ecs.Service:
        service = self._get_service(properties.get("cluster", "default"), properties["service"].split("/")[-1])
        counts = service.running_count, service.pending_count
        before = service.task_definition
        forced = bool(properties.get("force_new_deployment"))
        service = update_service(self, properties)
        service.running_count, service.pending_count = counts
        definition = self.describe_task_definition(service.task_definition).arn
        # As ECS does, the answer already shows the new deployment the update started.
        if (
            service.deployments
            and service.deployments[0].get("local_id") is not None
            and (forced or definition != before)
        ):
            start_deployment(service, definition)
        return service

    ecs.EC2ContainerServiceBackend.update_service = update

    delete_service = ecs.EC2ContainerServiceBackend.delete_service

    def delete(self: ecs.EC2ContainerServiceBackend, cluster_name: str, service_name: str, force: bool) -> ecs.Service:
        service = delete_service(self, cluster_name, service_name, force)
        service.status = "DRAINING"  # the agent makes it INACTIVE once its tasks stopped
        service.desired_count = 0
        return service

    ecs.EC2ContainerServiceBackend.delete_service = delete


def _patch_target_health() -> None:
    health_for = elbv2.FakeTargetGroup.health_for

    def target_health(self: elbv2.FakeTargetGroup, target: dict[str, Any], ec2_backend: Any) -> Any:
        seen = TARGET_HEALTH.get(self.arn, {}).get(target["Id"])
        if seen is None or target["Id"] not in self.targets:
            return health_for(self, target, ec2_backend)
        state, reason, description = seen
        port = self.targets[target["Id"]].get("Port", self.port)
        return elbv2.FakeHealthStatus(target["Id"], port, self.health_check_port, state, reason, description)

    elbv2.FakeTargetGroup.health_for = target_health


def _patch_discovery() -> None:
    delete_discovery_service = servicediscovery.ServiceDiscoveryBackend.delete_service

    def delete_discovery(self: servicediscovery.ServiceDiscoveryBackend, service_id: str) -> None:
        service = self.services.get(service_id)
        if service is not None and service.instances:
            raise ResourceInUse(f"Service {service_id} has registered instances; deregister them first")
        delete_discovery_service(self, service_id)

    servicediscovery.ServiceDiscoveryBackend.delete_service = delete_discovery


class ResourceInUse(JsonRESTError):
    def __init__(self, message: str) -> None:
        super().__init__("ResourceInUse", message)


def start_deployment(service: ecs.Service, definition: str, rollback_of: dict[str, Any] | None = None) -> dict:
    """A new PRIMARY deployment of `definition`; the earlier ones stay listed (ACTIVE) until their tasks are gone.

    The first call adopts the deployment moto made at CreateService. `local_id` marks a deployment the
    agent runs; moto rewrites a deployment's id in place for forceNewDeployment.
    """
    primary = service.deployments[0]
    stamp = now()
    earlier: list[dict[str, Any]] = []
    new = dict(primary)
    if primary.get("local_id") is not None:
        earlier = [dict(primary, id=primary["local_id"], status="ACTIVE"), *service.deployments[1:]]
        if new["id"] == primary["local_id"]:
            new["id"] = f"ecs-svc/{int(time.time() * 1000) % 10**19}"
        new.update(createdAt=stamp, failedTasks=0)
    new.update(
        taskDefinition=definition,
        status="PRIMARY",
        local_id=new["id"],
        rolloutState="IN_PROGRESS",
        rolloutStateReason=f"ECS deployment {new['id']} in progress."
        if rollback_of is None
        else f"ECS deployment circuit breaker: rolling back to deploymentId {new['id']}.",
        updatedAt=stamp,
    )
    service.deployments = [new, *earlier]
    service.task_definition = definition
    return new


def set_status(task: ecs.Task, status: str) -> None:
    """Move a task to `status`, with the timestamps ECS sets on the way."""
    task.local_status = status
    stamp = now()
    if status == "PENDING" and task.pull_started_at is None:
        task.pull_started_at = stamp
    if status == "RUNNING":
        task.started_at = task.started_at or stamp
        task.connectivity = "CONNECTED"
        task.connectivity_at = task.started_at
    if status in ("DEACTIVATING", "STOPPING"):
        task.stopping_at = task.stopping_at or stamp
    if status == "STOPPED":
        task.stopped_at = stamp
        task.desired_status = "STOPPED"
        task.execution_stopped_at = stamp
