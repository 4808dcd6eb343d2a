"""The one way to start the embedded emulator: make (scripts/emulator), the tests and molecule use it.

    python -m embedded_aws.launcher start|stop|status|reset|wait|deployer-env [--state-dir .state/emulator]

With the runtime on (the default; EMBEDDED_AWS_RUNTIME=off turns it off), `start` first builds the
Python environments of the stock Airflow image and of the project image recipe (cached; one line each
with the seconds taken), then the emulator runs the local ECS agent: every task and database it holds
runs on this machine, task roles get their credentials from the container credentials endpoint, and IAM
is enforced (the deployer keeps the admin key testing/testing). Infrastructure-only tests turn it off;
the emulator then only answers the API. `wait` waits until every service is steady and the ALB listener
has a healthy target, and prints the UI's local URL; `deployer-env --policy FILE` prints the key of a
deployer user holding exactly that policy, which `make deploy` and `make teardown` use instead of the
administrator key.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import boto3

from embedded_aws import cgroups, servers
from embedded_aws.forwarder import free_port
from embedded_aws.processes import alive, kill_leftovers

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
RUNTIME_SWITCH = "EMBEDDED_AWS_RUNTIME"  # on (default) | off


def runtime_wanted(runtime: bool | None = None) -> bool:
    if runtime is not None:
        return runtime
    value = os.environ.get(RUNTIME_SWITCH, "on").lower()
    if value not in ("on", "off"):
        raise SystemExit(f"{RUNTIME_SWITCH}: got {value!r}; it must be on or off")
    return value == "on"


def endpoint_env(url: str) -> dict[str, str]:
    """Environment for a child process (ansible-playbook, boto3) that sends every AWS call to `url`."""
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }


def check_prerequisites() -> None:
    """The runtime runs PostgreSQL as the postgres user and RabbitMQ from Debian: root and two packages."""
    if os.geteuid() != 0:
        raise SystemExit(
            "the local runtime needs root (it runs PostgreSQL as the postgres user); run as root or set "
            f"{RUNTIME_SWITCH}=off for an emulator that only answers the API"
        )
    try:
        servers.ensure_apt_packages(servers.APT_PACKAGES)
    except (OSError, subprocess.CalledProcessError) as err:
        detail = (getattr(err, "stderr", b"") or b"").decode(errors="replace")[-300:]
        raise SystemExit(
            f"the local runtime needs the Debian packages {', '.join(servers.APT_PACKAGES)}; installing the "
            f"missing ones failed: {err} {detail}"
        ) from err


def check_traversable(runtime_dir: Path) -> None:
    """PostgreSQL runs as the postgres user: every existing parent of the runtime directory must let it through."""
    for parent in [runtime_dir, *runtime_dir.parents]:
        if parent.exists() and not parent.stat().st_mode & 0o001:
            raise SystemExit(
                f"the local runtime directory {runtime_dir} is out of reach of the postgres user: {parent} has mode "
                f"{parent.stat().st_mode & 0o777:o}; use a directory whose parents are world-searchable (o+x)"
            )


def prebuild_images() -> None:
    """The environments of the stock apache/airflow image and of the shipped recipe (image/), built before the
    emulator reports ready so that no task start waits on a cold build; one line each with the seconds taken."""
    from embedded_aws import image_env  # noqa: PLC0415 - only the runtime runs image environments

    recipe = image_env.RECIPE_DIR
    try:
        version = image_env.recipe_airflow_version(recipe)
        python = image_env.recipe_python_version(recipe)
        builds = (
            (f"stock apache/airflow:{version}", lambda: image_env.stock_python_bin(version, python)),
            (f"project image recipe {recipe.name}/ ({image_env.recipe_hash(recipe)[:12]})",
             lambda: image_env.recipe_python_bin(recipe)),
        )  # fmt: skip
        for what, build in builds:
            began = time.monotonic()
            bin_dir = build()
            print(f"image environment {what}: ready in {time.monotonic() - began:.1f} s ({bin_dir.parent})")
    except image_env.ImageEnvError as err:
        raise SystemExit(f"error: the local runtime cannot build the image environments: {err}") from err


def iam_log_path(runtime_dir: Path) -> Path:
    """Every IAM decision, one JSON line each (iam.py), beside the runtime directory (which the agent empties)."""
    return runtime_dir.parent / f"{runtime_dir.name}-iam.log"


@dataclass
class Emulator:
    """A running embedded emulator; `url` is its endpoint."""

    port: int
    process: subprocess.Popen | None
    pid: int
    runtime_dir: Path | None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.url, region_name=REGION, **CREDENTIALS)

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        # A reset reloads the IAM managed policies: seconds on a busy machine.
        urllib.request.urlopen(request, timeout=120).read()

    def env(self) -> dict[str, str]:
        return endpoint_env(self.url)

    @property
    def iam_log(self) -> Path | None:
        return iam_log_path(self.runtime_dir) if self.runtime_dir else None

    def runtime(self) -> dict:
        """What the agent published: load balancers' local URLs, tasks, databases ({} without the runtime)."""
        if self.runtime_dir is None:
            return {}
        try:
            return json.loads((self.runtime_dir / "runtime.json").read_text())
        except (OSError, ValueError):
            return {}

    def stop(self, timeout: float = 180) -> None:
        """SIGTERM: the agent stops every task within its stop timeout; then anything left is killed."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and alive(self.pid):
            if self.process is not None:
                self.process.poll()
            time.sleep(0.1)
        if alive(self.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
        if self.runtime_dir is not None:
            kill_leftovers(f"{self.runtime_dir}/")  # the tasks' processes, not the emulator's own marker
            cgroups.sweep(self.runtime_dir)  # the tasks' cgroups, when the emulator could not remove them


def start_emulator(
    log_path: Path,
    port: int | None = None,
    env: dict[str, str] | None = None,
    *,
    runtime: bool | None = False,
    runtime_dir: Path | None = None,
    detach: bool = False,
) -> Emulator:
    """The embedded emulator on `port` (a free one by default); `env` adds settings such as EMBEDDED_AWS_ENFORCE_IAM=1.

    runtime=None follows EMBEDDED_AWS_RUNTIME (on by default); tests pass True or False.
    """
    port = port or free_port()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDDED_AWS_")}
    env = {**inherited, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true", **(env or {})}
    if runtime_wanted(runtime):
        check_prerequisites()
        runtime_dir = (runtime_dir or log_path.parent / "runtime").resolve()
        check_traversable(runtime_dir)
        env.update(
            EMBEDDED_AWS_RUNTIME_DIR=str(runtime_dir),
            EMBEDDED_AWS_CREDENTIALS_PORT=str(free_port()),
            EMBEDDED_AWS_CREDENTIALS_TOKEN=secrets.token_hex(16),
            EMBEDDED_AWS_ENFORCE_IAM="1",
        )
        env["EMBEDDED_AWS_IAM_LOG"] = str(iam_log_path(runtime_dir))
    else:
        runtime_dir = None
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "embedded_aws", "-H", "127.0.0.1", "-p", str(port)],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=detach,  # make and molecule: the server outlives the command that started it
        )
    emulator = Emulator(port=port, process=process, pid=process.pid, runtime_dir=runtime_dir)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the embedded emulator exited with {process.returncode}; see {log_path}")
        try:
            urllib.request.urlopen(f"{emulator.url}/moto-api/", timeout=1).read()
            return emulator
        except OSError:
            time.sleep(0.1)
    emulator.stop()
    raise RuntimeError(f"the embedded emulator did not answer on {emulator.url} within 60 s; see {log_path}")


# -- the command line (scripts/emulator, make) ---------------------------------------------------------


def _state(state_dir: Path) -> dict:
    try:
        return json.loads((state_dir / "emulator.json").read_text())
    except (OSError, ValueError):
        return {}


def _recorded(state_dir: Path) -> Emulator | None:
    state = _state(state_dir)
    if not state or not alive(state["pid"]):
        return None
    runtime_dir = Path(state["runtime_dir"]) if state.get("runtime_dir") else None
    return Emulator(port=state["port"], process=None, pid=state["pid"], runtime_dir=runtime_dir)


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(f"{url}/moto-api/", timeout=2).read()
        return True
    except OSError:
        return False


DEPLOYER = "airflow-ecs-deployer"


def deployer_keys(emulator: Emulator, policy_file: Path, saved: Path, user: str = DEPLOYER) -> dict[str, str]:
    """The deployer IAM user with exactly the project's deployer policy (make deployer-policy), and its key.

    The key is kept in `saved` and reused while the emulator still knows it; the policy is put every
    time, so a changed policy applies to the next run.
    """
    iam = emulator.client("iam")
    with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
        iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="airflow-ecs-deployer", PolicyDocument=policy_file.read_text())
    known = {k["AccessKeyId"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]}
    with contextlib.suppress(OSError, ValueError):
        keys = json.loads(saved.read_text())
        if keys["AWS_ACCESS_KEY_ID"] in known:
            return keys
    for key in known:  # at most two keys per user
        iam.delete_access_key(UserName=user, AccessKeyId=key)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    keys = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
    saved.write_text(json.dumps(keys))
    saved.chmod(0o600)
    return keys


def wait_for_ui(emulator: Emulator, timeout: float) -> str:
    """Wait until the stack is steady (see wait_until_steady); returns the UI's local URL."""
    return wait_until_steady(emulator, timeout)[1]


