"""The vectorised condition evaluation fires exactly where the live `RuleRunner` fires when fed the same
values close by close: random condition trees (comparisons with hysteresis, crosses, breakouts, all/any)
over random series with NaN warm-ups and ties."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest

from services.backtest.conditions import fires
from services.signals.rules import Rule, RuleRunner, operand_key

OPERANDS = ("sma(5)", "ema(8)", "close")


def _tree(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    if depth < 2 and rng.random() < 0.35:
        return {"op": rng.choice(["all", "any"]), "of": [_tree(rng, depth + 1) for _ in range(rng.randint(2, 3))]}
    op = rng.choice(["gt", "lt", "cross_above", "cross_below", "breakout_above", "breakout_below"])
    left = rng.choice(OPERANDS)
    right: str | float = rng.choice([*OPERANDS, 0.0, 0.5])
    cond: dict[str, Any] = {"op": op, "left": left, "right": right}
    if op in ("gt", "lt") and rng.random() < 0.5:
        cond["hysteresis"] = rng.choice([0.1, 0.3])
    return cond


@pytest.mark.parametrize("seed", range(80))
def test_vectorised_conditions_fire_where_the_rule_runner_fires(seed: int) -> None:
    rng = random.Random(seed)
    n = 200
    series = {}
    for name in OPERANDS:
        values = np.round(np.cumsum(np.array([rng.gauss(0, 0.3) for _ in range(n)])), 1)  # ties happen
        values[: rng.randint(0, 30)] = math.nan
        series[name] = values
    cond = _tree(rng)
    runner = RuleRunner(Rule(id="r", name="r", direction="buy", when=cond), "1m")
    live = []
    for i in range(n):
        values = {operand_key(name, "1m"): float(series[name][i]) for name in OPERANDS}
        live.append(runner.evaluate("X", values, i) is not None)
    assert fires(cond, lambda text: series[text], n).tolist() == live, cond
