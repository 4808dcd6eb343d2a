"""Changes a deployed stack cannot take are refused before anything changes, and nothing is lost.

One stack is deployed on its own emulator (three AZs, 30 GiB of storage, so that fewer AZs and less
storage can be tried); every case then runs site.yml (or teardown.yml) with one change and must fail
naming the variable, with every resource and setting of the stack as it was before.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml
from ansible_runner import ROOT, run_playbook
from emulator import Emulator, start_emulator
from stack_inventory import stack_snapshot

pytestmark = pytest.mark.xdist_group("live_changes")

BASE = {"network_az_count": 3, "database_allocated_storage": 30}
FOREIGN_BUCKET = "someone-elses-bucket"
CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"

# id: (changed variables, variable named by the message, fragment of the message)
REFUSED_CHANGES = {
    "vpc-range": ({"network_vpc_cidr": "10.41.0.0/16"}, "network_vpc_cidr", "a VPC's range cannot change"),
    "fewer-azs": ({"network_az_count": 2}, "network_az_count", "does not remove AZs"),
    "subnet-ranges": (
        {"network_private_subnet_cidrs": ["10.40.200.0/24", "10.40.201.0/24", "10.40.202.0/24"]},
        "network_private_subnet_cidrs",
        "a subnet's range cannot change",
    ),
    "engine-major-downgrade": ({"database_engine_version": "16.9"}, "database_engine_version", "cannot downgrade"),
    "engine-minor-downgrade": ({"database_engine_version": "17.4"}, "database_engine_version", "cannot downgrade"),
    "storage-shrink": ({"database_allocated_storage": 25}, "database_allocated_storage", "cannot shrink storage"),
    "database-name": ({"database_name": "pipelines"}, "database_name", "only at creation"),
    "namespace-rename": (
        {"service_discovery_namespace": "other.internal"},
        "service_discovery_namespace",
        "cannot be renamed",
    ),
    "data-bucket-rename": (
        {"airflow_data_bucket": "airflow-pipeline-data-renamed"},
        "airflow_data_bucket",
        "renaming would leave it",
    ),
    "adopt-a-foreign-bucket": ({"airflow_dag_bucket": FOREIGN_BUCKET}, "airflow_dag_bucket", "someone-elses-bucket"),
    "same-stack-in-another-region": ({"aws_region": "us-west-2"}, "aws_region", "already runs in us-east-1"),
    "certificate-not-in-the-account": (
        {"load_balancer_certificate_arn": CERTIFICATE},
        "load_balancer_certificate_arn",
        "no ACM certificate",
    ),
    "nat-per-az-a-string": ({"network_nat_per_az": "true"}, "network_nat_per_az", "must be a boolean"),
    "buckets-the-same-and-retained": (
        {
            "airflow_data_bucket": "airflow-shared",
            "airflow_dag_bucket": "airflow-shared",
            "airflow_retain_data_bucket": True,
        },
        "airflow_data_bucket",
        "the same bucket as airflow_dag_bucket",
    ),
}


@dataclass
class Live:
    emulator: Emulator
    dag_bucket: str


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    emulator = start_emulator(tmp_path_factory.mktemp("live") / "moto.log")
    emulator.client("s3").create_bucket(Bucket=FOREIGN_BUCKET)
    emulator.client("s3").put_object(Bucket=FOREIGN_BUCKET, Key="their/data.csv", Body=b"theirs")
    deployed = run_playbook("site.yml", emulator.env(), extra_vars=BASE)
    assert deployed.returncode == 0, deployed.output[-5000:]
    dag_bucket = next(b["Name"] for b in emulator.client("s3").list_buckets()["Buckets"] if "-dags-" in b["Name"])
    yield Live(emulator, dag_bucket)
    emulator.stop()


def assert_unchanged(before: dict, after: dict) -> None:
    changed = [key for key in before if before[key] != after.get(key)]
    assert not changed, f"the refused run changed: {changed}"


def test_the_suite_covers_at_least_ten_live_changes():
    assert len(REFUSED_CHANGES) >= 10


@pytest.mark.parametrize(("changes", "variable", "fragment"), REFUSED_CHANGES.values(), ids=REFUSED_CHANGES.keys())
def test_refused_change_leaves_the_stack_as_it_was(live, changes, variable, fragment):
    before = stack_snapshot(live.emulator)
    result = run_playbook("site.yml", live.emulator.env(), extra_vars={**BASE, **changes})
    assert result.returncode != 0
    assert f"{variable}:" in result.output, result.output[-3000:]
    assert fragment in result.output, result.output[-3000:]
    assert "Traceback" not in result.output
    assert_unchanged(before, stack_snapshot(live.emulator))


def test_a_customer_key_for_the_secrets_lets_the_execution_role_decrypt_them(live):
    """Regression: with secrets_kms_key_id the execution role lacked kms:Decrypt, so no task could start."""
    key_arn = live.emulator.client("kms").create_key(Description="airflow secrets")["KeyMetadata"]["Arn"]
    key_id = key_arn.rsplit("/", 1)[1]
    result = run_playbook("site.yml", live.emulator.env(), extra_vars={**BASE, "secrets_kms_key_id": key_id})
    assert result.returncode == 0, result.output[-3000:]
    iam = live.emulator.client("iam")
    role = "airflow-scheduler-execution"
    policy = iam.get_role_policy(RoleName=role, PolicyName="read-its-secrets")["PolicyDocument"]
    decrypt = [s for s in policy["Statement"] if s["Action"] == "kms:Decrypt"]
    assert decrypt and decrypt[0]["Resource"] == key_arn, policy
    assert decrypt[0]["Condition"] == {"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}


def test_teardown_in_another_region_leaves_the_stack_and_its_iam_roles(live):
    before = stack_snapshot(live.emulator)
    env = {**live.emulator.env(), "AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "us-west-2"}
    result = run_playbook("teardown.yml", env, extra_vars={**BASE, "aws_region": "us-west-2"})
    assert result.returncode == 0, result.output[-3000:]
    assert_unchanged(before, stack_snapshot(live.emulator))


def test_teardown_refuses_to_empty_a_bucket_holding_objects_the_stack_did_not_write(live):
    s3 = live.emulator.client("s3")
    s3.put_object(Bucket=live.dag_bucket, Key="exports/orders.csv", Body=b"id\n1\n")
    try:
        before = stack_snapshot(live.emulator)
        result = run_playbook("teardown.yml", live.emulator.env(), extra_vars=BASE)
        assert result.returncode != 0
        assert "airflow_dag_bucket:" in result.output and "'exports/orders.csv'" in result.output, result.output[-3000:]
        assert_unchanged(before, stack_snapshot(live.emulator))
    finally:
        versions = s3.list_object_versions(Bucket=live.dag_bucket, Prefix="exports/")["Versions"]
        for version in versions:
            s3.delete_object(Bucket=live.dag_bucket, Key=version["Key"], VersionId=version["VersionId"])


def test_the_production_database_settings_keep_the_database_from_a_teardown(live):
    """The aws inventory's database settings, deployed: deletion protection is on, and a teardown refuses
    before it deletes anything, naming the way out."""
    production = yaml.safe_load((ROOT / "inventories/aws/group_vars/airflow_ecs/main.yml").read_text())
    settings = {key: value for key, value in production.items() if key.startswith("database_")}
    assert settings["database_deletion_protection"] is True and settings["database_skip_final_snapshot"] is False
    rds = live.emulator.client("rds")
    deployed = run_playbook("site.yml", live.emulator.env(), extra_vars={**BASE, **settings})
    try:
        assert deployed.returncode == 0, deployed.output[-3000:]
        (instance,) = rds.describe_db_instances()["DBInstances"]
        assert instance["DeletionProtection"] and instance["MultiAZ"]
        before = stack_snapshot(live.emulator)
        refused = run_playbook("teardown.yml", live.emulator.env(), extra_vars={**BASE, **settings})
        assert refused.returncode != 0
        assert (
            "database_deletion_protection: the database airflow-metadata has deletion protection on" in refused.output
        )
        assert "after a final snapshot" in refused.output, refused.output[-3000:]
        assert_unchanged(before, stack_snapshot(live.emulator))
    finally:
        rds.modify_db_instance(DBInstanceIdentifier="airflow-metadata", DeletionProtection=False, ApplyImmediately=True)


def test_teardown_keeps_a_retained_data_bucket_and_a_final_snapshot_and_removes_the_rest(live):
    """Last: the stack goes. The data bucket stays with its objects, the database as its final snapshot;
    the foreign bucket is untouched."""
    s3 = live.emulator.client("s3")
    data_bucket = next(b["Name"] for b in s3.list_buckets()["Buckets"] if "-data-" in b["Name"])
    s3.put_object(Bucket=data_bucket, Key="curated/books.parquet", Body=b"rows")
    keep = {"airflow_retain_data_bucket": True, "database_skip_final_snapshot": False}
    result = run_playbook("teardown.yml", live.emulator.env(), extra_vars={**BASE, **keep})
    assert result.returncode == 0, result.output[-3000:]
    left = stack_snapshot(live.emulator)["resources"]
    assert sorted(left) == sorted([f"s3 bucket {data_bucket}", f"s3 bucket {FOREIGN_BUCKET}"]), left
    assert s3.get_object(Bucket=data_bucket, Key="curated/books.parquet")["Body"].read() == b"rows"
    snapshots = live.emulator.client("rds").describe_db_snapshots(DBInstanceIdentifier="airflow-metadata")[
        "DBSnapshots"
    ]
    assert [s["DBSnapshotIdentifier"].startswith("airflow-metadata-final-") for s in snapshots] == [True], snapshots
