"""Bad AWS weather: deploy, no-op re-run and teardown converge with 10 % of calls throttled or failed.

Every playbook call goes through the weather proxy (embedded_aws/weather.py), which answers one call
in ten with the service's own throttling error or a 500 before it reaches the emulator; each module,
custom or from the collections, must retry (with the SDK's backoff or its own) and still converge:
the deploy succeeds, the re-run changes nothing, the teardown leaves nothing. The calls the proxy
shed are counted, so the test also shows that the weather really hit every phase.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import pytest
from ansible_runner import PlayResult, run_playbook
from emulator import Emulator, start_emulator
from stack_inventory import leftover_resources
from stack_state import changed_tasks

from embedded_aws.weather import Weather, WeatherProxy

pytestmark = pytest.mark.xdist_group("bad_weather")

FAULT_RATE = 0.10
# A new storm each run (convergence must not depend on which calls fail); WEATHER_SEED replays one.
SEED = int(os.environ.get("WEATHER_SEED") or random.SystemRandom().randrange(1 << 32))


@pytest.fixture(scope="module")
def stormy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emulator, dict[str, tuple[PlayResult, dict]]]]:
    emulator = start_emulator(tmp_path_factory.mktemp("weather") / "moto.log")
    proxy = WeatherProxy(emulator.url, Weather(latency_ms=0, fault_rate=FAULT_RATE, seed=SEED))
    env = {**emulator.env(), "AWS_ENDPOINT_URL": proxy.url}
    runs: dict[str, tuple[PlayResult, dict]] = {}
    try:
        for name, playbook in (("deploy", "site.yml"), ("rerun", "site.yml"), ("teardown", "teardown.yml")):
            proxy.weather.reset()
            result = run_playbook(playbook, env)
            runs[name] = (result, proxy.weather.stats())
            if result.returncode != 0:
                break
        yield emulator, runs
    finally:
        proxy.close()
        emulator.stop()


@pytest.mark.parametrize("phase", ["deploy", "rerun", "teardown"])
def test_each_phase_succeeds_although_one_call_in_ten_is_shed(stormy, phase):
    _, runs = stormy
    assert phase in runs, f"not reached: {list(runs)} ran, the last failed (WEATHER_SEED={SEED})"
    result, stats = runs[phase]
    assert result.returncode == 0, f"WEATHER_SEED={SEED}\n" + result.output[-5000:]
    calls, shed = sum(stats["calls"].values()), sum(stats["faults"].values())
    # The weather really hit the phase (about a tenth of its calls), and every shed call was retried.
    assert shed >= calls * FAULT_RATE / 2, (calls, shed)
    print(f"{phase}: {calls} calls, {shed} shed and retried (WEATHER_SEED={SEED})")


def test_the_rerun_in_bad_weather_changes_nothing(stormy):
    _, runs = stormy
    result, _ = runs["rerun"]
    assert result.returncode == 0 and result.changed == 0, (SEED, changed_tasks(result.output))


def test_the_teardown_in_bad_weather_leaves_nothing(stormy):
    emulator, runs = stormy
    assert runs["teardown"][0].returncode == 0
    assert leftover_resources(emulator) == []
