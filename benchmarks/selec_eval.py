"""Does SELEC find the lab model's fine-tuning data? Base vs lab weights, on the lab pool.

    python benchmarks/selec_eval.py [--members 50] [--nonmembers 75] [--other 375] [--params last changed]

The pool mixes training dialogues of the lab model (members), held-out dialogues of the same
style and texts from other domains. For each parameter choice and each target (Δ ⊙ √v̂ for
an Adam fine-tune — the lab's is AdamW — and plain Δ): precision@k (k = number of members),
recall@k and ROC AUC of the ranking and of the greedy selection, the random baseline
(members / pool size), the AUC of members against same-style held-out texts only (how much
is membership rather than domain), and the time per 1,000 pool texts.
Target: precision@k ≥ 3× the random baseline.
"""

from __future__ import annotations

import argparse
import time

from sklearn.metrics import roc_auc_score

from workbench.config import DEFAULT_MODEL
from workbench.lab import SHIPPED_LAB, LabDataset, public_pool
from workbench.registry import LAB_MODEL
from workbench.selec import OPTIMIZERS, WeightDiff, evaluate
from workbench.session import load_session

TARGET_LIFT = 3.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--nonmembers", type=int, default=75)
    parser.add_argument("--other", type=int, default=375)
    parser.add_argument("--params", nargs="+", default=["last", "changed"])
    parser.add_argument("--projection-dim", type=int, default=1024)
    args = parser.parse_args()

    dataset = LabDataset.load(SHIPPED_LAB / "dataset")
    pool = public_pool(dataset, args.members, args.nonmembers, args.other, seed=0)
    flags = pool["member"].tolist()
    base, tuned = load_session(DEFAULT_MODEL), load_session(LAB_MODEL)
    print(f"pool: {len(pool)} texts, {sum(flags)} members, {args.nonmembers} same-style held out, {args.other} other domain")
    print(f"{'params':<9}{'target':<7}{'method':<9}{'prec@k':>8}{'random':>8}{'lift':>7}{'recall@k':>10}{'AUC':>7}{'AUC in-domain':>15}")
    k = sum(flags)
    for params in args.params:
        start = time.perf_counter()
        fitted = WeightDiff(params, args.projection_dim, seed=0).fit(base, tuned, pool)
        seconds = time.perf_counter() - start
        print(f"{params}: {fitted.n_parameters_:,} parameters in {len(fitted.names_)} tensors, {seconds / len(pool) * 1000:.0f} s per 1,000 texts")
        for optimizer in OPTIMIZERS:  # the same gradients, two targets
            fitted.optimizer = optimizer
            ranking = fitted.rank()
            clinic = ranking[ranking["source"] != "other domain"]
            in_domain = roc_auc_score(clinic["member"], clinic["score"])
            for method, table in (("ranking", ranking), ("greedy", fitted.greedy_select(k))):
                result = evaluate(table, flags, k)
                auc = f"{result['auc']:.3f}" if method == "ranking" else "-"
                domain = f"{in_domain:.3f}" if method == "ranking" else "-"
                print(
                    f"{params:<9}{optimizer:<7}{method:<9}{result['precision_at_k']:>8.3f}{result['random']:>8.3f}"
                    f"{result['lift']:>7.2f}{result['recall_at_k']:>10.3f}{auc:>7}{domain:>15}"
                )
            lift = evaluate(ranking, flags)["lift"]
            top = ranking.head(k)["source"].value_counts().to_dict()
            print(f"{'':<16}top {k} by source: {top}; target precision@k >= {TARGET_LIFT}x random: {'met' if lift >= TARGET_LIFT else 'NOT met'} ({lift:.2f}x)")


if __name__ == "__main__":
    main()
