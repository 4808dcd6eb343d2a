"""Every molecule scenario passes `molecule test` (molecule/README.md says what each one proves).

The scenarios start their own endpoints (moto on a free port; LocalStack in host mode, installed on
first use), so each is its own xdist group and they may run side by side. LocalStack needs Python 3.13: without
it the localstack scenario fails with the installer's message rather than being skipped.
"""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest
from ansible_runner import BIN, ROOT

SCENARIOS = ["default", "network", "service_discovery", "localstack"]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.mark.parametrize(
    "scenario", [pytest.param(name, marks=pytest.mark.xdist_group(f"molecule-{name}")) for name in SCENARIOS]
)
def test_molecule_scenario(scenario, tmp_path):
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "MOLECULE_PROJECT_DIRECTORY": str(ROOT),
        # A private working directory per run: two checkouts with the same name never share one.
        "MOLECULE_EPHEMERAL_DIRECTORY": str(tmp_path / "ephemeral"),
        "MOLECULE_COMMAND_BORDERS": "false",
        "ANSIBLE_FORCE_COLOR": "0",
        "NO_COLOR": "1",
        "PYTHONWARNINGS": "ignore",
    }
    log = tmp_path / "molecule.log"
    started = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.run(
            [str(BIN / "molecule"), "test", "-s", scenario],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=3600,
            check=False,
        )
    output = ANSI.sub("", log.read_text())
    failed = [line.strip() for line in output.splitlines() if "Executed: Failed" in line]
    assert proc.returncode == 0, (
        f"molecule test -s {scenario} exited {proc.returncode} after {time.monotonic() - started:.0f} s; "
        f"failed: {failed[:1]}; full log {log}\n{output[-6000:]}"
    )
