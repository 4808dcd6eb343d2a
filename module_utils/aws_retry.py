"""The retry of every AWS call the project's modules make (with aws_retry=True or as a decorator).

AWSRetry (amazon.aws) retries Throttling, RequestLimitExceeded, TooManyRequestsException and the 5xx
codes only; the services' other ways of shedding load are added here, so ECS's ThrottlingException or
S3's SlowDown is retried with jittered backoff like the rest. The SDK retries every call first
(aws_module_defaults: standard mode, aws_max_attempts); this is the second line for the calls that
must get through. The unit test test_aws_retry drives it with each code.
"""

from __future__ import annotations

from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

THROTTLING_CODES = (
    "ThrottlingException",  # JSON protocols: ECS, Secrets Manager, Cloud Map, Logs, KMS, Auto Scaling...
    "ThrottledException",
    "RequestThrottledException",
    "SlowDown",  # S3
    "TooManyRequests",
    "PriorRequestNotComplete",  # Route 53
    "InternalServerException",
    "ServiceUnavailableException",
    "EC2ThrottledException",
)


def jittered_backoff(*extra_codes: str, **kwargs):
    """AWSRetry.jittered_backoff retrying the throttling codes above and `extra_codes` as well."""
    return AWSRetry.jittered_backoff(catch_extra_error_codes=[*THROTTLING_CODES, *extra_codes], **kwargs)
