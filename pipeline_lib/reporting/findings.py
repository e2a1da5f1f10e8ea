"""The report's opening: what the benchmark measures (where a setup has cue splits), then one row
per claim of the SGDrop paper, its number beside ours, each with a verdict computed from the
runs by the rule in `RULE` (shown on the page).

`runs` is the collected table with a `role` column (which paper method a run stands for, see
`paper.py`), `label` (the variant's name) and `setup` (dataset / architecture).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from pipeline_lib.reporting.paper import Paper

REPRODUCED, NOT_REPRODUCED, MIXED, ONE_SEED, NOT_RUN = (
    "reproduced", "not reproduced", "mixed", "inconclusive (n = 1)", "not run in this matrix")
AREA_UNCHECKED = "inconclusive (area not controlled)"
# the benchmark's own rows state no one's claim: the rule's outcome read as holds / does not hold
HOLDS, DOES_NOT_HOLD = "holds", "does not hold"
BENCHMARK, PAPER = ("What the benchmark measures: reliance on the planted cue",
                    "The SGDrop paper's claims")

RULE = ("A claim is reproduced in a setup when our difference has the paper's sign and exceeds the "
        "pooled seed spread, sqrt((s_a² + s_b²) / 2) with s the standard deviation over seeds (for a "
        "change within one method, the spread of that change over seeds); otherwise it is not reproduced. "
        "With one seed on either side the spread is unknown and the verdict is inconclusive (n = 1). Over "
        "several setups: the common verdict, or mixed when they disagree. Where the role is played by "
        "several variants, the one whose run name is the role's name is used. The per-step cost has no seeds: "
        "it is reproduced when our SGDrop overhead over vanilla lies within the paper's range widened by "
        "{cost_margin:g} percentage points on each side. "
        "A hit ratio or harmonization gain that passes is then read against area: the run's value minus that of "
        "its same-area random blobs (per image, a blob of the area of the run's own map at a random place, the same "
        "places for every run of a seed) must pass the rule too, else the claim is not reproduced; where that "
        "reference was not measured (ClickMe images, or runs measured before it), the verdict is inconclusive (area "
        "not controlled). Harmonization is the raw Spearman correlation with the human-map proxy, and the paper's "
        "score (Spearman / ClickMe's human ceiling) only with ClickMe's maps. "
        "The benchmark's rows (setups with a test_conflict split, the cue of another class) apply the same rule to "
        "cue reliance, test minus test_conflict accuracy per run in points: vanilla relies on the cue when its mean "
        "exceeds its seed std; a method relies less on it than vanilla when its mean lies below vanilla's by more "
        "than the pooled spread. These are no one's claims: the verdict reads holds or does not hold. "
        "The rule screens, it does not test significance: "
        "were there no true difference, it would call a claim reproduced {chance} (one-sided, Student's t).")
COST_MARGIN = 10.0


@dataclass
class Claim:
    key: str
    text: str
    metric: str
    a: str                  # the role whose value the paper puts higher (sign +1) or lower (-1)
    b: str | None           # the role compared against; None: the change of `metric` within `a`
    sign: int = 1
    scale: float = 100.0    # shown as % (accuracies) or 1 (ratios, as in the paper's Table 4)
    digits: int = 2
    table: str = ""         # anchors of the detailed table and figure
    figure: str = ""
    same_area: str = ""     # the metric of the runs' same-area blobs, which a gain must beat (RULE)
    beside: tuple[tuple[str, str], ...] = ()  # other readings of the metric, shown beside it


CLAIMS = [
    Claim("narrowing", "Without SGDrop, attention narrows over training (Grad-CAM area ratio, last epoch minus first)",
          "metrics.attention_over_training.change", "vanilla", None, -1, 1.0, 3, "cue", "fig-attention_over_epochs"),
    Claim("broadening", "SGDrop broadens attribution maps (area ratio)", "metrics.attribution.gradcam.area_ratio",
          "sgdrop", "vanilla", 1, 1.0, 3, "attribution", "fig-methods_grid"),
    Claim("hit", "SGDrop raises the hit ratio", "metrics.attribution.gradcam.hit_whole", "sgdrop", "vanilla",
          1, 1.0, 3, "attribution", "fig-methods_grid",
          same_area="metrics.reference_maps.same_area.gradcam.hit_whole"),
    Claim("harmonization", "SGDrop raises harmonization with human maps", "metrics.attribution.gradcam.spearman",
          "sgdrop", "vanilla", 1, 1.0, 3, "attribution", "",
          same_area="metrics.reference_maps.same_area.gradcam.spearman"),
    Claim("coverage", "SGDrop raises last-layer neuron coverage (units active per image, the reading of Table 4)",
          "metrics.coverage.last_conv_per_image", "sgdrop", "vanilla", 1, 1.0, 3, "attribution",
          "fig-coverage_per_layer",
          beside=(("union", "metrics.coverage.last_conv_unit"), ("scaled", "metrics.coverage.last_conv_scaled"),
                  ("global, per image", "metrics.coverage.global_per_image"),
                  ("global, union", "metrics.coverage.global_unit"),
                  ("global, scaled", "metrics.coverage.global_scaled"))),
    Claim("accuracy", "SGDrop improves test accuracy", "metrics.accuracy.test", "sgdrop", "vanilla",
          table="accuracy"),
    Claim("transfer", "SGDrop features transfer better (frozen encoder, new head)", "transfer.accuracy.test",
          "sgdrop", "vanilla", table="transfer"),
    Claim("curriculum", "The rho curriculum improves on a fixed rho", "metrics.accuracy.test", "sgdrop_curriculum",
          "sgdrop", table="rho"),
    Claim("rho", "Too high a rho impedes learning (accuracy at the largest rho against the best smaller one)",
          "metrics.accuracy.test", "sgdrop", None, -1, table="rho", figure="fig-accuracy_vs_rho"),
    Claim("ema", "Masks from the EMA model beat masks from the online model", "metrics.accuracy.test", "sgdrop",
          "sgdrop_no_ema", table="ema"),
    Claim("cost", "SGDrop's per-step cost is moderate", "", "sgdrop", "vanilla", table="overhead"),
]


@dataclass
class Finding:
    key: str
    claim: str
    paper: str
    ours: list[str]
    verdict: str
    links: list[tuple[str, str]] = field(default_factory=list)  # (text, anchor)
    group: str = PAPER

    @property
    def verdict_class(self) -> str:  # the CSS class of the verdict's badge
        return {REPRODUCED: "yes", HOLDS: "yes", NOT_REPRODUCED: "no", DOES_NOT_HOLD: "no",
                MIXED: "mixed"}.get(self.verdict, "open")


def _fmt(values: np.ndarray, scale: float, digits: int) -> str:
    mean = f"{values.mean() * scale:.{digits}f}"
    if len(values) > 1:
        mean += f" ± {values.std(ddof=1) * scale:.{digits}f}"
    return mean


def compare(a: np.ndarray, b: np.ndarray | None, sign: int) -> str:
    """The verdict of one setup (see RULE): `a` and `b` are per-seed values; b None: `a` is a change."""
    if len(a) < 2 or (b is not None and len(b) < 2):
        return ONE_SEED
    diff = a.mean() - (0.0 if b is None else b.mean())
    spread = a.std(ddof=1) if b is None else math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    return REPRODUCED if sign * diff > spread else NOT_REPRODUCED


def combine(verdicts: list[str]) -> str:
    decided = {v for v in verdicts if v in (REPRODUCED, NOT_REPRODUCED)}
    if not verdicts:
        return NOT_RUN
    if not decided:  # inconclusive everywhere: n = 1 where a setup has one seed, it is the first thing to fix
        return ONE_SEED if ONE_SEED in verdicts else verdicts[0]
    return decided.pop() if len(decided) == 1 else MIXED


def pick(runs: pd.DataFrame, role: str) -> pd.DataFrame:
    """The runs of one role in one setup: the variant named after the role if there is one, else the first."""
    part = runs[runs["role"] == role]
    if part.empty:
        return part
    labels = list(dict.fromkeys(part["label"]))
    return part[part["label"] == (role if role in labels else labels[0])]


def values(part: pd.DataFrame, metric: str) -> np.ndarray:
    return part[metric].dropna().to_numpy(float) if metric in part else np.array([])


def excess(part: pd.DataFrame, metric: str, reference: str) -> np.ndarray:
    """Per run, `metric` minus `reference` (runs lacking either are left out)."""
    if metric not in part or reference not in part:
        return np.array([])
    return (part[metric].astype(float) - part[reference].astype(float)).dropna().to_numpy(float)


def paper_pairs(paper: Paper, a: str, b: str, table: str = "accuracy") -> list[tuple[str, list[float], list[float]]]:
    """(setup, a's cell, b's cell) for every setup of the paper that has both roles."""
    if table == "ema":
        cols = [tuple(c) for c in paper.data["ema"]["columns"]]
        rows = paper.data["ema"]["rows"]
        if a not in rows or b not in rows:
            return []
        return [(paper.setup_label(*c), rows[a][i], rows[b][i]) for i, c in enumerate(cols)]
    cells = paper.accuracy_cells
    return [(paper.setup_label(d, arch), cell, cells[b, d, arch][0]) for (role, d, arch), (cell, _) in cells.items()
            if role == a and (b, d, arch) in cells]


def paper_accuracy_text(paper: Paper, a: str, b: str, table: str = "accuracy") -> str:
    pairs = paper_pairs(paper, a, b, table)
    if not pairs:
        return ""
    wins = sum(x[0] > y[0] for _, x, y in pairs)
    setup, x, y = pairs[0]
    where = "Table 8" if table == "ema" else "Tables 3 and 5"
    return (f"{paper.label(a)} above {paper.label(b)} in {wins} of {len(pairs)} settings ({where}); "
            f"{setup}: {x[0]:.2f} ± {x[1]:.2f} vs {y[0]:.2f} ± {y[1]:.2f}")


def paper_text(paper: Paper, c: Claim) -> str:
    d = paper.data
    attr = {"broadening": "area_ratio", "hit": "hit_ratio", "harmonization": "harmonization",
            "coverage": "coverage_feature_map"}
    if c.key in ("narrowing", "rho"):
        return d["text"]["narrowing" if c.key == "narrowing" else "rho"]
    if c.key in attr:
        rows, name = d["attribution"]["rows"], attr[c.key]
        reading = d["attribution"]["readings"].get(name)
        shown = [(name, "")] + [("coverage_global", "globally ")] * (c.key == "coverage")
        cells = [f"{where}{rows['sgdrop'][k]:.2f} vs {rows['vanilla'][k]:.2f} (dropout {rows['dropout'][k]:.2f})"
                 for k, where in shown]
        return "; ".join([*cells, d["attribution"]["where"]]) + (f". {reading}" if reading else "")
    if c.key == "transfer":
        rows = d["transfer"]["rows"]
        (a, sa), (b, sb) = rows["sgdrop"], rows["vanilla"]
        return f"{a:.2f} ± {sa:.2f} vs {b:.2f} ± {sb:.2f}; " + d["transfer"]["where"]
    if c.key == "cost":
        rows = d["overhead"]["rows"]
        return "; ".join(f"{d['architectures'][arch]} +{r['overhead_percent']:.2f}% ({r['vanilla_ms']:.2f} → "
                         f"{r['sgdrop_ms']:.2f} ms)" for arch, r in rows.items()) + " (" + d["overhead"]["where"] + ")"
    return paper_accuracy_text(paper, c.a, c.b, "ema" if c.key == "ema" else "accuracy")


def paper_cell(paper: Paper, c: Claim, dataset: str, arch: str) -> str | None:
    """The paper's own numbers for one of our setups, where it has them (accuracy claims only)."""
    if c.metric != "metrics.accuracy.test" or c.b is None:
        return None
    if c.key == "ema":
        x, y = paper.ema(c.a, dataset, arch), paper.ema(c.b, dataset, arch)
    else:
        x, y = ((paper.accuracy(r, dataset, arch) or (None,))[0] for r in (c.a, c.b))
    if x is None or y is None:
        return None
    return f"this setup ({paper.setup_label(dataset, arch)}): {x[0]:.2f} ± {x[1]:.2f} vs {y[0]:.2f} ± {y[1]:.2f}"


