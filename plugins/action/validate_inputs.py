"""Action plugin: check variables against typed rules before any AWS call; one message per bad variable.

A task names variables and their rules; the plugin reads each variable as the play resolves it (no
coercion: the string 'false' is not a boolean, the number 17.1 is not the version '17.10') and fails
with one line per bad variable: its name, the value given and what is allowed. Rules follow the AWS
API references and botocore's service models; each kind below says where its limits come from.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

DOCUMENTATION = """
name: validate_inputs
short_description: Check variables against typed rules, one message per bad variable
description: See the module docstring; the rules are listed in RULE_KEYS and KINDS.
"""

Lookup = Callable[[str], Any]


def _load_sibling(relative: str) -> ModuleType:
    """A plugin file of this project by path (the plugin loader gives plugins no package to import from)."""
    path = Path(__file__).resolve().parents[1] / relative
    spec = importlib.util.spec_from_file_location(f"airflow_ecs_{path.stem}_rules", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The Fargate size table and the image rule of the `fargate_size` / `container_image` Jinja tests.
_ECS = _load_sibling("test/ecs.py")
FARGATE_MEMORY = {cpu: tuple(m for allowed in ranges for m in allowed) for cpu, ranges in _ECS.FARGATE_SIZES.items()}
# Tag keys and values (Resource Groups Tagging API, "Tag"): letters, spaces, digits and _ . : / = + - @
TAG_TEXT = re.compile(r"^[\w\s.:/=+\-@]*$", re.UNICODE)
# Networks AWS refuses for a VPC or subnet (VPC user guide, "VPC CIDR blocks"; RFC 6890 special use).
REFUSED_NETWORKS = {
    "0.0.0.0/8": "'this network'",
    "127.0.0.0/8": "loopback",
    "169.254.0.0/16": "link-local",
    "224.0.0.0/4": "multicast",
    "240.0.0.0/4": "reserved",
}
# S3 bucket naming rules (S3 user guide, "General purpose bucket naming rules").
BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
BUCKET_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
BUCKET_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", "--x-s3", "--table-s3", ".mrap")
REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]+$")
ARN_PARTITION = {"cn": "aws-cn", "us-gov": "aws-us-gov"}


def describe(value: Any) -> str:
    """How a value reads in a message: its type as YAML calls it, and the value."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"the number {value}"
    if isinstance(value, float):
        return f"the number {value!r} (YAML reads an unquoted 17.10 as 17.1: quote it)"
    if isinstance(value, str):
        return f"the string {str(value)!r}"
    if isinstance(value, dict):
        return f"a mapping {dict(value)!r}"[:300]
    if isinstance(value, list | tuple):
        return f"a list {list(value)!r}"[:300]
    return f"{type(value).__name__} {value!r}"[:300]


def partition_of(region: str) -> str:
    return next((p for prefix, p in ARN_PARTITION.items() if region.startswith(prefix + "-")), "aws")


# --- kinds: AWS value formats. Each returns what is wrong with a value of the right base type, or None.


def kind_ipv4_network(value: str, rule: dict, lookup: Lookup) -> str | None:
    if "/" not in value:
        return "must be an IPv4 network in CIDR form (address/prefix)"
    try:
        network = ipaddress.IPv4Network(value, strict=True)
    except ValueError as err:
        return f"is not an IPv4 network ({err})"
    for refused, why in REFUSED_NETWORKS.items():
        if network.overlaps(ipaddress.IPv4Network(refused)):
            return f"lies in the {why} range {refused}, which AWS does not allow in a VPC"
    low, high = rule.get("prefix", (0, 32))
    if not low <= network.prefixlen <= high:
        return f"must have a prefix from /{low} to /{high}"
    return None


def kind_ipv4_source(value: str, rule: dict, lookup: Lookup) -> str | None:
    """A source range for a security group rule: any IPv4 network (0.0.0.0/0 included)."""
    try:
        if "/" not in value:
            raise ValueError(value)
        ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        return "must be an IPv4 network in CIDR form without host bits, such as 203.0.113.0/24 or 0.0.0.0/0"
    return None


