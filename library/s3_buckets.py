#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Manage the settings of several S3 buckets in one module run (project library module)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: s3_buckets
short_description: Create several S3 buckets and keep the settings it is given, reading nothing else
description:
  - Creates a list of S3 buckets and keeps their versioning, default encryption, public access block,
    object ownership, tags and TLS-only bucket policy statement as given, in one module run instead of one
    M(amazon.aws.s3_bucket) run per bucket.
  - M(amazon.aws.s3_bucket) reads every setting of a bucket (policy, ACL, accelerate, object lock,
    inventory...) whether the task manages it or not. This module reads only the settings it is given, so
    that a run with nothing to do makes one C(ListBuckets) and at most six reads per bucket.
  - Which buckets exist is read with one C(ListBuckets), paginated, filtered on the longest common prefix
    of the names. A bucket that is not listed is created with C(CreateBucket) (its object ownership set
    at creation) and gets every given setting without being read first.
  - For a listed bucket each given setting is read (C(GetBucketVersioning), C(GetBucketEncryption),
    C(GetPublicAccessBlock), C(GetBucketOwnershipControls), C(GetBucketTagging); a setting never made
    counts as unset) and only what differs is written (C(PutBucketVersioning), C(PutBucketEncryption),
    C(PutPublicAccessBlock), C(PutBucketOwnershipControls), C(PutBucketTagging) or, to remove the last
    tag, C(DeleteBucketTagging)). A setting that is not given (null) is neither read nor changed.
  - A bucket name taken by another account fails the module with a message naming the bucket. In check
    mode a bucket that is not listed is looked up with C(HeadBucket) so that check mode reports it too.
  - Only creates and updates. Deleting a bucket (with its objects) is left to M(amazon.aws.s3_bucket)
    with O(amazon.aws.s3_bucket#module:state=absent).
  - Supports check mode and diff mode. In check mode nothing is changed; the diff shows the managed
    settings of every bucket before and after the run.
author:
  - airflow-ecs project
options:
  buckets:
    description:
      - The buckets, each with the settings it should have.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - Name of the bucket. 3 to 63 characters from C(a-z), C(0-9), C(.) and C(-), starting and ending
            with a letter or digit, without C(..), not shaped like an IP address. Any other name, or a name
            listed twice, is refused before any AWS call.
        type: str
        required: true
      versioning:
        description:
          - Whether versioning is enabled. V(false) suspends it on a bucket where it is enabled; a bucket
            that was never versioned is left as it is.
          - Not read nor changed when not given.
        type: bool
      encryption:
        description:
          - Default server-side encryption of new objects.
          - Not read nor changed when not given.
        type: str
        choices: [AES256, 'aws:kms']
      encryption_key_id:
        description:
          - KMS key (id, ARN or alias) of O(buckets[].encryption=aws:kms), compared as given. Without it
            S3 uses the AWS managed key C(aws/s3).
          - Only with O(buckets[].encryption=aws:kms).
        type: str
      public_access:
        description:
          - The bucket's public access block. All four flags are compared; a bucket without a block counts
            as all four V(false).
          - Not read nor changed when not given.
        type: dict
        suboptions:
          block_public_acls:
            description: Refuse new public ACLs.
            type: bool
            default: false
          ignore_public_acls:
            description: Ignore existing public ACLs.
            type: bool
            default: false
          block_public_policy:
            description: Refuse a public bucket policy.
            type: bool
            default: false
          restrict_public_buckets:
            description: Restrict access to a bucket with a public policy.
            type: bool
            default: false
      object_ownership:
        description:
          - Object ownership of the bucket; V(BucketOwnerEnforced) disables ACLs.
          - Set at creation; changed with C(PutBucketOwnershipControls). Not read nor changed when not given.
        type: str
        choices: [BucketOwnerEnforced, BucketOwnerPreferred, ObjectWriter]
      tags:
        description:
          - Tags of the bucket, as a dict, compared as a whole. Values are stored as strings.
          - Not read nor changed when not given. With O(buckets[].purge_tags=true) and V({}) every tag is
            removed.
        type: dict
      purge_tags:
        description:
          - Remove tags that are not in O(buckets[].tags), as M(amazon.aws.s3_bucket) does.
        type: bool
        default: true
      require_tls:
        description:
          - V(true) keeps the statement C(DenyInsecureTransport) in the bucket policy (deny C(s3:*) on the
            bucket and its objects to every principal when C(aws:SecureTransport) is V(false)), merged with
            the policy's other statements, which are kept as they are. V(false) removes that statement (and
            the policy when nothing else is left). Read with C(GetBucketPolicy), written with
            C(PutBucketPolicy) or C(DeleteBucketPolicy).
          - Not read nor changed when not given.
        type: bool
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - API calls per run with nothing to change are one C(ListBuckets) and one read per given setting per
    bucket (six when all are given). A new bucket costs one C(CreateBucket) and one write per setting that
    is not what a new bucket has (object ownership is set by C(CreateBucket)).
  - Needs C(s3:ListAllMyBuckets) on V(*), and on the buckets C(s3:CreateBucket), C(s3:GetBucketVersioning),
    C(s3:PutBucketVersioning), C(s3:GetEncryptionConfiguration), C(s3:PutEncryptionConfiguration),
    C(s3:GetBucketPublicAccessBlock), C(s3:PutBucketPublicAccessBlock), C(s3:GetBucketOwnershipControls),
    C(s3:PutBucketOwnershipControls), C(s3:GetBucketTagging), C(s3:PutBucketTagging), with
    O(buckets[].require_tls) C(s3:GetBucketPolicy), C(s3:PutBucketPolicy) (and C(s3:DeleteBucketPolicy) to
    remove a policy left empty) and, for check mode,
    C(s3:ListBucket) (C(HeadBucket)).
  - A bucket listed in another region than the module's fails the module.
