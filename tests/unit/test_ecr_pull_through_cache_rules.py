"""library/ecr_pull_through_cache_rules.py against the emulator (its ECR pull-through cache API is the
project's extension, embedded_aws/registry.py), through the real `ansible` CLI, its calls counted."""

from __future__ import annotations

import json
from typing import Any

from ansible_runner import run_counted
from emulator import Emulator

from embedded_aws.weather import WeatherProxy

MODULE = "ecr_pull_through_cache_rules"
RULE = {"prefix": "ecr-public", "upstream_registry_url": "public.ecr.aws"}
ARGS = {"rules": [RULE]}
READ = {"ecr DescribePullThroughCacheRules": 1}
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": "sha256:" + "0" * 64},
        "layers": [],
    }
)


def run(proxy: WeatherProxy, args: dict[str, Any], **kwargs: Any) -> tuple[dict[str, Any], dict[str, int]]:
    return run_counted(MODULE, proxy, args, **kwargs)


def rules_in_aws(emulator: Emulator) -> dict[str, str]:
    listed = emulator.client("ecr").describe_pull_through_cache_rules()["pullThroughCacheRules"]
    return {rule["ecrRepositoryPrefix"]: rule["upstreamRegistryUrl"] for rule in listed}


def repositories(emulator: Emulator) -> list[str]:
    return sorted(r["repositoryName"] for r in emulator.client("ecr").describe_repositories()["repositories"])


def test_create_in_check_mode_then_create_then_rerun_only_reads(proxy: WeatherProxy, clean_emulator: Emulator) -> None:
    planned, calls = run(proxy, ARGS, check=True, diff=True)
    assert planned["changed"] is True and planned["rules"]["ecr-public"]["action"] == "created", planned
    assert planned["diff"] == {
        "before": {},
        "after": {"ecr-public": {"upstream_registry_url": "public.ecr.aws", "credential_arn": None}},
    }
    assert calls == READ
    assert rules_in_aws(clean_emulator) == {}

    created, calls = run(proxy, ARGS)
    assert created["changed"] is True, created
    assert calls == {**READ, "ecr CreatePullThroughCacheRule": 1}
    assert rules_in_aws(clean_emulator) == {"ecr-public": "public.ecr.aws"}

    again, calls = run(proxy, ARGS, diff=True)
    assert again["changed"] is False and again["rules"]["ecr-public"]["action"] == "none", again
    assert calls == READ
    assert again["diff"]["before"] == again["diff"]["after"]


def test_another_upstream_replaces_the_rule(proxy: WeatherProxy, clean_emulator: Emulator) -> None:
    run(proxy, ARGS)
    other = {"rules": [{"prefix": "ecr-public", "upstream_registry_url": "registry.k8s.io"}]}
    replaced, calls = run(proxy, other)
    assert replaced["rules"]["ecr-public"]["action"] == "replaced", replaced
    assert calls == {**READ, "ecr DeletePullThroughCacheRule": 1, "ecr CreatePullThroughCacheRule": 1}
    assert rules_in_aws(clean_emulator) == {"ecr-public": "registry.k8s.io"}


def test_delete_with_cached_repositories_then_again(proxy: WeatherProxy, clean_emulator: Emulator) -> None:
    run(proxy, ARGS)
    ecr = clean_emulator.client("ecr")
    ecr.create_repository(repositoryName="ecr-public/docker/library/rabbitmq")  # what a first pull leaves
    ecr.put_image(repositoryName="ecr-public/docker/library/rabbitmq", imageManifest=MANIFEST, imageTag="4.1.4")
    absent = {"rules": [{"prefix": "ecr-public"}], "delete_cached_repositories": True, "state": "absent"}

    planned, calls = run(proxy, absent, check=True)
    assert planned["changed"] is True and planned["deleted_repositories"] == ["ecr-public/docker/library/rabbitmq"]
    assert rules_in_aws(clean_emulator) == {"ecr-public": "public.ecr.aws"}

    deleted, calls = run(proxy, absent)
    assert deleted["changed"] is True, deleted
    assert calls == {
        "ecr DescribeRepositories": 1,
        "ecr DeletePullThroughCacheRule": 1,
        "ecr DeleteRepository": 1,
    }
    assert rules_in_aws(clean_emulator) == {} and repositories(clean_emulator) == []

    again, calls = run(proxy, absent)
    assert again["changed"] is False, again
    assert calls == {"ecr DescribeRepositories": 1, "ecr DeletePullThroughCacheRule": 1}


def test_a_rule_another_stack_uses_is_kept(proxy: WeatherProxy, clean_emulator: Emulator) -> None:
    run(proxy, ARGS)
    clean_emulator.client("ecr").create_repository(repositoryName="other/airflow")
    absent = {"rules": [{"prefix": "ecr-public"}], "keep_while_repositories_match": "*/airflow", "state": "absent"}
    kept, _ = run(proxy, absent)
    assert kept["changed"] is False and kept["kept_for"] == ["other/airflow"], kept
    assert rules_in_aws(clean_emulator) == {"ecr-public": "public.ecr.aws"}


def test_bad_prefix_is_refused_before_any_call(proxy: WeatherProxy, clean_emulator: Emulator) -> None:
    refused, calls = run(proxy, {"rules": [{"prefix": "Bad Prefix", "upstream_registry_url": "public.ecr.aws"}]})
    assert refused.get("failed") and "prefix 'Bad Prefix'" in refused["msg"], refused
    assert calls == {}
