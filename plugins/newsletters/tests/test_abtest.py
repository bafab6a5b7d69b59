"""The A/B decision's statistics: a Beta-Binomial probability of being best, a minimum sample
and a confidence below which no winner is declared."""
from __future__ import annotations

from plugins.newsletters.abtest import Figures, decide, probability_best


def test_a_clear_difference_wins_with_its_probability() -> None:
    decision = decide([Figures("a", 500, 50), Figures("b", 500, 80)], metric="clicks",
                      min_sample=100, seed=1)
    assert decision.winner == "b" and decision.p_best["b"] > 0.99
    assert decision.reason.startswith("Variant B won on click rate: 16.0% (80 of 500) "
                                      "against A 10.0%")


def test_no_winner_below_the_sample_or_the_confidence() -> None:
    short = decide([Figures("a", 50, 5), Figures("b", 500, 70)], metric="opens",
                   min_sample=100)
    assert short.winner == "" and "variant A had fewer than 100" in short.reason
    tie = decide([Figures("a", 100, 0), Figures("b", 100, 0)], metric="clicks", min_sample=1)
    assert tie.winner == "" and "below the 90% asked for" in tie.reason
    close = decide([Figures("a", 300, 30), Figures("b", 300, 36)], metric="clicks",
                   min_sample=100, confidence=0.95, seed=3)
    assert close.winner == "" and 0.7 < close.p_best["b"] < 0.95


def test_the_probabilities_add_up_and_are_repeatable() -> None:
    figures = [Figures("a", 200, 20), Figures("b", 200, 24), Figures("c", 200, 18)]
    first, again = probability_best(figures, seed=7), probability_best(figures, seed=7)
    assert first == again and abs(sum(first.values()) - 1) < 1e-9
    assert max(first, key=first.get) == "b"