seealso:
  - module: amazon.aws.s3_bucket
"""

EXAMPLES = r"""
- name: Create the DAG bucket (versioned) and the data bucket, encrypted, public access blocked
  s3_buckets:
    buckets:
      - name: airflow-dags-123456789012-eu-west-1
        versioning: true
        encryption: AES256
        public_access: {block_public_acls: true, ignore_public_acls: true, block_public_policy: true,
                        restrict_public_buckets: true}
        object_ownership: BucketOwnerEnforced
        tags: {"airflow-ecs:stack": airflow, "airflow-ecs:bucket": dags}
        require_tls: true
      - name: airflow-data-123456789012-eu-west-1
        versioning: false
        encryption: "aws:kms"
        encryption_key_id: alias/airflow
        tags: {"airflow-ecs:stack": airflow, "airflow-ecs:bucket": data}
  register: __buckets

- name: Show the ARN of the DAG bucket
  ansible.builtin.debug:
    msg: "{{ __buckets.buckets['airflow-dags-123456789012-eu-west-1'].arn }}"
"""

RETURN = r"""
buckets:
  description: Every bucket of O(buckets) by name. In check mode, as it would be after the run.
  returned: always
  type: dict
  contains:
    arn:
      description: ARN of the bucket.
      type: str
      sample: arn:aws:s3:::airflow-dags-123456789012-eu-west-1
    created:
      description: Whether the bucket was created (would be, in check mode).
      type: bool
      sample: false
    changed:
      description: Whether the bucket was created or any of its settings written (would be, in check mode).
      type: bool
      sample: true
    changes:
      description: The settings written (would be, in check mode), in the order of the options.
      type: list
      elements: str
      sample: [versioning, tags]
  sample:
    airflow-dags-123456789012-eu-west-1:
      arn: arn:aws:s3:::airflow-dags-123456789012-eu-west-1
      created: false
      changed: true
      changes: [tags]
