"""Match-key quality on synthetic data: recall and false matches, per key type.

Generates a synthetic dataset (fiumatch.synth) in which every shared subject appears in all
jurisdictions, each writing it its own way; derives every record's keys through the same
path as ingestion (the documented record vocabulary -> build_subject); and measures, per key
type and per subject kind:

* recall: share of true shared subjects whose records in two different jurisdictions share
  at least one key of that type (and of any type, and of any name-based type);
* false matches: pairs of records in different jurisdictions that share a key but belong to
  different true subjects (count, and share of all cross-jurisdiction links of that type).

Run:  python -m benchmarks.identifiers_quality [--subjects N] [--overlap F] [--seed S]
Writes benchmarks/results/identifiers_quality.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections import defaultdict
from datetime import date
from importlib.metadata import version
from itertools import combinations
from pathlib import Path

from fiumatch.identifiers import KeyType, Strength, Subject
from fiumatch.ingest.build import build_subject
from fiumatch.synth import VARIATION, generate

RESULTS = Path(__file__).resolve().parent / "results"
NAME_KEYS = {kt for kt in KeyType if kt.strength is not Strength.STRONG}
KINDS = ("person", "organisation", "bank_account", "crypto_wallet")


def measure(
    jurisdictions: list[str], subjects: int, overlap: float, seed: int
) -> dict[str, object]:
    started = time.perf_counter()
    ds = generate(jurisdictions, subjects=subjects, overlap=overlap, seed=seed)
    generated = time.perf_counter() - started
    truth_of = ds.same_subject()
    kind_of = {t.truth_id: t.kind for t in ds.truth}
    shared = {t.truth_id for t in ds.truth if t.shared}
    # key bytes -> {(jurisdiction, local_ref): truth_id}
    index: dict[KeyType, dict[bytes, dict[tuple[str, str], str]]] = defaultdict(dict)
    rejected = 0
    started = time.perf_counter()
    for j, records in ds.records.items():
        for rec in records:
            result = build_subject(
                rec, source=j, file=j, record=rec["local_ref"], line=None,
                default_retention=date(2030, 1, 1),
            )  # fmt: skip
            if not isinstance(result, Subject):
                rejected += 1
                continue
            ref = (j, rec["local_ref"])
            for key in result.keys:
                index[key.type].setdefault(key.encode(), {})[ref] = truth_of[ref]
    derived = time.perf_counter() - started

    found: dict[KeyType, set[str]] = defaultdict(set)
    true_links: dict[KeyType, int] = defaultdict(int)
    false_links: dict[KeyType, int] = defaultdict(int)
    for key_type, keys in index.items():
        for members in keys.values():
            if len(members) < 2:
                continue
            for (ra, ta), (rb, tb) in combinations(members.items(), 2):
                if ra[0] == rb[0]:
                    continue  # same jurisdiction: not a cross-border match
                if ta == tb:
                    true_links[key_type] += 1
                    found[key_type].add(ta)
                else:
                    false_links[key_type] += 1

    per_kind: dict[str, dict[str, object]] = {}
    for kind in KINDS:
        population = {t for t in shared if kind_of[t] == kind}
        if not population:
            continue
        row: dict[str, object] = {"shared_subjects": len(population)}
        any_found: set[str] = set()
        name_found: set[str] = set()
        for key_type in KeyType:
            hit = found[key_type] & population
            if hit:
                row[key_type.value] = round(len(hit) / len(population), 4)
            any_found |= hit
            if key_type in NAME_KEYS:
                name_found |= hit
        row["any_key"] = round(len(any_found) / len(population), 4)
        row["any_name_key"] = round(len(name_found) / len(population), 4)
        per_kind[kind] = row

    false_matches = {
        kt.value: {
            "strength": kt.strength.label,
            "true_links": true_links[kt],
            "false_links": false_links[kt],
            "false_share": round(false_links[kt] / (true_links[kt] + false_links[kt]), 6)
            if true_links[kt] + false_links[kt]
            else 0.0,
        }
        for kt in KeyType
        if true_links[kt] or false_links[kt]
    }
    return {
        "benchmark": "identifiers_quality",
        "params": {
            "jurisdictions": jurisdictions,
            "subjects_per_jurisdiction": subjects,
            "overlap": overlap,
            "seed": seed,
            "spread": len(jurisdictions),
        },
        "records": sum(len(r) for r in ds.records.values()),
        "shared_subjects": len(shared),
        "rejected_records": rejected,
        "variation": VARIATION,
        "recall": per_kind,
        "false_matches": false_matches,
        "seconds": {"generate": round(generated, 1), "derive_keys": round(derived, 1)},
        "environment": {
            "python": platform.python_version(),
            "rigour": version("rigour"),
            "faker": version("faker"),
        },
    }


def markdown(result: dict[str, object]) -> str:
    recall = result["recall"]
    assert isinstance(recall, dict)
    kinds = list(recall)
    columns = [kt.value for kt in KeyType] + ["any_name_key", "any_key"]
    lines = [
        "# Match-key quality on synthetic data",
        "",
        f"Parameters: `{json.dumps(result['params'])}`; {result['records']:,} records, "
        f"{result['shared_subjects']:,} shared subjects (each in every jurisdiction), "
        f"{result['rejected_records']} rejected records.",
        "",
        "## Recall: share of true shared subjects found across jurisdictions",
        "",
        "| key type | strength | "
        + " | ".join(f"{k} (n={recall[k]['shared_subjects']:,})" for k in kinds)
        + " |",
        "|---|---|" + "---|" * len(kinds),
    ]
    strengths = {kt.value: kt.strength.label for kt in KeyType}
    for col in columns:
        cells = [f"{recall[k][col]:.2%}" if col in recall[k] else "-" for k in kinds]
        lines.append(f"| {col} | {strengths.get(col, '')} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## False matches: cross-jurisdiction record pairs sharing a key, different subjects",
        "",
        "| key type | strength | true links | false links | false share |",
        "|---|---|---|---|---|",
    ]
    fm = result["false_matches"]
    assert isinstance(fm, dict)
    for name, row in fm.items():
        lines.append(
            f"| {name} | {row['strength']} | {row['true_links']:,} | {row['false_links']:,} | "
            f"{row['false_share']:.4%} |"
        )
    lines.append("")
    return "\n".join(lines)


def plot(result: dict[str, object], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recall = result["recall"]
    assert isinstance(recall, dict)
    columns = [kt.value for kt in KeyType] + ["any_name_key", "any_key"]
    fig, ax = plt.subplots(figsize=(12, 5))
    kinds = [k for k in ("person", "organisation") if k in recall]
    width = 0.8 / max(1, len(kinds))
    for i, kind in enumerate(kinds):
        values = [float(recall[kind].get(c, 0.0)) * 100 for c in columns]
        ax.bar([x + i * width for x in range(len(columns))], values, width, label=kind)
    ax.axhline(95, color="grey", linestyle="--", linewidth=1, label="95% goal")
    ax.set_xticks([x + width / 2 for x in range(len(columns))])
    ax.set_xticklabels(columns, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("recall of shared subjects (%)")
    ax.set_title(f"Match-key recall by key type ({result['shared_subjects']:,} shared subjects)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jurisdictions", default="DE,RU,CN")
    parser.add_argument("--subjects", type=int, default=20000, help="records per jurisdiction")
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = measure(args.jurisdictions.split(","), args.subjects, args.overlap, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "identifiers_quality.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "identifiers_quality.md").write_text(markdown(result))
    plot(result, args.out / "identifiers_quality.png")
    print(markdown(result))


if __name__ == "__main__":
    main()
