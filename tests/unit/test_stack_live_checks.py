"""stack_live_checks on buckets: which it refuses, adopts, and lets a teardown delete (through the ansible CLI)."""

from __future__ import annotations

from ansible_runner import run_module
from certificates import import_self_signed_certificate
from emulator import endpoint_env

from embedded_aws.weather import Weather, WeatherProxy

DAGS = "airflow-dags-000000000000-us-east-1"


def check(emulator, mode: str) -> dict:
    args = {
        "stack_name": "airflow",
        "region": "us-east-1",
        "mode": mode,
        "buckets": {"airflow_dag_bucket": DAGS},
        "deletable_buckets": {"airflow_dag_bucket": ["dags/"]} if mode == "teardown" else {},
    }
    return run_module("stack_live_checks", args, env=emulator.env(), check=True)


def test_an_empty_untagged_bucket_left_by_a_killed_deploy_is_the_stacks(clean_emulator):
    clean_emulator.client("s3").create_bucket(Bucket=DAGS)
    assert not check(clean_emulator, "deploy").get("failed")
    assert check(clean_emulator, "teardown")["deletable_buckets"] == [DAGS]


def test_an_untagged_bucket_holding_objects_is_never_adopted_nor_deleted(clean_emulator):
    s3 = clean_emulator.client("s3")
    s3.create_bucket(Bucket=DAGS)
    s3.put_object(Bucket=DAGS, Key="dags/theirs.py", Body=b"x")
    refused = check(clean_emulator, "deploy")
    assert refused["failed"] and "airflow_dag_bucket: the bucket" in refused["msg"] and "never adopts" in refused["msg"]
    assert check(clean_emulator, "teardown")["deletable_buckets"] == []


def test_another_stacks_bucket_is_refused_even_when_empty(clean_emulator):
    s3 = clean_emulator.client("s3")
    s3.create_bucket(Bucket=DAGS)
    s3.put_bucket_tagging(Bucket=DAGS, Tagging={"TagSet": [{"Key": "airflow-ecs:stack", "Value": "other"}]})
    refused = check(clean_emulator, "deploy")
    assert refused["failed"] and "'other'" in refused["msg"]
    assert check(clean_emulator, "teardown")["deletable_buckets"] == []


def test_the_stacks_own_bucket_is_known_from_the_tagging_index_and_any_other_is_read(clean_emulator):
    """A re-run's deploy check of the stack's buckets is one tag:GetResources for all of them; a bucket the index
    does not show as the stack's is read from the bucket itself (the index can lag a change by minutes)."""
    s3 = clean_emulator.client("s3")
    s3.create_bucket(Bucket=DAGS)
    s3.put_bucket_tagging(Bucket=DAGS, Tagging={"TagSet": [{"Key": "airflow-ecs:stack", "Value": "airflow"}]})
    other = "someone-elses-bucket"
    s3.create_bucket(Bucket=other)
    s3.put_bucket_tagging(Bucket=other, Tagging={"TagSet": [{"Key": "airflow-ecs:stack", "Value": "other"}]})
    weather = Weather(latency_ms=0)
    proxy = WeatherProxy(clean_emulator.url, weather)
    args = {"stack_name": "airflow", "region": "us-east-1", "mode": "deploy", "buckets": {"airflow_dag_bucket": DAGS}}
    try:
        ours = run_module("stack_live_checks", args, env=endpoint_env(proxy.url), check=True)
        assert not ours.get("failed"), ours
        assert weather.stats()["calls"] == {"tagging GetResources": 1}
        weather.reset()
        both = {**args, "buckets": {"airflow_dag_bucket": DAGS, "airflow_data_bucket": other}}
        refused = run_module("stack_live_checks", both, env=endpoint_env(proxy.url), check=True)
        assert weather.stats()["calls"] == {"tagging GetResources": 1, "s3 GET Bucket?tagging": 1}
    finally:
        proxy.close()
    assert refused["failed"] and "airflow_data_bucket: the bucket 'someone-elses-bucket' exists" in refused["msg"]


def test_an_iam_role_of_another_owner_stops_a_deploy_and_is_left_alone_by_a_teardown(clean_emulator):
    clean_emulator.client("iam").create_role(
        RoleName="airflow-ecs-execution",
        AssumeRolePolicyDocument='{"Version": "2012-10-17", "Statement": []}',
        Tags=[{"Key": "airflow-ecs:stack", "Value": "someone-else"}],
    )
    args = {
        "stack_name": "airflow",
        "region": "us-east-1",
        "iam_roles": ["airflow-ecs-execution", "airflow-worker-demand"],
    }
    refused = run_module("stack_live_checks", {**args, "mode": "deploy"}, env=clean_emulator.env(), check=True)
    assert refused["failed"] and refused["msg"].splitlines()[1].startswith(
        "stack_name: the IAM role airflow-ecs-execution"
    )
    teardown = run_module("stack_live_checks", {**args, "mode": "teardown"}, env=clean_emulator.env(), check=True)
    assert not teardown.get("failed") and teardown["iam_roles_elsewhere"] == ["airflow-ecs-execution"]
    assert teardown["iam_roles_missing"] == ["airflow-worker-demand"]  # the deploy need not look it up again


def database_check(emulator, mode: str = "deploy", **wanted) -> dict:
    database = {
        "identifier": "airflow-metadata",
        "engine_version": "17",
        "instance_class": "db.t4g.micro",
        "allocated_storage": 20,
        "name": "airflow",
        **wanted,
    }
    if mode == "teardown":
        database = {"identifier": "airflow-metadata", "skip_final_snapshot": False}
    args = {"stack_name": "airflow", "region": "us-east-1", "mode": mode, "database": database}
    return run_module("stack_live_checks", args, env=emulator.env(), check=True)


