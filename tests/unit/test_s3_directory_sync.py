"""library/s3_directory_sync.py against a moto server, through the real `ansible` CLI.

The module is pointed at embedded_aws/weather.py's proxy (no latency) in front of the emulator, which
counts the calls that really reach it per operation; what the bucket holds is read with boto3 from the
emulator directly. moto gives a single-part object the MD5 of its content as ETag, as S3 does with
SSE-S3, and a multipart object an ETag `<md5 of the parts' MD5s>-<parts>`, which is how the HeadObject
fallback is driven.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ansible_runner import run_module
from emulator import Emulator, endpoint_env, free_port

from embedded_aws.weather import Weather, WeatherProxy

MODULE = "s3_directory_sync"
BUCKET = "airflow-dags"
LIST = "s3 GET Bucket?encoding-type,list-type,prefix"
HEAD = "s3 HEAD Object"
PUT = "s3 PUT Object"
FILES = {
    "books_etl.py": "from etl import parse\n",
    "etl/__init__.py": "",
    "etl/parse.py": "def parse(page):\n    return page\n",
    "etl/books.json": '{"books": []}\n',
}
KEYS = sorted(f"dags/{name}" for name in FILES)


@pytest.fixture
def proxy(clean_emulator: Emulator) -> Iterator[WeatherProxy]:
    """A counting proxy in front of the blank emulator, holding an empty bucket `airflow-dags`."""
    clean_emulator.client("s3").create_bucket(Bucket=BUCKET)
    server = WeatherProxy(clean_emulator.url, Weather(latency_ms=0))
    yield server
    server.close()


@pytest.fixture
def dags(tmp_path: Path) -> Path:
    """A DAG folder holding FILES."""
    root = tmp_path / "dags"
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def sync(proxy: WeatherProxy, src: Path, check: bool = False, diff: bool = False, **args: Any) -> dict:
    """Run the module through the proxy, with the call counts of this run only in result['calls']."""
    proxy.weather.reset()
    result = run_module(
        MODULE,
        {"bucket": BUCKET, "src": str(src), "prefix": "dags/", **args},
        env=endpoint_env(proxy.url),
        check=check,
        diff=diff,
    )
    result["calls"] = proxy.weather.stats()["calls"]
    return result


def in_bucket(emulator: Emulator, bucket: str = BUCKET) -> dict[str, bytes]:
    """Every object of the bucket, by key, with its content."""
    s3 = emulator.client("s3")
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def uploaded(result: dict) -> dict[str, str]:
    return {entry["s3_path"]: entry["reason"] for entry in result["uploaded"]}


def test_first_sync_uploads_everything_then_a_rerun_only_lists(
    proxy: WeatherProxy, dags: Path, clean_emulator: Emulator
) -> None:
    first = sync(proxy, dags)
    assert first["changed"] is True, first
    assert uploaded(first) == dict.fromkeys(KEYS, "missing")
    assert first["removed"] == []
    assert first["calls"] == {LIST: 1, PUT: len(FILES)}
    assert in_bucket(clean_emulator) == {f"dags/{name}": text.encode() for name, text in FILES.items()}
    head = clean_emulator.client("s3").head_object(Bucket=BUCKET, Key="dags/etl/books.json")
    assert head["ContentType"] == "application/json"
    assert head["Metadata"] == {"md5": hashlib.md5(FILES["etl/books.json"].encode()).hexdigest()}
    parse = next(entry for entry in first["uploaded"] if entry["s3_path"] == "dags/etl/parse.py")
    assert parse == {
        "s3_path": "dags/etl/parse.py",
        "fullpath": str(dags / "etl/parse.py"),
        "bytes": len(FILES["etl/parse.py"]),
        "mime_type": "text/x-python",
        "reason": "missing",
    }

    again = sync(proxy, dags, delete=True, diff=True)
    assert again["changed"] is False, again
    assert (again["uploaded"], again["removed"]) == ([], [])
    assert again["calls"] == {LIST: 1}
    assert again["diff"] == {"prepared": ""}


def test_changed_and_vanished_files_are_uploaded_again(
    proxy: WeatherProxy, dags: Path, clean_emulator: Emulator
) -> None:
    sync(proxy, dags)
    (dags / "etl/parse.py").write_text(FILES["etl/parse.py"].replace("page", "PAGE"))  # same size
    (dags / "books_etl.py").write_text("from etl import parse, books\n")
    clean_emulator.client("s3").delete_object(Bucket=BUCKET, Key="dags/etl/__init__.py")

    changed = sync(proxy, dags, diff=True)
    assert changed["changed"] is True, changed
    assert uploaded(changed) == {
        "dags/books_etl.py": "size",
        "dags/etl/__init__.py": "missing",
        "dags/etl/parse.py": "checksum",
    }
    assert changed["calls"] == {LIST: 1, HEAD: 1, PUT: 3}  # HEAD: same size, ETag not the file's MD5
    assert changed["diff"]["prepared"] == (
        "+ dags/books_etl.py (size)\n+ dags/etl/__init__.py (missing)\n+ dags/etl/parse.py (checksum)\n"
    )
    stored = in_bucket(clean_emulator)
    assert sorted(stored) == KEYS
    assert stored["dags/etl/parse.py"] == b"def parse(PAGE):\n    return PAGE\n"
    assert stored["dags/books_etl.py"] == b"from etl import parse, books\n"

    assert sync(proxy, dags)["calls"] == {LIST: 1}


def test_object_whose_etag_is_no_md5_is_compared_by_its_md5_metadata(
    proxy: WeatherProxy, dags: Path, clean_emulator: Emulator
) -> None:
    """A multipart upload (as SSE-KMS) has an ETag that is not the content's MD5: HeadObject decides."""
    sync(proxy, dags)
    s3 = clean_emulator.client("s3")
    body = FILES["etl/parse.py"].encode()
    for key, metadata in (("dags/etl/parse.py", {"md5": hashlib.md5(body).hexdigest()}), ("dags/books_etl.py", {})):
        content = body if key == "dags/etl/parse.py" else FILES["books_etl.py"].encode()
        upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key=key, Metadata=metadata)["UploadId"]
        part = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=1, Body=content)
        s3.complete_multipart_upload(
            Bucket=BUCKET,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )
        assert "-" in s3.head_object(Bucket=BUCKET, Key=key)["ETag"]

    result = sync(proxy, dags)
    # parse.py carries the right x-amz-meta-md5: kept; books_etl.py has none: uploaded again.
    assert uploaded(result) == {"dags/books_etl.py": "checksum"}, result
    assert result["calls"] == {LIST: 1, HEAD: 2, PUT: 1}
    assert sync(proxy, dags)["calls"] == {LIST: 1, HEAD: 1}  # parse.py stays multipart


