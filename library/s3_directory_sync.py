#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Upload a local directory to an S3 prefix, deciding from one listing (project library module)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: s3_directory_sync
short_description: Upload the changed files of a local directory to an S3 prefix
description:
  - Uploads every file under O(src) whose object under O(prefix) in O(bucket) is missing or differs, and
    with O(delete=true) removes the objects under O(prefix) that have no local file.
  - What differs is decided from one paginated C(ListObjectsV2) of O(prefix) (one call per 1000 objects);
    community.aws.s3_sync with O(ignore:file_change_strategy=checksum) sends one C(HeadObject) per local file
    and lists the prefix again for O(delete).
  - A file is uploaded when its key is not listed, when the listed size differs from the file's, or when
    the listed ETag differs from the file's MD5 and the object's C(x-amz-meta-md5) does too.
  - The ETag of an object uploaded in one part to a bucket encrypted with SSE-S3 (or not encrypted) is
    the MD5 of its content, so a file that did not change costs nothing beyond the listing. The ETag
    of a multipart upload (it contains C(-)) or of an object encrypted with SSE-KMS or SSE-C is not an
    MD5; for such an object of the same size the module reads C(HeadObject) and compares the
    C(x-amz-meta-md5) metadata it writes on every upload. An object of the same size whose ETag differs
    therefore costs one C(HeadObject) before it is uploaded again (and one C(HeadObject) on every run
    when the bucket is encrypted with SSE-KMS).
  - Every file is uploaded with one C(PutObject), with C(Content-MD5) (S3 refuses a body that arrived
    damaged), the content type guessed from its extension (Python's mimetypes;
    C(application/octet-stream) when unknown) and C(x-amz-meta-md5).
  - Objects are removed with C(DeleteObjects), up to 1000 keys a call. In a versioned bucket this
    leaves delete markers; the earlier versions stay.
  - Supports check mode and diff mode. In check mode only the listing (and the C(HeadObject) fallback) is
    read; RV(uploaded) and RV(removed) say what would be done. In check mode a bucket that does not
    exist yet (a planned deploy) counts as empty.
author:
  - airflow-ecs project
