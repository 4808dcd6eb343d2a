#!/usr/bin/env python3
"""Estimate the monthly AWS bill of the stack from the project's own variables (`make cost`).

Usage: .venv/bin/python scripts/cost.py [-i inventories/aws] [-e name=value | -e @file.yml | -e '{json}']...
                                        [--prices cost/prices-us-east-1.yml] [--json]

The variables are read the way Ansible layers them for the play's host (lowest precedence first):
role defaults, the inventory file's group vars, inventory group_vars/all, the project's group_vars/all,
inventory group_vars/airflow_ecs, the project's group_vars/airflow_ecs, the inventory file's host vars,
inventory and project host_vars/localhost, role vars, then --extra-vars. Values the estimate needs are
literals (sizes, counts, classes, flags); a reference ("{{ other_variable }}", "{{ not flag }}",
"{{ flag | bool }}") is followed, any other template is refused with the variable's name (pass it with
-e instead). The model itself (cost/model.py) is the one the deploy summary uses.

Prints the breakdown, the total, the ratio to MWAA's smallest environment, the idle-hour cost, the egress
options side by side and what each lever (a variable with a cheaper or dearer value) changes.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # cost/ (the model), before scripts/ where this file is cost.py too
from cost.model import (  # noqa: E402
    CostError,
    Estimate,
    Lever,
    Variables,
    estimate,
    levers,
    read_yaml,
)

DEFAULT_PRICES = ROOT / "cost" / "prices-us-east-1.yml"
DEFAULT_INVENTORY = "inventories/emulator"
GROUP = "airflow_ecs"  # the play's group (hosts: airflow_ecs); its parent is `all`
HOST = "localhost"
__all__ = ["CostError", "Estimate", "Variables", "estimate", "levers", "load_variables", "main", "read_yaml"]


# --- reading variables ------------------------------------------------------------------------------


def vars_files(base: Path, kind: str, name: str) -> dict[str, Any]:
    """<base>/<kind>/<name>.yml|.yaml|.json, or every file of <base>/<kind>/<name>/ in name order (as Ansible)."""
    merged: dict[str, Any] = {}
    target = base / kind / name
    candidates = [target.with_name(name + ext) for ext in ("", ".yml", ".yaml", ".json")]
    for path in candidates:
        if path.is_file():
            merged.update(read_yaml(path))
    if target.is_dir():
        for path in sorted(target.rglob("*")):
            if path.is_file() and path.suffix in {".yml", ".yaml", ".json"}:
                merged.update(read_yaml(path))
    return merged


def inventory_file_vars(inventory: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Group vars (all, then the play's group) and host vars written inside a YAML inventory file."""
    group_vars: dict[str, Any] = {}
    host_vars: dict[str, Any] = {}
    files = [inventory] if inventory.is_file() else sorted(inventory.glob("*.y*ml"))
    for path in files:
        data = read_yaml(path)
        top = data.get("all") or {}
        group_vars.update(top.get("vars") or {})
        group = (top.get("children") or {}).get(GROUP) or {}
        group_vars.update(group.get("vars") or {})
        host_vars.update(((group.get("hosts") or {}).get(HOST)) or {})
    return group_vars, host_vars


def role_files(root: Path, kind: str) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in sorted((root / "roles").glob(f"*/{kind}/main.yml")):
        merged.update(read_yaml(path))
    return merged


def parse_extra_vars(items: list[str], root: Path = ROOT) -> dict[str, Any]:
    """-e values as ansible-playbook takes them: name=value pairs (strings), @file, or a JSON/YAML mapping."""
    merged: dict[str, Any] = {}
    for item in items:
        text = item.strip()
        if text.startswith("@"):
            path = Path(text[1:])
            merged.update(read_yaml(path if path.is_absolute() else root / path))
        elif text.startswith(("{", "[")):
            data = yaml.safe_load(text)
            if not isinstance(data, dict):
                raise CostError(f"extra vars {item!r} are not a mapping")
            merged.update(data)
        else:
            for pair in shlex.split(text):
                name, sep, value = pair.partition("=")
                if not sep:
                    raise CostError(f"extra vars {pair!r} are not name=value")
                merged[name] = value
    return merged


def variable_layers(root: Path, inventory: str, extra_vars: list[str] | None = None) -> list[tuple[str, dict]]:
    """Every source of variables for the play's host, lowest precedence first."""
    inv = Path(inventory) if Path(inventory).is_absolute() else root / inventory
    if not inv.exists():
        raise CostError(f"inventory {inventory} does not exist")
    inv_dir = inv if inv.is_dir() else inv.parent
    file_group_vars, file_host_vars = inventory_file_vars(inv)
    return [
        ("role defaults", role_files(root, "defaults")),
        ("inventory file group vars", file_group_vars),
        ("inventory group_vars/all", vars_files(inv_dir, "group_vars", "all")),
        ("project group_vars/all", vars_files(root, "group_vars", "all")),
        (f"inventory group_vars/{GROUP}", vars_files(inv_dir, "group_vars", GROUP)),
        (f"project group_vars/{GROUP}", vars_files(root, "group_vars", GROUP)),
        ("inventory file host vars", file_host_vars),
        (f"inventory host_vars/{HOST}", vars_files(inv_dir, "host_vars", HOST)),
        (f"project host_vars/{HOST}", vars_files(root, "host_vars", HOST)),
        ("role vars", role_files(root, "vars")),
        ("extra vars", parse_extra_vars(extra_vars or [], root)),
    ]