def rho_setup(part: pd.DataFrame, c: Claim) -> tuple[str, str] | None:
    """Accuracy at the largest rho against the best smaller rho, among the runs of role `sgdrop`."""
    part = part[part["role"] == c.a]
    if "p.rho" not in part or part["p.rho"].nunique() < 2:
        return None
    by_rho = {rho: values(g, c.metric) for rho, g in part.groupby("p.rho")}
    top = max(by_rho)
    best = max((r for r in by_rho if r != top), key=lambda r: by_rho[r].mean())
    line = (f"rho = {top}: {_fmt(by_rho[top], c.scale, c.digits)} vs rho = {best}: "
            f"{_fmt(by_rho[best], c.scale, c.digits)} (n = {len(by_rho[top])}, {len(by_rho[best])})")
    return line, compare(by_rho[top], by_rho[best], c.sign)


def cost_findings(bench: list[dict], roles: dict[str, str | None], paper: Paper) -> tuple[list[str], list[str]]:
    """Our SGDrop overhead per bench file; `roles`: bench method name -> paper role."""
    rows = paper.data["overhead"]["rows"].values()
    low, high = min(r["overhead_percent"] for r in rows), max(r["overhead_percent"] for r in rows)
    lines, verdicts = [], []
    for b in bench:
        # as in `pick`: the row named after the role if there is one, else the role's first row
        by_role = {}
        for r in b["rows"]:
            role = roles.get(r["method"])
            if role not in by_role or r["method"] == role:
                by_role[role] = r
        if "sgdrop" not in by_role or "vanilla" not in by_role:
            continue
        over = 100 * (by_role["sgdrop"]["ms_per_step"] / by_role["vanilla"]["ms_per_step"] - 1)
        lines.append(f"{b['name']} ({b['device_name']}): +{over:.0f}% ({by_role['vanilla']['ms_per_step']:.1f} → "
                     f"{by_role['sgdrop']['ms_per_step']:.1f} ms per step)")
        verdicts.append(REPRODUCED if low - COST_MARGIN <= over <= high + COST_MARGIN else NOT_REPRODUCED)
    return lines, verdicts


