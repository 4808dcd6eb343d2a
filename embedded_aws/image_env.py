"""The package sets of the Airflow images and the local environments that hold exactly them.

The project image is `image/` (the recipe): the stock `apache/airflow:<version>` image plus
`requirements.txt`, pinned by `requirements.lock`. The stock image's own package set is reproduced once
per Airflow version into `image/stock/<version>-python<X.Y>.txt` (`uv pip compile` of the image's
`apache-airflow[<extras>]==<version>` with `--exclude-newer` the day the version was published, see
`image/README.md`); `lock` resolves the requirements against it and pins only what they add.

The local runtime runs a task of an image in a venv built from that image's package set (`uv venv` +
`uv pip sync`; a recipe's env starts as hard links to its stock env, so only what the lock adds is
installed), cached under `${AIRFLOW_ECS_IMAGE_CACHE:-~/.cache/airflow-ecs/images}`:

    envs/<key>/            a finished environment (bin/, airflow-ecs-env.json); <key> hashes its inputs
    envs/.tmp-<key>-<pid>  one being built (renamed to envs/<key> when complete; removed if abandoned)
    locks/<key>.lock       fcntl lock held while <key> is built: one builder per environment
    recipes/<recipe hash>  symlink to the environment built for that recipe (`built_recipe_python_bin`)
    builds.log             one JSON line per environment built (key, seconds, inputs)

    python -m embedded_aws.image_env lock|build|hash      (`make image-lock` runs `lock`)
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
RECIPE_DIR = PROJECT_DIR / "image"
RECIPE_FILES = ("Dockerfile", "requirements.lock", "requirements.txt")
DEFAULT_PYTHON = "3.12"

# The extras of the stock image (ARG AIRFLOW_EXTRAS of apache/airflow's Dockerfile, 3.x line).
AIRFLOW_EXTRAS = (
    "aiobotocore,amazon,async,celery,cncf-kubernetes,common-io,common-messaging,docker,elasticsearch,fab,ftp,"
    "git,google,google-auth,graphviz,grpc,hashicorp,http,ldap,microsoft-azure,mysql,odbc,openlineage,pandas,"
    "postgres,redis,sendgrid,sftp,slack,snowflake,ssh,statsd,uv"
)
# --exclude-newer of a version's stock set: the end of the day its apache-airflow wheel was published on
# PyPI (its providers are released the same day). Another version: `lock --exclude-newer <date>`.
AIRFLOW_PUBLISHED = {"3.3.2": "2026-09-18T00:00:00Z"}
# The platform the stock set and the lock are resolved for (the image's amd64 variant; see image/README.md).
PYTHON_PLATFORM = "x86_64-manylinux_2_28"
# Debian packages the stock set's source-only distributions need to build (mysqlclient, python-ldap).
BUILD_APT_PACKAGES = {
    "libmariadb-dev": "/usr/include/mariadb/mysql.h",
    "libldap2-dev": "/usr/include/ldap.h",
    "libsasl2-dev": "/usr/include/sasl/sasl.h",
    "pkg-config": "/usr/bin/pkg-config",
    "gcc": "/usr/bin/gcc",
}

# Compile every module at build time, as pip does in the image: the stock env's cold build takes ~70 s
# instead of ~2 s (2 busy CPUs), and every Airflow process start then saves ~2 s of imports (nothing
# writes .pyc files later when PYTHONDONTWRITEBYTECODE=1 is set, as on this machine).
COMPILE_BYTECODE = True
ENV_MARKER = "airflow-ecs-env.json"
BUILD_LOG = "builds.log"  # in the cache root: one JSON line per environment built
BASE_IMAGE_RE = re.compile(
    r"^\s*ARG\s+BASE_IMAGE\s*=\s*[\"']?apache/airflow:(?P<version>\d+\.\d+\.\d+)(?:-python(?P<python>\d+\.\d+))?[\"']?\s*$",
    re.MULTILINE,
)
HEADER_RE = re.compile(r"^# (?P<key>[a-z0-9.-]+): (?P<value>.*)$")
PIN_RE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(?P<version>\S+)")


class ImageEnvError(Exception):
    """A recipe, package set or environment problem; str() is one sentence naming what to do."""


# --- the recipe -----------------------------------------------------------------------------------------


def recipe_hash(recipe_dir: Path) -> str:
    """The recipe's identity: sha256 over (name, length, content) of Dockerfile, requirements.lock, requirements.txt."""
    digest = hashlib.sha256()
    for name in RECIPE_FILES:
        path = Path(recipe_dir) / name
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ImageEnvError(f"the image recipe {recipe_dir} has no {name}; restore it from image/") from None
        digest.update(name.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    return digest.hexdigest()


def _base_image(recipe_dir: Path) -> re.Match[str]:
    dockerfile = Path(recipe_dir) / "Dockerfile"
    try:
        text = dockerfile.read_text()
    except FileNotFoundError:
        raise ImageEnvError(f"the image recipe {recipe_dir} has no Dockerfile; restore it from image/") from None
    match = BASE_IMAGE_RE.search(text)
    if not match:
        raise ImageEnvError(
            f"{dockerfile} has no `ARG BASE_IMAGE=apache/airflow:<version>` line; the recipe must start from a "
            "stock apache/airflow image with an explicit version"
        )
    return match


def recipe_airflow_version(recipe_dir: Path) -> str:
    """The Airflow version of `ARG BASE_IMAGE=apache/airflow:<version>` in the recipe's Dockerfile."""
    return _base_image(recipe_dir)["version"]


def recipe_python_version(recipe_dir: Path) -> str:
    """The Python of the recipe's base image: its `-pythonX.Y` tag suffix, else the image default (3.12)."""
    return _base_image(recipe_dir)["python"] or DEFAULT_PYTHON


def image_tag(recipe_dir: Path) -> str:
    """The tag of a build of this recipe: `<airflow version>-<recipe hash[:12]>`."""
    return f"{recipe_airflow_version(recipe_dir)}-{recipe_hash(recipe_dir)[:12]}"


def check_airflow_version(recipe_dir: Path, airflow_version: str) -> None:
    """ImageEnvError when the recipe's Dockerfile starts from another Airflow version than `airflow_version`."""
    found = recipe_airflow_version(recipe_dir)
    if found != airflow_version:
        raise ImageEnvError(
            f"the image recipe {Path(recipe_dir) / 'Dockerfile'} starts from apache/airflow:{found} but Airflow "
            f"{airflow_version} is configured; set `ARG BASE_IMAGE=apache/airflow:{airflow_version}` there and run "
            f"`make image-lock`, or configure Airflow {found}"
        )


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_header(path: Path) -> dict[str, str]:
    """The `# key: value` lines at the top of a generated file (stock set or lock)."""
    header: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        match = HEADER_RE.match(line)
        if match:
            header[match["key"]] = match["value"]
    return header


def read_pins(path: Path) -> dict[str, str]:
    """normalized name → version of every `name==version` line of a requirements file."""
    pins = {}
    for line in path.read_text().splitlines():
        match = PIN_RE.match(line.strip())
        if match:
            pins[_normalize(match["name"])] = match["version"]
    return pins


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --- stock sets -----------------------------------------------------------------------------------------


def stock_set_name(airflow_version: str, python: str = DEFAULT_PYTHON) -> str:
    return f"{airflow_version}-python{python}.txt"


def stock_set_path(airflow_version: str, python: str = DEFAULT_PYTHON, recipe_dir: Path | None = None) -> Path:
    """The stock set file: in `recipe_dir/stock/` when that recipe has it, else in RECIPE_DIR/stock/."""
    name = stock_set_name(airflow_version, python)
    if recipe_dir is not None and (Path(recipe_dir) / "stock" / name).is_file():
        return Path(recipe_dir) / "stock" / name
    return RECIPE_DIR / "stock" / name


def _existing_stock_set(airflow_version: str, python: str, recipe_dir: Path | None = None) -> Path:
    path = stock_set_path(airflow_version, python, recipe_dir)
    if not path.is_file():
        raise ImageEnvError(
            f"there is no stock package set for apache/airflow:{airflow_version} with Python {python} "
            f"({path.relative_to(PROJECT_DIR) if path.is_relative_to(PROJECT_DIR) else path}); set that "
            "version in image/Dockerfile and run `make image-lock` to reproduce it"
        )
    return path


def _stock_header(airflow_version: str, python: str, exclude_newer: str) -> dict[str, str]:
    return {
        "airflow-version": airflow_version,
        "python": python,
        "python-platform": PYTHON_PLATFORM,
        "exclude-newer": exclude_newer,
        "extras": AIRFLOW_EXTRAS,
    }


def stock_set_is_current(path: Path, airflow_version: str, python: str) -> bool:
    """True when `path` exists and was generated from the inputs this module would use now."""
    if not path.is_file():
        return False
    header = read_header(path)
    exclude_newer = AIRFLOW_PUBLISHED.get(airflow_version, header.get("exclude-newer", ""))
    return all(header.get(k) == v for k, v in _stock_header(airflow_version, python, exclude_newer).items())


def generate_stock_set(path: Path, airflow_version: str, python: str, exclude_newer: str | None = None) -> None:
    """Reproduce the stock image's package set into `path` (uv pip compile with --exclude-newer)."""
    exclude_newer = exclude_newer or AIRFLOW_PUBLISHED.get(airflow_version)
    if not exclude_newer:
        raise ImageEnvError(
            f"the publication date of apache-airflow {airflow_version} is not recorded; run "
            "`python -m embedded_aws.image_env lock --exclude-newer <the end of the day its wheel was published on "
            "PyPI, e.g. 2026-09-18T00:00:00Z for 3.3.2>` (or add it to AIRFLOW_PUBLISHED in embedded_aws/image_env.py)"
        )
    header = _stock_header(airflow_version, python, exclude_newer)
    options = _compile_options(python, exclude_newer)
    with tempfile.TemporaryDirectory(prefix="airflow-ecs-stock-") as tmp:
        (Path(tmp) / "stock.in").write_text(f"apache-airflow[{AIRFLOW_EXTRAS}]=={airflow_version}\n")
        result = _uv_compile([*options, "stock.in"], python, cwd=Path(tmp))
    if result.returncode != 0:
        raise ImageEnvError(
            f"the stock package set of apache/airflow:{airflow_version} does not resolve: {_uv_reason(result.stderr)}; "
            "check that this Airflow version and its --exclude-newer date are right"
        )
    lines = [
        f"# The package set of the stock apache/airflow:{airflow_version} image (Python {python}), reproduced:",
        "# generated by `make image-lock` (python -m embedded_aws.image_env lock); do not edit. See image/README.md.",
        *(f"# {k}: {v}" for k, v in header.items()),
        f"# command: uv pip compile {' '.join(options)} stock.in",
        f"# stock.in: apache-airflow[<extras>]=={airflow_version}",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, "\n".join(lines) + "\n" + result.stdout)


# --- uv -------------------------------------------------------------------------------------------------


def uv_bin() -> Path:
    """The project venv's uv (next to the running interpreter), else uv on PATH."""
    beside = Path(sys.executable).parent / "uv"
    if beside.is_file():
        return beside
    found = shutil.which("uv")
    if not found:
        raise ImageEnvError(
            "uv is not installed next to this Python or on PATH; run `make venv` and use .venv/bin/python"
        )
    return Path(found)


_PYTHONS: dict[str, Path] = {}


def find_python(version: str = DEFAULT_PYTHON) -> Path:
    """A Python `version` interpreter (as scripts/find-python looks: $PYTHON, this one, PATH, pyenv)."""
    if version in _PYTHONS:
        return _PYTHONS[version]
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates = [
        os.environ.get("PYTHON"),
        getattr(sys, "_base_executable", None),
        sys.executable,
        shutil.which(f"python{version}"),
        *sorted(str(p) for p in pyenv_root.glob(f"versions/{version}*/bin/python{version}")),
    ]
    probe = "import sys; print('%d.%d' % sys.version_info[:2]); print(sys.executable)"
    for candidate in filter(None, candidates):
        try:
            out = subprocess.run([candidate, "-c", probe], capture_output=True, text=True, timeout=30, check=True)
        except (OSError, subprocess.SubprocessError):
            continue
        found, executable = [*out.stdout.splitlines(), "", ""][:2]
        if found == version and executable:
            _PYTHONS[version] = Path(executable)
            return _PYTHONS[version]
    raise ImageEnvError(
        f"no Python {version} interpreter found ($PYTHON, PATH, pyenv); install Python {version} or set "
        f"PYTHON=/path/to/python{version}"
    )


def _compile_options(python: str, exclude_newer: str | None) -> list[str]:
    """The `uv pip compile` options that decide a resolution (recorded in the stock set's header)."""
    options = ["--python-version", python, "--python-platform", PYTHON_PLATFORM]
    if exclude_newer:
        options += ["--exclude-newer", exclude_newer]
    return [*options, "--no-header", "--annotation-style", "line"]


def _uv_compile(args: list[str], python: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [str(uv_bin()), "pip", "compile", "--quiet", "--python", str(find_python(python)), *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)


def _uv_reason(stderr: str) -> str:
    """uv's explanation on one line (without its 'No solution found' banner and tree glyphs)."""
    lines = []
    for raw in stderr.splitlines():
        line = raw.strip().lstrip("\u00d7\u2570\u2500\u25b6\u2502 ").strip()
        line = re.sub(r"^(error|cause|caused by):\s*", "", line, flags=re.IGNORECASE)
        if line and not line.startswith("No solution found when resolving dependencies"):
            lines.append(line)
    return re.sub(r"\s+", " ", " ".join(lines)).strip().rstrip(".") or "uv gave no reason"


def _run_uv(command: list[str], what: str, hint: str = "") -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ImageEnvError(f"{what} failed: {_uv_reason(result.stderr)}{hint}")


# --- the lock -------------------------------------------------------------------------------------------


def requirement_lines(path: Path) -> list[str]:
    """The requirements of a requirements.txt (comments, blank lines and option lines left out)."""
    lines = []
    for raw in path.read_text().splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if line and not line.startswith("-"):
            lines.append(line)
    return lines


def lock(recipe_dir: Path, airflow_version: str | None = None, exclude_newer: str | None = None) -> None:
    """(Re)generate the stock set (unless present and current) and requirements.lock of the recipe.

    The lock pins exactly the packages requirements.txt adds to the stock set, resolved with the stock
    set as constraints; its header records the inputs (checked by `check_lock` without uv).
    """
    recipe_dir = Path(recipe_dir)
    if airflow_version is not None:
        check_airflow_version(recipe_dir, airflow_version)
    version = recipe_airflow_version(recipe_dir)
    python = recipe_python_version(recipe_dir)
    stock = stock_set_path(version, python, recipe_dir)
    if not stock_set_is_current(stock, version, python) or (
        exclude_newer and read_header(stock).get("exclude-newer") != exclude_newer
    ):
        stock = recipe_dir / "stock" / stock_set_name(version, python)
        generate_stock_set(stock, version, python, exclude_newer)
    stock_pins = read_pins(stock)
    requirements = recipe_dir / "requirements.txt"
    if not requirements.is_file():
        raise ImageEnvError(f"the image recipe {recipe_dir} has no requirements.txt; create it (it may be empty)")
    wanted = requirement_lines(requirements)
    options = _compile_options(python, None)
    with tempfile.TemporaryDirectory(prefix="airflow-ecs-lock-") as tmp:
        work = Path(tmp)
        shutil.copyfile(stock, work / "stock.txt")
        (work / "requirements.txt").write_text("".join(f"{line}\n" for line in wanted))
        (work / "airflow.in").write_text(f"apache-airflow[{AIRFLOW_EXTRAS}]=={version}\n")
        result = _uv_compile([*options, "airflow.in", "requirements.txt", "-c", "stock.txt"], python, cwd=work)
        if result.returncode != 0:
            raise _unresolvable(requirements, version, options, work, python=python, stderr=result.stderr)
    added = []
    for line in result.stdout.splitlines():
        match = PIN_RE.match(line)
        if match and _normalize(match["name"]) not in stock_pins:
            added.append(line.rstrip())
    header = {
        "airflow-version": version,
        "python": python,
        "requirements.txt-sha256": _sha256_file(requirements),
        "stock-set": stock.name,
        "stock-set-sha256": _sha256_file(stock),
    }
    text = [
        f"# The packages requirements.txt adds to the stock apache/airflow:{version} image (Python {python}),",
        "# pinned: generated by `make image-lock` (python -m embedded_aws.image_env lock); do not edit.",
        "# The Dockerfile installs requirements.txt with this file and the image's constraints as constraints.",
        *(f"# {k}: {v}" for k, v in header.items()),
        *added,
    ]
    _write_atomic(recipe_dir / "requirements.lock", "\n".join(text) + "\n")


def _unresolvable(
    requirements: Path, version: str, options: list[str], work: Path, *, python: str, stderr: str
) -> ImageEnvError:
    """The error of a failed lock: the first requirement that fails alone against the stock set, with uv's reason."""
    wanted = requirement_lines(work / "requirements.txt")
    for requirement in wanted:
        (work / "one.in").write_text(f"{requirement}\n")
        single = _uv_compile([*options, "one.in", "-c", "stock.txt"], python, cwd=work)
        if single.returncode != 0:
            return ImageEnvError(
                f"the requirement `{requirement}` in {requirements} does not resolve against the stock "
                f"apache/airflow:{version} package set: {_uv_reason(single.stderr)}; change it to what the stock "
                "set allows and run `make image-lock` again"
            )
    return ImageEnvError(
        f"the requirements of {requirements} ({', '.join(wanted)}) do not resolve together against the stock "
        f"apache/airflow:{version} package set: {_uv_reason(stderr)}; change them and run `make image-lock` again"
    )


def check_lock(recipe_dir: Path) -> Path:
    """ImageEnvError when requirements.lock is missing or stale; returns the stock set it was made against."""
    recipe_dir = Path(recipe_dir)
    version = recipe_airflow_version(recipe_dir)
    python = recipe_python_version(recipe_dir)
    stock = _existing_stock_set(version, python, recipe_dir)
    lock_file = recipe_dir / "requirements.lock"
    requirements = recipe_dir / "requirements.txt"
    if not lock_file.is_file() or not requirements.is_file():
        missing = "requirements.txt" if lock_file.is_file() else "requirements.lock"
        raise ImageEnvError(f"the image recipe {recipe_dir} has no {missing}; run `make image-lock`")
    header = read_header(lock_file)
    if header.get("requirements.txt-sha256") != _sha256_file(requirements):
        raise ImageEnvError(
            f"{requirements} changed since {lock_file.name} was made; run `make image-lock` and commit both files"
        )
    if header.get("airflow-version") != version or header.get("python") != python:
        raise ImageEnvError(
            f"{lock_file} was made for apache/airflow:{header.get('airflow-version')} (Python "
            f"{header.get('python')}) but the Dockerfile starts from apache/airflow:{version} (Python {python}); "
            "run `make image-lock`"
        )
    if header.get("stock-set-sha256") != _sha256_file(stock):
        raise ImageEnvError(f"the stock set {stock} changed since {lock_file} was made; run `make image-lock`")
    return stock


# --- environments ---------------------------------------------------------------------------------------


def cache_root() -> Path:
    return Path(os.environ.get("AIRFLOW_ECS_IMAGE_CACHE") or Path.home() / ".cache" / "airflow-ecs" / "images")


def stock_python_bin(airflow_version: str, python: str = DEFAULT_PYTHON, stock: Path | None = None) -> Path:
    """bin/ of an environment holding exactly the stock set of apache/airflow:<version> (built once, cached)."""
    stock = stock or _existing_stock_set(airflow_version, python)
    stock_sha = _sha256_file(stock)
    meta = {"kind": "stock", "airflow_version": airflow_version, "python": python, "stock_set_sha256": stock_sha}
    return _ensure_env(_key(meta), [stock], python, meta, f"the stock apache/airflow:{airflow_version} environment")


def recipe_python_bin(recipe_dir: Path, airflow_version: str | None = None) -> Path:
    """bin/ of an environment holding the recipe's stock set plus its requirements.lock (built once, cached).

    The recipe dir may lack stock/ (an unpacked recipe zip): the stock set then comes from RECIPE_DIR/stock.
    """
    recipe_dir = Path(recipe_dir)
    if airflow_version is not None:
        check_airflow_version(recipe_dir, airflow_version)
    stock = check_lock(recipe_dir)
    rhash = recipe_hash(recipe_dir)
    python = recipe_python_version(recipe_dir)
    meta = {
        "kind": "recipe",
        "airflow_version": recipe_airflow_version(recipe_dir),
        "python": python,
        "recipe_hash": rhash,
        "stock_set_sha256": _sha256_file(stock),
    }
    what = f"the image recipe {recipe_dir} environment"
    # Started from a hard-linked copy of the stock environment: only what the lock adds is installed.
    base = stock_python_bin(meta["airflow_version"], python, stock).parent
    bin_dir = _ensure_env(_key(meta), [stock, recipe_dir / "requirements.lock"], python, meta, what, base=base)
    _index_recipe(rhash, bin_dir.parent)
    return bin_dir


def built_recipe_python_bin(recipe_hash: str) -> Path | None:
    """bin/ of the environment built for the recipe with that hash, or None when none was built."""
    if not re.fullmatch(r"[0-9a-f]{64}", recipe_hash):
        return None
    link = cache_root() / "recipes" / recipe_hash
    if not link.exists():
        return None
    env = link.resolve()
    return env / "bin" if _complete(env) else None


def _key(meta: dict[str, str]) -> str:
    """The cache key of an environment: its inputs and how it is built."""
    inputs = {**meta, "compile_bytecode": COMPILE_BYTECODE}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:24]


def _complete(env: Path) -> bool:
    return (env / ENV_MARKER).is_file() and (env / "bin" / "python").exists()


@contextlib.contextmanager
def _file_lock(path: Path, blocking: bool = True) -> Iterator[bool]:
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _ensure_env(
    key: str, requirement_files: list[Path], python: str, meta: dict[str, str], what: str, *, base: Path | None = None
) -> Path:
    """envs/<key>: built in envs/.tmp-<key>-<pid> under locks/<key>.lock, then renamed; a leftover is rebuilt.

    With `base` (a finished environment) the build starts from a hard-linked copy of it.
    """
    root = cache_root()
    envs, locks = root / "envs", root / "locks"
    final = envs / key
    if _complete(final):
        return final / "bin"
    envs.mkdir(parents=True, exist_ok=True)
    locks.mkdir(parents=True, exist_ok=True)
    with _file_lock(locks / f"{key}.lock"):
        if _complete(final):
            return final / "bin"
        # What a killed or broken build left: this key's temp dirs, or a finished env whose interpreter went away.
        for leftover in [final, *envs.glob(f".tmp-{key}-*")]:
            if leftover.exists() or leftover.is_symlink():
                shutil.rmtree(leftover)
        tmp = envs / f".tmp-{key}-{os.getpid()}"
        started = time.monotonic()
        try:
            _build(tmp, requirement_files, python, what, base)
            record = {**meta, "built_seconds": round(time.monotonic() - started, 1), "built_at": time.time()}
            (tmp / ENV_MARKER).write_text(json.dumps(record, indent=2) + "\n")
            tmp.rename(final)
            with (root / BUILD_LOG).open("a") as log:
                log.write(json.dumps({"key": key, "pid": os.getpid(), **record}) + "\n")
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    _sweep_abandoned(envs, locks)
    return final / "bin"


def _build(target: Path, requirement_files: list[Path], python: str, what: str, base: Path | None) -> None:
    missing = ensure_build_packages()
    hint = f" (the Debian packages {', '.join(missing)} are missing: `apt-get install {' '.join(missing)}`)"
    uv = str(uv_bin())
    if base is not None:
        # Hard links (the venv is relocatable; uv replaces files rather than writing into them); the
        # marker is left out since it is rewritten.
        ignore = shutil.ignore_patterns(ENV_MARKER)
        shutil.copytree(base, target, symlinks=True, copy_function=os.link, ignore=ignore)
    else:
        interpreter = str(find_python(python))
        venv = [uv, "venv", "--quiet", "--relocatable", "--no-python-downloads", "--python", interpreter, str(target)]
        _run_uv(venv, f"creating {what} (uv venv)")
    sync = [uv, "pip", "sync", "--quiet", "--python", str(target / "bin" / "python"), *map(str, requirement_files)]
    if COMPILE_BYTECODE:
        sync.insert(4, "--compile-bytecode")
    _run_uv(
        sync, f"installing {what} (uv pip sync {' '.join(p.name for p in requirement_files)})", hint * bool(missing)
    )


def _sweep_abandoned(envs: Path, locks: Path) -> None:
    """Remove temp dirs of other keys whose builder is gone (their lock is free)."""
    for tmp in envs.glob(".tmp-*"):
        key = tmp.name[len(".tmp-") :].rsplit("-", 1)[0]
        with _file_lock(locks / f"{key}.lock", blocking=False) as free:
            if free and tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def _index_recipe(rhash: str, env: Path) -> None:
    """recipes/<recipe hash> → the env (a relative symlink, replaced atomically)."""
    recipes = cache_root() / "recipes"
    recipes.mkdir(parents=True, exist_ok=True)
    link = recipes / rhash
    if link.is_symlink() and link.resolve() == env.resolve():
        return
    tmp = recipes / f".tmp-{rhash}-{os.getpid()}-{threading.get_ident()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(os.path.relpath(env, recipes))
    tmp.replace(link)


def ensure_build_packages() -> list[str]:
    """Install (as root) the Debian packages mysqlclient and python-ldap need to build from source.

    Returns the ones still missing (not root): uv needs them only when it has no built wheel cached.
    """
    from embedded_aws.servers import ensure_apt_packages  # noqa: PLC0415 (only when an env is built)

    missing = [name for name, marker in BUILD_APT_PACKAGES.items() if not Path(marker).exists()]
    if not missing or os.geteuid() != 0:
        return missing
    try:
        ensure_apt_packages(BUILD_APT_PACKAGES)
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise ImageEnvError(f"apt-get could not install {', '.join(missing)}: {detail[0]}") from exc
    return []


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


# --- CLI ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m embedded_aws.image_env", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_lock = sub.add_parser("lock", help="reproduce the stock set if needed and re-pin requirements.lock")
    p_lock.add_argument("--airflow-version", help="fail unless the recipe starts from this Airflow version")
    p_lock.add_argument("--exclude-newer", help="the stock set's cut-off date for a version not recorded here")
    p_build = sub.add_parser("build", help="build (or find) the recipe's environment and print its bin/")
    p_build.add_argument("--stock", metavar="AIRFLOW_VERSION", help="the stock image's environment instead")
    p_build.add_argument("--python", default=DEFAULT_PYTHON, help="with --stock: the image's Python")
    p_hash = sub.add_parser("hash", help="print the recipe hash")
    p_hash.add_argument("--tag", action="store_true", help="print the image tag <airflow version>-<hash[:12]>")
    for p in (p_lock, p_build, p_hash):
        p.add_argument("--recipe", type=Path, default=RECIPE_DIR, help="the recipe directory (default: image/)")
    args = parser.parse_args(argv)
    try:
        if args.command == "lock":
            lock(args.recipe, args.airflow_version, args.exclude_newer)
            added = len(read_pins(args.recipe / "requirements.lock"))
            print(f"{args.recipe / 'requirements.lock'}: {added} packages beyond the stock set")
        elif args.command == "build":
            started = time.monotonic()
            bin_dir = stock_python_bin(args.stock, args.python) if args.stock else recipe_python_bin(args.recipe)
            print(bin_dir)
            print(f"ready in {time.monotonic() - started:.1f} s", file=sys.stderr)
        else:
            print(image_tag(args.recipe) if args.tag else recipe_hash(args.recipe))
    except ImageEnvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
