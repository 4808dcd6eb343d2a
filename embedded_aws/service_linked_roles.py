"""Service-linked roles as AWS names them, and ECS's first cluster in an account without its role.

moto names a service-linked role after its principal's first label (AWSServiceRoleForecs); AWS gives each
service a fixed name. In a new account ECS's role does not exist until ECS makes it, and CreateCluster or
PutClusterCapacityProviders with capacity providers fails meanwhile ("Unable to assume the service linked
role"; the retry works): here such a call makes the role and fails the same way, so a deploy that does
not create the role first fails here as on a new account.
"""

from __future__ import annotations

import json
from typing import Any

from moto.ecs.exceptions import InvalidParameterException
from moto.ecs.models import EC2ContainerServiceBackend
from moto.iam.models import IAMBackend, Role, iam_backends
from moto.utilities.utils import get_partition

AWS_NAMES = {
    "ecs.amazonaws.com": "AWSServiceRoleForECS",
    "elasticloadbalancing.amazonaws.com": "AWSServiceRoleForElasticLoadBalancing",
    "rds.amazonaws.com": "AWSServiceRoleForRDS",
    "mq.amazonaws.com": "AWSServiceRoleForAmazonMQ",
    "ecs.application-autoscaling.amazonaws.com": "AWSServiceRoleForApplicationAutoScaling_ECSService",
    "pullthroughcache.ecr.amazonaws.com": "AWSServiceRoleForECRPullThroughCache",
}
ECS = "ecs.amazonaws.com"
NO_ROLE = "Unable to assume the service linked role. Please verify that the ECS service linked role exists."

_moto_create_service_linked_role = IAMBackend.create_service_linked_role
_moto_create_cluster = EC2ContainerServiceBackend.create_cluster
_moto_put_cluster_capacity_providers = EC2ContainerServiceBackend.put_cluster_capacity_providers


def create_service_linked_role(self: IAMBackend, service_name: str, description: str, suffix: str) -> Role:
    name = AWS_NAMES.get(service_name)
    if name is None or suffix:
        return _moto_create_service_linked_role(self, service_name, description, suffix)
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Action": ["sts:AssumeRole"], "Effect": "Allow", "Principal": {"Service": [service_name]}}],
    }
    return self.create_role(
        name,
        json.dumps(trust),
        f"/aws-service-role/{service_name}/",
        permissions_boundary=None,
        description=description,
        tags=[],
        max_session_duration="3600",
        linked_service=service_name,
    )


def ensure_ecs_role(backend: EC2ContainerServiceBackend, capacity_providers: Any) -> None:
    """As ECS in an account without its role: makes it, and fails a call that needs it now."""
    iam = iam_backends[backend.account_id][get_partition(backend.region_name)]
    if any(role.path.startswith(f"/aws-service-role/{ECS}/") for role in iam.roles.values()):
        return
    iam.create_service_linked_role(ECS, "", "")
    if capacity_providers:
        raise InvalidParameterException(NO_ROLE)


def create_cluster(self: EC2ContainerServiceBackend, cluster_name: str, *args: Any, **kwargs: Any) -> Any:
    # moto's responses pass tags, settings, configuration, capacity providers, ... by position
    ensure_ecs_role(self, args[3] if len(args) > 3 else kwargs.get("capacity_providers"))
    return _moto_create_cluster(self, cluster_name, *args, **kwargs)


def put_cluster_capacity_providers(
    self: EC2ContainerServiceBackend, cluster_name: str, capacity_providers: Any, *args: Any, **kwargs: Any
) -> Any:
    ensure_ecs_role(self, capacity_providers)
    return _moto_put_cluster_capacity_providers(self, cluster_name, capacity_providers, *args, **kwargs)


def install() -> None:
    IAMBackend.create_service_linked_role = create_service_linked_role
    EC2ContainerServiceBackend.create_cluster = create_cluster
    EC2ContainerServiceBackend.put_cluster_capacity_providers = put_cluster_capacity_providers