def load_variables(root: Path, inventory: str, extra_vars: list[str] | None = None) -> dict[str, Any]:
    """The effective variables: later layers replace earlier ones (Ansible's default hash_behaviour=replace)."""
    merged: dict[str, Any] = {}
    for _, layer in variable_layers(root, inventory, extra_vars):
        merged.update(layer)
    return merged


# --- output ---------------------------------------------------------------------------------------------


def table(header: tuple[str, str, str], *sections: list[tuple[str, str, str]]) -> list[str]:
    """Item and detail columns left-aligned, the amount right-aligned; a rule around the header and
    between sections."""
    rows = [header, *(row for section in sections for row in section)]
    widths = [max(len(row[0]) for row in rows), max(len(row[1]) for row in rows)]
    widths.append(max(10, *(len(row[2]) for row in rows)))
    rule = "-" * (sum(widths) + 4)

    def line(row: tuple[str, str, str]) -> str:
        return f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}".rstrip()

    out = [rule, line(header), rule]
    for section in sections:
        out += [*map(line, section), rule]
    return out


def render(est: Estimate, inventory: str, prices_path: Path, prices: dict[str, Any], lever_list: list[Lever]) -> str:
    rows = [
        (line.item, line.detail, f"{line.monthly:.2f}" if line.in_total else f"({line.monthly:.2f})")
        for line in est.lines
    ]
    totals = [("Total", "", f"{est.total:.2f}")]
    if est.at_max_extra:
        totals.append(("Total at the maximum counts", "", f"{est.total + est.at_max_extra:.2f}"))
    per_run = ", ".join(line.item.removeprefix("Fargate ") for line in est.lines if line.per_run and line.in_total)
    totals.append(
        ("Always on (no DAG running)", f"all but {per_run}" if per_run else "every line", f"{est.always_on:.2f}")
    )
    for name, monthly in sorted(est.mwaa.items(), key=lambda item: item[1]):
        totals.append((f"MWAA {name} environment", "for comparison", f"{monthly:.2f}"))
    out = [
        f"Monthly cost estimate: {inventory} (aws_region {est.region}); "
        f"{prices.get('region')} list prices of {prices.get('as_of')} from {prices_path.name}",
        *table(("Item", "Detail", "USD/month"), rows, totals),
    ]
    smallest, smallest_monthly = est.mwaa_smallest
    if smallest_monthly:
        difference = smallest_monthly - est.total
        out.append(
            f"Ratio to MWAA's smallest environment ({smallest}, {smallest_monthly:.2f} USD/month): "
            f"{est.mwaa_ratio:.2f} ({abs(difference):.2f} USD/month {'less' if difference >= 0 else 'more'})."
        )
    out.append(
        f"Idle hour: {est.idle_hour:.3f} USD (what one hour costs with no DAG running: the always-on lines / "
        f"{est.hours_per_month:g} h)."
    )

    out += ["", "Egress from the private subnets (a comparison, not in the total; * = deployed):"]
    out += table(
        ("  Option", "Detail", "USD/month"),
        [
            (("* " if option.chosen else "  ") + option.option, option.detail, f"{option.monthly:.2f}")
            for option in est.egress_options
        ],
    )
    out += [
        f"Interface endpoints priced: {', '.join(est.interface_endpoints)} (S3 through its free gateway endpoint).",
        "Endpoints alone give the AWS APIs only: the ETL's internet egress (books_etl's site, Docker Hub images)",
        "still needs a NAT gateway or instance.",
    ]

    if lever_list:
        out += ["", "Levers (the total with one variable changed; make cost ARGS='-e name=value'):"]
        out += table(
            ("Variable", "Now -> tried", "USD/month"),
            [
                (
                    lever.variable,
                    f"{json.dumps(lever.current)} -> {json.dumps(lever.alternative)}",
                    f"{lever.delta:+.2f}" if lever.delta is not None else "n/a",
                )
                for lever in lever_list
            ],
        )
        out += [f"n/a {lever.variable}: {lever.problem}" for lever in lever_list if lever.delta is None]

    out += [""] + [f"note: {note}" for note in est.notes]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-i", "--inventory", default=DEFAULT_INVENTORY)
    parser.add_argument("-e", "--extra-vars", action="append", default=[], metavar="VARS")
    parser.add_argument("--prices", type=Path, default=DEFAULT_PRICES)
    parser.add_argument("--json", action="store_true", help="print the estimate as JSON")
    args = parser.parse_args(argv)
    try:
        prices = read_yaml(args.prices)
        variables = Variables(load_variables(ROOT, args.inventory, args.extra_vars))
        est = estimate(variables, prices)
        lever_list = levers(variables, prices, est.total)
    except CostError as exc:
        hint = " (pass it with -e name=value)" if "is not defined" in str(exc) else ""
        print(f"cost: {exc}{hint}", file=sys.stderr)
        return 2
    if args.json:
        document = {
            "inventory": args.inventory,
            "prices": {"file": args.prices.name, "region": prices.get("region"), "as_of": prices.get("as_of")},
            **asdict(est),
            **est.summary(),
            "levers": [asdict(lever) for lever in lever_list],
        }
        print(json.dumps(document, indent=2))
    else:
        print(render(est, args.inventory, args.prices, prices, lever_list))
    return 0


if __name__ == "__main__":
    sys.exit(main())
