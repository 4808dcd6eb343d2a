"""embedded_aws.image_env: the image recipe's identity, its lock, and the environments built from it.

The environment tests build real environments with uv (from the uv download cache: seconds warm, about
40 s each cold with bytecode compiled); the stock and recipe environments go to the usual cache root and
are shared with every other test and run, the small ones to a temporary root.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from embedded_aws import image_env
from embedded_aws.image_env import RECIPE_DIR, ImageEnvError

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_VERSION = "3.3.2"
STOCK_SET = RECIPE_DIR / "stock" / f"{AIRFLOW_VERSION}-python3.12.txt"


def copy_recipe(target: Path) -> Path:
    """The shipped recipe's three files (what the recipe zip carries: no stock/ dir)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in image_env.RECIPE_FILES:
        shutil.copyfile(RECIPE_DIR / name, target / name)
    return target


def one_line(exc: pytest.ExceptionInfo[ImageEnvError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# --- identity -------------------------------------------------------------------------------------------


def test_recipe_hash_is_sha256_over_name_length_and_content(tmp_path: Path) -> None:
    files = {"Dockerfile": b"ARG BASE_IMAGE=apache/airflow:3.3.2\n", "requirements.lock": b"", "requirements.txt": b"x"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "README.md").write_text("not part of the identity")
    expected = hashlib.sha256()
    for name in ("Dockerfile", "requirements.lock", "requirements.txt"):
        data = files[name]
        expected.update(name.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    assert image_env.recipe_hash(tmp_path) == expected.hexdigest()

    (tmp_path / "README.md").write_text("changed")
    assert image_env.recipe_hash(tmp_path) == expected.hexdigest()
    (tmp_path / "requirements.txt").write_bytes(b"y")
    assert image_env.recipe_hash(tmp_path) != expected.hexdigest()


def test_shipped_recipe_hash_is_stable_and_names_the_tag() -> None:
    first = image_env.recipe_hash(RECIPE_DIR)
    assert first == image_env.recipe_hash(RECIPE_DIR)
    assert len(first) == 64 and int(first, 16) >= 0
    assert image_env.recipe_airflow_version(RECIPE_DIR) == AIRFLOW_VERSION
    assert image_env.image_tag(RECIPE_DIR) == f"{AIRFLOW_VERSION}-{first[:12]}"
    cli = [sys.executable, "-m", "embedded_aws.image_env", "hash"]
    assert subprocess.run(cli, cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip() == first
    tag = subprocess.run([*cli, "--tag"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    assert tag == f"{AIRFLOW_VERSION}-{first[:12]}"


def test_the_base_image_line_gives_version_and_python(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("ARG BASE_IMAGE=apache/airflow:3.1.0-python3.11\nFROM ${BASE_IMAGE}\n")
    assert (image_env.recipe_airflow_version(tmp_path), image_env.recipe_python_version(tmp_path)) == ("3.1.0", "3.11")
    dockerfile.write_text("FROM apache/airflow:3.3.2\n")
    with pytest.raises(ImageEnvError, match=r"has no `ARG BASE_IMAGE=apache/airflow:<version>` line"):
        image_env.recipe_airflow_version(tmp_path)


def test_the_dockerfile_builds_as_the_image_documentation_says() -> None:
    text = (RECIPE_DIR / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert lines[0] == f"ARG BASE_IMAGE=apache/airflow:{AIRFLOW_VERSION}"
    assert lines[1] == "FROM ${BASE_IMAGE}"
    assert "USER airflow" in lines
    install = text[text.index("RUN pip install") :]
    for part in (
        "--no-cache-dir",
        '"apache-airflow==${AIRFLOW_VERSION}"',
        "requirements.txt",
        '--constraint "${HOME}/constraints.txt"',
        "--constraint /opt/airflow-ecs/image/requirements.lock",
    ):
        assert part in install
    for arch_specific in ("amd64", "arm64", "x86_64", "aarch64"):
        assert arch_specific not in "\n".join(lines)


# --- package sets and the lock --------------------------------------------------------------------------


def test_shipped_stock_set_has_the_dag_packages_but_not_matplotlib() -> None:
    pins = image_env.read_pins(STOCK_SET)
    assert {"pandas", "requests", "pyarrow", "beautifulsoup4", "lxml", "apache-airflow-providers-amazon"} <= set(pins)
    assert "matplotlib" not in pins
    assert pins["apache-airflow"] == AIRFLOW_VERSION
    header = image_env.read_header(STOCK_SET)
    assert header["exclude-newer"] == "2026-09-18T00:00:00Z"
    assert header["extras"] == image_env.AIRFLOW_EXTRAS
    assert image_env.stock_set_is_current(STOCK_SET, AIRFLOW_VERSION, "3.12")


def test_shipped_stock_set_is_what_its_recorded_command_produces(tmp_path: Path) -> None:
    again = tmp_path / STOCK_SET.name
    image_env.generate_stock_set(again, AIRFLOW_VERSION, "3.12")
    assert again.read_text() == STOCK_SET.read_text()


def test_shipped_lock_is_current_and_adds_only_what_the_stock_set_lacks() -> None:
    assert image_env.check_lock(RECIPE_DIR) == STOCK_SET
    locked = image_env.read_pins(RECIPE_DIR / "requirements.lock")
    assert "matplotlib" in locked
    assert not set(locked) & set(image_env.read_pins(STOCK_SET))


def test_a_requirement_the_stock_set_has_adds_nothing_and_a_change_makes_the_lock_stale(tmp_path: Path) -> None:
    recipe = copy_recipe(tmp_path / "recipe")
    (recipe / "requirements.txt").write_text("# in the stock image already\nrequests\n")
    image_env.lock(recipe)
    assert image_env.read_pins(recipe / "requirements.lock") == {}
    assert image_env.check_lock(recipe) == STOCK_SET
    assert not (recipe / "stock").exists()  # the shipped stock set was current: not generated again

    (recipe / "requirements.txt").write_text("requests\nmatplotlib>=3.9\n")
    with pytest.raises(
        ImageEnvError, match=r"requirements.txt changed since requirements.lock was made; run `make image-lock`"
    ):
        image_env.check_lock(recipe)
    with pytest.raises(ImageEnvError, match=r"changed since requirements.lock was made"):
        image_env.recipe_python_bin(recipe)


def test_a_lock_made_for_another_stock_set_is_stale(tmp_path: Path) -> None:
    recipe = copy_recipe(tmp_path / "recipe")
    (recipe / "stock").mkdir()
    (recipe / "stock" / STOCK_SET.name).write_text(STOCK_SET.read_text() + "# regenerated\n")
    with pytest.raises(ImageEnvError, match=r"the stock set .* changed since .*requirements.lock was made"):
        image_env.check_lock(recipe)


@pytest.mark.parametrize(
    ("requirement", "reason"),
    [
        ("pandas<1", r"Because you require pandas<1 and pandas==3\.0\.6"),
        ("no-such-package-airflow-ecs", r"no-such-package-airflow-ecs was not found in the package registry"),
    ],
)
def test_a_requirement_that_does_not_resolve_is_named_with_uv_reason(
    tmp_path: Path, requirement: str, reason: str
) -> None:
    recipe = copy_recipe(tmp_path / "recipe")
    (recipe / "requirements.txt").write_text(f"matplotlib>=3.9\n{requirement}  # the bad one\n")
    before = (recipe / "requirements.lock").read_text()
    with pytest.raises(ImageEnvError) as exc:
        image_env.lock(recipe)
    message = one_line(exc)
    assert message.startswith(f"the requirement `{requirement}` in {recipe / 'requirements.txt'} does not resolve")
    assert f"stock apache/airflow:{AIRFLOW_VERSION} package set" in message
    assert "run `make image-lock` again" in message
    assert re.search(reason, message)
    assert (recipe / "requirements.lock").read_text() == before


def test_a_recipe_for_another_airflow_version_is_refused(tmp_path: Path) -> None:
    recipe = copy_recipe(tmp_path / "recipe")
    expected = r"apache/airflow:3\.3\.2 but Airflow 3\.2\.0 is configured; set `ARG BASE_IMAGE=apache/airflow:3\.2\.0`"
    with pytest.raises(ImageEnvError, match=expected) as exc:
        image_env.lock(recipe, airflow_version="3.2.0")
    one_line(exc)
    with pytest.raises(ImageEnvError, match=expected):
        image_env.recipe_python_bin(recipe, airflow_version="3.2.0")
    image_env.check_airflow_version(recipe, AIRFLOW_VERSION)


def test_a_version_without_stock_set_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageEnvError, match=r"no stock package set for apache/airflow:2\.10\.5 with Python 3\.12"):
        image_env.stock_python_bin("2.10.5")
    recipe = copy_recipe(tmp_path / "recipe")
    dockerfile = recipe / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace(AIRFLOW_VERSION, "3.3.1"))
    with pytest.raises(
        ImageEnvError, match=r"no stock package set for apache/airflow:3\.3\.1 .* run `make image-lock`"
    ):
        image_env.recipe_python_bin(recipe)
    with pytest.raises(ImageEnvError, match=r"publication date of apache-airflow 3\.3\.1 is not recorded"):
        image_env.lock(recipe)


# --- environments ---------------------------------------------------------------------------------------


def dag_imports() -> set[str]:
    """The top-level modules dags/ imports that are neither the standard library nor dags/ itself."""
    local = {p.stem for p in (ROOT / "dags").iterdir()}
    found = set()
    for path in (ROOT / "dags").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
    return {m for m in found if m.split(".")[0] not in sys.stdlib_module_names | local | {"__future__"}}


def imports(bin_dir: Path, modules: list[str]) -> subprocess.CompletedProcess[str]:
    code = "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)"
    return subprocess.run([str(bin_dir / "python"), "-c", code, *modules], capture_output=True, text=True, check=False)


def test_the_recipe_env_runs_every_dag_import_and_the_stock_env_lacks_matplotlib() -> None:
    modules = sorted(dag_imports())
    assert {"matplotlib.figure", "pandas", "bs4", "pyarrow", "requests"} <= set(modules)
    recipe_bin = image_env.recipe_python_bin(RECIPE_DIR)
    stock_bin = image_env.stock_python_bin(AIRFLOW_VERSION)
    assert recipe_bin != stock_bin

    in_recipe = imports(recipe_bin, modules)
    assert in_recipe.returncode == 0, in_recipe.stderr
    without_matplotlib = [m for m in modules if not m.startswith("matplotlib")]
    in_stock = imports(stock_bin, without_matplotlib)
    assert in_stock.returncode == 0, in_stock.stderr
    missing = imports(stock_bin, ["matplotlib.figure"])
    assert "No module named 'matplotlib'" in missing.stderr
    # The recipe env starts as hard links to the stock env: building it left the stock env as it was.
    assert json.loads((stock_bin.parent / image_env.ENV_MARKER).read_text())["kind"] == "stock"

    version = subprocess.run([str(stock_bin / "airflow"), "version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == AIRFLOW_VERSION


def test_an_env_is_built_once_and_found_by_its_recipe_hash() -> None:
    first = image_env.recipe_python_bin(RECIPE_DIR)
    started = time.monotonic()
    again = image_env.recipe_python_bin(RECIPE_DIR)
    assert again == first
    assert time.monotonic() - started < 1
    assert image_env.built_recipe_python_bin(image_env.recipe_hash(RECIPE_DIR)) == first
    assert image_env.built_recipe_python_bin("0" * 64) is None
    assert image_env.built_recipe_python_bin("../envs") is None
    record = json.loads((first.parent / image_env.ENV_MARKER).read_text())
    assert record["recipe_hash"] == image_env.recipe_hash(RECIPE_DIR)
    assert record["stock_set_sha256"] == hashlib.sha256(STOCK_SET.read_bytes()).hexdigest()


def test_an_unpacked_recipe_zip_uses_the_project_stock_set_and_the_same_env(tmp_path: Path) -> None:
    unpacked = copy_recipe(tmp_path / "unpacked")
    assert image_env.recipe_python_bin(unpacked) == image_env.recipe_python_bin(RECIPE_DIR)


@pytest.fixture
def cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("AIRFLOW_ECS_IMAGE_CACHE", str(root))
    return root


def small_env(tmp_path: Path) -> tuple[str, list[Path], dict[str, str]]:
    """A one-package environment (what the stock set pins for `six`), quick to build in a temporary root."""
    pin = next(line.split()[0] for line in STOCK_SET.read_text().splitlines() if line.startswith("six=="))
    requirements = tmp_path / "small.txt"
    requirements.write_text(f"{pin}\n")
    meta = {"kind": "test", "python": "3.12", "pin": pin}
    return image_env._key(meta), [requirements], meta


def test_a_half_built_env_is_removed_and_rebuilt(tmp_path: Path, cache_root: Path) -> None:
    key, files, meta = small_env(tmp_path)
    envs = cache_root / "envs"
    killed = envs / f".tmp-{key}-999999"  # a build killed half way
    (killed / "bin").mkdir(parents=True)
    broken = envs / key  # an env whose interpreter went away
    (broken / "bin").mkdir(parents=True)
    (broken / "bin" / "python").symlink_to("/nonexistent/python3.12")
    (broken / image_env.ENV_MARKER).write_text("{}")

    bin_dir = image_env._ensure_env(key, files, "3.12", meta, "a test environment")
    assert bin_dir == envs / key / "bin"
    assert not killed.exists()
    assert json.loads((envs / key / image_env.ENV_MARKER).read_text())["pin"] == meta["pin"]
    assert subprocess.run([str(bin_dir / "python"), "-c", "import six"], check=False).returncode == 0
    assert [p.name for p in envs.iterdir()] == [key]


def test_two_processes_asking_for_one_env_get_it_built_once(tmp_path: Path, cache_root: Path) -> None:
    key, files, meta = small_env(tmp_path)
    code = (
        "import json, sys\nfrom pathlib import Path\nfrom embedded_aws import image_env\n"
        "key, files, meta = json.loads(sys.argv[1])\n"
        "print(image_env._ensure_env(key, [Path(f) for f in files], '3.12', meta, 'a test environment'))"
    )
    arg = json.dumps([key, [str(f) for f in files], meta])
    env = {**os.environ, "AIRFLOW_ECS_IMAGE_CACHE": str(cache_root)}
    procs = [
        subprocess.Popen([sys.executable, "-c", code, arg], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = {proc.communicate(timeout=300)[0].strip() for proc in procs}
    assert [proc.returncode for proc in procs] == [0, 0, 0]
    assert outputs == {str(cache_root / "envs" / key / "bin")}
    assert [p.name for p in (cache_root / "envs").iterdir()] == [key]
    builds = [json.loads(line) for line in (cache_root / image_env.BUILD_LOG).read_text().splitlines()]
    assert [build["key"] for build in builds] == [key]