options:
  bucket:
    description:
      - Name of the bucket, which must exist.
      - 3 to 63 characters from C(a-z), C(0-9), C(.) and C(-); any other name is refused before any AWS call.
    type: str
    required: true
  src:
    description:
      - The local directory whose files are uploaded, with their paths relative to it, for example
        C(etl/parse.py) becomes C(<prefix>etl/parse.py).
      - Symbolic links to files are followed; links to directories are not.
      - A path that is not a directory is refused before any AWS call.
    type: path
    required: true
  prefix:
    description:
      - The key prefix the directory is mirrored to, for example V(dags/). It must end with C(/) and not
        start with C(/), so that O(delete) never reaches a neighbour such as C(dags-old/).
      - Only objects under this prefix are read or removed.
    type: str
    required: true
  exclude:
    description:
      - Shell-style patterns (fnmatch) of files and directories not to upload, for example V(*.pyc) or
        V(__pycache__). A pattern is matched against each file's and directory's name and against its
        path relative to O(src) (V(etl/*.csv)).
      - With O(delete=true) the object of an excluded file counts as having no local file and is removed.
    type: list
    elements: str
    default: []
  delete:
    description:
      - Remove the objects under O(prefix) that have no local file (excluded files count as missing).
      - Keys ending with C(/) (folder placeholders made by the S3 console) are left alone.
    type: bool
    default: false
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - API calls per run are one C(ListObjectsV2) per 1000 objects under O(prefix); plus one C(PutObject) per
    file uploaded; plus one C(HeadObject) per object of the same size whose ETag is not the file's MD5 (see
    above); plus one C(DeleteObjects) per 1000 keys removed.
  - Files are read whole into memory to be uploaded in one part; a file over 5 GiB (the C(PutObject)
    limit) is refused before any AWS call.
  - The caller needs C(s3:ListBucket) on the bucket and C(s3:PutObject), C(s3:GetObject) (the
    C(HeadObject) fallback) and, with O(delete=true), C(s3:DeleteObject) on its objects.
seealso:
  - module: community.aws.s3_sync
"""

EXAMPLES = r"""
- name: Upload changed DAG files to the DAG bucket and remove the ones deleted locally
  s3_directory_sync:
    bucket: airflow-dags-123456789012-us-east-1
    src: "{{ playbook_dir }}/dags"
    prefix: dags/
    exclude: ["*.pyc", "*.pyo", ".DS_Store", "__pycache__"]
    delete: true
  register: __dags_sync

- name: Report what changed
  ansible.builtin.debug:
    msg: "uploaded {{ __dags_sync.uploaded | map(attribute='s3_path') | list }}; removed {{ __dags_sync.removed }}"
"""

RETURN = r"""
uploaded:
  description:
    - The files uploaded, sorted by key. In check mode, the files that would be uploaded.
  returned: always
  type: list
  elements: dict
  contains:
    s3_path:
      description: Key of the object.
      type: str
      sample: dags/etl/parse.py
    fullpath:
      description: Path of the local file.
      type: str
      sample: /src/airflow-ecs/dags/etl/parse.py
    bytes:
      description: Size of the file.
      type: int
      sample: 2048
    mime_type:
      description: Content type of the object.
      type: str
      sample: text/x-python
    reason:
      description: V(missing) (no object), V(size) (the sizes differ) or V(checksum) (same size, other content).
      type: str
      sample: checksum
removed:
  description:
    - Keys of the objects removed (O(delete=true)), sorted. In check mode, the keys that would be removed.
  returned: always
  type: list
  elements: str
  sample: [dags/old_dag.py]
diff:
  description: One line per upload (C(+ key (reason))) and per removal (C(- key)).
  returned: in diff mode
  type: dict
  contains:
    prepared:
      description: The lines.
      type: str
      sample: "+ dags/etl/parse.py (checksum)\n- dags/old_dag.py\n"
"""

import base64
import contextlib
import fnmatch
import hashlib
import mimetypes
import os
import re
from typing import Any

with contextlib.suppress(ImportError):  # a missing botocore is reported by AnsibleAWSModule
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
MAX_PUT_BYTES = 5 * 1024**3
DELETE_BATCH = 1000


def argument_spec() -> dict[str, Any]:
    return dict(
        bucket=dict(type="str", required=True),
        src=dict(type="path", required=True),
        prefix=dict(type="str", required=True),
        exclude=dict(type="list", elements="str", default=[]),
        delete=dict(type="bool", default=False),
    )


# --- Input ---------------------------------------------------------------------------------------


def check_input(module: AnsibleAWSModule) -> None:
    bucket, src, prefix = module.params["bucket"], module.params["src"], module.params["prefix"]
    if not BUCKET.fullmatch(bucket):
        module.fail_json(msg=f"bucket: got {bucket!r}; a bucket name is 3 to 63 characters from a-z, 0-9, '.' and '-'")
    if not os.path.isdir(src):
        module.fail_json(msg=f"src: got {src!r}; it is not a directory on this machine")
    if not prefix.endswith("/") or prefix.startswith("/"):
        module.fail_json(msg=f"prefix: got {prefix!r}; a prefix ends with '/' and does not start with it, e.g. 'dags/'")


def excluded(name: str, relative: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(relative, p) for p in patterns)


def md5_of(path: str) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def local_files(module: AnsibleAWSModule) -> dict[str, dict[str, Any]]:
    """Every file to mirror, by key: fullpath, bytes, md5, mime_type. Fails on an unreadable or too big file."""
    src, prefix, patterns = module.params["src"], module.params["prefix"], module.params["exclude"]
    files: dict[str, dict[str, Any]] = {}
    for dirpath, dirnames, filenames in os.walk(src):
        here = os.path.relpath(dirpath, src)
        dirnames[:] = [
            d for d in sorted(dirnames) if not excluded(d, os.path.normpath(os.path.join(here, d)), patterns)
        ]
        for name in sorted(filenames):
            fullpath = os.path.join(dirpath, name)
            relative = os.path.normpath(os.path.join(here, name))
            if excluded(name, relative, patterns) or not os.path.isfile(fullpath):
                continue
            try:
                size = os.path.getsize(fullpath)
                digest = md5_of(fullpath)
            except OSError as e:
                module.fail_json(msg=f"src: cannot read {fullpath}: {e}")
            if size > MAX_PUT_BYTES:
                module.fail_json(msg=f"src: {fullpath} has {size} bytes; files over 5 GiB are not uploaded")
            files[prefix + relative.replace(os.sep, "/")] = {
                "fullpath": fullpath,
                "bytes": size,
                "md5": digest,
                "mime_type": mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream",
            }
    return files


# --- Reading -------------------------------------------------------------------------------------


def list_prefix(module: AnsibleAWSModule, client: Any, bucket: str, prefix: str) -> dict[str, dict[str, Any]] | None:
    """Every object under the prefix by key (Size, ETag); None when the bucket does not exist."""
    objects: dict[str, dict[str, Any]] = {}
    token: dict[str, str] = {}
    while True:
        try:
            page = client.list_objects_v2(Bucket=bucket, Prefix=prefix, aws_retry=True, **token)
        except is_boto3_error_code("NoSuchBucket"):
            return None
        except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
            module.fail_json_aws(e, msg=f"Failed to list s3://{bucket}/{prefix}")
        for item in page.get("Contents", []):
            objects[item["Key"]] = item
        if not page.get("IsTruncated"):
            return objects
        token = {"ContinuationToken": page["NextContinuationToken"]}


def stored_md5(module: AnsibleAWSModule, client: Any, bucket: str, key: str) -> str | None:
    """The x-amz-meta-md5 this module wrote; None for an object without it or gone meanwhile."""
    try:
        head = client.head_object(Bucket=bucket, Key=key, aws_retry=True)
    except is_boto3_error_code(["404", "NoSuchKey", "NotFound"]):
        return None
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to read s3://{bucket}/{key}")
    return head.get("Metadata", {}).get("md5")


def reason_to_upload(module: AnsibleAWSModule, client: Any, key: str, local: dict, stored: dict | None) -> str | None:
    """Why the file must be uploaded (missing, size, checksum); None when the object holds it."""
    bucket = module.params["bucket"]
    if stored is None:
        return "missing"
    if stored.get("Size") != local["bytes"]:
        return "size"
    etag = stored.get("ETag", "").strip('"')
    if etag == local["md5"]:
        return None
    # Not the file's MD5: other content, or an ETag that is no MD5 (multipart, SSE-KMS, SSE-C).
    if stored_md5(module, client, bucket, key) == local["md5"]:
        return None
    return "checksum"


# --- Changing ------------------------------------------------------------------------------------


def upload(module: AnsibleAWSModule, client: Any, bucket: str, key: str, local: dict) -> None:
    try:
        with open(local["fullpath"], "rb") as f:
            body = f.read()
    except OSError as e:
        module.fail_json(msg=f"src: cannot read {local['fullpath']}: {e}")
    if hashlib.md5(body, usedforsecurity=False).hexdigest() != local["md5"]:
        module.fail_json(msg=f"src: {local['fullpath']} changed while it was being uploaded; run again")
    try:
        client.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentType=local["mime_type"],
            ContentMD5=base64.b64encode(bytes.fromhex(local["md5"])).decode(),
            Metadata={"md5": local["md5"]},
            aws_retry=True,
        )
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to upload {local['fullpath']} to s3://{bucket}/{key}")


def delete_keys(module: AnsibleAWSModule, client: Any, bucket: str, keys: list[str]) -> None:
    for start in range(0, len(keys), DELETE_BATCH):
        batch = keys[start : start + DELETE_BATCH]
        try:
            response = client.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}, aws_retry=True
            )
        except (BotoCoreError, ClientError) as e:
            module.fail_json_aws(e, msg=f"Failed to remove {len(batch)} objects from s3://{bucket}")
        if errors := response.get("Errors"):
            detail = "; ".join(f"{e.get('Key')}: {e.get('Code')} {e.get('Message')}" for e in errors)
            module.fail_json(msg=f"S3 refused to remove objects from s3://{bucket}: {detail}")


# --- Run -----------------------------------------------------------------------------------------


def sync(module: AnsibleAWSModule, client: Any, files: dict[str, dict[str, Any]]) -> dict[str, Any]:
    bucket, prefix = module.params["bucket"], module.params["prefix"]
    listed = list_prefix(module, client, bucket, prefix)
    if listed is None:
        if not module.check_mode:
            module.fail_json(msg=f"bucket: s3://{bucket} does not exist")
        listed = {}  # a bucket the same check run plans to create

    uploads = []
    for key, local in sorted(files.items()):
        reason = reason_to_upload(module, client, key, local, listed.get(key))
        if reason:
            uploads.append((key, local, reason))
    removed = []
    if module.params["delete"]:
        removed = sorted(key for key in listed if key not in files and not key.endswith("/"))

    if not module.check_mode:
        for key, local, _ in uploads:
            upload(module, client, bucket, key, local)
        delete_keys(module, client, bucket, removed)

    uploaded = [
        {"s3_path": key, **{k: local[k] for k in ("fullpath", "bytes", "mime_type")}, "reason": reason}
        for key, local, reason in uploads
    ]
    lines = [f"+ {key} ({reason})\n" for key, _, reason in uploads] + [f"- {key}\n" for key in removed]
    return {
        "changed": bool(uploads or removed),
        "uploaded": uploaded,
        "removed": removed,
        "diff": {"prepared": "".join(lines)},
    }


def main() -> None:
    module = AnsibleAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    # Refuse bad input (and unreadable files) before any AWS call.
    check_input(module)
    files = local_files(module)

    client = module.client("s3", retry_decorator=jittered_backoff())
    result = sync(module, client, files)
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
