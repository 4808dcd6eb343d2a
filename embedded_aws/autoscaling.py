"""CloudWatch metric alarms and Application Auto Scaling step scaling policies, applied by the local runtime.

moto stores alarms, metric data, scalable targets and scaling policies but evaluates none of them. The
agent calls `Evaluator.tick()` from its reconcile loop; every EVALUATION_SECONDS (CloudWatch: every
minute; EMBEDDED_AWS_ALARM_EVALUATION_SECONDS) it does what CloudWatch and Application Auto Scaling do:

- every metric alarm of every account and region is evaluated on moto's stored datapoints: its Statistic
  (or a pNN ExtendedStatistic) per Period, over the metric with exactly the alarm's Dimensions (and its
  Unit, when set), in periods aligned to the epoch; the current period counts with what it received so
  far. CloudWatch's evaluation range is EvaluationPeriods + 2 periods: the last EvaluationPeriods real
  datapoints in it are evaluated, too few are filled as TreatMissingData says, and DatapointsToAlarm
  breaching ones mean ALARM (the tables of "How alarm state is evaluated when data is missing" in the
  CloudWatch user guide; one row differs, see `judge`). A change of state is set with CloudWatch's
  StateReason and StateReasonData (DescribeAlarms) and recorded for DescribeAlarmHistory;
- a new alarm starts INSUFFICIENT_DATA and PutMetricAlarm on an existing one keeps its state and history,
  as in CloudWatch (moto starts every put at OK and has no DescribeAlarmHistory: `install()` adds both);
- while an alarm with ActionsEnabled is in a state whose actions name an Application Auto Scaling policy,
  the policy is invoked at each evaluation (CloudWatch: every minute in that state). A StepScaling policy
  takes (the alarm's evaluated datapoints aggregated by MetricAggregationType - Threshold), picks the step
  whose MetricIntervalLowerBound/UpperBound hold it (lower bound inclusive above the threshold, upper
  bound inclusive below), applies ExactCapacity, ChangeInCapacity or PercentChangeInCapacity
  (+MinAdjustmentMagnitude), clamps to the scalable target's MinCapacity/MaxCapacity, skips a direction
  the target's SuspendedState suspends and honours Cooldown per scalable target: a scale-in waits out the
  last scale-in's cooldown; during the last scale-out's, a scale-out counts the capacity that one added.
  The new count is set with UpdateService on moto's backend (ecs_state's patch: the agent then starts or
  stops tasks) and recorded as a scaling activity with AWS's description and cause
  (DescribeScalingActivities, which moto lacks: `install()` adds it).

Cooldown and Period are real seconds; only the evaluation clock is EVALUATION_SECONDS.

Not evaluated: composite, metric math and anomaly detection alarms (their state stays as set); actions
other than Application Auto Scaling policies (SNS, EC2 Auto Scaling, ...) and policies of other resources
than ECS services. Target tracking policies are not run: moto creates their alarms with an invented metric
and threshold (AWS/ECS CPUUtilization, threshold 6, whatever the TargetValue) and nothing publishes ECS's
utilization metrics here, so running them would fake AWS. The project ships step policies only
(library/ecs_service_autoscaling.py).
"""

from __future__ import annotations

import json
import logging
import math
import operator
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from moto.applicationautoscaling.models import applicationautoscaling_backends
from moto.applicationautoscaling.responses import ApplicationAutoScalingResponse
from moto.cloudwatch.models import Alarm, CloudWatchBackend, MetricAggregatedDatum, MetricDatum, cloudwatch_backends
from moto.cloudwatch.responses import CloudWatchResponse
from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ecs.models import ecs_backends

log = logging.getLogger("embedded_aws.autoscaling")

EVALUATION_VARIABLE = "EMBEDDED_AWS_ALARM_EVALUATION_SECONDS"
EXTRA_PERIODS = 2  # the evaluation range holds EvaluationPeriods + 2 periods (5 for 3 in CloudWatch's guide)
KEPT_RECORDS = 1000  # scaling activities and alarm history items kept per account and region