def harmonization_metric(part: pd.DataFrame, c: Claim) -> tuple[str, str, str]:
    """(metric, its same-area reference, what it is) of the harmonization claim in one setup: the
    paper's score where the runs have ClickMe's maps, else the raw Spearman with the proxy (RULE)."""
    names = sorted(set(part["metrics.human_map"].dropna())) if "metrics.human_map" in part else []
    if names == ["ClickMe"]:
        return "metrics.harmonization_clickme.gradcam.score", "", "Spearman with ClickMe maps / human ceiling"
    return c.metric, c.same_area, f"raw Spearman with {', '.join(names) or 'the ground truth'}, a proxy"


def area_check(a_runs: pd.DataFrame, b_runs: pd.DataFrame, metric: str, reference: str, c: Claim,
               verdict: str) -> tuple[str, str]:
    """(what the same-area blobs gain, the verdict): a gain that passes the rule must pass it again
    on the runs' values minus their blobs' (RULE)."""
    ea, eb = excess(a_runs, metric, reference), excess(b_runs, metric, reference)
    unchecked = AREA_UNCHECKED if verdict == REPRODUCED else verdict
    if not reference:
        return "; no same-area reference on ClickMe's images", unchecked
    if not len(ea) or not len(eb):
        return f"; same-area reference not measured ({reference} is absent)", unchecked
    ra, rb = values(a_runs, reference), values(b_runs, reference)
    ours = values(a_runs, metric).mean() - values(b_runs, metric).mean()
    d = c.digits
    text = (f"; their same-area random blobs {_fmt(ra, c.scale, d)} vs {_fmt(rb, c.scale, d)}: area alone gains "
            f"{(ra.mean() - rb.mean()) * c.scale:+.{d}f} of our {ours * c.scale:+.{d}f}, beyond area "
            f"{_fmt(ea, c.scale, d)} vs {_fmt(eb, c.scale, d)}")
    return text, compare(ea, eb, c.sign) if verdict == REPRODUCED else verdict


