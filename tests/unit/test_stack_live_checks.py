"""stack_live_checks on buckets: which it refuses, adopts, and lets a teardown delete (through the ansible CLI)."""

from __future__ import annotations

from ansible_runner import run_module

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


def test_an_iam_role_of_another_owner_stops_a_deploy_and_is_left_alone_by_a_teardown(clean_emulator):
    clean_emulator.client("iam").create_role(
        RoleName="airflow-ecs-execution",
        AssumeRolePolicyDocument='{"Version": "2012-10-17", "Statement": []}',
        Tags=[{"Key": "airflow-ecs:stack", "Value": "someone-else"}],
    )
    args = {"stack_name": "airflow", "region": "us-east-1", "iam_roles": ["airflow-ecs-execution"]}
    refused = run_module("stack_live_checks", {**args, "mode": "deploy"}, env=clean_emulator.env(), check=True)
    assert refused["failed"] and refused["msg"].splitlines()[1].startswith(
        "stack_name: the IAM role airflow-ecs-execution"
    )
    teardown = run_module("stack_live_checks", {**args, "mode": "teardown"}, env=clean_emulator.env(), check=True)
    assert not teardown.get("failed") and teardown["iam_roles_elsewhere"] == ["airflow-ecs-execution"]