ALARM, OK, INSUFFICIENT_DATA = "ALARM", "OK", "INSUFFICIENT_DATA"
COMPARISONS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanOrEqualToThreshold": (operator.ge, "greater than or equal to"),
    "GreaterThanThreshold": (operator.gt, "greater than"),
    "LessThanThreshold": (operator.lt, "less than"),
    "LessThanOrEqualToThreshold": (operator.le, "less than or equal to"),
}


def evaluation_seconds(environ: dict[str, str] | None = None) -> float:
    """The evaluation clock: EMBEDDED_AWS_ALARM_EVALUATION_SECONDS, or CloudWatch's 60."""
    raw = (os.environ if environ is None else environ).get(EVALUATION_VARIABLE, "")
    if not raw:
        return 60.0
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{EVALUATION_VARIABLE}: got {raw!r}; it must be a number of seconds above 0")
    return seconds


EVALUATION_SECONDS = evaluation_seconds()


class Unsupported(Exception):
    """An alarm or policy the runtime does not evaluate (logged once, then left alone)."""


# -- metric data ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One stored datum: a single value, or a statistic set (raw is None)."""

    at: float  # epoch seconds
    minimum: float
    maximum: float
    total: float
    count: float
    raw: float | None


@dataclass(frozen=True)
class MetricQuery:
    namespace: str
    name: str
    dimensions: frozenset[tuple[str, str]]
    statistic: str
    period: int
    unit: str | None


def epoch(stamp: datetime) -> float:
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()


def sample(datum: Any) -> Sample | None:
    at = epoch(datum.timestamp)
    if isinstance(datum, MetricDatum):
        value = float(datum.value)
        return Sample(at, value, value, value, 1.0, value)
    if isinstance(datum, MetricAggregatedDatum):
        return Sample(at, float(datum.min), float(datum.max), float(datum.sum), float(datum.sample_count), None)
    return None


def statistic(samples: list[Sample], stat: str) -> float | None:
    """CloudWatch's statistic of one period's samples; None when the period has none."""
    if not samples:
        return None
    count = sum(s.count for s in samples)
    if stat == "SampleCount":
        return count
    if stat == "Sum":
        return sum(s.total for s in samples)
    if stat == "Average":
        return sum(s.total for s in samples) / count if count else None
    if stat == "Minimum":
        return min(s.minimum for s in samples)
    if stat == "Maximum":
        return max(s.maximum for s in samples)
    percentile = re.fullmatch(r"p(\d{1,2}(?:\.\d+)?|100)", stat or "")
    if percentile:  # nearest rank over single values (a statistic set holds no distribution)
        values = sorted(s.raw for s in samples if s.raw is not None)
        if not values:
            return None
        rank = math.ceil(float(percentile.group(1)) / 100 * len(values))
        return values[max(rank, 1) - 1]
    raise Unsupported(f"the statistic {stat!r}")


def alarm_query(alarm: Alarm) -> MetricQuery:
    """The one metric an alarm watches (Unsupported for composite, metric math and anomaly detection alarms)."""
    if alarm.rule is not None:
        raise Unsupported("a composite alarm")
    if alarm.threshold_metric_id or alarm.comparison_operator not in COMPARISONS:
        raise Unsupported(f"the comparison {alarm.comparison_operator!r}")
    if alarm.threshold is None:
        raise Unsupported("no threshold")
    if alarm.metric_data_queries:
        queries = alarm.metric_data_queries
        if len(queries) != 1 or queries[0].metric_stat is None or queries[0].expression:
            raise Unsupported("a metric math alarm")
        stat = queries[0].metric_stat
        metric = stat.metric
        dimensions = frozenset((d.name, d.value) for d in metric.dimensions)
        return MetricQuery(metric.namespace, metric.metric_name, dimensions, stat.stat, int(stat.period), stat.unit)
    dimensions = frozenset((d.name, d.value) for d in alarm.dimensions)
    stat = alarm.statistic or alarm.extended_statistic
    if not (alarm.namespace and alarm.metric_name and stat and alarm.period):
        raise Unsupported("no metric, statistic or period")
    return MetricQuery(alarm.namespace, alarm.metric_name, dimensions, stat, int(alarm.period), alarm.unit)


