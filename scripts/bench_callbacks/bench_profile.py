"""Ansible callback for scripts/bench.py: per-task wall time, module runs and emulator API calls, as JSON.

Enabled only by the benchmark (ANSIBLE_CALLBACK_PLUGINS=scripts/bench_callbacks,
ANSIBLE_CALLBACKS_ENABLED=bench_profile). Environment:
  BENCH_PROFILE_OUT  file the JSON report is written to at the end of the run
  BENCH_MOTO_LOG     the moto server's log; its access-log lines between two task starts are that task's API calls
"""

from __future__ import annotations

import json
import os
import re
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: bench_profile
type: aggregate
short_description: per-task time, module runs and AWS API calls for scripts/bench.py
description: Writes one JSON record per task to $BENCH_PROFILE_OUT when the playbook ends.
requirements: [enabled in callbacks_enabled]
"""

# One werkzeug access-log line per HTTP request; /moto-api/ is the emulator's own control API.
REQUEST = re.compile(r'"(?:GET|POST|PUT|DELETE|HEAD|PATCH|OPTIONS) (?!/moto-api)\S* HTTP/[\d.]+" \d{3}')

# Actions the controller runs itself: no module is shipped and no Python process is started for them.
CONTROLLER_ACTIONS = {
    "add_host",
    "assert",
    "debug",
    "fail",
    "group_by",
    "import_role",
    "import_tasks",
    "include_role",
    "include_tasks",
    "include_vars",
    "meta",
    "set_fact",
    "set_stats",
    "validate_argument_spec",
}


def short_action(action: str) -> str:
    return action.removeprefix("ansible.builtin.").removeprefix("ansible.legacy.")


class ApiLog:
    """Counts request lines appended to the moto log since the last call."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.offset = os.path.getsize(path) if path and os.path.exists(path) else 0
        self.partial = b""

    def new_requests(self) -> int:
        if not self.path:
            return 0
        with open(self.path, "rb") as log:
            log.seek(self.offset)
            data = log.read()
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        return sum(1 for line in lines if REQUEST.search(line.decode("utf-8", "replace")))


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_profile"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.out = os.environ.get("BENCH_PROFILE_OUT")
        self.api = ApiLog(os.environ.get("BENCH_MOTO_LOG"))
        self.tasks: list[dict] = []
        self.current: dict | None = None

    # --- task boundaries -------------------------------------------------------------------------
    def _close_current(self) -> None:
        calls = self.api.new_requests()
        if self.current is not None:
            self.current["seconds"] = round(time.monotonic() - self.current.pop("_start"), 3)
            self.current["api_calls"] = calls
            self.tasks.append(self.current)
            self.current = None

    @staticmethod
    def _top_role(task) -> str:
        """The play-level role a task runs for: an include_role's caller wins over the included role."""
        top = task._role.get_name() if task._role else ""
        node = task._parent
        while node is not None:
            parent_role = getattr(node, "_parent_role", None)
            if node.__class__.__name__ == "IncludeRole" and parent_role is not None:
                top = parent_role.get_name()
            node = getattr(node, "_parent", None)
        return top or "(play)"

    def _start(self, task) -> None:
        self._close_current()
        action = short_action(getattr(task, "resolved_action", None) or task.action)
        self.current = {
            "name": task.get_name(),
            "role": task._role.get_name() if task._role else "",
            "top_role": self._top_role(task),
            "action": action,
            "controller_only": action.rsplit(".", 1)[-1] in CONTROLLER_ACTIONS,
            "runs": 0,
            "changed": 0,
            "skipped": 0,
            "_start": time.monotonic(),
        }

    def v2_playbook_on_task_start(self, task, is_conditional) -> None:
        self._start(task)

    def v2_playbook_on_handler_task_start(self, task) -> None:
        self._start(task)

    # --- results: one run per executed loop item, or one for a task without a loop ---------------
    def _count(self, result, skipped: bool = False) -> None:
        if self.current is None:
            return
        if skipped:
            self.current["skipped"] += 1
            return
        self.current["runs"] += 1
        if result._result.get("changed"):
            self.current["changed"] += 1

    def _is_loop_summary(self, result) -> bool:
        return bool(result._task.loop) and "results" in result._result

    def v2_runner_on_ok(self, result) -> None:
        if not self._is_loop_summary(result):
            self._count(result)

    def v2_runner_on_failed(self, result, ignore_errors=False) -> None:
        if not self._is_loop_summary(result):
            self._count(result)

    def v2_runner_on_unreachable(self, result) -> None:
        self._count(result)

    def v2_runner_on_skipped(self, result) -> None:
        if not self._is_loop_summary(result):
            self._count(result, skipped=True)

    def v2_runner_item_on_ok(self, result) -> None:
        self._count(result)

    def v2_runner_item_on_failed(self, result) -> None:
        self._count(result)

    def v2_runner_item_on_skipped(self, result) -> None:
        self._count(result, skipped=True)

    # --- end of the run ---------------------------------------------------------------------------
    def v2_playbook_on_stats(self, stats) -> None:
        self._close_current()
        if self.out:
            with open(self.out, "w", encoding="utf-8") as report:
                json.dump({"tasks": self.tasks}, report, indent=1)