def create_database(emulator, version: str, **extra) -> dict:
    return emulator.client("rds").create_db_instance(
        DBInstanceIdentifier="airflow-metadata",
        Engine="postgres",
        EngineVersion=version,
        DBInstanceClass="db.t4g.micro",
        AllocatedStorage=20,
        MasterUsername="airflow",
        MasterUserPassword="first-password",
        DBName="airflow",
        **extra,
    )["DBInstance"]


def test_a_major_only_version_runs_the_default_minor_and_never_asks_for_another(clean_emulator):
    assert database_check(clean_emulator)["database"] == {
        "exists": False,
        "engine_version": "17",
        "password_version": "",
    }
    # As RDS: "17" runs its default minor (the emulator's newest offered), which is what a re-run keeps.
    assert create_database(clean_emulator, "17")["EngineVersion"] == "17.6"
    assert database_check(clean_emulator)["database"]["engine_version"] == "17.6"
    assert database_check(clean_emulator, engine_version="17.6")["database"]["engine_version"] == "17.6"


def test_a_minor_upgraded_by_rds_is_kept_and_a_newer_minor_is_asked_for(clean_emulator):
    create_database(clean_emulator, "17.5", Tags=[{"Key": "airflow-ecs:password-version", "Value": "v1"}])
    assert database_check(clean_emulator)["database"] == {
        "exists": True,
        "engine_version": "17.5",
        "password_version": "v1",
    }
    assert database_check(clean_emulator, engine_version="17.6")["database"]["engine_version"] == "17.6"
    refused = database_check(clean_emulator, engine_version="17.4")
    assert refused["failed"] and "database_engine_version: got '17.4', but the database runs 17.5" in refused["msg"]


def test_a_teardown_refuses_a_database_with_deletion_protection(clean_emulator):
    create_database(clean_emulator, "17", DeletionProtection=True)
    refused = database_check(clean_emulator, mode="teardown")
    assert refused["failed"] and "database_deletion_protection: the database airflow-metadata" in refused["msg"]
    assert "after a final snapshot" in refused["msg"]
    clean_emulator.client("rds").modify_db_instance(DBInstanceIdentifier="airflow-metadata", DeletionProtection=False)
    assert not database_check(clean_emulator, mode="teardown").get("failed")


def test_an_ecr_reference_whose_tag_and_digest_disagree_is_refused(clean_emulator):
    ecr = clean_emulator.client("ecr")
    ecr.create_repository(repositoryName="airflow/airflow")
    manifest = (
        '{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": {"mediaType": '
        '"application/vnd.oci.image.config.v1+json", "size": 2, "digest": "sha256:' + "0" * 64 + '"}, "layers": []}'
    )
    digest = ecr.put_image(repositoryName="airflow/airflow", imageManifest=manifest, imageTag="3.3.2-abc")["image"][
        "imageId"
    ]["imageDigest"]
    repository = "123456789012.dkr.ecr.us-east-1.amazonaws.com/airflow/airflow"

    def check_images(images: dict) -> dict:
        args = {"stack_name": "airflow", "region": "us-east-1", "images": images}
        return run_module("stack_live_checks", args, env=clean_emulator.env(), check=True)

    assert not check_images({"airflow_image": f"{repository}:3.3.2-abc@{digest}"}).get("failed")
    wrong = check_images({"airflow_image": f"{repository}:3.3.2-abc@sha256:{'f' * 64}"})
    assert wrong["failed"] and f"airflow_image: {repository}:3.3.2-abc@sha256:" in wrong["msg"], wrong
    assert f"names the image {digest}" in wrong["msg"]
    missing = check_images({"airflow_image": f"{repository}:3.4.0-abc@{digest}"})
    assert missing["failed"] and "has no image tagged '3.4.0-abc'" in missing["msg"], missing
    # Docker Hub references cannot be looked up: they pass (their digest's form is the input check's).
    assert not check_images({"messaging_image": f"rabbitmq:4.1.4@sha256:{'f' * 64}"}).get("failed")


def test_a_wildcard_certificate_covers_one_level_and_the_longest_public_zone_holds_the_name(clean_emulator):
    """ACM's rule: *.example.com covers airflow.example.com, not example.com nor a.b.example.com; of the public
    zones example.com and airflow.example.com the longest that holds the name is the one."""
    certificate = import_self_signed_certificate(clean_emulator, "*.example.com")
    route53 = clean_emulator.client("route53")
    route53.create_hosted_zone(Name="example.com", CallerReference="parent")
    zone = route53.create_hosted_zone(Name="airflow.example.com", CallerReference="child")["HostedZone"]["Id"]

    def check_domain(name: str) -> dict:
        args = {
            "stack_name": "airflow",
            "region": "us-east-1",
            "certificate_arn": certificate,
            "ssl_policy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
            "domain": {"name": name, "hosted_zone_id": ""},
        }
        return run_module("stack_live_checks", args, env=clean_emulator.env(), check=True)

    found = check_domain("airflow.example.com")
    assert not found.get("failed"), found
    assert found["hosted_zone_id"] == zone.rsplit("/", 1)[-1]
    for name in ("example.com", "a.b.example.com"):
        refused = check_domain(name)
        assert (
            refused.get("failed")
            and f"load_balancer_domain_name: got {name!r}, which the certificate" in refused["msg"]
        )