def metric_samples(
    backend: CloudWatchBackend, queries: Iterable[MetricQuery], since: float
) -> dict[MetricQuery, list[Sample]]:
    """The samples each query's metric received since `since`, from one pass over the backend's data."""
    wanted: dict[tuple[str, str], list[MetricQuery]] = {}
    for query in set(queries):
        wanted.setdefault((query.namespace, query.name), []).append(query)
    found: dict[MetricQuery, list[Sample]] = {query: [] for group in wanted.values() for query in group}
    data = list(backend.metric_data)
    if any(namespace.startswith("AWS/") for namespace, _ in wanted):
        data += list(backend.aws_metric_data)  # metrics moto itself provides (S3's)
    for datum in data:
        group = wanted.get((datum.namespace, datum.name))
        if not group:
            continue
        point = sample(datum)
        if point is None or point.at < since:
            continue
        dimensions = frozenset((d.name, d.value) for d in datum.dimensions)
        for query in group:
            if dimensions == query.dimensions and (not query.unit or datum.unit == query.unit):
                found[query].append(point)
    return found


# -- alarm evaluation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Datapoint:
    start: float  # the period's start, epoch seconds
    value: float | None  # None: missing
    samples: float = 0.0


@dataclass(frozen=True)
class Verdict:
    state: str
    evaluated: list[Datapoint]  # the real datapoints evaluated, oldest first
    filled: int  # missing datapoints filled in to make EvaluationPeriods


def datapoints(samples: list[Sample], stat: str, period: int, periods: int, now: float) -> list[Datapoint]:
    """One datapoint per period of the evaluation range, oldest first; the last is the current period."""
    current = math.floor(now / period) * period
    points = []
    for index in range(periods):
        start = current - (periods - 1 - index) * period
        inside = [s for s in samples if start <= s.at < start + period]
        points.append(Datapoint(start, statistic(inside, stat), sum(s.count for s in inside)))
    return points


def judge(
    points: list[Datapoint],
    breaches: Callable[[float], bool],
    *,
    evaluation_periods: int,
    datapoints_to_alarm: int,
    treat_missing: str | None,
    current_state: str,
) -> Verdict:
    """The state CloudWatch sets from an evaluation range (oldest first).

    With enough real datapoints the last EvaluationPeriods of them decide; with fewer, the missing ones are
    filled as TreatMissingData says (missing and ignore: not counted either way, and when every real one
    breaches but too few to alarm the alarm goes INSUFFICIENT_DATA, or keeps its state with ignore). This
    matches every row of the guide's tables but one: "X - - - -" (oldest breaching, the rest missing) with
    missing goes ALARM there and INSUFFICIENT_DATA here.
    """
    treat = treat_missing or "missing"
    real = [p for p in points if p.value is not None]
    if not real:
        state = {"breaching": ALARM, "notBreaching": OK, "ignore": current_state}.get(treat, INSUFFICIENT_DATA)
        return Verdict(state, [], evaluation_periods)
    evaluated = real[-evaluation_periods:]
    filled = evaluation_periods - len(evaluated)
    breaching = sum(1 for p in evaluated if breaches(p.value))  # type: ignore[arg-type]
    if treat == "breaching":
        breaching += filled
    if breaching >= datapoints_to_alarm:
        return Verdict(ALARM, evaluated, filled)
    if filled and treat not in ("breaching", "notBreaching") and breaching == len(evaluated):
        return Verdict(current_state if treat == "ignore" else INSUFFICIENT_DATA, evaluated, filled)
    return Verdict(OK, evaluated, filled)


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def were(count: int, word: str) -> str:
    return f"{plural(count, word)} {'was' if count == 1 else 'were'}"


def reason_date(start: float) -> str:
    return datetime.fromtimestamp(start, UTC).strftime("%d/%m/%y %H:%M:%S")


def iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(stamp * 1000) % 1000:03d}+0000"


def state_reason(verdict: Verdict, alarm: Alarm, query: MetricQuery, *, previous: str, now: float) -> tuple[str, str]:
    """StateReason and StateReasonData as CloudWatch writes them."""
    treat = alarm.treat_missing_data or "missing"
    test, words = COMPARISONS[alarm.comparison_operator]
    threshold = float(alarm.threshold)
    periods = int(alarm.evaluation_periods)
    needed = int(alarm.datapoints_to_alarm or periods)
    treated = "Breaching" if treat == "breaching" else "NonBreaching"
    if verdict.state == INSUFFICIENT_DATA:
        reason = f"Insufficient Data: {were(verdict.filled, 'datapoint')} unknown."
    elif not verdict.evaluated:
        reason = (
            f"Threshold Crossed: no datapoints were received for {plural(periods, 'period')} and "
            f"{were(periods, 'missing datapoint')} treated as [{treated}]."
        )
    else:
        alarming = verdict.state == ALARM
        crossing = [p for p in reversed(verdict.evaluated) if test(p.value, threshold) == alarming]  # type: ignore[arg-type]
        listing = ", ".join(f"{p.value} ({reason_date(p.start)})" for p in crossing)
        minimum = needed if alarming else periods - needed + 1
        reason = (
            f"Threshold Crossed: {len(crossing)} out of the last {periods} datapoints [{listing}] was "
            f"{'' if alarming else 'not '}{words} the threshold ({threshold}) "
            f"(minimum {plural(minimum, 'datapoint')} for {previous} -> {verdict.state} transition)."
        )
        if verdict.filled and treat in ("breaching", "notBreaching"):
            reason = reason[:-1] + f" and {plural(verdict.filled, 'missing datapoint')} treated as [{treated}]."
    evaluated = [
        {"timestamp": iso(p.start), "sampleCount": p.samples, "value": p.value} for p in reversed(verdict.evaluated)
    ]
    data = {
        "version": "1.0",
        "queryDate": iso(now),
        "startDate": iso(verdict.evaluated[0].start if verdict.evaluated else now - periods * query.period),
        "statistic": query.statistic,
        "period": query.period,
        "recentDatapoints": [p.value for p in verdict.evaluated],
        "threshold": threshold,
        "evaluatedDatapoints": evaluated,
    }
    if query.unit:
        data["unit"] = query.unit
    return reason, json.dumps(data)


# -- step scaling -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LastScaling:
    """A scalable target's last scaling, for its policies' cooldown."""

    direction: str  # "out" | "in"
    at: float  # time.time() when it started
    base: int  # the capacity before it


def select_step(steps: list[dict[str, Any]], difference: float) -> dict[str, Any] | None:
    """The step adjustment holding (metric - threshold): lower bound inclusive at or above the threshold,
    upper bound inclusive below it; an absent bound is infinity."""
    for step in steps:
        lower = step.get("MetricIntervalLowerBound")
        upper = step.get("MetricIntervalUpperBound")
        low = -math.inf if lower is None else float(lower)
        high = math.inf if upper is None else float(upper)
        if (low <= difference < high) if difference >= 0 else (low < difference <= high):
            return step
    return None


def adjusted_capacity(adjustment_type: str, adjustment: int, current: int, min_magnitude: int | None = None) -> int:
    """The capacity a step asks for, before the target's bounds."""
    if adjustment_type == "ExactCapacity":
        return adjustment
    if adjustment_type == "ChangeInCapacity":
        return current + adjustment
    if adjustment_type == "PercentChangeInCapacity":
        change = current * adjustment / 100
        # Rounded as Auto Scaling rounds: toward zero, but never to zero for a non-zero change.
        step = (1 if change > 0 else -1) if 0 < abs(change) < 1 else int(change)
        if min_magnitude and adjustment and abs(step) < min_magnitude:
            step = min_magnitude if adjustment > 0 else -min_magnitude
        return current + step
    raise Unsupported(f"the adjustment type {adjustment_type!r}")