diff:
  description:
    - The given settings of every bucket before and after the run, by bucket name; a bucket that does not
      exist is V({}) before.
  returned: in diff mode
  type: dict
  contains:
    before:
      description: The settings before the run.
      type: dict
    after:
      description: The settings after the run.
      type: dict
"""

import contextlib
import ipaddress
import json
import os
import re
from typing import Any

with contextlib.suppress(ImportError):  # a missing botocore is reported by AnsibleAWSModule
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible.module_utils.desired_tags import desired_tags
from ansible.module_utils.tag_index import bucket_arn, confirmed_tags, indexed_tags
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
SETTINGS = ("versioning", "encryption", "public_access", "object_ownership", "tags", "require_tls")
# The bucket policy statement of require_tls (its Resource: the bucket and its objects).
TLS_SID = "DenyInsecureTransport"
PUBLIC_ACCESS = {
    "block_public_acls": "BlockPublicAcls",
    "ignore_public_acls": "IgnorePublicAcls",
    "block_public_policy": "BlockPublicPolicy",
    "restrict_public_buckets": "RestrictPublicBuckets",
}
# What S3 answers for a setting that was never made: the setting is unset.
UNSET_CODES = {
    "encryption": "ServerSideEncryptionConfigurationNotFoundError",
    "public_access": "NoSuchPublicAccessBlockConfiguration",
    "object_ownership": "OwnershipControlsNotFoundError",
    "tags": "NoSuchTagSet",
    "require_tls": "NoSuchBucketPolicy",
}
# What a bucket has when a setting is unset (and what a new bucket is taken to have).
UNSET = {
    "versioning": False,
    "encryption": None,
    "public_access": dict.fromkeys(PUBLIC_ACCESS, False),
    "object_ownership": None,
    "tags": {},
    "require_tls": None,  # the bucket policy document; None: no policy
}


def argument_spec() -> dict[str, Any]:
    flag = dict(type="bool", default=False)
    return dict(
        buckets=dict(
            type="list",
            elements="dict",
            required=True,
            options=dict(
                name=dict(type="str", required=True),
                versioning=dict(type="bool"),
                encryption=dict(type="str", choices=["AES256", "aws:kms"]),
                encryption_key_id=dict(type="str", no_log=False),
                public_access=dict(type="dict", options=dict.fromkeys(PUBLIC_ACCESS, flag)),
                object_ownership=dict(
                    type="str", choices=["BucketOwnerEnforced", "BucketOwnerPreferred", "ObjectWriter"]
                ),
                tags=dict(type="dict"),
                purge_tags=dict(type="bool", default=True),
                require_tls=dict(type="bool"),
            ),
        ),
    )


# --- Input ---------------------------------------------------------------------------------------


def bad_name(name: str) -> str | None:
    """Why S3 would refuse `name` as a bucket name; None when it is fine."""
    if not NAME.fullmatch(name):
        return "3 to 63 characters from a-z, 0-9, '.' and '-', starting and ending with a letter or digit"
    if ".." in name:
        return "no '..'"
    with contextlib.suppress(ValueError):
        ipaddress.IPv4Address(name)
        return "not shaped like an IP address"
    return None


def checked_buckets(module: AnsibleAWSModule) -> list[dict[str, Any]]:
    """The buckets with their wanted settings (None: not managed); fails on the first bad field."""
    seen: set[str] = set()
    wanted = []
    for index, bucket in enumerate(module.params["buckets"]):
        name = bucket["name"]
        field = f"buckets[{index}]"
        if why := bad_name(name):
            module.fail_json(msg=f"{field}.name: invalid bucket name {name!r}: {why}.")
        if name in seen:
            module.fail_json(msg=f"{field}.name: bucket {name!r} is listed twice.")
        seen.add(name)
        if bucket["encryption_key_id"] and bucket["encryption"] != "aws:kms":
            module.fail_json(msg=f"{field}.encryption_key_id: only with encryption aws:kms (bucket {name!r}).")
        tags = bucket["tags"]
        if tags is not None:
            for key, value in tags.items():
                if value is None or isinstance(value, (dict, list)):
                    module.fail_json(msg=f"{field}.tags: the value of tag {key!r} must be a string (bucket {name!r}).")
            tags = {str(key): str(value) for key, value in tags.items()}
        encryption = None
        if bucket["encryption"]:
            encryption = {"algorithm": bucket["encryption"], "key_id": bucket["encryption_key_id"]}
        settings = {
            "versioning": bucket["versioning"],
            "encryption": encryption,
            "public_access": bucket["public_access"],
            "object_ownership": bucket["object_ownership"],
            "tags": tags,
            "require_tls": bucket["require_tls"],
        }
        wanted.append({"name": name, "purge_tags": bucket["purge_tags"], "settings": settings})
    return wanted


# --- Reading -------------------------------------------------------------------------------------


def listed_buckets(module: AnsibleAWSModule, client: Any, names: list[str]) -> dict[str, dict]:
    """The account's buckets among `names` (ListBuckets over their common prefix), by name."""
    prefix = os.path.commonprefix(names)  # noqa: RUF071 - a string prefix, as ListBuckets filters
    try:
        paginator = client.get_paginator("list_buckets")
        pages = paginator.paginate(**({"Prefix": prefix} if prefix else {})).build_full_result()
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg="Failed to list the S3 buckets of the account")
    return {bucket["Name"]: bucket for bucket in pages.get("Buckets", []) if bucket["Name"] in names}


