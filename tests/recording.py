"""A moto server with moto's request recorder on, for tests that count the EC2 actions a run sends.

The recorder writes every request, body included, to a file; the EC2 query API names its action in the body.
"""

from __future__ import annotations

import base64
import json
import urllib.request
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from emulator import Emulator, start_emulator


def start_recording_emulator(folder: Path) -> Emulator:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOTO_ENABLE_RECORDING", "true")
        patch.setenv("MOTO_RECORDER_FILEPATH", str(folder / "recording.jsonl"))
        return start_emulator(folder / "moto.log")


def reset_recording(emulator: Emulator) -> None:
    request = urllib.request.Request(f"{emulator.url}/moto-api/recorder/reset-recording", method="POST")
    urllib.request.urlopen(request, timeout=30).read()


def recorded_actions(emulator: Emulator) -> Counter[str]:
    """The EC2 actions the server received since the last reset_recording."""
    with urllib.request.urlopen(f"{emulator.url}/moto-api/recorder/download-recording", timeout=30) as response:
        lines = response.read().decode().splitlines()
    actions: Counter[str] = Counter()
    for line in lines:
        entry = json.loads(line)
        body = entry.get("body") or ""
        if entry.get("body_encoded"):
            body = base64.b64decode(body).decode()
        actions.update(parse_qs(body).get("Action", ["?"]))
    return actions