def plan_scaling(
    configuration: dict[str, Any],
    step: dict[str, Any],
    current: int,
    *,
    bounds: tuple[int, int],
    suspended: dict[str, Any] | None,
    last: LastScaling | None,
    now: float,
) -> tuple[int | None, LastScaling | None, str]:
    """(new capacity or None, the target's last scaling afterwards, why not) for one policy invocation."""
    adjustment_type = configuration.get("AdjustmentType") or ""
    adjustment = int(step["ScalingAdjustment"])
    magnitude = configuration.get("MinAdjustmentMagnitude")
    cooldown = float(configuration.get("Cooldown") or 0)
    low, high = bounds

    def capacity(base: int) -> int:
        return min(high, max(low, adjusted_capacity(adjustment_type, adjustment, base, magnitude)))

    wanted = capacity(current)
    suspended = suspended or {}
    in_cooldown = last is not None and now - last.at < cooldown
    if wanted > current:
        if suspended.get("DynamicScalingOutSuspended"):
            return None, last, "dynamic scale-out is suspended"
        if in_cooldown and last.direction == "out":  # type: ignore[union-attr]
            wanted = capacity(last.base)  # type: ignore[union-attr]  # what that scale-out added counts
            if wanted <= current:
                return None, last, "in the cooldown of the last scale-out"
            return wanted, last, ""
        return wanted, LastScaling("out", now, current), ""
    if wanted < current:
        if suspended.get("DynamicScalingInSuspended"):
            return None, last, "dynamic scale-in is suspended"
        if in_cooldown and last.direction == "in":  # type: ignore[union-attr]
            return None, last, "in the cooldown of the last scale-in"
        return wanted, LastScaling("in", now, current), ""
    return None, last, f"already at {current}"


def aggregate(values: list[float], aggregation: str | None) -> float:
    """The policy's MetricAggregationType over the alarm's datapoints (Average when unset)."""
    if aggregation == "Maximum":
        return max(values)
    if aggregation == "Minimum":
        return min(values)
    return sum(values) / len(values)


# -- the clock ---------------------------------------------------------------------------------------


def regional(backends: Any) -> list[tuple[str, str, Any]]:
    return [
        (account, region, b) for account, by_region in list(backends.items()) for region, b in list(by_region.items())
    ]


def records(backend: Any, name: str) -> list[dict[str, Any]]:
    """A list kept on a moto backend (so that a reset of the emulator empties it)."""
    if not hasattr(backend, name):
        setattr(backend, name, [])
    return getattr(backend, name)


def keep(backend: Any, name: str, record: dict[str, Any]) -> None:
    kept = records(backend, name)
    kept.append(record)
    del kept[:-KEPT_RECORDS]


