"""A DAG the e2e ships with `make deploy-dags`: its tasks run on the AwsEcsExecutor, each as a Fargate task of its
own (a RunTask of the scheduler's, run to its exit by the local ECS agent), with the task role airflow_task_roles
maps this DAG to: it may write under fargate/ in the data bucket and nothing else, so reading the stack's admin
secret is AccessDenied and fails the task."""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Variable, dag, task


def write_proof(bucket: str, run_id: str) -> str:
    """An object under fargate/ in the data bucket, written with the task's role; returns its key."""
    import boto3  # noqa: PLC0415 - at run time, in the task's own Fargate task

    key = f"fargate/{run_id}/proof.txt"
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=f"written on the AwsEcsExecutor by {run_id}".encode())
    print(f"wrote s3://{bucket}/{key}")
    return key


def read_secret(secret_id: str) -> None:
    """What the role does not allow: the call raises AccessDenied (botocore's ClientError)."""
    import boto3  # noqa: PLC0415

    boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)


@dag(
    dag_id="fargate_task_roles",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    params={"secret_id": "airflow/admin"},
    default_args={"retries": 0, "executor": "AwsEcsExecutor"},
)
def fargate_task_roles() -> None:
    @task
    def write_with_its_role(run_id: str | None = None) -> str:
        return write_proof(Variable.get("etl_data_bucket"), run_id or "manual")

    @task
    def read_what_its_role_lacks(params: dict | None = None) -> None:
        read_secret(params["secret_id"])

    write_with_its_role()
    read_what_its_role_lacks()


fargate_task_roles()
