"""plugins/filter/images.py: the recipe hash (the same as embedded_aws.image_env's on the real image/), the
recipe's Airflow version, the deterministic zip, the lock's freshness and image references."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import os
import shutil
import zipfile
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from role_files import ROOT

from embedded_aws import image_env

_spec = importlib.util.spec_from_file_location("airflow_ecs_images_filter", ROOT / "plugins" / "filter" / "images.py")
images = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(images)

RECIPE = ROOT / "image"


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    """A copy of the real recipe (Dockerfile, requirements.txt, requirements.lock) to change."""
    copy = tmp_path / "image"
    copy.mkdir()
    for name in image_env.RECIPE_FILES:
        shutil.copy(RECIPE / name, copy / name)
    return copy


def test_recipe_hash_is_image_envs_on_the_real_recipe() -> None:
    assert images.recipe_hash(RECIPE) == image_env.recipe_hash(RECIPE)
    assert images.recipe_airflow_version(RECIPE) == image_env.recipe_airflow_version(RECIPE)


def test_recipe_hash_follows_every_file(recipe: Path) -> None:
    before = images.recipe_hash(recipe)
    (recipe / "requirements.txt").write_text((recipe / "requirements.txt").read_text() + "\n")
    assert images.recipe_hash(recipe) != before
    assert images.recipe_hash(recipe) == image_env.recipe_hash(recipe)
    assert images.recipe_image_tag(recipe) == f"3.3.2-{images.recipe_hash(recipe)[:12]}"


def test_zip_is_the_same_bytes_for_the_same_recipe_whatever_the_file_times(recipe: Path) -> None:
    first = images.recipe_zip_base64(recipe)
    for name in image_env.RECIPE_FILES:
        os.utime(recipe / name, (1_000_000_000, 1_000_000_000))
    assert images.recipe_zip_base64(recipe) == first
    archive = zipfile.ZipFile(io.BytesIO(base64.b64decode(first)))
    assert archive.namelist() == list(image_env.RECIPE_FILES)
    for name in image_env.RECIPE_FILES:
        assert archive.read(name) == (recipe / name).read_bytes()
    (recipe / "Dockerfile").write_text((recipe / "Dockerfile").read_text() + "# changed\n")
    assert images.recipe_zip_base64(recipe) != first


def test_a_current_lock_has_no_problem_and_a_stale_one_says_make_image_lock(recipe: Path) -> None:
    assert images.recipe_lock_problem(recipe) == ""
    (recipe / "requirements.txt").write_text((recipe / "requirements.txt").read_text() + "requests>=2\n")
    problem = images.recipe_lock_problem(recipe)
    assert "requirements.txt changed" in problem and "make image-lock" in problem
    with pytest.raises(image_env.ImageEnvError):  # image_env agrees that it is stale
        image_env.check_lock(recipe)


def test_lock_without_header_and_missing_files(recipe: Path) -> None:
    lock = recipe / "requirements.lock"
    lock.write_text("\n".join(line for line in lock.read_text().splitlines() if not line.startswith("#")))
    assert "requirements.txt changed since requirements.lock was made" in images.recipe_lock_problem(recipe)
    lock.unlink()
    assert "has no requirements.lock; run `make image-lock`" in images.recipe_lock_problem(recipe)
    with pytest.raises(AnsibleFilterError, match=r"lacks requirements\.lock"):
        images.recipe_hash(recipe)


def test_airflow_version_of_the_dockerfile(recipe: Path) -> None:
    dockerfile = recipe / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("apache/airflow:3.3.2", "apache/airflow:3.4.0-python3.12"))
    assert images.recipe_airflow_version(recipe) == "3.4.0"
    assert "no stock package set for apache/airflow:3.4.0" in images.recipe_lock_problem(recipe)
    dockerfile.write_text("FROM scratch\n")
    assert images.recipe_airflow_version(recipe) == ""
    assert images.recipe_airflow_version(recipe / "missing") == ""


@pytest.mark.parametrize(
    ("reference", "parts"),
    [
        ("apache/airflow:3.3.2", ("apache/airflow", "3.3.2", "")),
        ("rabbitmq:4.1.4-management", ("rabbitmq", "4.1.4-management", "")),
        (
            f"1.dkr.ecr.us-east-1.amazonaws.com/a/airflow@sha256:{'a' * 64}",
            ("1.dkr.ecr.us-east-1.amazonaws.com/a/airflow", "", f"sha256:{'a' * 64}"),
        ),
        (f"rabbitmq:4@sha256:{'b' * 64}", ("rabbitmq", "4", f"sha256:{'b' * 64}")),
        ("rabbitmq:4@sha256:xyz", ("rabbitmq", "4", "sha256:xyz")),
        ("Not An Image", ("", "", "")),
    ],
)
def test_image_reference(reference: str, parts: tuple[str, str, str]) -> None:
    found = images.image_reference(reference)
    assert (found["repository"], found["tag"], found["digest"]) == parts


def test_sha256_of_the_zip_is_stable() -> None:
    """The same recipe always uploads the same bytes: what S3 holds for its key never needs replacing."""
    once = hashlib.sha256(base64.b64decode(images.recipe_zip_base64(RECIPE))).hexdigest()
    assert once == hashlib.sha256(base64.b64decode(images.recipe_zip_base64(RECIPE))).hexdigest()
