"""Calls a deployed task role makes, run as a task would: credentials only from the container endpoint.

python tests/task_role_probe.py <probe> [args]; prints "ok" or raises with AWS's AccessDenied, which
names the role and the action. The environment must carry AWS_CONTAINER_CREDENTIALS_FULL_URI (and no
access keys), as ECS gives a task.
"""

from __future__ import annotations

import logging
import sys

import boto3
import watchtower


def airflow_task_logs(log_group: str) -> None:
    """What Airflow's CloudWatch task handler does: watchtower with its defaults (creates the group if unseen)."""
    handler = watchtower.CloudWatchLogHandler(
        log_group_name=log_group,
        log_stream_name="probe/attempt=1.log",
        use_queues=False,
        boto3_client=boto3.client("logs"),
    )
    logger = logging.getLogger("probe")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.info("written with the task role")
    handler.flush()
    handler.close()
    # Reading the events back is the api-server's (its role's GetLogEvents); the writer sees its stream.
    streams = boto3.client("logs").describe_log_streams(logGroupName=log_group, logStreamNamePrefix="probe/")
    assert [s["logStreamName"] for s in streams["logStreams"]] == ["probe/attempt=1.log"], "the stream was not made"


def airflow_buckets(dag_bucket: str, data_bucket: str) -> None:
    """The S3 DAG bundle reads the DAG bucket; the pipeline reads and writes the data bucket."""
    s3 = boto3.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=dag_bucket, Prefix="dags/").get("Contents", [])]
    assert keys, "no DAG files listed"
    s3.get_object(Bucket=dag_bucket, Key=keys[0])["Body"].read()
    s3.put_object(Bucket=data_bucket, Key="probe/written.txt", Body=b"x")
    s3.get_object(Bucket=data_bucket, Key="probe/written.txt")["Body"].read()
    s3.delete_object(Bucket=data_bucket, Key="probe/written.txt")


def execution_secrets(*secret_ids: str) -> None:
    """What the ECS agent does with the execution role before a task starts: resolve its secrets."""
    secrets = boto3.client("secretsmanager")
    for secret_id in secret_ids:
        secrets.get_secret_value(SecretId=secret_id)


def worker_demand(namespace: str) -> None:
    boto3.client("cloudwatch").put_metric_data(
        Namespace=namespace, MetricData=[{"MetricName": "DesiredWorkers", "Value": 1.0, "Unit": "Count"}]
    )


PROBES = {
    "airflow_task_logs": airflow_task_logs,
    "airflow_buckets": airflow_buckets,
    "execution_secrets": execution_secrets,
    "worker_demand": worker_demand,
}

if __name__ == "__main__":
    PROBES[sys.argv[1]](*sys.argv[2:])
    print("ok")
