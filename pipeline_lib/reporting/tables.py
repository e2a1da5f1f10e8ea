"""Tables as Markdown, CSV and LaTeX (booktabs). A cell is `mean ± std` over seeds (the mean
alone for one seed), and "—" where there is no run: a missing run is never shown as zero."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from pipeline_lib.io import atomic_path

DASH = "—"


def cell(mean: float | None, std: float | None, n: int, scale: float = 100.0, digits: int = 2) -> str:
    if not n or mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return DASH
    text = f"{mean * scale:.{digits}f}"
    if n > 1 and std is not None and not math.isnan(std):
        text += f" ± {std * scale:.{digits}f}"
    return text


def metric_table(agg: pd.DataFrame, rows: list[str], columns: dict[str, str], *, key: str = "label",
                 scale: float = 100.0, digits: int = 2) -> pd.DataFrame:
    """Rows in the given order (one per method label), one column per metric; "—" where absent."""
    table = pd.DataFrame(index=pd.Index(rows, name="method"), columns=list(columns), dtype=object).fillna(DASH)
    for _, r in agg.iterrows():
        if r[key] not in table.index:
            continue
        for title, metric in columns.items():
            if f"{metric}:mean" in r:
                table.loc[r[key], title] = cell(r[f"{metric}:mean"], r[f"{metric}:std"], int(r[f"{metric}:n"]),
                                                scale, digits)
    return table


def to_markdown(table: pd.DataFrame) -> str:
    cols = [table.index.name or ""] + list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join([str(i)] + [str(v) for v in row]) + " |" for i, row in zip(table.index, table.values)]
    return "\n".join(lines) + "\n"


def _tex(text: str) -> str:
    return (str(text).replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%")
            .replace("&", r"\&").replace("#", r"\#").replace("±", r"$\pm$").replace(DASH, "---"))


def to_latex(table: pd.DataFrame, caption: str) -> str:
    cols = [table.index.name or ""] + list(table.columns)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{_tex(caption)}}}",
             r"\begin{tabular}{l" + "r" * len(table.columns) + "}", r"\toprule",
             " & ".join(_tex(c) for c in cols) + r" \\", r"\midrule"]
    lines += [" & ".join(_tex(v) for v in [i, *row]) + r" \\" for i, row in zip(table.index, table.values)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, stem: Path, caption: str) -> None:
    for suffix, text in ((".md", f"{caption}\n\n{to_markdown(table)}"), (".tex", to_latex(table, caption)),
                         (".csv", table.to_csv())):
        with atomic_path(stem.with_suffix(suffix)) as tmp:
            tmp.write_text(text)
