"""Run ansible-playbook / single modules from tests and read their results."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from emulator import endpoint_env

from embedded_aws.weather import Weather, WeatherProxy

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# Inventory and connection for a run on this machine with this interpreter (it has boto3), outside the inventories.
LOCALHOST_ARGS = ["-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}"]
RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)


@dataclass
class PlayResult:
    returncode: int
    output: str

    @property
    def recap(self) -> dict[str, int]:
        matches = list(RECAP.finditer(self.output))
        assert matches, f"no PLAY RECAP in output:\n{self.output[-3000:]}"
        last = matches[-1]
        return {key: int(last.group(key)) for key in ("ok", "changed", "unreachable", "failed")}

    @property
    def changed(self) -> int:
        return self.recap["changed"]


def upgraded_recipe(directory: Path, note: str = "# upgraded by a test\n") -> Path:
    """A copy of image/ in `directory` whose Dockerfile ends with `note`: a new recipe hash (so a new image tag
    and build, and every Airflow service rolls onto it), the same packages."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("Dockerfile", "requirements.txt", "requirements.lock"):
        shutil.copy(ROOT / "image" / name, directory / name)
    (directory / "Dockerfile").write_text((directory / "Dockerfile").read_text() + note)
    return directory


def base_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
        "PYTHONWARNINGS": "ignore",
    }
    env.update(extra or {})
    return env


def run_playbook(
    playbook: str,
    env: dict[str, str],
    extra_vars: dict | None = None,
    args: list[str] | None = None,
    timeout: int = 900,
) -> PlayResult:
    """Run a playbook from the project root; returns its exit code and full output."""
    cmd = [str(BIN / "ansible-playbook"), str(ROOT / playbook)]
    if extra_vars:
        cmd += ["--extra-vars", json.dumps(extra_vars)]
    cmd += args or []
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        env=base_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return PlayResult(proc.returncode, proc.stdout + proc.stderr)


def run_module(
    module: str,
    module_args: dict,
    env: dict[str, str],
    check: bool = False,
    diff: bool = False,
) -> dict:
    """Run one module (ours from library/ or a collection's) on localhost and return its result."""
    return run_module_with_output(module, module_args, env, check, diff)[0]


def run_module_with_output(
    module: str,
    module_args: dict,
    env: dict[str, str],
    check: bool = False,
    diff: bool = False,
) -> tuple[dict, str]:
    """Like run_module, but also return everything ansible printed (stdout + stderr)."""
    cmd = [str(BIN / "ansible"), "localhost", *LOCALHOST_ARGS, "-m", module]
    if module_args:
        cmd += ["-a", json.dumps(module_args)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        env=base_env(
            {
                # One module per ansible process: starting a Mitogen interpreter costs more than it saves
                # (2.3 s against 1.6 s a run); playbooks, and tests/unit/test_strategy.py, run through Mitogen.
                "ANSIBLE_STRATEGY": "linear",
                **env,
                "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
                "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            }
        ),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"no JSON from ansible:\n{proc.stdout}\n{proc.stderr}") from exc
    return data["plays"][0]["tasks"][0]["hosts"]["localhost"], proc.stdout + proc.stderr


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return children


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants: ansible's task workers run in sessions of their own."""
    children, tree, todo = _children(), [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += children.get(current, [])
    for member in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, 9)


def run_playbook_until(
    playbook: str,
    env: dict[str, str],
    marker: str,
    *,
    occurrence: int = 1,
    delay: float = 0.0,
    action: Callable[[], None] | None = None,
    extra_vars: dict | None = None,
    timeout: int = 900,
) -> PlayResult:
    """Run a playbook and interfere once `marker` has appeared `occurrence` times in its output (+ `delay` s).

    Without `action` the playbook is killed (SIGKILL to it and every descendant), as a lost CI runner or
    Ctrl-C twice would; with `action` that is called instead (e.g. stop the emulator) and the playbook runs
    on to its end. Fails when the playbook ends before the marker.
    """
    cmd = [str(BIN / "ansible-playbook"), str(ROOT / playbook)]
    if extra_vars:
        cmd += ["--extra-vars", json.dumps(extra_vars)]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=base_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen: list[str] = []
    try:
        assert proc.stdout is not None
        count = 0
        for line in proc.stdout:
            seen.append(line)
            count += marker in line
            if count >= occurrence:
                break
        else:
            raise AssertionError(f"{playbook} ended before {marker!r} x{occurrence}:\n{''.join(seen)[-3000:]}")
        time.sleep(delay)
        if action is None:
            kill_tree(proc.pid)
        else:
            action()
        seen.extend(proc.stdout)
    finally:
        if proc.poll() is None and action is None:
            kill_tree(proc.pid)
        proc.wait(timeout=timeout)
    return PlayResult(proc.returncode, "".join(seen))


def run_counted(module: str, proxy: WeatherProxy, args: dict, **kwargs) -> tuple[dict, dict[str, int]]:
    """One module run through a counting weather proxy: its result and the AWS calls it made, by operation."""
    proxy.weather.reset()
    result = run_module(module, args, env=endpoint_env(proxy.url), **kwargs)
    return result, proxy.weather.stats()["calls"]


class CountedModule:
    """`module` run through a counting weather proxy in front of `url`: `run` returns its result and calls."""

    def __init__(self, module: str, url: str) -> None:
        self.module = module
        self.proxy = WeatherProxy(url, Weather(latency_ms=0))

    def run(self, args: dict, **kwargs) -> tuple[dict, dict[str, int]]:
        return run_counted(self.module, self.proxy, args, **kwargs)

    def close(self) -> None:
        self.proxy.close()
