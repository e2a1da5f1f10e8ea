"""The SGDrop paper's numbers (`paper.yaml`) and which of our runs stand for its methods.

A run plays one of the paper's methods ("roles": vanilla, sgdrop, sgdrop_no_ema, ...) when its
method type, and the params the role names, agree; the run names of params.yaml are free.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import yaml

PAPER_FILE = Path(__file__).with_name("paper.yaml")


@dataclass
class Paper:
    data: dict

    @classmethod
    def load(cls, path: Path = PAPER_FILE) -> "Paper":
        return cls(yaml.safe_load(path.read_text()))

    def role(self, method_type: str, params: dict) -> str | None:
        """The paper's method this run stands for, or None."""
        for name, sel in self.data["methods"].items():
            if sel["type"] == method_type and all(params.get(k) == v for k, v in sel.get("params", {}).items()):
                return name
        return None

    def label(self, role: str) -> str:
        return self.data["methods"][role]["label"]

    def setup_label(self, dataset: str, arch: str) -> str:
        return f"{self.data['datasets'].get(dataset, dataset)} / {self.data['architectures'].get(arch, arch)}"

    @cached_property
    def accuracy_cells(self) -> dict[tuple[str, str, str], tuple[list[float], str]]:
        """{(role, dataset, arch): ([mean, std], where)} over every accuracy table."""
        out = {}
        for table in self.data["accuracy"]:
            for key, rows in table["rows"].items():
                if isinstance(rows, dict):  # network -> method -> cells (Table 3)
                    for role, cells in rows.items():
                        for dataset, c in zip(table["columns"], cells):
                            out[role, dataset, key] = (c, table["where"])
                else:  # method -> cells, one architecture per dataset
                    for dataset, c in zip(table["columns"], rows):
                        out[key, dataset, table["architecture"][dataset]] = (c, table["where"])
        return out

    def accuracy(self, role: str | None, dataset: str, arch: str) -> tuple[list[float], str] | None:
        return self.accuracy_cells.get((role, dataset, arch))

    def ema(self, role: str, dataset: str, arch: str) -> list[float] | None:
        t = self.data["ema"]
        cols = [tuple(c) for c in t["columns"]]
        if role not in t["rows"] or (dataset, arch) not in cols:
            return None
        return t["rows"][role][cols.index((dataset, arch))]