class Evaluator:
    """Evaluates every alarm each `interval` seconds and runs its Application Auto Scaling actions."""

    def __init__(self, interval: float | None = None) -> None:
        self.interval = EVALUATION_SECONDS if interval is None else interval
        self.last_tick: float | None = None
        self.scalings: dict[str, LastScaling] = {}  # scalable target ARN -> its last scaling
        self.reported: set[tuple[str, str]] = set()  # (subject, problem) logged already

    def tick(self) -> None:
        """Called by the agent's loop: evaluate when the interval has passed; never raises."""
        moment = time.monotonic()
        if self.last_tick is not None and moment - self.last_tick < self.interval:
            return
        self.last_tick = moment
        try:
            self.evaluate(time.time())
        except Exception:
            log.exception("alarm evaluation failed")

    def report(self, subject: str, problem: str) -> None:
        if (subject, problem) not in self.reported:
            self.reported.add((subject, problem))
            log.warning("%s: %s", subject, problem)

    def evaluate(self, now: float) -> None:
        for account, region, cloudwatch in regional(cloudwatch_backends):
            queries: list[tuple[Alarm, MetricQuery]] = []
            since = now
            for alarm in list(cloudwatch.alarms.values()):
                try:
                    query = alarm_query(alarm)
                    since = min(since, now - (int(alarm.evaluation_periods) + EXTRA_PERIODS + 1) * query.period)
                    queries.append((alarm, query))
                except Unsupported as err:
                    self.report(f"alarm {alarm.name}", f"not evaluated: {err}")
                except Exception as err:
                    self.report(f"alarm {alarm.name}", f"not evaluated: {type(err).__name__}: {err}")
            if not queries:
                continue
            samples = metric_samples(cloudwatch, [query for _, query in queries], since)
            for alarm, query in queries:
                try:
                    self.evaluate_alarm(cloudwatch, alarm, query, samples[query], now)
                except Unsupported as err:
                    self.report(f"alarm {alarm.name}", f"not evaluated: {err}")
                except Exception:
                    log.exception("alarm %s (%s %s) could not be evaluated", alarm.name, account, region)

    def evaluate_alarm(
        self, cloudwatch: CloudWatchBackend, alarm: Alarm, query: MetricQuery, samples: list[Sample], now: float
    ) -> None:
        periods = int(alarm.evaluation_periods or 0)
        needed = int(alarm.datapoints_to_alarm or periods)
        if query.period <= 0 or periods < 1 or not 1 <= needed <= periods:
            raise Unsupported(f"period {query.period}, {needed} out of {periods} datapoints")
        test, _ = COMPARISONS[alarm.comparison_operator]
        threshold = float(alarm.threshold)
        points = datapoints(samples, query.statistic, query.period, periods + EXTRA_PERIODS, now)
        previous = alarm.state_value
        verdict = judge(
            points,
            lambda value: test(value, threshold),
            evaluation_periods=periods,
            datapoints_to_alarm=needed,
            treat_missing=alarm.treat_missing_data,
            current_state=previous,
        )
        changed = verdict.state != previous
        if changed:
            reason, data = state_reason(verdict, alarm, query, previous=previous, now=now)
            alarm.update_state(reason, data, verdict.state)  # recorded for DescribeAlarmHistory (install)
            log.info("alarm %s: %s -> %s (%s)", alarm.name, previous, verdict.state, reason)
        if alarm.actions_enabled:
            self.run_actions(cloudwatch, alarm, verdict, first=changed, now=now)

    def run_actions(
        self, cloudwatch: CloudWatchBackend, alarm: Alarm, verdict: Verdict, first: bool, now: float
    ) -> None:
        """The alarm's Application Auto Scaling actions for its state (CloudWatch repeats them each evaluation)."""
        actions = {ALARM: alarm.alarm_actions, OK: alarm.ok_actions, INSUFFICIENT_DATA: alarm.insufficient_data_actions}
        for arn in actions.get(alarm.state_value) or []:
            if ":scalingPolicy:" not in arn or ":resource/" not in arn:
                self.report(f"alarm {alarm.name}", f"the action {arn} is not run by the local runtime")
                continue
            try:
                ran = self.invoke_policy(arn, alarm, verdict, now)
            except Unsupported as err:
                self.report(f"alarm {alarm.name}", f"the action {arn} is not run: {err}")
                ran = False
            except Exception:
                log.exception("alarm %s: the action %s failed", alarm.name, arn)
                ran = False
            if first:
                summary = f"Successfully executed action {arn}" if ran else f"Failed to execute action {arn}"
                record_history(cloudwatch, alarm, "Action", summary, {"actionState": "Succeeded" if ran else "Failed"})

    def invoke_policy(self, arn: str, alarm: Alarm, verdict: Verdict, now: float) -> bool:
        """One invocation of the policy `arn` by `alarm`; True when the policy ran (scaled or had no need to)."""
        _, _, _, region, account = arn.split(":")[:5]
        scaling = applicationautoscaling_backends[account][region]
        policy = next(
            (p for p in list(scaling.policies.values()) if arn == p.policy_arn or arn.startswith(p.policy_arn + ":")),
            None,
        )
        if policy is None:
            raise Unsupported("no such scaling policy")
        if policy.policy_type != "StepScaling":
            raise Unsupported(f"a {policy.policy_type} policy (only step scaling policies run here)")
        if policy.service_namespace != "ecs" or policy.scalable_dimension != "ecs:service:DesiredCount":
            raise Unsupported(f"a policy of {policy.scalable_dimension} (only ECS services' desired counts)")
        target = scaling.targets.get(policy.scalable_dimension, {}).get(policy.resource_id)
        if target is None:
            raise Unsupported(f"no scalable target {policy.resource_id}")
        configuration = policy.step_scaling_policy_configuration or {}
        values = [p.value for p in verdict.evaluated if p.value is not None]
        if not values:
            self.report(f"policy {policy.policy_name}", "invoked without datapoints: no step to pick")
            return False
        difference = aggregate(values, configuration.get("MetricAggregationType")) - float(alarm.threshold)
        step = select_step(configuration.get("StepAdjustments") or [], difference)
        if step is None:
            log.info("policy %s: no step adjustment holds %s", policy.policy_name, difference)
            return False
        _, cluster, name = policy.resource_id.split("/", 2)
        ecs = ecs_backends[account][region]
        service = ecs.services.get(f"{cluster}:{name}")
        if service is None or service.status != "ACTIVE":
            raise Unsupported(f"no active ECS service {policy.resource_id}")
        current = int(service.desired_count)
        bounds = (int(target.min_capacity or 0), int(target.max_capacity if target.max_capacity is not None else 10**9))
        new, last, why = plan_scaling(
            configuration,
            step,
            current,
            bounds=bounds,
            suspended=target.suspended_state,
            last=self.scalings.get(target.arn),
            now=now,
        )
        if new is None:
            log.debug("policy %s: not scaling %s: %s", policy.policy_name, policy.resource_id, why)
            return True
        activity = {
            "ActivityId": str(uuid.uuid4()),
            "ServiceNamespace": policy.service_namespace,
            "ResourceId": policy.resource_id,
            "ScalableDimension": policy.scalable_dimension,
            "Description": f"Setting desired count to {new}.",
            "Cause": f"monitor alarm {alarm.name} in state {alarm.state_value} triggered policy {policy.policy_name}",
            "StartTime": time.time(),
        }
        try:
            ecs.update_service({"cluster": cluster, "service": name, "desired_count": new})
        except Exception as err:
            activity.update(StatusCode="Failed", StatusMessage=f"Failed to set desired count to {new}. {err}")
            keep(scaling, "scaling_activities", {**activity, "EndTime": time.time()})
            raise
        if last is not None:
            self.scalings[target.arn] = last
        activity.update(
            StatusCode="Successful",
            StatusMessage=f"Successfully set desired count to {new}. Change successfully fulfilled by ecs.",
            EndTime=time.time(),
        )
        keep(scaling, "scaling_activities", activity)
        log.info("%s: desired count %d -> %d (%s)", policy.resource_id, current, new, activity["Cause"])
        return True


