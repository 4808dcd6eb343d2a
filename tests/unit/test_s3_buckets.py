"""library/s3_buckets.py against a moto server, through the real `ansible` CLI.

The module talks to moto through embedded_aws/weather.py (no latency, no faults), which counts every
call; what the buckets really hold is read with boto3 from the emulator directly. The proxy names S3
calls by method and shape only ("GET Service?prefix" is ListBuckets, "HEAD Bucket" HeadBucket, "PUT
Bucket" CreateBucket or a Put* of a bucket setting, "GET Bucket" a Get* of one), so each test also
checks which settings the module says it wrote and what the buckets hold afterwards.

moto gives every account the same bucket namespace: a bucket made with another account's credentials
(from STS AssumeRole) is refused to ours with BucketAlreadyExists, and answers our HeadBucket with 200.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from ansible_runner import run_module
from emulator import REGION, Emulator, endpoint_env, free_port

from embedded_aws.weather import Weather, WeatherProxy

MODULE = "s3_buckets"
DAGS = "airflow-dags-123456789012-us-east-1"
DATA = "airflow-data-123456789012-us-east-1"
PUBLIC = {
    "block_public_acls": True,
    "ignore_public_acls": True,
    "block_public_policy": True,
    "restrict_public_buckets": True,
}
TAGS = {"airflow-ecs:stack": "airflow"}


def bucket(name: str, versioning: bool, purpose: str) -> dict[str, Any]:
    return {
        "name": name,
        "versioning": versioning,
        "encryption": "AES256",
        "public_access": PUBLIC,
        "object_ownership": "BucketOwnerEnforced",
        "tags": {**TAGS, "airflow-ecs:bucket": purpose},
    }


ARGS = {"buckets": [bucket(DAGS, True, "dags"), bucket(DATA, False, "data")]}
LIST = "s3 GET Service?prefix"  # ListBuckets over the names' common prefix
SETTINGS = ("versioning", "encryption", "publicAccessBlock", "ownershipControls", "tagging")


def reads(buckets: int, confirmed: int = 0) -> dict[str, int]:
    """The GETs of every managed setting of `buckets` buckets: one per setting each, but the tags of all of
    them from one tagging-index call; a GetBucketTagging only for the `confirmed` ones the index shows
    with other tags than wanted."""
    counts = {f"s3 GET Bucket?{setting}": buckets for setting in SETTINGS if setting != "tagging"}
    counts["tagging GetResources"] = 1
    if confirmed:
        counts["s3 GET Bucket?tagging"] = confirmed
    return counts


def writes(buckets: int, *settings: str) -> dict[str, int]:
    return {f"s3 PUT Bucket?{setting}": buckets for setting in settings}


class Counted:
    """The emulator behind a counting proxy: `env` for the module, `calls()` since the last one."""

    def __init__(self, emulator: Emulator) -> None:
        self.weather = Weather(latency_ms=0)
        self.proxy = WeatherProxy(emulator.url, self.weather)
        self.env = endpoint_env(self.proxy.url)

    def calls(self) -> dict[str, int]:
        counted = self.weather.stats()["calls"]
        self.weather.reset()
        return counted

    def run(self, args: dict[str, Any] = ARGS, **kwargs: Any) -> dict[str, Any]:
        self.weather.reset()
        return run_module(MODULE, args, env=self.env, **kwargs)


@pytest.fixture
def counted(clean_emulator: Emulator) -> Iterator[Counted]:
    proxy = Counted(clean_emulator)
    yield proxy
    proxy.proxy.close()


def settings(emulator: Emulator, name: str) -> dict[str, Any]:
    """What the bucket holds, read directly from the emulator."""
    s3 = emulator.client("s3")
    encryption = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"][0]
    return {
        "versioning": s3.get_bucket_versioning(Bucket=name).get("Status"),
        "encryption": encryption["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"],
        "public_access": s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"],
        "object_ownership": s3.get_bucket_ownership_controls(Bucket=name)["OwnershipControls"]["Rules"][0][
            "ObjectOwnership"
        ],
        "tags": {tag["Key"]: tag["Value"] for tag in s3.get_bucket_tagging(Bucket=name)["TagSet"]},
    }


BLOCKED = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
WANTED = {
    DAGS: {
        "versioning": "Enabled",
        "encryption": "AES256",
        "public_access": BLOCKED,
        "object_ownership": "BucketOwnerEnforced",
        "tags": {**TAGS, "airflow-ecs:bucket": "dags"},
    },
    DATA: {
        "versioning": None,
        "encryption": "AES256",
        "public_access": BLOCKED,
        "object_ownership": "BucketOwnerEnforced",
        "tags": {**TAGS, "airflow-ecs:bucket": "data"},
    },
}


def names(emulator: Emulator) -> list[str]:
    return sorted(entry["Name"] for entry in emulator.client("s3").list_buckets()["Buckets"])


def unchanged(name: str) -> dict[str, Any]:
    return {"arn": f"arn:aws:s3:::{name}", "created": False, "changed": False, "changes": []}


def test_create_then_rerun_only_reads_what_it_manages(clean_emulator: Emulator, counted: Counted) -> None:
    clean_emulator.client("s3").create_bucket(Bucket="airflow-dags-old")  # a neighbour: never touched

    created = counted.run()
    assert created["changed"] is True, created
    assert created["buckets"] == {
        DAGS: {"arn": f"arn:aws:s3:::{DAGS}", "created": True, "changed": True,
               "changes": ["versioning", "encryption", "public_access", "tags"]},
        DATA: {"arn": f"arn:aws:s3:::{DATA}", "created": True, "changed": True,
               "changes": ["encryption", "public_access", "tags"]},
    }  # fmt: skip
    # One ListBuckets; CreateBucket (ownership included) and one Put per differing setting: 2 + 4 + 3.
    assert counted.calls() == {
        LIST: 1,
        "s3 PUT Bucket": 2,
        **writes(2, "encryption", "publicAccessBlock", "tagging"),
        **writes(1, "versioning"),
    }
    assert {name: settings(clean_emulator, name) for name in (DAGS, DATA)} == WANTED
    assert names(clean_emulator) == sorted(["airflow-dags-old", DAGS, DATA])

    again = counted.run(diff=True)
    assert again["changed"] is False, again
    assert again["buckets"] == {DAGS: unchanged(DAGS), DATA: unchanged(DATA)}
    # One ListBuckets and the five managed settings of each bucket: nothing else read, nothing written.
    assert counted.calls() == {LIST: 1, **reads(2)}
    assert again["diff"]["before"] == again["diff"]["after"]
    assert again["diff"]["after"][DATA] == {
        "versioning": False,
        "encryption": {"algorithm": "AES256", "key_id": None},
        "public_access": PUBLIC,
        "object_ownership": "BucketOwnerEnforced",
        "tags": {**TAGS, "airflow-ecs:bucket": "data"},
    }


def test_one_changed_setting_is_the_only_write(clean_emulator: Emulator, counted: Counted) -> None:
    counted.run()
    s3 = clean_emulator.client("s3")
    s3.put_bucket_tagging(Bucket=DATA, Tagging={"TagSet": [{"Key": "owner", "Value": "someone"}]})

    retagged = counted.run(diff=True)
    assert retagged["buckets"] == {
        DAGS: unchanged(DAGS),
        DATA: {**unchanged(DATA), "changed": True, "changes": ["tags"]},
    }
    assert counted.calls() == {LIST: 1, **reads(2, confirmed=1), **writes(1, "tagging")}
    assert retagged["diff"]["before"][DATA]["tags"] == {"owner": "someone"}  # purged, as upstream's default
    assert {name: settings(clean_emulator, name) for name in (DAGS, DATA)} == WANTED

    s3.put_bucket_versioning(Bucket=DAGS, VersioningConfiguration={"Status": "Suspended"})
    s3.delete_public_access_block(Bucket=DAGS)
    fixed = counted.run()
    assert fixed["buckets"][DAGS]["changes"] == ["versioning", "public_access"]
    assert fixed["buckets"][DATA] == unchanged(DATA)
    assert counted.calls() == {LIST: 1, **reads(2), **writes(1, "versioning", "publicAccessBlock")}
    assert {name: settings(clean_emulator, name) for name in (DAGS, DATA)} == WANTED

    assert counted.run()["changed"] is False


def test_bucket_deleted_out_of_band_is_recreated(clean_emulator: Emulator, counted: Counted) -> None:
    counted.run()
    clean_emulator.client("s3").delete_bucket(Bucket=DAGS)

    again = counted.run()
    assert again["buckets"][DAGS]["created"] is True, again
    assert again["buckets"][DATA] == unchanged(DATA)
    assert counted.calls() == {
        LIST: 1,
        **reads(1),
        "s3 PUT Bucket": 1,
        **writes(1, "versioning", "encryption", "publicAccessBlock", "tagging"),
    }
    assert settings(clean_emulator, DAGS) == WANTED[DAGS]


def test_check_mode_changes_nothing(clean_emulator: Emulator, counted: Counted) -> None:
    planned = counted.run(check=True, diff=True)
    assert planned["changed"] is True, planned
    assert planned["buckets"][DAGS] == {
        "arn": f"arn:aws:s3:::{DAGS}",
        "created": True,
        "changed": True,
        "changes": ["versioning", "encryption", "public_access", "tags"],
    }
    assert planned["diff"]["before"] == {DAGS: {}, DATA: {}}
    assert planned["diff"]["after"][DAGS]["versioning"] is True
    # HeadBucket only to tell a free name from another account's: nothing written.
    assert counted.calls() == {LIST: 1, "s3 HEAD Bucket": 2}
    assert names(clean_emulator) == []

    counted.run()
    clean_emulator.client("s3").put_bucket_tagging(Bucket=DATA, Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
    planned = counted.run(check=True)
    assert planned["buckets"][DATA]["changes"] == ["tags"], planned
    assert counted.calls() == {LIST: 1, **reads(2, confirmed=1)}
    assert settings(clean_emulator, DATA)["tags"] == {"k": "v"}


def test_other_region_gets_a_location_constraint(clean_emulator: Emulator, counted: Counted) -> None:
    result = counted.run({"buckets": [{"name": "airflow-eu", "tags": {}}], "region": "eu-west-1"})
    assert result["buckets"]["airflow-eu"]["created"] is True, result
    location = clean_emulator.client("s3").get_bucket_location(Bucket="airflow-eu")["LocationConstraint"]
    assert location == "eu-west-1"
    # Only tags given (empty, and a new bucket has none): nothing else written or read.
    assert counted.calls() == {LIST: 1, "s3 PUT Bucket": 1}


@pytest.fixture
def taken(clean_emulator: Emulator) -> str:
    """DAGS, made by another account (credentials of a role in account 111111111111)."""
    sts = clean_emulator.client("sts")
    role = "arn:aws:iam::111111111111:role/other"
    keys = sts.assume_role(RoleArn=role, RoleSessionName="other")["Credentials"]
    other = boto3.client(
        "s3",
        endpoint_url=clean_emulator.url,
        region_name=REGION,
        aws_access_key_id=keys["AccessKeyId"],
        aws_secret_access_key=keys["SecretAccessKey"],
        aws_session_token=keys["SessionToken"],
    )
    other.create_bucket(Bucket=DAGS)
    assert names(clean_emulator) == []  # not ours
    return DAGS


@pytest.mark.parametrize("check", [False, True])
def test_bucket_of_another_account_fails(clean_emulator: Emulator, taken: str, check: bool) -> None:
    result = run_module(MODULE, {"buckets": [bucket(taken, True, "dags")]}, env=clean_emulator.env(), check=check)
    assert result.get("failed") is True, result
    assert result["msg"].startswith(f"S3 bucket name '{taken}' is taken by another AWS account"), result["msg"]


@pytest.mark.parametrize(
    ("buckets", "message"),
    [
        ([{"name": "Airflow_Dags"}], "buckets[0].name: invalid bucket name 'Airflow_Dags': 3 to 63 characters"),
        ([{"name": DAGS}, {"name": "a..b"}], "buckets[1].name: invalid bucket name 'a..b': no '..'"),
        ([{"name": "192.168.1.1"}], "buckets[0].name: invalid bucket name '192.168.1.1': not shaped like an IP"),
        ([{"name": DAGS}, {"name": DAGS}], f"buckets[1].name: bucket '{DAGS}' is listed twice"),
        ([{"name": DAGS, "encryption": "AES256", "encryption_key_id": "alias/x"}],
         "buckets[0].encryption_key_id: only with encryption aws:kms"),
        ([{"name": DAGS, "tags": {"a": {"b": 1}}}], "buckets[0].tags: the value of tag 'a' must be a string"),
        ([{"name": DAGS, "encryption": "aws:kms:dsse"}], "value of encryption must be one of: AES256, aws:kms"),
        ([{"name": DAGS, "versioning": "maybe"}], "versioning"),
        ([{"name": DAGS, "public_access": {"block_all": True}}], "block_all"),
        ([{"versioning": True}], "missing required arguments: name found in buckets"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_before_any_call(buckets: list[dict[str, Any]], message: str) -> None:
    """Pointed at a port nothing listens on: any AWS call would fail with a connection error instead."""
    dead = endpoint_env(f"http://127.0.0.1:{free_port()}")
    result = run_module(MODULE, {"buckets": buckets}, env=dead)
    assert result.get("failed") is True, result
    assert message in result["msg"], result["msg"]
    assert "connect" not in result["msg"].lower()


TLS_STATEMENT = {
    "Sid": "DenyInsecureTransport",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:*",
    "Resource": [f"arn:aws:s3:::{DATA}", f"arn:aws:s3:::{DATA}/*"],
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
}
# A statement someone else put in the bucket policy: kept as it is.
READER = {
    "Sid": "AuditorReads",
    "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
    "Action": "s3:GetObject",
    "Resource": f"arn:aws:s3:::{DATA}/*",
}


def bucket_policy(emulator: Emulator, name: str) -> dict[str, Any] | None:
    s3 = emulator.client("s3")
    try:
        return json.loads(s3.get_bucket_policy(Bucket=name)["Policy"])
    except s3.exceptions.ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchBucketPolicy"
        return None


def test_require_tls_merges_its_statement_into_the_bucket_policy(clean_emulator: Emulator, counted: Counted) -> None:
    tls = {"buckets": [{"name": DATA, "require_tls": True}]}
    created = counted.run(tls)
    assert created["buckets"][DATA]["changes"] == ["require_tls"]
    assert bucket_policy(clean_emulator, DATA) == {"Version": "2012-10-17", "Statement": [TLS_STATEMENT]}
    # The emulator's endpoint stands for AWS's HTTPS one: the statement denies none of its requests.
    s3 = clean_emulator.client("s3")
    s3.put_object(Bucket=DATA, Key="tls/object.txt", Body=b"x")
    assert s3.get_object(Bucket=DATA, Key="tls/object.txt")["Body"].read() == b"x"
    s3.delete_object(Bucket=DATA, Key="tls/object.txt")
    assert counted.run(tls)["changed"] is False
    assert counted.calls() == {LIST: 1, "s3 GET Bucket?policy": 1}

    # Another statement added out of band stays; ours, taken out or changed, comes back beside it.
    s3.put_bucket_policy(Bucket=DATA, Policy=json.dumps({"Version": "2012-10-17", "Statement": [READER]}))
    merged = counted.run(tls, diff=True)
    assert merged["buckets"][DATA]["changes"] == ["require_tls"]
    assert merged["diff"]["before"][DATA]["require_tls"]["Statement"] == [READER]
    assert bucket_policy(clean_emulator, DATA)["Statement"] == [READER, TLS_STATEMENT]
    weakened = {**TLS_STATEMENT, "Condition": {"Bool": {"aws:SecureTransport": "true"}}}
    s3.put_bucket_policy(Bucket=DATA, Policy=json.dumps({"Version": "2012-10-17", "Statement": [READER, weakened]}))
    assert counted.run(tls, check=True)["changed"] is True
    assert bucket_policy(clean_emulator, DATA)["Statement"] == [READER, weakened]  # check mode wrote nothing
    assert counted.run(tls)["changed"] is True
    assert bucket_policy(clean_emulator, DATA)["Statement"] == [READER, TLS_STATEMENT]
    assert counted.run(tls)["changed"] is False

    # false: only our statement goes; the policy goes when nothing else is left.
    off = {"buckets": [{"name": DATA, "require_tls": False}]}
    assert counted.run(off)["changed"] is True
    assert bucket_policy(clean_emulator, DATA)["Statement"] == [READER]
    assert counted.run(off)["changed"] is False
    s3.put_bucket_policy(Bucket=DATA, Policy=json.dumps({"Version": "2012-10-17", "Statement": [TLS_STATEMENT]}))
    assert counted.run(off)["changed"] is True
    assert bucket_policy(clean_emulator, DATA) is None