def kind_subnets(value: list, rule: dict, lookup: Lookup) -> str | None:
    """Explicit subnet CIDRs: none (planned from the VPC) or one per AZ, inside the VPC, not overlapping."""
    if not value:
        return None
    count, vpc_cidr = lookup(rule["count"]), lookup(rule["within"])
    if isinstance(count, int) and len(value) != count:
        return f"must list exactly {rule['count']} ({count}) networks, one per AZ, or none"
    try:
        vpc = ipaddress.IPv4Network(vpc_cidr)
    except ValueError:
        vpc = None  # reported on the VPC variable
    others = [c for name in rule.get("apart_from", []) for c in (lookup(name) or []) if isinstance(c, str)]
    networks = []
    for cidr in value:
        problem = kind_ipv4_network(cidr, {"prefix": (16, 28)}, lookup)
        if problem:
            return f"{cidr!r} {problem}"
        network = ipaddress.IPv4Network(cidr)
        if vpc is not None and not network.subnet_of(vpc):
            return f"{cidr!r} lies outside {rule['within']} {vpc_cidr}"
        clash = [n for n in networks if n.overlaps(network)]
        clash += [c for c in others if _overlaps(c, network)]
        if clash:
            return f"{cidr!r} overlaps {str(clash[0])!r}"
        networks.append(network)
    return None


def _overlaps(cidr: str, network: ipaddress.IPv4Network) -> bool:
    try:
        return ipaddress.IPv4Network(cidr).overlaps(network)
    except ValueError:
        return False


def kind_fargate_cpu(value: int, rule: dict, lookup: Lookup) -> str | None:
    if value not in FARGATE_MEMORY:
        return f"must be a Fargate CPU size: one of {sorted(FARGATE_MEMORY)}"
    return None


def kind_fargate_memory(value: int, rule: dict, lookup: Lookup) -> str | None:
    cpu = lookup(rule["cpu"])
    allowed = FARGATE_MEMORY.get(cpu) if isinstance(cpu, int) and not isinstance(cpu, bool) else None
    if allowed is None:
        return None  # reported on the CPU variable
    if value not in allowed:
        shown = ", ".join(str(m) for m in allowed) if len(allowed) <= 4 else f"{allowed[0]} to {allowed[-1]}"
        return f"is not a Fargate memory size for {rule['cpu']} {cpu}: allowed {shown} MiB"
    return None


def kind_image(value: str, rule: dict, lookup: Lookup) -> str | None:
    digest = value.rpartition("@")[2] if "@" in value else None
    if digest is not None and not re.fullmatch(r"sha256:[a-f0-9]{64}", digest):
        return f"has a malformed digest {digest!r}: a digest is sha256: and 64 lower-case hex digits"
    if not _ECS.container_image(value):
        return "must be an image reference with an explicit tag or digest such as apache/airflow:3.3.2 (not :latest)"
    return None


def kind_bucket(value: str, rule: dict, lookup: Lookup) -> str | None:
    if not BUCKET.match(value):
        return "must be 3-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit"
    if value.startswith(BUCKET_RESERVED_PREFIXES) or value.endswith(BUCKET_RESERVED_SUFFIXES):
        return f"uses a prefix or suffix S3 reserves ({', '.join(BUCKET_RESERVED_PREFIXES + BUCKET_RESERVED_SUFFIXES)})"
    for other in rule.get("distinct_from", []):
        if lookup(other) == value:
            return f"is the same bucket as {other}: the stack needs two buckets (the DAG bucket is emptied at teardown)"
    return None


def kind_region(value: str, rule: dict, lookup: Lookup) -> str | None:
    if not REGION.match(value):
        return "must be an AWS region name such as us-east-1 or eu-west-1"
    try:
        from botocore.loaders import create_loader  # noqa: PLC0415 - only where the controller has botocore
    except ImportError:
        return None
    # botocore's endpoint data, not a session: a session would read (and trip over) AWS_PROFILE here.
    partitions = create_loader().load_data("endpoints")["partitions"]
    known = {region for partition in partitions for region in partition["regions"]}
    if value not in known:
        return "is not a region this botocore knows (look for a typo, or update botocore for a new region)"
    return None


