import math
import zlib

import pytest

from workbench import metrics


def test_perplexity_by_hand():
    # mean log-prob of [log 0.5, log 0.25] = -(ln 2 + ln 4)/2 = -1.5 ln 2 → PPL = 2^1.5
    assert metrics.perplexity([math.log(0.5), math.log(0.25)]) == pytest.approx(2**1.5)
    assert metrics.log_perplexity([-1.0, -3.0]) == pytest.approx(2.0)


def test_zlib_entropy_and_ratio_by_hand():
    text = "abcabcabcabc"
    size = len(zlib.compress(text.encode()))
    assert metrics.zlib_entropy(text) == size
    assert metrics.zlib_entropy("") == 0
    assert metrics.zlib_ratio([-1.0, -3.0], text) == pytest.approx(2.0 / size)
    assert math.isnan(metrics.zlib_ratio([-1.0], ""))


def test_zlib_entropy_counts_utf8_bytes():
    assert metrics.zlib_entropy("é" * 3) == len(zlib.compress("ééé".encode()))


def test_min_k_prob_by_hand():
    logprobs = [-0.1, -5.0, -0.2, -3.0, -0.3, -0.4, -0.5, -0.6, -0.7, -0.8]
    # k = 20% of 10 tokens → the 2 lowest: -5.0, -3.0 → mean -4.0
    assert metrics.min_k_prob(logprobs) == pytest.approx(-4.0)
    # k = 25% of 10 → ceil(2.5) = 3 lowest: -5, -3, -0.8
    assert metrics.min_k_prob(logprobs, k=0.25) == pytest.approx(-8.8 / 3)
    # short texts keep at least one token
    assert metrics.min_k_prob([-2.0, -1.0]) == pytest.approx(-2.0)
    with pytest.raises(ValueError):
        metrics.min_k_prob(logprobs, k=0)


def test_reference_ratio_by_hand():
    # target log-PPL 1.0, reference log-PPL 4.0 → 0.25
    assert metrics.reference_ratio([-1.0, -1.0], [-2.0, -6.0]) == pytest.approx(0.25)


def test_empty_inputs_are_nan():
    for value in (metrics.perplexity([]), metrics.min_k_prob([]), metrics.reference_ratio([], [-1.0])):
        assert math.isnan(value)
