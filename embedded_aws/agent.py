"""The local ECS agent: every task the emulator's ECS holds runs as local processes, and ECS reports the truth.

It lives in the emulator's process (moto's backends are plain objects here) and reconciles twice a
second, as ECS's scheduler and agent do:

- RDS: each PostgreSQL instance is a local PostgreSQL server (servers.Postgres) with its master user
  and database; it stops when the instance is deleted;
- ECS services: desiredCount tasks of the PRIMARY deployment; a new task definition or a forced
  deployment rolls by the service's maximumPercent / minimumHealthyPercent (200 / 100 by default: an
  old task stops once a new one is healthy); a task that exits or fails its health check is replaced,
  with a growing delay when it keeps failing; the deployment circuit breaker fails a deployment after
  max(3, desired / 2) failed tasks and rolls back to the last completed revision when asked;
  runningCount, pendingCount, failedTasks and rolloutState follow the tasks; a deleted service stays
  DRAINING until its tasks stopped;
- tasks (services' and RunTask's): `TaskRun` pulls each container's image (registry.py: the Python
  environment of the image's package set) and starts the container as a process from its task
  definition, and moves it PROVISIONING -> PENDING -> RUNNING -> STOPPED with exit code, stop code,
  stoppedReason and health, as ECS reports them;
- as ECS does, a service task is registered in its ALB target groups once it is RUNNING, and in its
  Cloud Map service once it is also healthy (deregistered before it stops); target health comes from
  the target group's own health check path, matcher and healthy/unhealthy threshold counts; a target
  found unhealthy after the service's healthCheckGracePeriodSeconds stops its task ("Task failed ELB
  health checks"), and a load-balanced task counts as healthy for a rollout only once its targets are;
  every Cloud Map name is a local `forwarder.Listener`, every ALB listener a `forwarder.HttpListener` that
  acts on each request as the listener's rules say (path-pattern and host conditions, forward,
  fixed-response and redirect actions, by priority).

What a user can reach is written to <runtime dir>/runtime.json (UI URL and such) after each change.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moto.ecs.models import ecs_backends
from moto.elbv2.models import elbv2_backends
from moto.rds.models import rds_backends
from moto.servicediscovery.models import servicediscovery_backends

from embedded_aws import autoscaling, cgroups, connections, ecs_state, servers
from embedded_aws.forwarder import Action, HttpListener, Listener, Rule, free_port
from embedded_aws.processes import Processes, kill_leftovers
from embedded_aws.task_run import TaskRun

log = logging.getLogger("embedded_aws.agent")
POLL_SECONDS = 0.5
TARGET_CHECK_SECONDS = 2.0
MAX_RESTART_DELAY = 30.0
LISTENER_PORT_OFFSET = 8000  # an ALB listener on port 80 is served on 127.0.0.1:8080 when that is free
MAX_PRIORITY = 50000  # of a listener rule; the default rule comes after every other


@dataclass
class Settings:
    runtime_dir: Path  # task directories, databases, runtime.json; emptied at start
    endpoint_url: str  # the emulator, as tasks reach it
    credentials_url: str  # the container credentials endpoint, ending in /v2/credentials/
    credentials_token: str
    # The emulator's own interpreter; a task runs its image's environment (registry.py), never this one.
    python_bin: Path = field(default_factory=lambda: Path(sys.executable).parent)


def regional(backends: Any) -> list[tuple[str, str, Any]]:
    """(account, region, backend) for every region moto has created a backend in."""
    found = []
    for account, by_region in list(backends.items()):
        for region, backend in list(by_region.items()):
            found.append((account, region, backend))
    return found


@dataclass
class Database:
    key: str  # account/region/instance id
    address: str
    port: int  # the endpoint port of the instance
    postgres: servers.Postgres
    user: str = ""
    password: str = ""  # the master password the server has; ModifyDBInstance may change it
    ready: threading.Event = field(default_factory=threading.Event)
    error: str = ""
    stopping: bool = False
    connections: connections.ConnectionPeaks = field(default_factory=connections.ConnectionPeaks)
    sampler: connections.Sampler | None = None


class Agent:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runs: dict[str, TaskRun] = {}  # task ARN -> its run
        self.databases: dict[str, Database] = {}
        self.listeners: dict[str, Listener | HttpListener] = {}  # "lb:<listener arn>" or "dns:<name>:<port>"
        self.target_checks: dict[tuple[str, str], float] = {}  # (target group, target) -> last check
        # -> (last result, how many in a row, since when)
        self.target_streaks: dict[tuple[str, str], tuple[str, int, float]] = {}
        self.failures: dict[str, tuple[int, float]] = {}  # service ARN -> (failures in a row, last stop)
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._published = ""
        self.autoscaling = autoscaling.Evaluator()  # CloudWatch alarms -> Application Auto Scaling (autoscaling.py)
        shutil.rmtree(settings.runtime_dir, ignore_errors=True)
        settings.runtime_dir.mkdir(parents=True)
        settings.runtime_dir.chmod(0o755)  # the postgres user must reach its data directory
        self.limits = cgroups.Limits(settings.runtime_dir)  # Fargate's task CPU and memory limits, when it can
        log.warning("local runtime: %s", self.limits.status)

    # -- loop ---------------------------------------------------------------------------------------

    def start(self) -> None:
        ecs_state.install()
        autoscaling.install()
        threading.Thread(target=self._loop, name="ecs-agent", daemon=True).start()

    def _loop(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                with self.lock:
                    self.reconcile()
            except Exception:
                log.exception("agent reconcile failed")

    def reconcile(self) -> None:
        self.reconcile_databases()
        self.autoscaling.tick()  # alarms evaluated, scaling policies set desired counts (autoscaling.py)
        for account, region, ecs in regional(ecs_backends):
            for cluster_tasks in list(ecs.tasks.values()):
                for arn, task in list(cluster_tasks.items()):
                    if arn not in self.runs and getattr(task, "local_status", None) == "PROVISIONING":
                        self.runs[arn] = TaskRun(self, ecs, task, account, region)
                        self.runs[arn].start()
            for service in list(ecs.services.values()):
                self.schedule(ecs, service)
        self.reconcile_registrations()
        self.reconcile_listeners()
        self.publish()

    def shutdown(self) -> None:
        """Stop every task (each within its stop timeout, all at once), then the databases and listeners."""
        self._stop.set()
        with self.lock:
            runs = list(self.runs.values())
        for run in runs:
            run.request_stop("the emulator is stopping")
        for run in runs:
            run.join(timeout=run.stop_timeout + 15)
        for database in self.databases.values():
            if database.sampler is not None:
                database.sampler.stop()
            with contextlib.suppress(Exception):
                database.postgres.stop()
        for listener in self.listeners.values():
            listener.close()
        kill_leftovers(str(self.settings.runtime_dir))
        cgroups.sweep(self.settings.runtime_dir)

    # -- RDS ----------------------------------------------------------------------------------------

    def reconcile_databases(self) -> None:
        seen = set()
        for account, region, rds in regional(rds_backends):
            for identifier, instance in list(rds.databases.items()):
                if not str(instance.engine).startswith("postgres"):
                    continue
                key = f"{account}/{region}/{identifier}"
                seen.add(key)
                if key not in self.databases:
                    self.start_database(key, instance)
                database = self.databases[key]
                if database.stopping:
                    continue
                wanted = instance._master_user_password or ""
                if database.ready.is_set() and wanted and wanted != database.password:
                    database.postgres.set_password(database.user, wanted)  # as RDS applies a new master password
                    database.password = wanted
        for key in set(self.databases) - seen:
            database = self.databases[key]
            if not database.stopping:
                database.stopping = True
                threading.Thread(target=self._drop_database, args=(database,), daemon=True).start()

    def start_database(self, key: str, instance: Any) -> None:
        root = self.settings.runtime_dir / "rds" / key.replace("/", "-")
        root.mkdir(parents=True, exist_ok=True)
        max_connections = connections.max_connections_for(str(instance.db_instance_class))
        postgres = servers.Postgres(Processes(root), root, free_port(), max_connections)
        database = Database(
            key,
            instance.address,
            int(instance.port),
            postgres,
            instance.master_username,
            instance._master_user_password or "",
        )
        database.connections.max_connections = max_connections
        self.databases[key] = database

        def boot() -> None:
            try:
                postgres.start()
                postgres.create_database(
                    servers.DatabaseUrl(database.user, database.password, "", 0, instance.db_name or "")
                )
                database.ready.set()
                database.sampler = connections.Sampler(postgres.socket_dir, postgres.port, database.connections)
                database.sampler.start()
            except Exception as exc:  # tasks that need it fail to connect, as with a broken instance
                detail = (getattr(exc, "stderr", None) or b"").decode(errors="replace").strip()
                database.error = f"{type(exc).__name__}: {exc} {detail}".strip()
                log.exception("database %s failed to start", key)

        threading.Thread(target=boot, name=f"rds-{key}", daemon=True).start()

    def _drop_database(self, database: Database) -> None:
        """The instance was deleted: its server stops and its data goes (listed until then)."""
        if database.sampler is not None:
            database.sampler.stop()
        with contextlib.suppress(Exception):
            database.postgres.stop()
        shutil.rmtree(database.postgres.root.parent, ignore_errors=True)
        with self.lock:
            self.databases.pop(database.key, None)

    # -- services -----------------------------------------------------------------------------------

    def service_runs(self, service: Any) -> list[TaskRun]:
        return [r for r in self.runs.values() if r.service_arn == service.arn and not r.stopped]

    def schedule(self, ecs: Any, service: Any) -> None:
        if service.deployment_controller.get("type", "ECS") != "ECS" or not service.deployments:
            return
        runs = self.service_runs(service)
        if service.status != "ACTIVE":
            for run in runs:
                run.request_stop(f"Scaling activity initiated by (deployment {run.task.started_by})")
            if service.status == "DRAINING" and not runs:
                service.status = "INACTIVE"
                self.update_counts(service, [])
            return
        primary = self.primary_deployment(ecs, service)
        self.circuit_breaker(service, primary)
        primary = service.deployments[0]
        new = [r for r in runs if r.task.started_by == primary["id"]]
        old = [r for r in runs if r.task.started_by != primary["id"]]
        desired = int(service.desired_count)
        configuration = getattr(service, "deployment_configuration", None) or {}
        maximum = max(1, desired * int(configuration.get("maximumPercent", 200)) // 100)
        minimum = math.ceil(desired * int(configuration.get("minimumHealthyPercent", 100)) / 100)
        failures, last = self.failures.get(service.arn, (0, 0.0))
        delay = min(MAX_RESTART_DELAY, 2.0 ** (failures - 1)) if failures else 0.0
        if len(new) < desired and len(new) + len(old) < maximum and time.time() - last >= delay:
            task = self.run_service_task(ecs, service, primary)
            self.runs[task.task_arn] = TaskRun(self, ecs, task, service.arn.split(":")[4], service.region_name)
            self.runs[task.task_arn].service_arn = service.arn
            self.runs[task.task_arn].start()
            new.append(self.runs[task.task_arn])
        for run in new[desired:]:  # scaled in: newest first
            run.request_stop("Task stopped by the service scheduler (desired count lowered)")
        ready_new = [r for r in new[:desired] if in_service(r, service)]
        ready_old = [r for r in old if in_service(r, service)]
        # minimumHealthyPercent: an old task stops only while the ready ones stay at or above the minimum.
        for run in sorted(old, key=lambda r: r in ready_old):
            if run not in ready_old or len(ready_new) + len(ready_old) - 1 >= minimum:
                run.request_stop(f"Task stopped by the deployment {primary['id']} (replaced)")
                if run in ready_old:
                    ready_old.remove(run)
        self.update_counts(service, self.service_runs(service), primary)

    def primary_deployment(self, ecs: Any, service: Any) -> dict[str, Any]:
        """The PRIMARY deployment, adopting moto's first one; UpdateService starts the next (ecs_state)."""
        primary = service.deployments[0]
        if primary.get("local_id") != primary["id"]:
            ecs_state.start_deployment(service, ecs.describe_task_definition(service.task_definition).arn)
        return service.deployments[0]

    def circuit_breaker(self, service: Any, primary: dict[str, Any]) -> None:
        """ECS's deployment circuit breaker: enough failed tasks fail the deployment, and roll back when asked."""
        breaker = (getattr(service, "deployment_configuration", None) or {}).get("deploymentCircuitBreaker") or {}
        threshold = max(3, min(200, math.ceil(0.5 * int(service.desired_count))))
        if not breaker.get("enable") or primary["rolloutState"] != "IN_PROGRESS":
            return
        if int(primary.get("failedTasks") or 0) < threshold:
            return
        primary["rolloutState"] = "FAILED"
        primary["rolloutStateReason"] = "ECS deployment circuit breaker: tasks failed to start."
        service.events.insert(
            0,
            {
                "id": primary["id"],
                "createdAt": ecs_state.now(),
                "message": f"(service {service.name}) (deployment {primary['id']}) deployment failed: "
                "tasks failed to start.",
            },
        )
        earlier = next((d for d in service.deployments[1:] if d.get("rolloutState") == "COMPLETED"), None)
        if breaker.get("rollback") and earlier is not None:
            ecs_state.start_deployment(service, earlier["taskDefinition"], rollback_of=primary)

    def run_service_task(self, ecs: Any, service: Any, deployment: dict[str, Any]) -> Any:
        network = service.network_configuration or None
        tasks = ecs.run_task(
            service.cluster_name,
            deployment["taskDefinition"],
            1,
            None,
            deployment["id"],
            [],
            service.launch_type or "FARGATE",
            networking_configuration={"awsvpcConfiguration": network["awsvpcConfiguration"]} if network else None,
            group=f"service:{service.name}",
            platform_version=service.platform_version,
        )
        return tasks[0]

    def task_stopped(self, run: TaskRun) -> None:
        """A service task stopped: a failure when it exited by itself or failed its health check.

        A failure delays the next start (doubling up to MAX_RESTART_DELAY) and, while its deployment
        is in progress, counts toward the circuit breaker; a task that became healthy resets the delay.
        """
        if not run.service_arn:
            return
        failures, _ = self.failures.get(run.service_arn, (0, 0.0))
        if run.stop_initiator in ("scheduler", "user"):
            self.failures[run.service_arn] = (0, 0.0) if run.became_ready else (failures, time.time())
            return
        self.failures[run.service_arn] = (0 if run.became_ready else failures + 1, time.time())
        for deployment in getattr(self.find_service(run.service_arn), "deployments", []):
            if deployment.get("id") == run.task.started_by and deployment.get("rolloutState") == "IN_PROGRESS":
                deployment["failedTasks"] = int(deployment.get("failedTasks") or 0) + 1

    def update_counts(self, service: Any, runs: list[TaskRun], primary: dict[str, Any] | None = None) -> None:
        running = [r for r in runs if r.task.last_status == "RUNNING"]
        service.running_count = len(running)
        service.pending_count = len(runs) - len(running)
        for deployment in service.deployments:
            mine = [r for r in runs if r.task.started_by == deployment["id"]]
            deployment["runningCount"] = len([r for r in mine if r.task.last_status == "RUNNING"])
            deployment["pendingCount"] = len(mine) - deployment["runningCount"]
            deployment["desiredCount"] = int(service.desired_count) if deployment is primary else 0
        if primary is not None and primary["rolloutState"] == "IN_PROGRESS":
            ready = [r for r in runs if r.task.started_by == primary["id"] and in_service(r, service)]
            if len(ready) == int(service.desired_count) and len(runs) == len(ready):
                primary["rolloutState"] = "COMPLETED"
                primary["rolloutStateReason"] = f"ECS deployment {primary['id']} completed."
                primary["updatedAt"] = ecs_state.now()
                service.deployments = [primary]

    # -- Cloud Map and target groups ----------------------------------------------------------------

    def reconcile_registrations(self) -> None:
        for run in list(self.runs.values()):
            if not run.service_arn:
                continue
            live = run.task.last_status == "RUNNING" and not run.stopped and not run.stop_requested
            # ECS registers a task with its target groups once it is RUNNING; Cloud Map once it is healthy.
            for kind, wanted in (("target", live), ("discovery", live and run.ready)):
                if wanted and kind not in run.registered:
                    self.register(run, kind)
                elif not wanted and kind in run.registered:
                    self.deregister(run, kind)
        for arn, run in list(self.runs.items()):  # forget stopped one-off tasks' runs after a while
            if run.stopped and not run.registered and time.time() - run.stopped_time > 3600:
                del self.runs[arn]

    def register(self, run: TaskRun, kind: str) -> None:
        service = self.find_service(run.service_arn)
        if service is None:
            return
        if kind == "discovery":
            discovery = servicediscovery_backends[run.account][run.region]
            for registry in service.service_registries:
                service_id = registry["registryArn"].rsplit("/", 1)[-1]
                attributes = {
                    "AWS_INSTANCE_IPV4": run.ip_address,
                    "ECS_CLUSTER_NAME": service.cluster_name,
                    "ECS_SERVICE_NAME": service.name,
                    "ECS_TASK_DEFINITION_FAMILY": run.family,
                }
                with contextlib.suppress(Exception):
                    discovery.register_instance(service_id, run.task.id, run.task.id, attributes)
                    run.registrations.append(("discovery", service_id, run.task.id))
                    run.discovery_names.add(discovery_name(discovery, service_id))
        else:
            elb = elbv2_backends[run.account][run.region]
            for balancer in service.load_balancers:
                arn = balancer.get("targetGroupArn")
                port = int(balancer.get("containerPort") or 0)
                if arn in elb.target_groups:
                    elb.register_targets(arn, [{"Id": run.ip_address, "Port": port}])
                    registering = ("initial", "Elb.RegistrationInProgress", "Target registration is in progress")
                    ecs_state.TARGET_HEALTH.setdefault(arn, {})[run.ip_address] = registering
                    self.target_streaks.pop((arn, run.ip_address), None)
                    run.registrations.append(("target", arn, run.ip_address))
        run.registered.add(kind)

    def deregister(self, run: TaskRun, kind: str) -> None:
        for registration in [r for r in run.registrations if r[0] == kind]:
            _, where, ident = registration
            with contextlib.suppress(Exception):
                if kind == "discovery":
                    servicediscovery_backends[run.account][run.region].deregister_instance(where, ident)
                else:
                    elbv2_backends[run.account][run.region].deregister_targets(where, [{"Id": ident}])
                    ecs_state.TARGET_HEALTH.get(where, {}).pop(ident, None)
            run.registrations.remove(registration)
        if kind == "discovery":
            run.discovery_names.clear()
        run.registered.discard(kind)

    def find_service(self, arn: str) -> Any:
        for _, _, ecs in regional(ecs_backends):
            for service in list(ecs.services.values()):
                if service.arn == arn:
                    return service
        return None

    def deregistration_delay(self, target_group_arn: str) -> float:
        """The target group's deregistration_delay.timeout_seconds (ELB's default 300)."""
        for _, _, elb in regional(elbv2_backends):
            group = elb.target_groups.get(target_group_arn)
            if group is not None:
                return float(group.attributes.get("deregistration_delay.timeout_seconds", 300))
        return 0.0

    def run_for_target(self, target_group_arn: str, target_id: str) -> TaskRun | None:
        for run in self.runs.values():
            if ("target", target_group_arn, target_id) in run.registrations:
                return run
        return None

    def check_targets(self) -> None:
        """The target groups' health checks, against the local port of each registered task; a target
        unhealthy after its service's grace period stops the task, as ECS does."""
        for _, _, elb in regional(elbv2_backends):
            for group in list(elb.target_groups.values()):
                for target_id, target in list(group.targets.items()):
                    run = self.run_for_target(group.arn, target_id)
                    if run is None:
                        continue
                    self.stop_if_unhealthy(group.arn, target_id, run)
                    key = (group.arn, target_id)
                    if time.time() - self.target_checks.get(key, 0) < TARGET_CHECK_SECONDS:
                        continue
                    self.target_checks[key] = time.time()
                    threading.Thread(
                        target=self._check_target, args=(group, target_id, target, run), daemon=True
                    ).start()

    def stop_if_unhealthy(self, group_arn: str, target_id: str, run: TaskRun) -> None:
        state = ecs_state.TARGET_HEALTH.get(group_arn, {}).get(target_id, ("",))[0]
        service = self.find_service(run.service_arn)
        grace = int(getattr(service, "health_check_grace_period_seconds", 0) or 0)
        if state == "unhealthy" and not run.stop_requested and time.time() - run.running_since >= grace:
            run.request_stop(f"Task failed ELB health checks in (target-group {group_arn})", initiator="health")

    def _check_target(self, group: Any, target_id: str, target: dict[str, Any], run: TaskRun) -> None:
        port = run.ports.get(int(target.get("Port") or group.port))
        path = group.health_check_path or "/"
        matcher = (getattr(group, "matcher", None) or {}).get("HttpCode", "200")
        try:
            timeout = float(getattr(group, "health_check_timeout_seconds", None) or 5)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as answer:
                code = answer.status
        except urllib.error.HTTPError as err:
            code = err.code
        except OSError as err:
            self.target_result(
                group, target_id, ("unhealthy", "Target.FailedHealthChecks", f"Health checks failed: {err}")
            )
            return
        if matches(code, matcher):
            self.target_result(group, target_id, ("healthy", None, None))
        else:
            codes = ("unhealthy", "Target.ResponseCodeMismatch", f"Health checks failed with these codes: [{code}]")
            self.target_result(group, target_id, codes)

    def target_result(self, group: Any, target_id: str, result: tuple[str, str | None, str | None]) -> None:
        """A target changes state after its group's threshold count of consecutive results saying so. The runtime
        probes every TARGET_CHECK_SECONDS, faster than the group's interval, so a target turns unhealthy only once
        its failures also span the time ELB takes to see that many ((threshold - 1) x the group's interval): a
        stall ELB would ride out (a 12 s pause of the api-server against 30 s x 3) does not fail it here."""
        key = (group.arn, target_id)
        last, count, since = self.target_streaks.get(key, ("", 0, 0.0))
        if last == result[0]:
            count += 1
        else:
            count, since = 1, time.time()
        self.target_streaks[key] = (result[0], count, since)
        threshold = int(
            (group.healthy_threshold_count if result[0] == "healthy" else group.unhealthy_threshold_count) or 1
        )
        span = 0.0 if result[0] == "healthy" else (threshold - 1) * float(group.health_check_interval_seconds or 30)
        current = ecs_state.TARGET_HEALTH.get(group.arn, {})
        seen = count >= threshold and time.time() - since >= span
        if target_id in current and (seen or current[target_id][0] == result[0]):
            current[target_id] = result

    # -- what clients connect to --------------------------------------------------------------------

    def reconcile_listeners(self) -> None:
        self.check_targets()
        listeners = balancer_listeners()
        for balancer, listener in listeners:
            if listener.protocol in ("HTTP", "HTTPS") and f"lb:{listener.arn}" not in self.listeners:
                self.listeners[f"lb:{listener.arn}"] = listen(
                    f"{balancer.name}:{listener.port}",
                    lambda found=listener: self.listener_rules(found),
                    LISTENER_PORT_OFFSET + int(listener.port),
                    protocol=listener.protocol,
                    listener_port=int(listener.port),
                )
        live = {listener.arn for _, listener in listeners}
        for key in [k for k in self.listeners if k.startswith("lb:") and k[3:] not in live]:
            self.listeners.pop(key).close()

    def listener_rules(self, listener: Any) -> list[Rule]:
        """The listener's rules as ELB holds them now (read for every request), the default one last."""
        rules = [
            Rule(int(rule.priority), list(rule.conditions), self.action(rule.actions))
            for rule in list(listener.rules.values())
            if not rule.is_default
        ]
        return [*rules, Rule(MAX_PRIORITY + 1, [], self.action(listener.default_actions))]

    def action(self, actions: list[Any]) -> Action:
        """The action that answers: the last of the list (authentication actions come before it)."""
        data = actions[-1].data
        if data.get("Type") == "forward":
            group = data.get("TargetGroupArn") or data["ForwardConfig"]["TargetGroups"][0]["TargetGroupArn"]
            return Action("forward", targets=lambda: self.healthy_targets(group))
        config = data.get("FixedResponseConfig") or data.get("RedirectConfig") or {}
        return Action(data.get("Type") or "", config=dict(config))

    def healthy_targets(self, group_arn: str) -> list[tuple[str, int]]:
        """Where the listener may forward: targets still registered in the group and healthy."""
        registered = next(
            (
                set(elb.target_groups[group_arn].targets)
                for _, _, elb in regional(elbv2_backends)
                if group_arn in elb.target_groups
            ),
            set(),
        )
        found = []
        for target_id, (state, _, _) in list(ecs_state.TARGET_HEALTH.get(group_arn, {}).items()):
            if target_id not in registered:
                continue
            run = self.run_for_target(group_arn, target_id)
            port = run.target_port(group_arn) if run is not None else None
            if state == "healthy" and port:
                found.append(("127.0.0.1", port))
        return found

    def discovery_backends(self, name: str, port: int) -> list[tuple[str, int]]:
        """Local addresses of the tasks registered under the Cloud Map name `name` (service.namespace)."""
        found = []
        for run in list(self.runs.values()):
            if "discovery" in run.registered and name in run.discovery_names and port in run.ports:
                found.append(("127.0.0.1", run.ports[port]))
        return found

    def hosts(self, account: str, region: str) -> dict[tuple[str, int], tuple[str, int]]:
        """Every (host, port) of the stack a task may name -> the local (host, port) that serves it."""
        hosts: dict[tuple[str, int], tuple[str, int]] = {}
        for database in list(self.databases.values()):
            if database.key.startswith(f"{account}/{region}/"):
                database.ready.wait(60)  # a task that starts with its instance connects once it is up
                hosts[(database.address, database.port)] = ("127.0.0.1", database.postgres.port)
        with self.lock:
            hosts.update(self._service_hosts(account, region))
        return hosts

    def _service_hosts(self, account: str, region: str) -> dict[tuple[str, int], tuple[str, int]]:
        hosts: dict[tuple[str, int], tuple[str, int]] = {}
        discovery = servicediscovery_backends[account][region]
        ecs = ecs_backends[account][region]
        for service in list(ecs.services.values()):
            if service.status != "ACTIVE":
                continue
            definition = ecs.describe_task_definition(service.task_definition)
            ports = [
                int(p["containerPort"]) for c in definition.container_definitions for p in c.get("portMappings", [])
            ]
            for registry in service.service_registries:
                name = discovery_name(discovery, registry["registryArn"].rsplit("/", 1)[-1])
                for port in ports if name else []:
                    key = f"dns:{name}:{port}"
                    if key not in self.listeners:
                        self.listeners[key] = Listener(key, lambda n=name, p=port: self.discovery_backends(n, p))
                    hosts[(name, port)] = ("127.0.0.1", self.listeners[key].port)
        elb = elbv2_backends[account][region]
        for balancer in list(elb.load_balancers.values()):
            for listener in list(balancer.listeners.values()):
                local = self.listeners.get(f"lb:{listener.arn}")
                if local:
                    hosts[(balancer.dns_name, int(listener.port))] = ("127.0.0.1", local.port)
        return hosts

    def publish(self) -> None:
        """runtime.json: the local URL of each ALB listener, the tasks and the databases."""
        balancers = {}
        for balancer, listener in balancer_listeners():
            local = self.listeners.get(f"lb:{listener.arn}")
            if local:
                balancers[f"{balancer.dns_name}:{listener.port}"] = {
                    "name": balancer.name,
                    "url": f"http://127.0.0.1:{local.port}",
                    "healthy_targets": len(local.backends()),
                }
        services = {
            f"{service.cluster_name}/{service.name}": {
                "status": service.status,
                "desiredCount": service.desired_count,
                "runningCount": service.running_count,
                "rolloutState": service.deployments[0].get("rolloutState") if service.deployments else None,
            }
            for _, _, ecs in regional(ecs_backends)
            for service in list(ecs.services.values())
        }
        state = {
            "pid": os.getpid(),
            "resource_limits": self.limits.status,
            "load_balancers": balancers,
            "services": services,
            "tasks": {
                run.task.id: {
                    "family": run.family,
                    "group": run.task.group,
                    "lastStatus": run.task.last_status,
                    "healthStatus": run.task.health_status,
                    "exitCode": run.exit_code,
                    "stoppedReason": run.task.stopped_reason,
                    "directory": str(run.directory),
                    "environment_keys": run.environment_keys,
                    "images": {name: image.source for name, image in run.images.items()},
                    "task_role": (run.task_role_arn or "").rsplit("/", 1)[-1],
                    "usage": run.usage(),
                    "cgroup": run.cgroup.report() if run.cgroup else None,  # cgroups.py; removed once it stops
                }
                for run in list(self.runs.values())
            },
            "databases": {
                d.key: {
                    "port": d.postgres.port,
                    "ready": d.ready.is_set(),
                    "error": d.error,
                    "connections": d.connections.report(),
                }
                for d in self.databases.values()
            },
        }
        text = json.dumps(state, indent=2, sort_keys=True, default=str)
        if text != self._published:
            path = self.settings.runtime_dir / "runtime.json"
            path.with_suffix(".tmp").write_text(text)
            path.with_suffix(".tmp").replace(path)
            self._published = text


