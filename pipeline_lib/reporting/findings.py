"""The report's opening: one row per claim of the SGDrop paper, its number beside ours, and a
verdict computed from the runs by the rule in `RULE` (shown on the page).

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

RULE = ("A claim is reproduced in a setup when our difference has the paper's sign and exceeds the "
        "pooled seed spread, sqrt((s_a² + s_b²) / 2) with s the standard deviation over seeds (for a "
        "change within one method, the spread of that change over seeds); otherwise it is not reproduced. "
        "With one seed on either side the spread is unknown and the verdict is inconclusive (n = 1). Over "
        "several setups: the common verdict, or mixed when they disagree. Where the role is played by "
        "several variants, the one whose run name is the role's name is used. The per-step cost has no seeds: "
        "it is reproduced when our SGDrop overhead over vanilla lies within the paper's range widened by "
        "{cost_margin:g} percentage points on each side. The rule screens, it does not test significance: "
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


CLAIMS = [
    Claim("narrowing", "Without SGDrop, attention narrows over training (Grad-CAM area ratio, last epoch minus first)",
          "metrics.attention_over_training.change", "vanilla", None, -1, 1.0, 3, "cue", "fig-attention_over_epochs"),
    Claim("broadening", "SGDrop broadens attribution maps (area ratio)", "metrics.attribution.gradcam.area_ratio",
          "sgdrop", "vanilla", 1, 1.0, 3, "attribution", "fig-methods_grid"),
    Claim("hit", "SGDrop raises the hit ratio", "metrics.attribution.gradcam.hit_whole", "sgdrop", "vanilla",
          1, 1.0, 3, "attribution", "fig-methods_grid"),
    Claim("harmonization", "SGDrop raises harmonization with human maps", "metrics.attribution.gradcam.harmonization",
          "sgdrop", "vanilla", 1, 1.0, 3, "attribution", ""),
    Claim("coverage", "SGDrop raises last-layer neuron coverage", "metrics.coverage.last_conv_unit", "sgdrop",
          "vanilla", 1, 1.0, 3, "attribution", "fig-coverage_per_layer"),
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

    @property
    def verdict_class(self) -> str:  # the CSS class of the verdict's badge
        return {REPRODUCED: "yes", NOT_REPRODUCED: "no", MIXED: "mixed"}.get(self.verdict, "open")


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
    if not decided:
        return ONE_SEED
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
        return (f"{rows['sgdrop'][name]:.2f} vs {rows['vanilla'][name]:.2f} (dropout {rows['dropout'][name]:.2f}); "
                + d["attribution"]["where"])
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


def setup_finding(part: pd.DataFrame, c: Claim) -> tuple[str, str] | None:
    """(our numbers, verdict) for one setup, or None when a role of the claim was not run there."""
    if c.key == "rho":
        return rho_setup(part, c)
    a_runs, b_runs = pick(part, c.a), None if c.b is None else pick(part, c.b)
    if a_runs.empty or (b_runs is not None and b_runs.empty):
        return None
    a, b = values(a_runs, c.metric), None if b_runs is None else values(b_runs, c.metric)
    if not len(a) or (b is not None and not len(b)):
        return f"not measured ({c.metric} is absent)", NOT_RUN
    if b is None:
        first, last = (values(a_runs, f"metrics.attention_over_training.{k}") for k in ("first", "last"))
        return (f"{a_runs['label'].iloc[0]}: {_fmt(first, 1, c.digits)} → {_fmt(last, 1, c.digits)}, "
                f"change {_fmt(a, c.scale, c.digits)} (n = {len(a)})"), compare(a, b, c.sign)
    return (f"{a_runs['label'].iloc[0]} {_fmt(a, c.scale, c.digits)} vs {b_runs['label'].iloc[0]} "
            f"{_fmt(b, c.scale, c.digits)} (n = {len(a)}, {len(b)})"), compare(a, b, c.sign)


def findings(runs: pd.DataFrame, paper: Paper, bench: list[dict], bench_roles: dict[str, str | None],
             anchors: list[str]) -> list[Finding]:
    """`anchors`: the ids of the page's sections and figures, for the links to the details."""
    out = []
    for c in CLAIMS:
        lines, verdicts, paper_lines = [], [], []
        if c.key == "cost":
            lines, verdicts = cost_findings(bench, bench_roles, paper)
        for setup, part in ([] if c.key == "cost" else runs.groupby("setup", sort=False)):
            got = setup_finding(part, c)
            if got is None:
                continue
            lines.append(f"{setup}: {got[0]}")
            verdicts.append(got[1])
            same = paper_cell(paper, c, part["dataset"].iloc[0], part["arch"].iloc[0])
            if same:
                paper_lines.append(same)
        if len(set(verdicts) - {NOT_RUN}) > 1:  # say which setup gave which verdict
            lines = [line if v == NOT_RUN else f"{line} [{v}]" for line, v in zip(lines, verdicts)]
        links = [(text, next(a for a in anchors if a.startswith(prefix))) for text, prefix in
                 (("table", c.table), ("figure", c.figure)) if prefix and any(a.startswith(prefix) for a in anchors)]
        out.append(Finding(c.key, c.text, "; ".join([*paper_lines, paper_text(paper, c)]), lines,
                           combine([v for v in verdicts if v != NOT_RUN]), links))
    return out


def chance_reproduced(n: int) -> float:
    """How often the rule says "reproduced" with n seeds a side and no true difference: the mean
    difference over the pooled std is sqrt(2 / n) times a Student's t with 2 (n - 1) dof."""
    return float(stats.t.sf(math.sqrt(n / 2), 2 * (n - 1)))


def rule_text(seeds: tuple[int, ...] = (2, 3)) -> str:
    chance = ", ".join(f"{chance_reproduced(n):.0%} of the time with n = {n} seeds a side" for n in seeds)
    return RULE.format(cost_margin=COST_MARGIN, chance=chance)
