"""Speed of ``workbench.overlap.matched_spans`` against the O(n·m) dynamic programme it
replaced, measured in the same run on the same inputs (and checked to agree).

    python benchmarks/overlap.py [--repeats 3]

Inputs are random words from a vocabulary of 300 (about a book passage's), with a 50-word run
of the passage planted in the generation. Prints, per size, both times (best of --repeats)
and their ratio.
"""

from __future__ import annotations

import argparse
import random
import time

from workbench.overlap import matched_spans

SIZES = ((160, 80), (1000, 1000), (3000, 3000))  # (generated, passage) words


def reference_spans(generated: list[str], passage: list[str]) -> list[tuple[int, int]]:
    """The O(n·m) dynamic programme: the common suffix length at every (i, j), reported where
    the next words do not extend it."""
    runs = []
    previous = [0] * (len(passage) + 1)
    for i, word in enumerate(generated):
        current = [0] * (len(passage) + 1)
        for j, other in enumerate(passage):
            if word == other:
                current[j + 1] = previous[j] + 1
        for j in range(len(passage)):
            length = current[j + 1]
            extends = i + 1 < len(generated) and j + 1 < len(passage) and generated[i + 1] == passage[j + 1]
            if length and not extends:
                runs.append((j + 1 - length, length))
        previous = current
    return runs


def best_time(function, repeats: int) -> tuple[float, list]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(0)
    print(f"{'generated':>10}{'passage':>9}{'runs':>7}{'O(n·m) s':>11}{'overlap s':>11}{'ratio':>8}")
    for n, m in SIZES:
        passage = [f"w{rng.randrange(300)}" for _ in range(m)]
        generated = [f"w{rng.randrange(300)}" for _ in range(n)]
        planted = min(50, m // 2)
        generated[n // 3 : n // 3 + planted] = passage[m // 4 : m // 4 + planted]
        slow, expected = best_time(lambda: reference_spans(generated, passage), args.repeats)
        fast, found = best_time(lambda: matched_spans(generated, passage), args.repeats)
        if found != expected:
            raise SystemExit(f"matched_spans disagrees with the reference at {n} × {m} words")
        print(f"{n:>10}{m:>9}{len(found):>7}{slow:>11.4f}{fast:>11.4f}{slow / fast:>7.1f}×")


if __name__ == "__main__":
    main()