def wait_until_steady(emulator: Emulator, timeout: float) -> tuple[str, str]:
    """(ALB listener "dns name:port", its local URL) once every ACTIVE service's deployment is COMPLETED
    (its tasks RUNNING and healthy) and the listener forwards to a healthy target."""
    deadline = time.monotonic() + timeout
    while True:
        runtime = emulator.runtime()
        balancers = runtime.get("load_balancers", {})
        ready = [(name, b["url"]) for name, b in balancers.items() if b["healthy_targets"] > 0]
        services = runtime.get("services", {})
        unsteady = sorted(
            n for n, s in services.items() if s["status"] == "ACTIVE" and s["rolloutState"] != "COMPLETED"
        )
        if ready and services and not unsteady:
            return ready[0]
        if time.monotonic() > deadline:
            break
        time.sleep(1)
    tasks = runtime.get("tasks", {})
    stopped = [f"{t['family']}: {t['stoppedReason']}" for t in tasks.values() if t["lastStatus"] == "STOPPED"]
    raise SystemExit(
        f"the stack was not steady after {timeout:.0f} s: services still deploying: {unsteady or 'none'}; "
        f"healthy load balancer listeners: {len(ready)}; stopped tasks: {stopped or 'none'}; "
        f"task logs under {emulator.runtime_dir}/tasks"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m embedded_aws.launcher", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["start", "stop", "status", "reset", "wait", "deployer-env"])
    parser.add_argument("--policy", type=Path, help="deployer-env: the deployer policy file (make deployer-policy)")
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".state" / "emulator")
    parser.add_argument("--port", type=int, default=int(os.environ.get("EMULATOR_PORT", "5000")))
    parser.add_argument("--timeout", type=float, default=240)
    args = parser.parse_args(argv)
    state_dir: Path = args.state_dir
    running = _recorded(state_dir)
    url = f"http://127.0.0.1:{args.port}"
    if args.command == "start":
        if running is not None:
            if _answers(running.url):
                print(f"emulator already running at {running.url} (pid {running.pid})")
                return 0
            raise SystemExit(
                f"error: emulator pid {running.pid} is alive but does not answer; run 'make emulator-stop'"
            )
        if _answers(url):
            raise SystemExit(f"error: something else already answers on {url}; set EMULATOR_PORT to a free port")
        if runtime_wanted(None):
            prebuild_images()
        emulator = start_emulator(state_dir / "moto.log", args.port, runtime=None, detach=True)
        state = {"pid": emulator.pid, "port": emulator.port, "runtime_dir": str(emulator.runtime_dir or "")}
        (state_dir / "emulator.json").write_text(json.dumps(state))
        mode = f"local runtime in {emulator.runtime_dir}" if emulator.runtime_dir else f"{RUNTIME_SWITCH}=off"
        print(f"emulator started at {emulator.url} (pid {emulator.pid}, {mode}, log {state_dir / 'moto.log'})")
        return 0
    if args.command == "stop":
        if running is None:
            print("emulator not running")
        else:
            running.stop()
            print(f"emulator stopped (pid {running.pid}); every task it ran is stopped")
        (state_dir / "emulator.json").unlink(missing_ok=True)
        return 0
    if running is None or not _answers(running.url):
        print("emulator not running")
        return 1
    if args.command == "status":
        tasks = running.runtime().get("tasks", {})
        live = [t for t in tasks.values() if t["lastStatus"] != "STOPPED"]
        print(f"running at {running.url} (pid {running.pid}); tasks running: {len(live)}")
    elif args.command == "reset":
        running.reset()
        print(f"emulator at {running.url} reset")
    elif args.command == "deployer-env":
        # Shell assignments for the deploy: the deployer user's key instead of the emulator's administrator.
        keys = deployer_keys(running, args.policy, state_dir / "deployer-key.json")
        print("\n".join(f"export {name}={value}" for name, value in keys.items()))
    elif args.command == "wait":
        if running.runtime_dir is None:
            print(f"{RUNTIME_SWITCH}=off: nothing runs locally")
            return 0
        listener, url = wait_until_steady(running, args.timeout)
        print(f"Airflow UI on this machine: {url}  (the load balancer listener {listener}, served locally)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
