# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The tags a resource will carry after a run, from a module's `tags` and `purge_tags` options.

Project-local module_utils (ansible.cfg `module_utils = module_utils`), imported as
`ansible.module_utils.desired_tags` and shipped by Ansible with the modules that use it.
"""

from __future__ import annotations

from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags


def desired_tags(params: dict, current: dict[str, str]) -> dict[str, str]:
    """`current` with the tags option applied: set and, with purge_tags, unset (unchanged when tags is None)."""
    desired = params["tags"]
    if desired is None:
        return current
    to_set, to_unset = compare_aws_tags(current, desired, params["purge_tags"])
    tags = {key: value for key, value in current.items() if key not in to_unset}
    tags.update(to_set)
    return tags
