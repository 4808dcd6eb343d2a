# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the project's batch modules (one run for a list of resources) share: list checks and comparisons.

Project-local module_utils (ansible.cfg `module_utils = module_utils`), imported as
`ansible.module_utils.batch_items`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def fail_on_repeats(module: Any, option: str, thing: str, values: Sequence[str]) -> None:
    """Fail the module when a value occurs more than once: `<option> names the same <thing> twice: a, b`."""
    repeated = sorted({value for value in values if values.count(value) > 1})
    if repeated:
        module.fail_json(msg=f"{option} names the same {thing} twice: {', '.join(repeated)}")


def covers(reported: Any, wanted: Any) -> bool:
    """Whether `reported` has every field `wanted` gives, with the same value.

    Dicts compare on the wanted keys only (AWS adds defaults), lists element by element, and a wanted
    number matches the same number reported as a string (ECS reports task sizes such as cpu as "256").
    """
    if isinstance(wanted, dict):
        return isinstance(reported, dict) and all(covers(reported.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return (
            isinstance(reported, list)
            and len(reported) == len(wanted)
            and all(covers(r, w) for r, w in zip(reported, wanted, strict=True))
        )
    if isinstance(wanted, (int, float)) and not isinstance(wanted, bool) and isinstance(reported, str):
        return reported == str(wanted)
    return reported == wanted