def in_service(run: TaskRun, service: Any) -> bool:
    """Healthy as a rollout counts it: the container's health check, and every target of the task."""
    if not run.ready:
        return False
    targets = [where for kind, where, _ in run.registrations if kind == "target"]
    if not targets and service.load_balancers:
        return False  # not registered yet
    return all(ecs_state.TARGET_HEALTH.get(group, {}).get(run.ip_address, ("",))[0] == "healthy" for group in targets)


def balancer_listeners() -> list[tuple[Any, Any]]:
    """(load balancer, listener) for every listener of every load balancer the emulator holds."""
    return [
        (balancer, listener)
        for _, _, elb in regional(elbv2_backends)
        for balancer in list(elb.load_balancers.values())
        for listener in list(balancer.listeners.values())
    ]


def listen(name: str, rules: Any, preferred: int, protocol: str, listener_port: int) -> HttpListener:
    """An ALB listener on the preferred local port (8080 for an ALB's 80), or a free one when it is taken."""
    try:
        return HttpListener(name, rules, port=preferred, protocol=protocol, listener_port=listener_port)
    except OSError:
        return HttpListener(name, rules, protocol=protocol, listener_port=listener_port)


def discovery_name(discovery: Any, service_id: str) -> str:
    service = discovery.services.get(service_id)
    if service is None:
        return ""
    namespace = discovery.namespaces.get(service.namespace_id)
    return f"{service.name}.{namespace.name}" if namespace else ""


def matches(code: int, matcher: str) -> bool:
    """An ELB matcher: "200", "200,302" or "200-299"."""
    for part in matcher.split(","):
        low, _, high = part.strip().partition("-")
        if int(low) <= code <= int(high or low):
            return True
    return False
