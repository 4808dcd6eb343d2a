"""Production features on the deployed stack: HTTPS, allowed CIDRs, separate Airflow services and Flower,
worker autoscaling bounds, a rolling upgrade.

The `featured` fixture changes the shared deployment (two more site.yml runs), so these tests must run
after every test that reads the default stack, and those of `switched` after every reader of the
featured one: tests/conftest.py orders the `deployed_stack` group by STACK_PHASES.
"""

from __future__ import annotations

import json
import re

import pytest
import security_audit as audit
from conftest import ALLOWED_CIDRS, UI_DOMAIN, changed_tasks, runs_component

pytestmark = pytest.mark.xdist_group("deployed_stack")

AIRFLOW_SERVICES = ["api-server", "scheduler", "dag-processor", "triggerer", "worker", "flower"]
WORKER = "service/airflow/airflow-worker"
DEMAND = "airflow-worker-demand"  # policy and alarm: <stack>-<service>-demand


def test_plain_http_deploys_warn_in_the_summary(deployed):
    assert "WARNING: the UI is plain HTTP" in deployed.second.output
    assert "Airflow UI: http://" in deployed.second.output


def test_plain_http_deploys_refuse_the_execution_api_and_link_relative_to_the_ui(deployed):
    assert (
        audit.execution_api_through_the_alb(
            deployed.emulator.client("elbv2"), deployed.emulator.client("ec2"), "airflow"
        )
        == []
    )
    environments = deployed.resized_services[1]
    assert {env["AIRFLOW__API__BASE_URL"] for _, env in environments.values() if "AIRFLOW__API__BASE_URL" in env} == {
        "/"
    }


def test_features_run_succeeds_with_https_in_the_summary(featured):
    assert featured.features.returncode == 0, featured.features.output[-5000:]
    assert f"Airflow UI: https://{UI_DOMAIN}" in featured.features.output
    assert "WARNING: the UI is plain HTTP" not in featured.features.output
    assert "Workers: autoscaled 1-3" in featured.features.output


def test_rotating_a_secret_rolls_the_services_that_read_it_and_not_the_broker(featured):
    (version_before, before), (version_after, after) = featured.rotated_before, featured.rotated_after
    assert version_after != version_before
    # The services of both runs (the features run adds the dag-processor, triggerer and Flower services).
    for name in (f"airflow-{n}" for n in ["api-server", "scheduler", "worker"]):
        assert after[name][0] != before[name][0], f"{name} was not rolled onto the rotated secret"
        revision_before, revision_after = (env["AIRFLOW_ECS_VALUES_REVISION"] for _, env in (before[name], after[name]))
        assert re.fullmatch("[0-9a-f]{16}", revision_after) and revision_after != revision_before, name
    assert after["airflow-rabbitmq"] == before["airflow-rabbitmq"]


# --- HTTPS and who may reach the ALB.
def test_alb_serves_https_with_a_current_tls_policy_and_redirects_http(featured):
    elb = featured.emulator.client("elbv2")
    [alb] = elb.describe_load_balancers(Names=["airflow-alb"])["LoadBalancers"]
    found = elb.describe_listeners(LoadBalancerArn=alb["LoadBalancerArn"])["Listeners"]
    listeners = {item["Port"]: item for item in found}
    assert sorted(listeners) == [80, 443]
    https = listeners[443]
    assert https["Protocol"] == "HTTPS"
    assert https["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert [c["CertificateArn"] for c in https["Certificates"]] == [featured.certificate_arn]
    [target_group] = elb.describe_target_groups(Names=["airflow-api-server"])["TargetGroups"]
    assert https["DefaultActions"] == [{"Type": "forward", "TargetGroupArn": target_group["TargetGroupArn"]}]
    [redirect] = listeners[80]["DefaultActions"]
    assert redirect["Type"] == "redirect"
    assert redirect["RedirectConfig"]["Protocol"] == "HTTPS" and redirect["RedirectConfig"]["Port"] == "443"
    assert redirect["RedirectConfig"]["StatusCode"] == "HTTP_301"


def test_every_listener_answers_the_execution_api_404_before_its_default_action(featured):
    elb = featured.emulator.client("elbv2")
    [alb] = elb.describe_load_balancers(Names=["airflow-alb"])["LoadBalancers"]
    for listener in elb.describe_listeners(LoadBalancerArn=alb["LoadBalancerArn"])["Listeners"]:
        rules = elb.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]
        [rule] = [r for r in rules if not r["IsDefault"]]
        assert rule["Priority"] == "1"
        assert rule["Conditions"][0]["PathPatternConfig"]["Values"] == ["/execution", "/execution/*"]
        assert rule["Actions"] == [
            {
                "Type": "fixed-response",
                "FixedResponseConfig": {"StatusCode": "404", "ContentType": "text/plain", "MessageBody": "Not Found"},
            }
        ]
        [tags] = elb.describe_tags(ResourceArns=[rule["RuleArn"]])["TagDescriptions"]
        assert {"Key": "airflow-ecs:stack", "Value": "airflow"} in tags["Tags"]
    assert audit.execution_api_through_the_alb(elb, featured.emulator.client("ec2"), "airflow") == []


