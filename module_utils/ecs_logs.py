# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The last lines a stopped ECS task's container wrote to its awslogs stream (for failure messages)."""

from __future__ import annotations

import contextlib
from typing import Any

with contextlib.suppress(ImportError):  # a missing botocore is reported by AnsibleAWSModule
    from botocore.exceptions import BotoCoreError, ClientError

LOG_LINES = 15


def log_tail(logs: Any, task_definition: dict, container: str, task_id: str, lines: int = LOG_LINES) -> str:
    """`  | line` per log event of <prefix>/<container>/<task id>, or why there are none."""
    options = next(
        (
            c.get("logConfiguration", {}).get("options", {})
            for c in task_definition.get("containerDefinitions", [])
            if c["name"] == container
        ),
        {},
    )
    group, prefix = options.get("awslogs-group"), options.get("awslogs-stream-prefix")
    if not group:
        return "  (no awslogs configuration)"
    stream = f"{prefix}/{container}/{task_id}" if prefix else task_id
    try:
        events = logs.get_log_events(logGroupName=group, logStreamName=stream, limit=lines, startFromHead=False)
    except (BotoCoreError, ClientError) as e:
        return f"  (log stream {group}/{stream} not readable: {e})"
    return "\n".join(f"  | {event['message'].rstrip()}" for event in events.get("events", [])) or "  (no log lines)"
