"""Every metric of one trained run, gathered into the run's metrics JSON.

- accuracy on every split of the shards in evaluation mode (train, val, test, and the synthetic
  set's cue splits test_nocue and test_conflict, see `pipeline_lib.data.sets.synthetic`), the
  generalization gap, train accuracy minus test accuracy, and `train_clean`: the last epoch's
  accuracy of the training loop's fixed train subset (`train_clean_acc`);
- per attribution method (from the attribute stage's maps): area ratio, hit ratio (whole region
  and largest component), harmonization (Spearman / ceiling, Dice and IoU of the top regions)
  against the human-map proxy;
- the same metrics of reference maps on the same images (`reference_maps`: a uniform map, a
  centred Gaussian of the mean object size, and per method blobs of its maps' areas);
- with `evaluate.clickme_root`, harmonization against ClickMe maps for the dataset's ImageNet
  classes (then the human map reported is "ClickMe");
- Grad-CAM hit ratio on the boxed images of every split, each reported separately;
- neuron coverage, occlusion robustness, and the probe's area ratio over the epochs;
- for methods whose training mask follows the label (`Method.label_mask`), label leakage
  through their mask (`pipeline_lib.metrics.leakage`).
Coverage, occlusion and leakage use seeded class-stratified random test images (splits are
stored class by class, so their first images are a single class), sized in params.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pipeline_lib.attribution import attribute
from pipeline_lib.data.loader import stratified_sample
from pipeline_lib.metrics.accuracy import evaluate
from pipeline_lib.metrics.clickme import read_clickme
from pipeline_lib.metrics.coverage import neuron_coverage
from pipeline_lib.metrics.harmonization import blurred, box_masks, harmonization
from pipeline_lib.metrics.leakage import mask_leakage, metrics_entry
from pipeline_lib.metrics.localization import area_ratio, finite_maps, hit_ratio
from pipeline_lib.metrics.occlusion import occlusion_curves
from pipeline_lib.metrics.reference_maps import reference_metrics


def human_maps(data, size: int) -> tuple[torch.Tensor | None, list[bool], str]:
    """The human-map proxy, which images have one, and its name."""
    if data.masks is not None:
        return data.masks.float(), [True] * len(data), "object masks (ground truth)"
    if any(data.boxes):
        return box_masks(data.boxes, size), [bool(b) for b in data.boxes], "bounding-box masks"
    return None, [False] * len(data), "none"


def attribution_metrics(maps: dict[str, np.ndarray], keys: list[str], data, p) -> tuple[dict, str]:
    """Area ratio over all attributed images; hit ratio and harmonization over those with ground truth."""
    index = {k: i for i, k in enumerate(data.keys)}
    rows = [index[k] for k in keys]
    human, has_human, proxy = human_maps(data, data.images.shape[-1])
    with_human = [j for j, i in enumerate(rows) if has_human[i]]
    if with_human:
        human = blurred(human[[rows[j] for j in with_human]], p.human_blur_sigma)
    out = {}
    for name, m in maps.items():
        t = torch.from_numpy(m.astype(np.float32))
        boxes = [data.boxes[i] for i in rows]
        hits = hit_ratio(t, boxes, p.area_threshold, p.iou_threshold)
        finite = finite_maps(t)
        entry = {"area_ratio": float(area_ratio(t, p.area_threshold)[finite].mean()) if finite.any() else None,
                 "hit_whole": hits["whole"], "hit_largest": hits["largest_component"], "hit_n": hits["n"],
                 "non_finite_maps": int((~finite).sum())}
        if with_human:
            h = harmonization(t[with_human], human, top_fraction=p.top_fraction, already_blurred=True)
            entry.update({"harmonization": h["score"], "spearman": h["spearman"], "dice_top": h["dice_top"],
                          "iou_top": h["iou_top"], "harmonization_n": h["n"]})
        out[name] = entry
    return out, proxy


def saliency(model, images, labels, normalize, device, method: str = "gradcam", batch_size: int = 128) -> torch.Tensor:
    return torch.cat([attribute(method, model, normalize(images[i : i + batch_size].to(device)),
                                labels[i : i + batch_size].to(device)).cpu()
                      for i in range(0, len(labels), batch_size)])


def clickme_harmonization(model, clickme_root: Path, imagenet_index: list[int], size: int, normalize, p,
                          methods: list[str], limit: int) -> dict:
    """Harmonization against ClickMe human maps, on the ClickMe images of the dataset's own classes."""
    ours = {c: i for i, c in enumerate(imagenet_index)}
    images, human, labels = [], [], []
    for path in sorted(Path(clickme_root).glob("*.tfrecord*")):
        for image, heatmap, label in read_clickme(path):
            if label not in ours or len(labels) >= limit:
                continue
            image = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float()
            images.append(F.interpolate(image, size=(size, size), mode="bilinear").round().clamp(0, 255).to(torch.uint8)[0])
            human.append(F.interpolate(torch.from_numpy(heatmap.astype(np.float32))[None, None], size=(size, size),
                                       mode="bilinear")[0, 0])
            labels.append(ours[label])
    if not labels:
        return {}
    x, human, y = torch.stack(images), torch.stack(human), torch.tensor(labels)
    device = next(model.parameters()).device
    return {m: harmonization(saliency(model, x, y, normalize, device, m), human, sigma=p.human_blur_sigma,
                             top_fraction=p.top_fraction) for m in methods}


