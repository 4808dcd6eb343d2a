"""Every play that sets the AWS connection through module_defaults also sets it for the project's modules.

`module_defaults: group/aws` reaches only the collections' modules, so each module of library/ must be
listed by name; a play that forgets one runs it against the default endpoint (real AWS) instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_runner import ROOT

PROJECT_MODULES = sorted(path.stem for path in (ROOT / "library").glob("*.py"))
PLAYBOOKS = sorted(
    path
    for pattern in ("*.yml", "playbooks/*.yml", "molecule/*/*.yml")
    for path in ROOT.glob(pattern)
    if "module_defaults" in path.read_text()
)


def plays_with_aws_defaults(path: Path) -> list[dict]:
    document = yaml.safe_load(path.read_text()) or []
    return [play for play in document if isinstance(play, dict) and "group/aws" in play.get("module_defaults", {})]


def test_the_project_has_modules_and_plays_to_check() -> None:
    assert len(PROJECT_MODULES) >= 10, PROJECT_MODULES
    assert len(PLAYBOOKS) >= 8, PLAYBOOKS


@pytest.mark.parametrize("path", PLAYBOOKS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_project_module_gets_the_aws_connection(path: Path) -> None:
    plays = plays_with_aws_defaults(path)
    assert plays, f"{path} mentions module_defaults without a group/aws entry"
    for play in plays:
        defaults = play["module_defaults"]
        missing = [name for name in PROJECT_MODULES if name not in defaults]
        assert not missing, f"{path} play {play.get('name')!r} does not pass the connection to {missing}"
        assert all(defaults[name] == defaults["group/aws"] for name in PROJECT_MODULES), path
