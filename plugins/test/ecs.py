"""Jinja tests for ECS inputs: `(cpu, memory) is fargate_size`, `image is container_image`."""

from __future__ import annotations

import re

DOCUMENTATION = """
name: ecs
short_description: ECS input tests for airflow-ecs
description: fargate_size (a CPU/memory pair Fargate accepts) and container_image (name:tag, @digest or :tag@digest).
"""

# CPU units -> (lowest MiB, highest MiB, step MiB), from the Fargate task size table.
FARGATE_SIZES = {
    256: ((512, 1024, 2048),),
    512: (range(1024, 4096 + 1, 1024),),
    1024: (range(2048, 8192 + 1, 1024),),
    2048: (range(4096, 16384 + 1, 1024),),
    4096: (range(8192, 30720 + 1, 1024),),
    8192: (range(16384, 61440 + 1, 4096),),
    16384: (range(32768, 122880 + 1, 8192),),
}

IMAGE = re.compile(
    r"^(?:[a-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(?:@sha256:[a-f0-9]{64})?|@sha256:[a-f0-9]{64})$"
)


def fargate_size(pair: object) -> bool:
    """True when (cpu, memory) is a task size Fargate accepts, e.g. (1024, 2048)."""
    try:
        cpu, memory = (int(v) for v in pair)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return False
    return any(memory in allowed for allowed in FARGATE_SIZES.get(cpu, ()))


def container_image(value: object) -> bool:
    """True for an image reference with an explicit tag or digest (no implicit :latest)."""
    return isinstance(value, str) and bool(IMAGE.match(value)) and not value.endswith(":latest")


class TestModule:
    def tests(self) -> dict:
        return {"fargate_size": fargate_size, "container_image": container_image}