def setup_finding(part: pd.DataFrame, c: Claim) -> tuple[str, str] | None:
    """(our numbers, verdict) for one setup, or None when a role of the claim was not run there."""
    if c.key == "rho":
        return rho_setup(part, c)
    a_runs, b_runs = pick(part, c.a), None if c.b is None else pick(part, c.b)
    if a_runs.empty or (b_runs is not None and b_runs.empty):
        return None
    metric, same_area, what = harmonization_metric(part, c) if c.key == "harmonization" else (c.metric, c.same_area, "")
    a, b = values(a_runs, metric), None if b_runs is None else values(b_runs, metric)
    if not len(a) or (b is not None and not len(b)):
        return f"not measured ({metric} is absent)", NOT_RUN
    if b is None:
        first, last = (values(a_runs, f"metrics.attention_over_training.{k}") for k in ("first", "last"))
        return (f"{a_runs['label'].iloc[0]}: {_fmt(first, 1, c.digits)} → {_fmt(last, 1, c.digits)}, "
                f"change {_fmt(a, c.scale, c.digits)} (n = {len(a)})"), compare(a, b, c.sign)
    line = (f"{a_runs['label'].iloc[0]} {_fmt(a, c.scale, c.digits)} vs {b_runs['label'].iloc[0]} "
            f"{_fmt(b, c.scale, c.digits)} (n = {len(a)}, {len(b)}{', ' + what if what else ''})")
    for name, m in c.beside:
        x, y = values(a_runs, m), values(b_runs, m)
        if len(x) and len(y):
            line += f"; {name} {_fmt(x, c.scale, c.digits)} vs {_fmt(y, c.scale, c.digits)}"
    verdict = compare(a, b, c.sign)
    if c.same_area:
        more, verdict = area_check(a_runs, b_runs, metric, same_area, c, verdict)
        line += more
    return line, verdict