def kind_tags(value: dict, rule: dict, lookup: Lookup) -> str | None:
    """Tags as the Resource Groups Tagging API takes them: <= 50 per resource, key 1-128, value 0-256 chars."""
    room = 50 - rule.get("reserved", 0)
    if len(value) > room:
        return f"has {len(value)} tags; at most {room} fit beside the stack's own"
    for key, text in value.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 128 or not TAG_TEXT.match(key):
            return f"key {key!r} must be 1-128 letters, digits, spaces or _ . : / = + - @"
        if key.lower().startswith("aws:") or key.startswith("airflow-ecs:"):
            return f"key {key!r} starts with a reserved prefix (aws: is AWS's, airflow-ecs: the stack's)"
        if not isinstance(text, str):
            return f"value of {key!r} is {describe(text)}: tag values are strings (quote it in YAML)"
        if len(text) > 256 or not TAG_TEXT.match(text):
            return f"value of {key!r} must be at most 256 letters, digits, spaces or _ . : / = + - @"
    return None


def kind_environment(value: dict, rule: dict, lookup: Lookup) -> str | None:
    for key, text in value.items():
        if not isinstance(key, str) or not re.match(r"^[A-Z_][A-Z0-9_]*$", key):
            return f"key {key!r} must be an upper-case environment variable name"
        if re.search(r"PASSWORD|SECRET|TOKEN|FERNET|SQL_ALCHEMY_CONN|BROKER_URL|RESULT_BACKEND", key):
            return f"key {key!r} looks like a credential: secrets go through Secrets Manager, not plain environment"
        if not isinstance(text, str):
            return f"value of {key!r} is {describe(text)}: ECS environment values are strings (quote it in YAML)"
    return None


def kind_acm_arn(value: str, rule: dict, lookup: Lookup) -> str | None:
    if value == "":
        return None
    region = lookup(rule["region"])
    pattern = rf"^arn:{partition_of(region)}:acm:{re.escape(region)}:[0-9]{{12}}:certificate/[0-9a-f-]{{36}}$"
    if not re.match(pattern, value):
        example = f"arn:{partition_of(region)}:acm:{region}:<account>:certificate/<id>"
        return f"must be empty or an ACM certificate ARN in {rule['region']} {region}: {example}"
    return None


def kind_kms_key(value: str, rule: dict, lookup: Lookup) -> str | None:
    if value == "":
        return None
    key_id = r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})"
    forms = [
        rf"^{key_id}$",
        r"^alias/[A-Za-z0-9/_-]{1,250}$",
        rf"^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{{12}}:(key/{key_id}|alias/.+)$",
    ]
    if not any(re.match(form, value) for form in forms):
        return "must be empty or a KMS key id, key ARN, alias/<name> or alias ARN"
    if value.startswith("alias/aws/"):
        return "names an AWS managed key: leave it empty for Secrets Manager's own key, or name a customer managed key"
    return None


def kind_dns_name(value: str, rule: dict, lookup: Lookup) -> str | None:
    label = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
    if len(value) > 253 or not re.match(rf"^({label}\.)+[a-z]{{2,63}}$", value):
        return "must be a lower-case DNS domain name such as airflow.internal"
    return None


def kind_url_path(value: str, rule: dict, lookup: Lookup) -> str | None:
    if not re.match(r"^/[\x21-\x7e]{0,1023}$", value):
        return "must be an absolute path of at most 1024 printable characters without spaces, such as /health"
    return None


def kind_retention_days(value: int, rule: dict, lookup: Lookup) -> str | None:
    allowed = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)
    if value not in allowed:
        return f"must be one of the CloudWatch Logs retention periods {list(allowed)}"
    return None


KINDS: dict[str, Callable[[Any, dict, Lookup], str | None]] = {
    "acm_arn": kind_acm_arn,
    "bucket": kind_bucket,
    "dns_name": kind_dns_name,
    "environment": kind_environment,
    "fargate_cpu": kind_fargate_cpu,
    "fargate_memory": kind_fargate_memory,
    "image": kind_image,
    "ipv4_network": kind_ipv4_network,
    "ipv4_source": kind_ipv4_source,
    "kms_key": kind_kms_key,
    "region": kind_region,
    "retention_days": kind_retention_days,
    "subnets": kind_subnets,
    "tags": kind_tags,
    "url_path": kind_url_path,
}

TYPES = {
    "bool": (bool, "a boolean (true or false, unquoted)"),
    "int": (int, "a whole number (unquoted)"),
    "str": (str, "a string"),
    "list": (list, "a list"),
    "dict": (dict, "a mapping"),
}
RULE_KEYS = {
    "type", "kind", "min", "max", "choices", "pattern", "text", "min_length", "max_length", "elements",
    "unique", "ge", "le_plus", "ge_times", "nullable", "cpu", "count", "within", "apart_from", "distinct_from",
    "region", "reserved", "prefix", "multiple_of",
}  # fmt: skip