def read_setting(module: AnsibleAWSModule, client: Any, name: str, setting: str) -> Any:
    """One setting of an existing bucket, in the module's form; UNSET[setting] when it was never made."""
    try:
        if setting == "versioning":
            return client.get_bucket_versioning(Bucket=name, aws_retry=True).get("Status") == "Enabled"
        if setting == "encryption":
            rules = client.get_bucket_encryption(Bucket=name, aws_retry=True)["ServerSideEncryptionConfiguration"]
            default = (rules.get("Rules") or [{}])[0].get("ApplyServerSideEncryptionByDefault") or {}
            if not default:
                return None
            return {"algorithm": default.get("SSEAlgorithm"), "key_id": default.get("KMSMasterKeyID")}
        if setting == "public_access":
            block = client.get_public_access_block(Bucket=name, aws_retry=True)["PublicAccessBlockConfiguration"]
            return {key: bool(block.get(aws_key)) for key, aws_key in PUBLIC_ACCESS.items()}
        if setting == "object_ownership":
            controls = client.get_bucket_ownership_controls(Bucket=name, aws_retry=True)["OwnershipControls"]
            return (controls.get("Rules") or [{}])[0].get("ObjectOwnership")
        if setting == "require_tls":
            return json.loads(client.get_bucket_policy(Bucket=name, aws_retry=True)["Policy"])
        tag_set = client.get_bucket_tagging(Bucket=name, aws_retry=True).get("TagSet", [])
        return {tag["Key"]: tag["Value"] for tag in tag_set}
    except is_boto3_error_code(UNSET_CODES.get(setting, "-")):
        return UNSET[setting]
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to read the {setting} of S3 bucket '{name}'")


def check_not_taken(module: AnsibleAWSModule, client: Any, name: str) -> None:
    """Check mode, bucket not listed: HeadBucket answers 404 for a free name, 403 for another account's."""
    try:
        client.head_bucket(Bucket=name, aws_retry=True)
    except is_boto3_error_code(["404", "NoSuchBucket", "NotFound"]):
        return
    except is_boto3_error_code(["403", "AccessDenied"]):  # pylint: disable=duplicate-except
        module.fail_json(msg=taken_message(name))
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to look up S3 bucket '{name}'")
    # Answered 200 yet not among this account's buckets: another account's bucket that lets us read it.
    module.fail_json(msg=taken_message(name))