def data_summary(manifest: dict) -> dict:
    """What the report says of a setup's data: the dataset, its split sizes, the human-map proxy,
    the images the shard stage skipped as unreadable and those it converted to RGB, by mode."""
    return {"dataset": manifest["dataset"], "counts": {s: v["count"] for s, v in manifest["splits"].items()},
            "human_map": manifest["human_map"], "bad_images": manifest["bad_images"]["count"],
            "images_read": manifest["bad_images"]["of"], "converted_to_rgb": manifest["converted_to_rgb"]}


def run_metrics(trained, p, attribute_split: str, max_images: int, maps: dict[str, np.ndarray],
                keys: list[str]) -> dict:
    """Every metric of a `TrainedRun` (`pipeline_lib.training.loop`); `maps` and `keys`: the
    attribute step's maps of the images of `attribute_split` with those keys."""
    model, method, cfg, device = trained.model, trained.method, trained.cfg, trained.device
    manifest, normalize = trained.splits.manifest, trained.splits.normalize
    size = cfg.loader.image_size
    splits = {s: trained.splits[s] for s in trained.splits.names}
    acc = {s: evaluate(model, d.images, d.labels, normalize, batch_size=cfg.loader.eval_batch_size,
                       device=device)["acc"] for s, d in splits.items()}
    acc["train_clean"] = trained.history[-1]["train_clean_acc"]
    result = {"identity": trained.identity.digest, "accuracy": acc, "gap": acc["train"] - acc["test"],
              "data": data_summary(manifest)}

    result["attribution"], result["human_map"] = attribution_metrics(maps, keys, splits[attribute_split], p)
    result["reference_maps"] = reference_metrics(maps, keys, splits[attribute_split], p, cfg.seed)
    if p.clickme_root and "imagenet_index" in manifest["meta"]:
        clickme = clickme_harmonization(model, Path(p.clickme_root), manifest["meta"]["imagenet_index"], size,
                                        normalize, p, list(maps), max_images)
        if clickme:
            result["harmonization_clickme"], result["human_map"] = clickme, "ClickMe"

    result["hit_by_split"] = {}
    for s, d in splits.items():
        boxed = torch.tensor([i for i, b in enumerate(d.boxes) if b], dtype=torch.long)
        boxed = boxed[stratified_sample(d.labels[boxed], max_images, cfg.seed)].tolist()
        if boxed:
            cams = saliency(model, d.images[boxed], d.labels[boxed], normalize, device)
            result["hit_by_split"][s] = hit_ratio(cams, [d.boxes[i] for i in boxed], p.area_threshold, p.iou_threshold)

    test = splits["test"]
    pick = stratified_sample(test.labels, p.coverage_batches * p.coverage_batch_size, cfg.seed)
    batches = [normalize(test.images[pick[i : i + p.coverage_batch_size]].to(device))
               for i in range(0, len(pick), p.coverage_batch_size)]
    result["coverage"] = neuron_coverage(model, batches, p.coverage_threshold, p.coverage_scaled_threshold)

    pick = stratified_sample(test.labels, p.occlusion_images, cfg.seed)
    x, y = normalize(test.images[pick].to(device)), test.labels[pick].to(device)
    cams = saliency(model, test.images[pick], test.labels[pick], normalize, device).to(device)
    result["occlusion"] = occlusion_curves(model, x, y, cams, patch=p.occlusion_patch,
                                           fractions=p.occlusion_fractions, seed=cfg.seed)

    if method.label_mask:
        pick = stratified_sample(test.labels, p.leakage_images, cfg.seed)
        leak = mask_leakage(model, method, test.images[pick], test.labels[pick], normalize,
                            num_classes=len(manifest["classes"]), batch_size=cfg.loader.eval_batch_size, seed=cfg.seed)
        result["mask_leakage"] = metrics_entry(leak)

    history = [r["probe_area_ratio"] for r in trained.history]
    result["attention_over_training"] = {
        "probe_area_ratio": history, "first": history[0] if history else None,
        "last": history[-1] if history else None,
        "change": history[-1] - history[0] if history else None,
    }
    return result
