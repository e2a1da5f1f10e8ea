"""The files a setup reads from outside the repository, made visible to DVC.

Each is linked as `data/inputs/<setup>/<name>`: a symlink to the file or folder, or, where there
is none, a small file saying so. dvc.yaml lists them as deps of the stages that read them (the
data roots and box files of the shard stages, the starting weights and the ClickMe maps of the
run stages), so DVC hashes what they point to: `dvc status` reports a changed data root, and
`dvc repro` reshards and retrains. The `configure` stage writes the links, from the same params
and environment (`$OVERFOCUS_DATA`) that the stages resolve their paths from.
"""
from __future__ import annotations

import os
from pathlib import Path

from pipeline_lib.config.schema import Params
from pipeline_lib.data import data_root

INPUTS = Path("data/inputs")
# name -> the params.yaml key it stands for (what a placeholder says)
KEYS = {"main": "data.root", "main_boxes": "data.boxes_csv", "transfer": "transfer.data.root",
        "transfer_boxes": "transfer.data.boxes_csv", "weights": "model.weights", "clickme": "evaluate.clickme_root"}


def _path(value: str | None) -> Path | None:
    return Path(os.path.expandvars(value)).expanduser() if value else None


def external_inputs(params: Params) -> dict[str, Path | None]:
    """{name: the path it stands for, or None} of one setup's params (`Params.setup`)."""
    return {"main": data_root(params.data), "main_boxes": _path(params.data.boxes_csv),
            "transfer": data_root(params.transfer.data), "transfer_boxes": _path(params.transfer.data.boxes_csv),
            "weights": _path(params.model.weights), "clickme": _path(params.evaluate.clickme_root)}


def write_input_links(params: Params, root: Path = INPUTS) -> None:
    """Link every setup's external inputs under `root`/<setup>/ (each replaced atomically)."""
    for setup in params.setups:
        for name, target in external_inputs(params.setup(setup)).items():
            path = root / setup / name
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{name}.tmp")
            if tmp.is_symlink() or tmp.exists():
                tmp.unlink()
            if target is not None and target.exists():
                tmp.symlink_to(target.resolve())
            else:
                tmp.write_text(f"{KEYS[name]}: none (no file to read, or not there yet)\n")
            os.replace(tmp, path)