# -- what moto lacks ----------------------------------------------------------------------------------

_installed: list[bool] = []  # [True] once install() patched moto


def install() -> None:
    """Alarm states and history as CloudWatch keeps them, and DescribeScalingActivities (once per process)."""
    if _installed:
        return
    _installed.append(True)
    _alarm_states_as_cloudwatch()
    CloudWatchResponse.describe_alarm_history = describe_alarm_history  # type: ignore[attr-defined]
    ApplicationAutoScalingResponse.describe_scaling_activities = describe_scaling_activities  # type: ignore[attr-defined]


def record_history(cloudwatch: CloudWatchBackend, alarm: Alarm, kind: str, summary: str, data: dict[str, Any]) -> None:
    item = {
        "AlarmName": alarm.name,
        "AlarmType": "CompositeAlarm" if alarm.rule is not None else "MetricAlarm",
        "Timestamp": utcnow(),
        "HistoryItemType": kind,
        "HistorySummary": summary,
        "HistoryData": json.dumps({"version": "1.0", **data}),
    }
    keep(cloudwatch, "alarm_history_items", item)


def _alarm_states_as_cloudwatch() -> None:
    """A new alarm starts INSUFFICIENT_DATA, an updated one keeps its state; every change is in the history."""
    put_metric_alarm = CloudWatchBackend.put_metric_alarm

    def put(self: CloudWatchBackend, *args: Any, **kwargs: Any) -> Alarm:
        name = kwargs["name"] if "name" in kwargs else args[0]
        earlier = self.alarms.get(name)
        alarm = put_metric_alarm(self, *args, **kwargs)
        if earlier is not None:
            for attribute in ("state_value", "state_reason", "state_reason_data", "state_updated_timestamp", "history"):
                setattr(alarm, attribute, getattr(earlier, attribute))
            record_history(self, alarm, "ConfigurationUpdate", f'Alarm "{name}" updated', {"type": "Update"})
        else:
            alarm.state_value = INSUFFICIENT_DATA
            record_history(self, alarm, "ConfigurationUpdate", f'Alarm "{name}" created', {"type": "Create"})
        return alarm

    CloudWatchBackend.put_metric_alarm = put  # type: ignore[method-assign]

    update_state = Alarm.update_state

    def updated(self: Alarm, reason: str, reason_data: str, state_value: str) -> None:
        old = {"stateValue": self.state_value, "stateReason": self.state_reason}
        update_state(self, reason, reason_data, state_value)
        _, _, _, region, account = self.alarm_arn.split(":")[:5]
        new: dict[str, Any] = {"stateValue": state_value, "stateReason": reason}
        with_data = json.loads(reason_data) if reason_data else None
        if with_data:
            new["stateReasonData"] = with_data
        summary = f"Alarm updated from {old['stateValue']} to {state_value}"
        record_history(
            cloudwatch_backends[account][region], self, "StateUpdate", summary, {"oldState": old, "newState": new}
        )

    Alarm.update_state = updated  # type: ignore[method-assign]


