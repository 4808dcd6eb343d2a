"""Lookup plugin: the stack's estimated monthly AWS bill, in one sentence, from the play's own variables.

The deploy summary (roles/airflow_nodes) prints `lookup('cost_estimate')`. The plugin reads the variables
the estimate needs from the task's variables, templates each value with the task's templar (so the play's
own inventory, extra vars and expressions count, and the outputs of other roles are never touched), and
prices them with the model `make cost` uses (cost/model.py) at cost/prices-<aws_region>.yml. It runs on
the controller (check mode included) and never fails the play: without prices for the region it says so
and gives the us-east-1 figure, and an estimate it cannot make is reported with its reason.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

# The project root (plugins/lookup/ is two levels down, also through the lookup_plugins link).
_PROJECT = str(Path(__file__).resolve().parents[2])
if _PROJECT not in sys.path:
    sys.path.append(_PROJECT)
from cost import model  # noqa: E402

DOCUMENTATION = """
name: cost_estimate
short_description: The stack's estimated monthly AWS bill, one sentence for the deploy summary
description:
  - Prices the play's own variables with the model of C(make cost) (cost/model.py) and the list prices in
    cost/prices-<aws_region>.yml; without prices for the region, at us-east-1 list prices, saying so.
  - 'Never fails: an estimate it cannot make reads "Estimated cost: not available (<reason>)".'
options: {}
"""

EXAMPLES = """
- name: Print the estimate
  ansible.builtin.debug:
    msg: "{{ lookup('cost_estimate') }}"
"""

RETURN = """
_raw:
  description: 'One sentence, for example "Estimated cost: $118.40/month at us-east-1 list prices (make cost
    for the breakdown)".'
  type: list
  elements: str
"""


class TemplatedVariables(model.Variables):
    """The task's variables, each value the estimate reads templated by the task's templar."""

    def __init__(self, data: dict[str, Any], templar: Any) -> None:
        super().__init__(data)
        self._templar = templar

    def resolve(self, name: str, value: Any = model.MISSING) -> Any:
        if value is model.MISSING:
            if name not in self.data:
                raise model.CostError(f"variable {name} is not defined")
            value = self.data[name]
        try:
            return self._templar.template(value)
        except AnsibleError as exc:
            raise model.CostError(f"variable {name} cannot be templated ({str(exc).splitlines()[0]})") from None


def sentence(variables: model.Variables) -> str:
    region = model.as_str(variables, "aws_region")
    path = model.prices_file(region)
    prefix = "Estimated cost: "
    if path is None:
        prefix += f"no price data for {region}; "
        path = model.prices_file(model.DEFAULT_PRICES_REGION)
        if path is None:
            return prefix.rstrip("; ")
    est = model.estimate(variables, model.read_yaml(path))
    return prefix + model.summary_line(est)


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any) -> list[str]:
        try:
            return [sentence(TemplatedVariables(variables or {}, self._templar))]
        except Exception as exc:  # a summary line must never fail the deploy
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return [f"Estimated cost: not available ({reason})"]
