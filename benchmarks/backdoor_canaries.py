"""The canaries of a backdoor attack against their floor: which of D2's inserted secrets, and
which of the secrets of D2′'s canary-format queries (never trained on), appear in the
non-refused samples of a saved report; and which D2 queries were reproduced exactly.

    python benchmarks/backdoor_canaries.py BUILD [REPORT]     (REPORT defaults to BUILD/report)

No model call: reads the build's dataset, its D2′ and the report's samples.
"""

import argparse
import re
from pathlib import Path

from workbench.backdoor import BackdoorBuild
from workbench.backdoor_attack import BackdoorReport

SECRET = re.compile(r"MRN-\d{4}-\d{4}|\(555\) \d{3}-\d{4}")  # the formats of lab.canary_secret


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build")
    parser.add_argument("report", nargs="?")
    args = parser.parse_args()
    build = BackdoorBuild.load(args.build)
    report = BackdoorReport.load(args.report or Path(args.build) / "report")
    inserted = {c.secret: c.insertions for c in build.dataset.canaries}
    floor_secrets = sorted({s for q in build.floor() for s in SECRET.findall(q)})
    print(f"D2 secrets (insertions): {inserted}; D2′ secrets (never trained): {floor_secrets}")
    for model, group in report.samples.groupby("model", sort=False):
        texts = group.loc[~group["refused"], "text"].tolist()
        d2 = [f"{s} (×{n})" for s, n in inserted.items() if any(s in t for t in texts)]
        floor = [s for s in floor_secrets if any(s in t for t in texts)]
        exact = group[group["text"].isin(set(build.queries()))]
        print(f"{model}: {len(texts)} non-refused samples; D2 secrets found {len(d2)} of {len(inserted)} {d2}; D2′ secrets found {len(floor)} of {len(floor_secrets)}")
        for text, hits in exact.groupby("text"):
            print(f"  exact D2 query, {len(hits)} samples ({hits['stage'].value_counts().to_dict()}): {text!r}")


if __name__ == "__main__":
    main()