def describe_alarm_history(self: CloudWatchResponse) -> ActionResult:
    """DescribeAlarmHistory: the items kept for the account and region, newest first by default."""
    names = {self._get_param("AlarmName")} - {None}
    types = set(self._get_param("AlarmTypes") or [])
    kind = self._get_param("HistoryItemType")
    start, end = self._get_param("StartDate"), self._get_param("EndDate")
    items = [
        item
        for item in records(self.cloudwatch_backend, "alarm_history_items")
        if (not names or item["AlarmName"] in names)
        and (not types or item["AlarmType"] in types)
        and (not kind or item["HistoryItemType"] == kind)
        and (start is None or epoch(item["Timestamp"]) >= epoch(start))
        and (end is None or epoch(item["Timestamp"]) <= epoch(end))
    ]
    if self._get_param("ScanBy") != "TimestampAscending":
        items.reverse()
    first = int(self._get_param("NextToken") or 0)
    size = int(self._get_param("MaxRecords") or 100)
    result: dict[str, Any] = {"AlarmHistoryItems": items[first : first + size]}
    if first + size < len(items):
        result["NextToken"] = str(first + size)
    return ActionResult(result)


def describe_scaling_activities(self: ApplicationAutoScalingResponse) -> str:
    """DescribeScalingActivities: the activities the runtime recorded, newest first."""
    self._validate_params()
    namespace = self._get_param("ServiceNamespace")
    resource_id = self._get_param("ResourceId")
    dimension = self._get_param("ScalableDimension")
    found = [
        activity
        for activity in reversed(records(self.applicationautoscaling_backend, "scaling_activities"))
        if activity["ServiceNamespace"] == namespace
        and (not resource_id or activity["ResourceId"] == resource_id)
        and (not dimension or activity["ScalableDimension"] == dimension)
    ]
    first = int(self._get_param("NextToken") or 0)
    size = self._get_int_param("MaxResults") or 50
    result: dict[str, Any] = {"ScalingActivities": found[first : first + size]}
    if first + size < len(found):
        result["NextToken"] = str(first + size)
    return json.dumps(result)
