"""fiumatch.synth: synthetic multi-jurisdiction FIU datasets with a known ground truth.

Owns the generator behind ``fiumatch synth``, the demo, the tests and the benchmarks: N
jurisdictions, each writing its own records in its own script and formats, with a
controlled share of subjects that appear in several jurisdictions written the way each
would write them. Deterministic given the seed (and the Faker version, which is pinned to a
major in pyproject). Never touches real data and never reads the clock.

API::

    ds = generate(["DE", "RU", "CN"], subjects=1000, overlap=0.2, seed=1)
    ds.records["DE"]          # list of flat records (the CSV column vocabulary)
    ds.truth                  # list of TruthRow: which records are the same subject
    write(ds, out_dir, formats=("csv", "ftm", "goaml"))
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from pathlib import Path

from fiumatch.synth.profiles import PROFILES, Profile
from fiumatch.synth.render import VARIATION, render
from fiumatch.synth.truth import TrueSubject, World
from fiumatch.synth.writers import write_csv, write_ftm, write_goaml

__all__ = ["PROFILES", "VARIATION", "Dataset", "Profile", "TruthRow", "generate", "write"]


@dataclass(frozen=True, slots=True)
class TruthRow:
    truth_id: str
    kind: str
    home: str
    jurisdiction: str
    local_ref: str
    shared: bool


@dataclass
class Dataset:
    jurisdictions: tuple[str, ...]
    seed: int
    records: dict[str, list[dict[str, str]]]
    truth: list[TruthRow]
    subjects: dict[str, TrueSubject] = field(repr=False, default_factory=dict)

    def same_subject(self) -> dict[tuple[str, str], str]:
        """``(jurisdiction, local_ref) -> truth_id``."""
        return {(t.jurisdiction, t.local_ref): t.truth_id for t in self.truth}


def generate(
    jurisdictions: list[str] | tuple[str, ...],
    subjects: int = 1000,
    overlap: float = 0.2,
    seed: int = 0,
    spread: int | None = None,
    kinds: tuple[str, ...] | None = None,
) -> Dataset:
    """Generate ``subjects`` records per jurisdiction; ``overlap`` of them are shared.

    A shared subject appears in ``spread`` jurisdictions (default: all of them), so each
    jurisdiction holds about ``overlap * subjects`` shared records. ``kinds`` restricts the
    subject kinds (``person``, ``organisation``, ``bank_account``, ``crypto_wallet``).
    """
    codes = tuple(j.upper() for j in jurisdictions)
    unknown = [j for j in codes if j not in PROFILES]
    if unknown or len(set(codes)) != len(codes) or not codes:
        raise ValueError(f"jurisdictions must be distinct codes from {', '.join(PROFILES)}")
    if not 0 <= overlap <= 1:
        raise ValueError("overlap must be between 0 and 1")
    k = len(codes) if spread is None else spread
    if not (2 <= k <= len(codes)) and overlap > 0:
        raise ValueError("spread must be between 2 and the number of jurisdictions")
    world = World(seed)
    rng = world.rng
    homes = sorted(PROFILES)
    n_shared = round(overlap * subjects * len(codes) / k) if overlap > 0 else 0
    members: dict[str, list[TrueSubject]] = {j: [] for j in codes}
    shared_ids: set[str] = set()
    all_subjects: dict[str, TrueSubject] = {}
    counter = 0

    def new_subject(home: str) -> TrueSubject:
        nonlocal counter
        counter += 1
        subject = _make(world, f"S{seed}-{counter:07d}", home, kinds)
        all_subjects[subject.truth_id] = subject
        return subject

    for _ in range(n_shared):
        subject = new_subject(rng.choice(homes))
        shared_ids.add(subject.truth_id)
        for j in rng.sample(codes, k):
            members[j].append(subject)
    for j in codes:
        while len(members[j]) < subjects:
            home = j if rng.random() < 0.7 else rng.choice(homes)
            members[j].append(new_subject(home))
        rng.shuffle(members[j])
    records: dict[str, list[dict[str, str]]] = {}
    truth: list[TruthRow] = []
    for j in codes:
        profile = PROFILES[j]
        out = []
        for i, subject in enumerate(members[j], start=1):
            ref = f"{j}-{seed}-{i:07d}"
            out.append(render(subject, profile, ref, rng))
            truth.append(
                TruthRow(
                    subject.truth_id, subject.kind, subject.home.code, j, ref,
                    subject.truth_id in shared_ids,
                )
            )
        records[j] = out
    return Dataset(codes, seed, records, truth, all_subjects)


def _make(world: World, truth_id: str, home: str, kinds: tuple[str, ...] | None) -> TrueSubject:
    if kinds is None:
        return world.subject(truth_id, home)
    kind = world.rng.choice(kinds)
    profile = PROFILES[home]
    maker = {"person": world.person, "organisation": world.organisation,
             "bank_account": world.account, "crypto_wallet": world.crypto_wallet}[kind]  # fmt: skip
    return maker(truth_id, profile)


def write(dataset: Dataset, out_dir: Path, formats: tuple[str, ...] = ("csv",)) -> list[Path]:
    """Write each jurisdiction's records in each format, plus ``ground_truth.csv``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    goaml_refs: dict[tuple[str, str], str] = {}
    for j in dataset.jurisdictions:
        recs = dataset.records[j]
        if "csv" in formats:
            written.append(out_dir / f"{j}.csv")
            write_csv(recs, written[-1])
        if "ftm" in formats:
            written.append(out_dir / f"{j}.ftm.json")
            write_ftm(recs, written[-1])
        if "goaml" in formats:
            written.append(out_dir / f"{j}.goaml.xml")
            refs = write_goaml(recs, written[-1], f"{j}-SYNTH-{dataset.seed}", f"FIU-{j}")
            goaml_refs.update({(j, ref): g for ref, g in refs.items()})
    truth_path = out_dir / "ground_truth.csv"
    with truth_path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["truth_id", "kind", "home", "jurisdiction", "local_ref", "goaml_ref",
                         "shared"])  # fmt: skip
        for t in dataset.truth:
            writer.writerow([t.truth_id, t.kind, t.home, t.jurisdiction, t.local_ref,
                             goaml_refs.get((t.jurisdiction, t.local_ref), ""),
                             int(t.shared)])  # fmt: skip
    written.append(truth_path)
    return written


_ = random  # the generator's only randomness is World(seed).rng and seeded Faker instances