def gathered(found: list[tuple[str, str]], words: dict[str, str] | None = None) -> tuple[list[str], str]:
    """The setups' (line, verdict) as lines, each with its verdict where the setups disagree, and
    the verdict over the setups; `words`: how the rule's outcomes read in this row."""
    words = words or {}
    lines, verdicts = [line for line, _ in found], [v for _, v in found]
    if len(set(verdicts) - {NOT_RUN}) > 1:  # say which setup gave which verdict
        lines = [line if v == NOT_RUN else f"{line} [{words.get(v, v)}]" for line, v in zip(lines, verdicts)]
    verdict = combine([v for v in verdicts if v != NOT_RUN])
    return lines, words.get(verdict, verdict)


def links(anchors: list[str], table: str, figure: str = "") -> list[tuple[str, str]]:
    return [(text, next(a for a in anchors if a.startswith(prefix))) for text, prefix in
            (("table", table), ("figure", figure)) if prefix and any(a.startswith(prefix) for a in anchors)]


CUE_SPLIT = "metrics.accuracy.test_conflict"
RULE_WORDS = {REPRODUCED: HOLDS, NOT_REPRODUCED: DOES_NOT_HOLD}


def cue_findings(runs: pd.DataFrame, order: list[str], anchors: list[str]) -> list[Finding]:
    """Vanilla's reliance on the planted cue (test minus test_conflict accuracy, per run), and each
    other method's against vanilla's, in the setups that have the split (RULE); SGDrop's role
    first, then the methods in `order`."""
    if CUE_SPLIT not in runs:
        return []
    runs = runs.assign(cue=runs["metrics.accuracy.test"].astype(float) - runs[CUE_SPLIT].astype(float))
    runs = runs[runs["cue"].notna()]
    base_found, found = [], {}
    for setup, part in runs.groupby("setup", sort=False):
        base = pick(part, "vanilla")
        if base.empty:
            continue
        v, label = values(base, "cue"), base["label"].iloc[0]
        test, conflict = (_fmt(values(base, m), 100, 1) for m in ("metrics.accuracy.test", CUE_SPLIT))
        base_found.append((f"{setup}: {label} {_fmt(v, 100, 1)} points (test {test}, test_conflict {conflict}; "
                           f"n = {len(v)})", compare(v, None, +1)))
        for other, method in part.groupby("label", sort=False):
            if other != label:
                x = values(method, "cue")
                found.setdefault(other, []).append((
                    f"{setup}: {other} {_fmt(x, 100, 1)} vs {label} {_fmt(v, 100, 1)} points "
                    f"(n = {len(x)}, {len(v)}), change {(x.mean() - v.mean()) * 100:+.1f}", compare(x, v, -1)))
    if not base_found:
        return []
    first = {m for _, part in runs.groupby("setup") for m in pick(part, "sgdrop")["label"].unique()}
    rank = {m: i for i, m in enumerate(order)}
    out = [Finding("cue", "Vanilla relies on the planted cue: test minus test_conflict accuracy (the cue of another "
                   "class), in points", "— (the benchmark's premise; the paper has no cue splits)",
                   *gathered(base_found, RULE_WORDS), links(anchors, "cue"), BENCHMARK)]
    for m in sorted(found, key=lambda m: (m not in first, rank.get(m, len(rank)))):
        out.append(Finding(f"cue:{m}", f"{m} relies less on the cue than vanilla (test minus test_conflict)",
                           "— (the paper has no cue splits)", *gathered(found[m], RULE_WORDS), links(anchors, "cue"),
                           BENCHMARK))
    return out