def test_delete_removes_only_keys_under_the_prefix_without_a_local_file(
    proxy: WeatherProxy, dags: Path, clean_emulator: Emulator
) -> None:
    s3 = clean_emulator.client("s3")
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    sync(proxy, dags)
    neighbours = ["dags-old/books_etl.py", "other/dags/old.py", "dags/"]  # "dags/": a console folder placeholder
    for key in [*neighbours, "dags/old_dag.py", "dags/etl/gone.py"]:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")

    kept = sync(proxy, dags)
    assert kept["changed"] is False, kept
    assert kept["removed"] == []
    assert len(in_bucket(clean_emulator)) == len(KEYS) + len(neighbours) + 2

    planned = sync(proxy, dags, check=True, delete=True)
    assert planned["changed"] is True, planned
    assert planned["removed"] == ["dags/etl/gone.py", "dags/old_dag.py"]
    assert len(in_bucket(clean_emulator)) == len(KEYS) + len(neighbours) + 2

    removed = sync(proxy, dags, delete=True, diff=True)
    assert removed["changed"] is True, removed
    assert removed["removed"] == ["dags/etl/gone.py", "dags/old_dag.py"]
    assert removed["diff"]["prepared"] == "- dags/etl/gone.py\n- dags/old_dag.py\n"
    assert removed["calls"] == {LIST: 1, "s3 POST Bucket?delete": 1}
    assert sorted(in_bucket(clean_emulator)) == sorted(KEYS + neighbours)
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix="dags/old_dag.py")
    assert [marker["IsLatest"] for marker in versions["DeleteMarkers"]] == [True]  # the old version stays

    assert sync(proxy, dags, delete=True)["changed"] is False


