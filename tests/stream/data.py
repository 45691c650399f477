"""Synthetic data shared by the stream tests."""

from __future__ import annotations

from typing import Any

import numpy as np


def churn_training(rng: np.random.Generator, n: int = 5000) -> dict[str, Any]:
    """A churn model's training table: age, income, plan and the label ``y``."""
    return {
        "age": rng.normal(40, 10, n),
        "income": rng.lognormal(10, 0.5, n),
        "plan": rng.choice(["basic", "pro", "team"], n, p=[0.6, 0.3, 0.1]).tolist(),
        "y": rng.integers(0, 2, n),
    }