def test_the_audit_names_a_listener_that_forwards_the_execution_api(featured):
    elb, ec2 = featured.emulator.client("elbv2"), featured.emulator.client("ec2")
    [alb] = elb.describe_load_balancers(Names=["airflow-alb"])["LoadBalancers"]
    listeners = {
        item["Port"]: item for item in elb.describe_listeners(LoadBalancerArn=alb["LoadBalancerArn"])["Listeners"]
    }
    [rule] = [r for r in elb.describe_rules(ListenerArn=listeners[443]["ListenerArn"])["Rules"] if not r["IsDefault"]]
    tags = elb.describe_tags(ResourceArns=[rule["RuleArn"]])["TagDescriptions"][0]["Tags"]
    elb.delete_rule(RuleArn=rule["RuleArn"])
    try:
        assert audit.execution_api_through_the_alb(elb, ec2, "airflow") == [
            "load balancer airflow-alb listener 443 does not refuse /execution (its first matching rule default does "
            "forward)"
        ]
    finally:
        elb.create_rule(
            ListenerArn=listeners[443]["ListenerArn"],
            Priority=1,
            Conditions=rule["Conditions"],
            Actions=rule["Actions"],
            Tags=tags,
        )
    assert audit.execution_api_through_the_alb(elb, ec2, "airflow") == []


def test_the_domain_name_is_an_alias_of_the_alb_and_airflow_links_to_it(featured):
    route53 = featured.emulator.client("route53")
    [zone] = route53.list_hosted_zones_by_name(DNSName="example.com")["HostedZones"]
    records = route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
    [alias] = [r for r in records if r["Name"] == f"{UI_DOMAIN}." and r["Type"] in ("A", "AAAA", "CNAME")]
    elb = featured.emulator.client("elbv2")
    [alb] = elb.describe_load_balancers(Names=["airflow-alb"])["LoadBalancers"]
    assert alias["Type"] == "A"  # the ALB is IPv4 only: no AAAA
    assert alias["AliasTarget"]["DNSName"].rstrip(".").lower() == alb["DNSName"].lower()
    assert alias["AliasTarget"]["HostedZoneId"] == alb["CanonicalHostedZoneId"]
    tags = {
        t["Key"]: t["Value"]
        for t in elb.describe_tags(ResourceArns=[alb["LoadBalancerArn"]])["TagDescriptions"][0]["Tags"]
    }
    assert (tags["airflow-ecs:dns-name"], tags["airflow-ecs:dns-zone"]) == (UI_DOMAIN, zone["Id"].rsplit("/", 1)[-1])
    environments = featured.rotated_after[1]
    for name in ("airflow-api-server", "airflow-scheduler", "airflow-worker"):
        assert environments[name][1]["AIRFLOW__API__BASE_URL"] == f"https://{UI_DOMAIN}/", name


def test_alb_security_group_opens_exactly_the_listener_ports_to_the_allowed_cidrs(featured):
    ec2 = featured.emulator.client("ec2")
    name_filter = [{"Name": "group-name", "Values": ["airflow-alb"]}]
    [group] = ec2.describe_security_groups(Filters=name_filter)["SecurityGroups"]
    opened = {(r["FromPort"], r["ToPort"]): sorted(c["CidrIp"] for c in r["IpRanges"]) for r in group["IpPermissions"]}
    assert opened == {(80, 80): sorted(ALLOWED_CIDRS), (443, 443): sorted(ALLOWED_CIDRS)}