def taken_message(name: str) -> str:
    return f"S3 bucket name '{name}' is taken by another AWS account; bucket names are global, choose another"


# --- Changing ------------------------------------------------------------------------------------


def create_bucket(module: AnsibleAWSModule, client: Any, name: str, ownership: str | None) -> None:
    kwargs: dict[str, Any] = {"Bucket": name}
    if module.region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": module.region}
    if ownership:
        kwargs["ObjectOwnership"] = ownership
    try:
        client.create_bucket(aws_retry=True, **kwargs)
    except is_boto3_error_code("BucketAlreadyExists"):
        module.fail_json(msg=taken_message(name))
    except is_boto3_error_code("BucketAlreadyOwnedByYou"):  # pylint: disable=duplicate-except
        module.fail_json(msg=f"S3 bucket '{name}' is already this account's, in another region than {module.region}")
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to create S3 bucket '{name}'")


def write_setting(module: AnsibleAWSModule, client: Any, name: str, setting: str, value: Any, *, new: bool) -> None:
    """Write one setting; right after CreateBucket, NoSuchBucket is retried too (S3 is eventually consistent)."""
    if setting == "versioning":
        operation = "put_bucket_versioning"
        kwargs = {"VersioningConfiguration": {"Status": "Enabled" if value else "Suspended"}}
    elif setting == "encryption":
        default = {"SSEAlgorithm": value["algorithm"]}
        if value["key_id"]:
            default["KMSMasterKeyID"] = value["key_id"]
        operation = "put_bucket_encryption"
        kwargs = {"ServerSideEncryptionConfiguration": {"Rules": [{"ApplyServerSideEncryptionByDefault": default}]}}
    elif setting == "public_access":
        operation = "put_public_access_block"
        kwargs = {"PublicAccessBlockConfiguration": {aws: value[key] for key, aws in PUBLIC_ACCESS.items()}}
    elif setting == "object_ownership":
        operation = "put_bucket_ownership_controls"
        kwargs = {"OwnershipControls": {"Rules": [{"ObjectOwnership": value}]}}
    elif setting == "require_tls":
        operation = "put_bucket_policy" if value else "delete_bucket_policy"
        kwargs = {"Policy": json.dumps(value)} if value else {}
    elif value:
        operation = "put_bucket_tagging"
        kwargs = {"Tagging": {"TagSet": [{"Key": key, "Value": text} for key, text in sorted(value.items())]}}
    else:
        operation, kwargs = "delete_bucket_tagging", {}
    call = getattr(client, operation)
    try:
        if new:
            jittered_backoff("NoSuchBucket")(call)(Bucket=name, **kwargs)
        else:
            call(Bucket=name, aws_retry=True, **kwargs)
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to set the {setting} of S3 bucket '{name}'")


# --- The run -------------------------------------------------------------------------------------


