"""A/B tests: which variant is best, with how much certainty, and when there is too little to say.

Each variant's rate (clicks, human opens or conversions per message sent) gets a Beta
posterior - Beta(1 + successes, 1 + failures), the uniform prior - and the probability that a
variant is the best is estimated by drawing from every posterior together many times and
counting how often each comes out on top (the Beta-Binomial comparison used by Bayesian A/B
tools; exact enough at 20,000 draws, to about ±0.5 points). Draws are seeded by the campaign,
so the stated evidence is the same each time it is computed.

No winner is declared while any variant has fewer sends than the editor's minimum sample, nor
when the best variant's probability of being the best is below the editor's confidence (90%
unless changed): two variants that nobody has clicked yet are a coin toss, not a result. The
remainder then gets the editor's fallback.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

DRAWS = 20_000
METRICS = {"clicks": "click rate", "opens": "human open rate",
           "conversions": "conversion rate"}


@dataclass(frozen=True)
class Figures:
    """One variant's messages sent and successes (clicks, opens or conversions)."""

    key: str
    sent: int
    successes: int

    @property
    def rate(self) -> float:
        return self.successes / self.sent if self.sent else 0.0


@dataclass(frozen=True)
class Decision:
    winner: str  # a variant's key, or "" when none was declared
    reason: str  # one sentence an editor reads in the report
    p_best: dict[str, float]


def probability_best(figures: list[Figures], seed: int = 0) -> dict[str, float]:
    """P(each variant's true rate is the highest), from Beta posteriors."""
    draw = random.Random(seed).betavariate
    wins = dict.fromkeys((f.key for f in figures), 0)
    shapes = [(f.key, 1 + f.successes, 1 + max(f.sent - f.successes, 0)) for f in figures]
    for _ in range(DRAWS):
        best_key, best = "", -1.0
        for key, alpha, beta in shapes:
            value = draw(alpha, beta)
            if value > best:
                best_key, best = key, value
        wins[best_key] += 1
    return {key: count / DRAWS for key, count in wins.items()}


def decide(figures: list[Figures], *, metric: str, min_sample: int, confidence: float = 0.9,
           seed: int = 0) -> Decision:
    """The winner by `metric`, or none below the minimum sample or the confidence (see the
    module)."""
    label = METRICS.get(metric, metric)
    short = [f.key.upper() for f in figures if f.sent < min_sample]
    if short:
        return Decision("", f"No winner: variant {', '.join(short)} had fewer than "
                            f"{min_sample} messages sent, the minimum sample.", {})
    chances = probability_best(figures, seed)
    winner = max(figures, key=lambda f: (chances[f.key], f.rate, -ord(f.key[0])))
    others = ", ".join(f"{f.key.upper()} {f.rate:.1%}" for f in figures if f is not winner)
    if chances[winner.key] < confidence:
        return Decision("", (
            f"No winner: variant {winner.key.upper()} did best on {label} ({winner.rate:.1%}, "
            f"{winner.successes} of {winner.sent}, against {others}), but the probability "
            f"that it is the best is {chances[winner.key]:.0%}, below the {confidence:.0%} "
            "asked for."), chances)
    return Decision(winner.key, (
        f"Variant {winner.key.upper()} won on {label}: {winner.rate:.1%} "
        f"({winner.successes} of {winner.sent}) against {others}; the probability that it "
        f"is the best is {chances[winner.key]:.0%}."), chances)