# --- The Airflow components as services of their own, and Flower.
def test_the_dag_processor_and_triggerer_leave_the_scheduler_task_for_services_of_their_own(featured):
    ecs = featured.emulator.client("ecs")
    names = [f"airflow-{n}" for n in AIRFLOW_SERVICES]
    services = {s["serviceName"]: s for s in ecs.describe_services(cluster="airflow", services=names)["services"]}
    assert all(services[name]["status"] == "ACTIVE" for name in names), services
    definitions = {
        name: ecs.describe_task_definition(taskDefinition=s["taskDefinition"])["taskDefinition"]
        for name, s in services.items()
    }
    # Its own container, the metrics sidecar and the worker-demand publisher (the workers still autoscale, 1-3).
    scheduler = [c["name"] for c in definitions["airflow-scheduler"]["containerDefinitions"]]
    assert scheduler == ["scheduler", "metrics", "worker-demand"]
    for node, command in (
        ("dag-processor", ["dag-processor"]),
        ("triggerer", ["triggerer"]),
        ("flower", ["celery", "flower"]),
    ):
        main = definitions[f"airflow-{node}"]["containerDefinitions"][0]
        assert (main["name"], main["essential"]) == (node, True) and runs_component(main, command), main["command"]
        assert main["healthCheck"]["command"][0] == "CMD-SHELL"
    flower = definitions["airflow-flower"]["containerDefinitions"][0]
    assert "AIRFLOW__CELERY__FLOWER_BASIC_AUTH" in {s["name"] for s in flower["secrets"]}


# --- Worker autoscaling.
def test_the_default_stack_autoscales_its_workers_from_zero(featured):
    assert [(t["ResourceId"], t["MinCapacity"], t["MaxCapacity"]) for t in featured.targets_before] == [(WORKER, 0, 4)]


def test_worker_scalable_target_follows_the_bounds(featured):
    scaling = featured.emulator.client("application-autoscaling")
    targets = scaling.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    assert [(t["ResourceId"], t["MinCapacity"], t["MaxCapacity"]) for t in targets] == [(WORKER, 1, 3)]


