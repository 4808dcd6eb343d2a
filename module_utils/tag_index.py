# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The tags of many resources in one call: the Resource Groups Tagging API's GetResources by ARN list.

A service's own ListTagsForResource takes one resource per call; GetResources takes up to 100 ARNs of
any services. Its index can lag a tag change by minutes, so a module only trusts it to confirm what it
wants: a resource it does not list, or lists with other tags than wanted, is read again with the
service's own call before anything is changed (`confirmed_tags`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable

with contextlib.suppress(ImportError):  # a missing botocore is reported by AnsibleAWSModule
    import botocore.session
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict

PAGE = 100  # ARNs per GetResources call


@functools.cache
def partition_of(region: str) -> str:
    """The ARN partition of a region (aws, aws-cn, aws-us-gov, ...) from botocore's endpoint data."""
    return botocore.session.get_session().get_partition_for_region(region)


def bucket_arn(module: AnsibleAWSModule, name: str) -> str:
    return f"arn:{partition_of(module.region)}:s3:::{name}"


def indexed_tags(module: AnsibleAWSModule, arns: list[str]) -> dict[str, dict[str, str]]:
    """ARN -> tags of the resources the index lists among `arns` (one GetResources call per 100 ARNs)."""
    if not arns:
        return {}
    client = module.client("resourcegroupstaggingapi", retry_decorator=jittered_backoff())
    wanted = set(arns)
    found: dict[str, dict[str, str]] = {}
    for start in range(0, len(arns), PAGE):
        try:
            answer = client.get_resources(ResourceARNList=arns[start : start + PAGE], aws_retry=True)
        except (BotoCoreError, ClientError) as e:
            module.fail_json_aws(e, msg="Failed to read the tags of the resources (tag:GetResources)")
        for mapping in answer.get("ResourceTagMappingList", []):
            if mapping["ResourceARN"] in wanted:  # LocalStack answers every tagged resource, whatever the list
                found[mapping["ResourceARN"]] = boto3_tag_list_to_ansible_dict(mapping.get("Tags", []))
    return found


def confirmed_tags(
    indexed: dict[str, dict[str, str]],
    arn: str,
    as_wanted: Callable[[dict[str, str]], bool],
    read: Callable[[], dict[str, str]],
) -> dict[str, str]:
    """The resource's tags: the index's when they are as wanted, else the service's own answer (`read`)."""
    tags = indexed.get(arn)
    if tags is not None and as_wanted(tags):
        return tags
    return read()