def findings(runs: pd.DataFrame, paper: Paper, bench: list[dict], bench_roles: dict[str, str | None],
             anchors: list[str], order: list[str]) -> list[Finding]:
    """The benchmark's rows, then the paper's claims; `anchors`: the ids of the page's sections and
    figures, for the links to the details; `order`: the methods' order."""
    out = cue_findings(runs, order, anchors)
    for c in CLAIMS:
        found, paper_lines = [], []
        if c.key == "cost":
            found = list(zip(*cost_findings(bench, bench_roles, paper)))
        for setup, part in ([] if c.key == "cost" else runs.groupby("setup", sort=False)):
            got = setup_finding(part, c)
            if got is None:
                continue
            found.append((f"{setup}: {got[0]}", got[1]))
            same = paper_cell(paper, c, part["dataset"].iloc[0], part["arch"].iloc[0])
            if same:
                paper_lines.append(same)
        out.append(Finding(c.key, c.text, "; ".join([*paper_lines, paper_text(paper, c)]), *gathered(found),
                           links(anchors, c.table, c.figure)))
    return out


def chance_reproduced(n: int) -> float:
    """How often the rule says "reproduced" with n seeds a side and no true difference: the mean
    difference over the pooled std is sqrt(2 / n) times a Student's t with 2 (n - 1) dof."""
    return float(stats.t.sf(math.sqrt(n / 2), 2 * (n - 1)))


def rule_text(seeds: tuple[int, ...] = (2, 3)) -> str:
    chance = ", ".join(f"{chance_reproduced(n):.0%} of the time with n = {n} seeds a side" for n in seeds)
    return RULE.format(cost_margin=COST_MARGIN, chance=chance)
