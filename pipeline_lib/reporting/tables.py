"""Tables as CSV and LaTeX (booktabs); the pages render them from the same frames. A cell is
`mean ± std` over seeds (the mean alone for one seed), followed by `(n = k)` where k differs from
its row's number of seeds (the `n` column: rows of one table can have 1 or 3 seeds), and "—"
where a run has no value: a missing value is never shown as zero."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from pipeline_lib.io import atomic_path

DASH = "—"


def cell(mean: float | None, std: float | None, n: int, scale: float = 100.0, digits: int = 2,
         row_n: int | None = None) -> str:
    if not n or mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return DASH
    text = f"{mean * scale:.{digits}f}"
    if n > 1 and std is not None and not math.isnan(std):
        text += f" ± {std * scale:.{digits}f}"
    if row_n is not None and n != row_n:
        text += f" (n = {n})"
    return text


def usual_n(counts) -> int:
    """The most common number of seeds among cells' counts (0 where none has a value)."""
    counts = pd.Series(list(counts), dtype=float)
    counts = counts[counts > 0]
    return int(counts.mode().max()) if len(counts) else 0


def metric_table(agg: pd.DataFrame, rows: list[str], columns: dict[str, str], *, key: str = "label",
                 scale: float = 100.0, digits: int = 2) -> pd.DataFrame:
    """Rows in the given order (one per method label), first the row's number of seeds `n`, then
    one column per metric; "—" where absent."""
    table = pd.DataFrame(DASH, index=pd.Index(rows, name="method"), columns=["n", *columns], dtype=object)
    for _, r in agg.iterrows():
        if r[key] not in table.index:
            continue
        present = [m for m in columns.values() if f"{m}:mean" in r]
        n = usual_n(r[f"{m}:n"] for m in present)
        table.loc[r[key], "n"] = str(n) if n else DASH
        for title, metric in columns.items():
            if metric in present:
                table.loc[r[key], title] = cell(r[f"{metric}:mean"], r[f"{metric}:std"], int(r[f"{metric}:n"]),
                                                scale, digits, n)
    return table


def _tex(text: str) -> str:
    return (str(text).replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%")
            .replace("&", r"\&").replace("#", r"\#").replace("±", r"$\pm$").replace(DASH, "---")
            .replace("→", r"$\to$").replace("−", "-"))


def to_latex(table: pd.DataFrame, caption: str) -> str:
    cols = [table.index.name or ""] + list(table.columns)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{_tex(caption)}}}",
             r"\begin{tabular}{l" + "r" * len(table.columns) + "}", r"\toprule",
             " & ".join(_tex(c) for c in cols) + r" \\", r"\midrule"]
    lines += [" & ".join(_tex(v) for v in [i, *row]) + r" \\" for i, row in zip(table.index, table.values)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, stem: Path, caption: str) -> list[Path]:
    paths = []
    for suffix, text in ((".csv", table.to_csv()), (".tex", to_latex(table, caption))):
        with atomic_path(stem.with_suffix(suffix)) as tmp:
            tmp.write_text(text)
        paths.append(stem.with_suffix(suffix))
    return paths