def test_worker_policy_sets_the_count_to_the_published_demand(featured):
    scaling = featured.emulator.client("application-autoscaling")
    [policy] = scaling.describe_scaling_policies(ServiceNamespace="ecs", ResourceId=WORKER)["ScalingPolicies"]
    assert policy["PolicyName"] == DEMAND and policy["PolicyType"] == "StepScaling"
    config = policy["StepScalingPolicyConfiguration"]
    assert config["AdjustmentType"] == "ExactCapacity"
    assert config["Cooldown"] == 60
    assert [s["ScalingAdjustment"] for s in config["StepAdjustments"]] == [1, 2, 3]
    [alarm] = featured.emulator.client("cloudwatch").describe_alarms(AlarmNames=[DEMAND])["MetricAlarms"]
    metric = (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"])
    assert metric == ("airflow-ecs/airflow", "DesiredWorkers", "Maximum")
    assert alarm["AlarmActions"] == [policy["PolicyARN"]]
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold" and alarm["Threshold"] == 0


def test_the_worker_demand_publisher_is_a_container_of_the_scheduler_task(featured):
    """Not a service of its own (one always-on task less): it puts its metrics with the scheduler task's role,
    which may put metrics only into the stack's namespace, and the former publisher's role is gone."""
    ecs = featured.emulator.client("ecs")
    listed = ecs.describe_services(cluster="airflow", services=["airflow-worker-demand"])["services"]
    assert all(s["status"] != "ACTIVE" for s in listed), listed
    [service] = ecs.describe_services(cluster="airflow", services=["airflow-scheduler"])["services"]
    definition = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
    container = {c["name"]: c for c in definition["containerDefinitions"]}["worker-demand"]
    assert container["essential"] is False and container["memory"] == 128
    assert container["command"][:2] == ["python", "-c"] and "def desired_workers" in container["command"][2]
    assert [s["name"] for s in container["secrets"]] == ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert definition["taskRoleArn"].endswith(":role/airflow-airflow/airflow-scheduler-task")
    iam = featured.emulator.client("iam")
    assert "airflow-worker-demand" not in {r["RoleName"] for r in iam.list_roles()["Roles"]}
    [name] = iam.list_role_policies(RoleName="airflow-scheduler-task")["PolicyNames"]
    document = iam.get_role_policy(RoleName="airflow-scheduler-task", PolicyName=name)["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    [statement] = [s for s in document["Statement"] if "cloudwatch:PutMetricData" in s["Action"]]
    assert statement["Condition"] == {"StringEquals": {"cloudwatch:namespace": "airflow-ecs/airflow"}}


# --- Rolling upgrade: only the image changes; the migration runs first.
def test_upgrade_changes_nothing_but_the_airflow_task_definitions_services_and_migration(featured):
    upgraded = featured.upgraded
    assert upgraded.returncode == 0, upgraded.output[-5000:]
    changes = changed_tasks(upgraded.output)
    tasks = {task for task, _ in changes}
    builds = {task for task in tasks if task.startswith("images : Build the image of this recipe")}
    assert len(builds) == 1, changes  # the new recipe's image, built once
    assert tasks - builds == {
        "ecs_service : Register the task definitions (a new revision only when the content changes)",
        "ecs_service : Create or update the services",
        "airflow : Run the one-off task airflow-ecs-migrate",
        "airflow : Record the successful migration",
    }, changes
    before, after = featured.rotated_after, featured.upgraded_services  # before: the features run's result
    rolled = {name for name in after if after[name][0] != before[1][name][0]}
    assert rolled == {f"airflow-{name}" for name in AIRFLOW_SERVICES}, rolled
    assert featured.upgraded_image and featured.upgraded_migrate_image == featured.upgraded_image


def test_upgrade_migrates_before_rolling_any_service(featured):
    output = featured.upgraded.output
    migrate = output.index("TASK [airflow : Run the one-off task airflow-ecs-migrate]")
    assert "changed:" in output[migrate:].split("TASK [", 2)[1]
    sections = output.split("TASK [")
    services = [s for s in sections if s.startswith("ecs_service : Create or update the services]")]
    assert [s for s in services if "changed:" in s], "no services task changed anything"
    rolled = output.index("changed:", output.rindex("TASK [ecs_service : Create or update the services]"))
    assert migrate < rolled
    assert not [s for s in services if "changed:" in s and output.index(s) < migrate], "a service rolled first"


def test_upgrade_moves_every_airflow_service_to_the_new_image_and_leaves_the_broker(featured):
    ecs = featured.emulator.client("ecs")
    names = [f"airflow-{n}" for n in [*AIRFLOW_SERVICES, "rabbitmq"]]
    services = {s["serviceName"]: s for s in ecs.describe_services(cluster="airflow", services=names)["services"]}
    for name in names:
        definition = ecs.describe_task_definition(taskDefinition=services[name]["taskDefinition"])["taskDefinition"]
        image = definition["containerDefinitions"][0]["image"]
        if name == "airflow-rabbitmq":
            assert definition["revision"] == 1 and "/ecr-public/docker/library/rabbitmq:" in image, image
        else:
            assert image == featured.upgraded_image, name
    migrate = ecs.describe_task_definition(taskDefinition="airflow-migrate")["taskDefinition"]
    assert migrate["containerDefinitions"][0]["image"] == featured.upgraded_image
    worker = ecs.describe_task_definition(taskDefinition=services["airflow-worker"]["taskDefinition"])["taskDefinition"]
    assert (worker["cpu"], worker["memory"]) == ("2048", "4096")  # the resize stays: only the image moved


def test_upgrade_rolls_with_circuit_breaker_rollback_and_keeps_the_ui_up(featured):
    """The deployment configuration survives the roll (circuit breaker with rollback, the api-server's percents)."""
    ecs = featured.emulator.client("ecs")
    names = [f"airflow-{n}" for n in AIRFLOW_SERVICES]
    for service in ecs.describe_services(cluster="airflow", services=names)["services"]:
        config = service["deploymentConfiguration"]
        assert config["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}, service["serviceName"]
    [api] = ecs.describe_services(cluster="airflow", services=["airflow-api-server"])["services"]
    assert api["deploymentConfiguration"]["minimumHealthyPercent"] == 100
    assert api["deploymentConfiguration"]["maximumPercent"] == 200


# Broker switch to Amazon MQ: the last runs on the shared deployment (switch, check mode, teardown).


def test_switch_to_amazonmq_creates_a_private_rabbitmq_broker_in_the_broker_group(switched):
    assert switched.switched.returncode == 0
    assert switched.before["brokers"] == []
    [broker] = switched.after["brokers"]
    assert broker["BrokerName"] == "airflow-broker"
    assert (broker["EngineType"], broker["EngineVersion"]) == ("RABBITMQ", "3.13")
    assert (broker["DeploymentMode"], broker["HostInstanceType"]) == ("SINGLE_INSTANCE", "mq.m7g.medium")
    assert broker["PubliclyAccessible"] is False and broker["StorageType"] == "EBS"
    assert broker["subnet_tiers"] == ["private"] and broker["group_names"] == ["airflow-broker"]
    assert broker["Tags"] == {"airflow-ecs:stack": "airflow", "airflow-ecs:component": "broker"}
    # Rebooted onto its configuration at creation: the acknowledgement timeout is the role's, not 30 min.
    assert broker["configuration_data"] == "consumer_timeout = 21600000\n"


def test_switch_opens_amqps_and_the_console_to_the_airflow_nodes_only(switched):
    airflow = (switched.after["airflow_group_id"],)
    assert switched.before["broker_ingress"] == [(5672, 5672, airflow, 0), (15672, 15672, airflow, 0)]
    assert switched.after["broker_ingress"] == [(443, 443, airflow, 0), (5671, 5671, airflow, 0)]


def test_switch_points_the_broker_url_at_the_amazonmq_endpoint_over_tls(switched):
    before, after = switched.before["broker_url"], switched.after["broker_url"]
    user, password = (switched.after["broker_credentials"][k] for k in ("username", "password"))
    assert before == f"amqp://{user}:{password}@rabbitmq.airflow.internal:5672/airflow"
    # moto's brokers all answer at amqps://mockmq:5671; "//" is the default vhost "/".
    assert after == f"amqps://{user}:{password}@mockmq:5671//"


def test_switch_removes_the_fargate_broker_and_rolls_every_airflow_service(switched):
    before, after = switched.before, switched.after
    assert "airflow-rabbitmq" in before["task_definitions"] and "rabbitmq" in before["discovery"]
    assert "airflow-rabbitmq" not in after["task_definitions"] and after["discovery"] == ["api-server"]
    assert set(after["task_definitions"]) == set(before["task_definitions"]) - {"airflow-rabbitmq"}
    nodes = {f"airflow-{name}" for name in AIRFLOW_SERVICES}
    assert {name for name, endpoint in before["broker_env"].items() if endpoint} == nodes
    for name in nodes:
        assert after["task_definitions"][name] != before["task_definitions"][name], f"{name} was not rolled"
        assert before["broker_env"][name] == "amqp://rabbitmq.airflow.internal:5672", name
        assert after["broker_env"][name] == "amqps://mockmq:5671", name


def test_amazonmq_stack_in_check_mode_reports_nothing_to_change(switched):
    assert switched.checked.returncode == 0, switched.checked.output[-3000:]
    assert switched.checked.changed == 0, changed_tasks(switched.checked.output)


def test_teardown_with_default_variables_removes_the_amazonmq_broker_and_everything_else(switched):
    assert switched.torn_down.returncode == 0, switched.torn_down.output[-3000:]
    assert "Delete the Amazon MQ broker" in switched.torn_down.output
    assert switched.leftovers == []


def test_teardown_without_the_domain_name_deletes_its_alias_found_in_the_albs_tags(switched):
    route53 = switched.emulator.client("route53")
    [zone] = route53.list_hosted_zones_by_name(DNSName="example.com")["HostedZones"]
    records = route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
    assert [r["Type"] for r in records if r["Name"] == f"{UI_DOMAIN}."] == []
    assert sorted(r["Type"] for r in records) == ["NS", "SOA"]  # the zone itself is not the stack's