def tls_statement(arn: str) -> dict[str, Any]:
    return {
        "Sid": TLS_SID,
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [arn, f"{arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def same_statement(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Equal as IAM reads them: one value or a list of one, Principal "*" or {"AWS": "*"}, any Resource order."""

    def normal(statement: dict[str, Any]) -> dict[str, Any]:
        principal = statement.get("Principal")
        return {
            **statement,
            "Principal": "*" if principal in ("*", {"AWS": "*"}, {"AWS": ["*"]}) else principal,
            "Action": sorted(_as_list(statement.get("Action"))),
            "Resource": sorted(_as_list(statement.get("Resource"))),
        }

    return normal(current) == normal(wanted)


def tls_policy(policy: dict[str, Any] | None, arn: str, require: bool) -> dict[str, Any] | None:
    """The bucket policy with the TLS statement kept (require) or taken out; the other statements as they are."""
    statements = _as_list((policy or {}).get("Statement", []))
    ours = [s for s in statements if isinstance(s, dict) and s.get("Sid") == TLS_SID]
    others = [s for s in statements if not (isinstance(s, dict) and s.get("Sid") == TLS_SID)]
    if require and len(ours) == 1 and same_statement(ours[0], tls_statement(arn)):
        return policy
    if not require and not ours:
        return policy
    statements = others + ([tls_statement(arn)] if require else [])
    if not statements:
        return None
    return {**(policy or {"Version": "2012-10-17"}), "Statement": statements}


def wanted_value(bucket: dict[str, Any], setting: str, current: Any, arn: str = "") -> Any:
    """The value `setting` should have, given what the bucket has now."""
    wanted = bucket["settings"][setting]
    if setting == "require_tls":
        return tls_policy(current, arn, wanted)
    if setting == "tags":
        return desired_tags({"tags": wanted, "purge_tags": bucket["purge_tags"]}, current)
    if setting == "versioning" and not wanted and current is False:
        return False  # never versioned, or suspended: nothing to suspend
    return wanted


def ensure_bucket(
    module: AnsibleAWSModule, client: Any, bucket: dict[str, Any], listed: dict | None, indexed: dict
) -> tuple[dict[str, Any], dict, dict]:
    """Create the bucket if needed and write what differs; returns its result and its diff before/after."""
    name = bucket["name"]
    managed = [setting for setting in SETTINGS if bucket["settings"][setting] is not None]
    created = listed is None
    if listed is not None and listed.get("BucketRegion") not in (None, module.region):
        module.fail_json(msg=f"S3 bucket '{name}' is in region {listed['BucketRegion']}, not {module.region}")

    if created:
        if module.check_mode:
            check_not_taken(module, client, name)
        else:
            create_bucket(module, client, name, bucket["settings"]["object_ownership"])
        current = {setting: UNSET[setting] for setting in managed}
        if "object_ownership" in managed:
            current["object_ownership"] = bucket["settings"]["object_ownership"]
        before: dict = {}
    else:
        current = {}
        for setting in managed:
            if setting == "tags":  # the tagging index's answer when it is as wanted, else GetBucketTagging
                arn = bucket_arn(module, name)
                current[setting] = confirmed_tags(
                    indexed,
                    arn,
                    lambda tags: wanted_value(bucket, "tags", tags) == tags,
                    lambda: read_setting(module, client, name, "tags"),
                )
            else:
                current[setting] = read_setting(module, client, name, setting)
        before = current

    arn = bucket_arn(module, name)
    after = {setting: wanted_value(bucket, setting, current[setting], arn) for setting in managed}
    changes = [setting for setting in managed if after[setting] != current[setting]]
    if not module.check_mode:
        for setting in changes:
            write_setting(module, client, name, setting, after[setting], new=created)
    result = {
        "arn": arn,
        "created": created,
        "changed": created or bool(changes),
        "changes": changes,
    }
    return result, before, after


def main() -> None:
    module = AnsibleAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    # Refuse bad input before any AWS call.
    buckets = checked_buckets(module)
    if not module.region:
        module.fail_json(msg="region: no AWS region given (region, AWS_REGION or the AWS config).")

    client = module.client("s3", retry_decorator=jittered_backoff())
    listed = listed_buckets(module, client, [bucket["name"] for bucket in buckets])
    tagged = [
        bucket["name"] for bucket in buckets if bucket["name"] in listed and bucket["settings"]["tags"] is not None
    ]
    indexed = indexed_tags(module, [bucket_arn(module, name) for name in tagged])
    results, before, after = {}, {}, {}
    for bucket in buckets:
        name = bucket["name"]
        results[name], before[name], after[name] = ensure_bucket(module, client, bucket, listed.get(name), indexed)

    result: dict[str, Any] = {
        "changed": any(entry["changed"] for entry in results.values()),
        "buckets": results,
    }
    if module._diff:
        result["diff"] = {"before": before, "after": after}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
