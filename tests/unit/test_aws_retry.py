"""The project's modules retry every throttling answer AWS gives, not only those AWSRetry knows."""

from __future__ import annotations

import pytest
from ansible_runner import ROOT
from botocore.exceptions import ClientError
from conftest import load_source

# How each service the stack uses sheds load or fails for a moment (embedded_aws/weather.py sends these).
TRANSIENT = [
    "ThrottlingException",
    "SlowDown",
    "RequestLimitExceeded",
    "Throttling",
    "InternalFailure",
    "InternalError",
]


@pytest.fixture
def aws_retry(monkeypatch: pytest.MonkeyPatch):
    return load_source("ansible.module_utils.aws_retry", ROOT / "module_utils/aws_retry.py", monkeypatch)


def flaky(code: str, failures: int):
    calls = []

    def call() -> str:
        calls.append(code)
        if len(calls) <= failures:
            raise ClientError({"Error": {"Code": code, "Message": "shed"}}, "DescribeTasks")
        return "answer"

    return call, calls


@pytest.mark.parametrize("code", TRANSIENT)
def test_a_transient_answer_is_retried_until_the_call_gets_through(aws_retry, code: str) -> None:
    call, calls = flaky(code, failures=3)
    assert aws_retry.jittered_backoff(delay=0)(call)() == "answer"
    assert len(calls) == 4


def test_a_real_error_is_not_retried(aws_retry) -> None:
    call, calls = flaky("AccessDeniedException", failures=3)
    with pytest.raises(ClientError):
        aws_retry.jittered_backoff(delay=0)(call)()
    assert len(calls) == 1


def test_a_module_specific_code_is_retried_too(aws_retry) -> None:
    call, calls = flaky("ResourceInUse", failures=1)
    assert aws_retry.jittered_backoff("ResourceInUse", delay=0)(call)() == "answer"
    assert len(calls) == 2