def test_excluded_files_and_folders_are_not_uploaded(proxy: WeatherProxy, dags: Path, clean_emulator: Emulator) -> None:
    for name in (
        "etl/parse.pyc",
        ".DS_Store",
        "__pycache__/books_etl.cpython-312.pyc",
        "__pycache__/notes.txt",
        "etl/raw.csv",
    ):
        (dags / name).parent.mkdir(exist_ok=True)
        (dags / name).write_text("skip me")
    exclude = ["*.pyc", ".DS_Store", "__pycache__", "etl/*.csv"]

    result = sync(proxy, dags, exclude=exclude)
    assert sorted(uploaded(result)) == KEYS, result
    assert sorted(in_bucket(clean_emulator)) == KEYS

    # Without the patterns the same files are uploaded: the patterns above are what kept them out.
    everything = sync(proxy, dags)
    assert sorted(uploaded(everything)) == [
        "dags/.DS_Store",
        "dags/__pycache__/books_etl.cpython-312.pyc",
        "dags/__pycache__/notes.txt",
        "dags/etl/parse.pyc",
        "dags/etl/raw.csv",
    ]
    # An excluded file's object counts as having no local file.
    cleaned = sync(proxy, dags, exclude=exclude, delete=True)
    assert cleaned["removed"] == sorted(uploaded(everything)), cleaned
    assert sorted(in_bucket(clean_emulator)) == KEYS


def test_check_mode_changes_nothing(proxy: WeatherProxy, dags: Path, clean_emulator: Emulator) -> None:
    planned = sync(proxy, dags, check=True, diff=True)
    assert planned["changed"] is True, planned
    assert uploaded(planned) == dict.fromkeys(KEYS, "missing")
    assert planned["diff"]["prepared"] == "".join(f"+ {key} (missing)\n" for key in KEYS)
    assert planned["calls"] == {LIST: 1}
    assert in_bucket(clean_emulator) == {}

    sync(proxy, dags)
    (dags / "books_etl.py").write_text("changed\n")
    planned = sync(proxy, dags, check=True)
    assert uploaded(planned) == {"dags/books_etl.py": "size"}, planned
    assert in_bucket(clean_emulator)["dags/books_etl.py"] == FILES["books_etl.py"].encode()


def test_missing_bucket_counts_as_empty_only_in_check_mode(proxy: WeatherProxy, dags: Path) -> None:
    """`make check` on a new account: the DAG bucket is only planned."""
    planned = sync(proxy, dags, check=True, bucket="not-made-yet")
    assert planned["changed"] is True, planned
    assert sorted(uploaded(planned)) == KEYS

    failed = sync(proxy, dags, bucket="not-made-yet")
    assert failed.get("failed") is True, failed
    assert failed["msg"] == "bucket: s3://not-made-yet does not exist"
    assert PUT not in failed["calls"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"prefix": "dags"}, "prefix: got 'dags'; a prefix ends with '/'"),
        ({"prefix": "/dags/"}, "prefix: got '/dags/'; a prefix ends with '/' and does not start with it"),
        ({"prefix": ""}, "prefix: got ''"),
        ({"src": "/nonexistent/dags"}, "src: got '/nonexistent/dags'; it is not a directory on this machine"),
        ({"bucket": "Airflow_DAGs"}, "bucket: got 'Airflow_DAGs'; a bucket name is 3 to 63 characters"),
        ({"bucket": None}, "missing required arguments: bucket"),
    ],
)
def test_bad_input_is_refused_before_any_call(dags: Path, args: dict[str, Any], message: str) -> None:
    """Pointed at a port nothing listens on: any AWS call would fail with a connection error instead."""
    module_args = {"bucket": BUCKET, "src": str(dags), "prefix": "dags/", **args}
    module_args = {key: value for key, value in module_args.items() if value is not None}
    result = run_module(MODULE, module_args, env=endpoint_env(f"http://127.0.0.1:{free_port()}"))
    assert result.get("failed") is True, result
    assert message in result["msg"]
    assert result.get("changed", False) is False
