"""The project's strategy (ansible.cfg: mitogen_or_linear) runs modules through Mitogen, or plain linear without it."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible_runner import LOCALHOST_ARGS, run_playbook

MITOGEN_MARK = "(mitogen:"  # Mitogen names its interpreters "python(mitogen:user@host:pid)"
PLAYBOOK = """\
- name: Show which process runs the modules
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Print the command line of the module's parent process
      ansible.builtin.shell: tr '\\0' ' ' < /proc/$PPID/cmdline
      register: parent
      changed_when: false
    - name: Show it
      ansible.builtin.debug:
        msg: "module parent: {{ parent.stdout }}"
"""


@pytest.fixture
def playbook(tmp_path: Path) -> str:
    path = tmp_path / "which_interpreter.yml"
    path.write_text(PLAYBOOK)
    return str(path)


def module_parent(output: str) -> str:
    line = next((line for line in output.splitlines() if "module parent:" in line), None)
    assert line, output
    return line


def test_modules_run_in_a_mitogen_interpreter(playbook: str) -> None:
    result = run_playbook(playbook, {}, args=LOCALHOST_ARGS)
    assert result.returncode == 0, result.output
    assert MITOGEN_MARK in module_parent(result.output)


def test_plain_linear_on_request(playbook: str) -> None:
    result = run_playbook(playbook, {"ANSIBLE_STRATEGY": "linear"}, args=LOCALHOST_ARGS)
    assert result.returncode == 0, result.output
    assert MITOGEN_MARK not in module_parent(result.output)


def test_plain_linear_when_mitogen_is_not_installed(playbook: str, tmp_path: Path) -> None:
    blocker = tmp_path / "no_mitogen"
    blocker.mkdir()
    (blocker / "ansible_mitogen.py").write_text('raise ImportError("blocked")\n')
    result = run_playbook(playbook, {"PYTHONPATH": str(blocker)}, args=LOCALHOST_ARGS)
    assert result.returncode == 0, result.output
    assert MITOGEN_MARK not in module_parent(result.output)