def type_problem(value: Any, rule: dict) -> str | None:
    if value is None and rule.get("nullable"):
        return None
    base, wording = TYPES[rule["type"]]
    ok = isinstance(value, base) and not (base is int and isinstance(value, bool))
    if base is list:
        ok = isinstance(value, list | tuple)
    if not ok:
        hint = ""
        if isinstance(value, str) and rule["type"] in ("bool", "int", "list", "dict"):
            hint = "; on the command line pass it as JSON, e.g. -e '{\"name\": value}'"
        return f"must be {wording}{hint}"
    return None


def check(value: Any, rule: dict, lookup: Lookup) -> str | None:
    """What is wrong with `value` under `rule`, or None."""
    unknown = set(rule) - RULE_KEYS
    if unknown:
        raise AnsibleError(f"validate_inputs: unknown rule keys {sorted(unknown)}")
    problem = type_problem(value, rule)
    if problem or value is None:
        return problem
    if "choices" in rule and value not in rule["choices"]:
        return f"must be one of {rule['choices']}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "min" in rule and value < rule["min"]:
            return f"must be at least {rule['min']}"
        if "max" in rule and value > rule["max"]:
            return f"must be at most {rule['max']}"
        if "multiple_of" in rule and value % rule["multiple_of"]:
            return f"must be a multiple of {rule['multiple_of']}"
    if "ge" in rule:
        other = lookup(rule["ge"])
        if isinstance(other, int) and value < other:
            return f"must be at least {rule['ge']} ({other})"
    if "ge_times" in rule:
        name, factor = rule["ge_times"]
        other = lookup(name)
        if isinstance(other, int) and value < other * factor:
            return f"must be at least {factor} x {name} ({other * factor:g})"
    if "le_plus" in rule:
        name, extra = rule["le_plus"]
        other = lookup(name)
        if isinstance(other, int) and value > other + extra:
            return f"must be at most {name} + {extra} ({other + extra})"
    if isinstance(value, str | list | tuple | dict):
        if "min_length" in rule and len(value) < rule["min_length"]:
            return f"must have at least {rule['min_length']} {'characters' if isinstance(value, str) else 'items'}"
        if "max_length" in rule and len(value) > rule["max_length"]:
            return f"must have at most {rule['max_length']} {'characters' if isinstance(value, str) else 'items'}"
    if "pattern" in rule and not re.fullmatch(rule["pattern"], value):
        return f"must be {rule.get('text', 'of the form ' + rule['pattern'])}"
    if "elements" in rule:
        for item in value:
            problem = check(item, rule["elements"], lookup)
            if problem:
                return f"item {item!r} {problem}" if not problem.startswith("item ") else problem
        if rule.get("unique") and len(set(map(repr, value))) != len(value):
            return "must not list the same item twice"
    if "kind" in rule:
        return KINDS[rule["kind"]](value, rule, lookup)
    return None


class ActionModule(ActionBase):
    """validate_inputs: {variables: {name: rule, ...}}"""

    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict | None = None) -> dict:
        result = super().run(tmp, task_vars)
        rules = self._task.args.get("variables") or {}
        cache: dict[str, Any] = {}
        errors: list[str] = []

        def lookup(name: str) -> Any:
            if name not in cache:
                try:
                    cache[name] = self._templar.evaluate_expression(name)
                except AnsibleError:
                    cache[name] = None
            return cache[name]

        for name, rule in rules.items():
            try:
                value = self._templar.evaluate_expression(name)
            except AnsibleError as err:
                errors.append(f"{name}: cannot be read ({str(err).splitlines()[0]})")
                continue
            cache[name] = value
            problem = check(value, rule, lookup)
            if problem:
                verb = problem.split(" ", 1)[0] in ("must", "is", "lies", "has", "uses")
                errors.append(f"{name}: got {describe(value)}; {'it ' if verb else ''}{problem}")
        if errors:
            result.update(failed=True, msg="\n".join(["Invalid input, nothing was changed:", *errors]))
        else:
            result.update(changed=False, msg=f"{len(rules)} variables checked")
        return result
