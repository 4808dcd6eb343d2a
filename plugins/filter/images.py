"""The image recipe (image/) as the images role reads it: its hash, Airflow version, zip and lock state.

The recipe hash (the image's identity, its tag suffix), the Dockerfile's Airflow version and the lock's
header are read by `embedded_aws/image_env.py`, which the local runtime and `make image-lock` use too: one
reading of the recipe for the deploy and the emulator.
"""

from __future__ import annotations

import base64
import io
import re
import sys
import zipfile
from pathlib import Path

from ansible.errors import AnsibleFilterError

# The project root (plugins/filter/ is two levels down, also through the filter_plugins link).
_PROJECT = str(Path(__file__).resolve().parents[2])
if _PROJECT not in sys.path:
    sys.path.append(_PROJECT)
from embedded_aws import image_env  # noqa: E402

DOCUMENTATION = """
name: images
short_description: Image recipe helpers for airflow-ecs
description: >-
  recipe_hash, recipe_airflow_version, recipe_image_tag, recipe_zip_base64, recipe_lock_problem and
  image_reference; see each docstring.
"""

# A zip entry's fixed timestamp (the earliest a zip can hold) and mode: the same recipe gives the same bytes.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
IMAGE = re.compile(
    r"^(?P<repository>(?:[a-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>[^@]*))?$"
)


def _files(recipe_dir: str | Path) -> dict[str, bytes]:
    root = Path(recipe_dir)
    missing = [name for name in image_env.RECIPE_FILES if not (root / name).is_file()]
    if missing:
        raise AnsibleFilterError(f"the image recipe {root} lacks {', '.join(missing)} (see image/README.md)")
    return {name: (root / name).read_bytes() for name in image_env.RECIPE_FILES}


def recipe_hash(recipe_dir: str | Path) -> str:
    """sha256 hex of the recipe (Dockerfile, requirements.lock, requirements.txt): image_env.recipe_hash."""
    _files(recipe_dir)  # every file there, or the filter's own error
    return image_env.recipe_hash(Path(recipe_dir))


def recipe_airflow_version(recipe_dir: str | Path) -> str:
    """The Airflow version of the Dockerfile's `ARG BASE_IMAGE=apache/airflow:<version>`; '' when it has none."""
    try:
        return image_env.recipe_airflow_version(Path(recipe_dir))
    except image_env.ImageEnvError:
        return ""


def recipe_image_tag(recipe_dir: str | Path) -> str:
    """The tag of the recipe's image, `<airflow version>-<recipe hash[:12]>`: image_env.image_tag."""
    _files(recipe_dir)
    return image_env.image_tag(Path(recipe_dir))


def recipe_zip_base64(recipe_dir: str | Path) -> str:
    """The recipe files as a zip, base64: fixed order, timestamps and modes, so one recipe gives one byte string."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in _files(recipe_dir).items():
            entry = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.create_system = 3  # unix, so the mode below is what unzip restores
            entry.external_attr = 0o100644 << 16
            archive.writestr(entry, data, compresslevel=9)
    return base64.b64encode(buffer.getvalue()).decode()


def recipe_lock_problem(recipe_dir: str | Path) -> str:
    """'' when requirements.lock is current (image_env.check_lock, as the local runtime checks it), else what is
    wrong (one sentence)."""
    try:
        image_env.check_lock(Path(recipe_dir))
    except image_env.ImageEnvError as err:
        return str(err)
    except OSError as err:
        return f"cannot read the recipe's requirements ({err.strerror}: {err.filename})"
    return ""


def image_reference(reference: str) -> dict[str, str]:
    """An image reference's parts: repository, tag and digest ('' when absent); all '' when it is not one."""
    found = IMAGE.match(reference or "")
    if not found:
        return {"repository": "", "tag": "", "digest": ""}
    return {key: found[key] or "" for key in ("repository", "tag", "digest")}


class FilterModule:
    def filters(self) -> dict:
        return {
            "recipe_hash": recipe_hash,
            "recipe_airflow_version": recipe_airflow_version,
            "recipe_image_tag": recipe_image_tag,
            "recipe_zip_base64": recipe_zip_base64,
            "recipe_lock_problem": recipe_lock_problem,
            "image_reference": image_reference,
        }
