"""The tests' emulator: embedded_aws.launcher (one launcher for make, tests and molecule)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from embedded_aws.launcher import CREDENTIALS, REGION, Emulator, endpoint_env, free_port, start_emulator

__all__ = ["CREDENTIALS", "REGION", "Emulator", "endpoint_env", "free_port", "start_emulator"]
