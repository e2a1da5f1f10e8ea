"""Label leakage through a label-guided feature mask.

SGDrop chooses the features to drop from the true label's attribution, so *where* the zeros are
carries the label. A head that sees every feature position (VGG's classifier reads all
512 x 7 x 7 of them) can learn to decode the label from the mask instead of the image: training
accuracy (masked) climbs while evaluation (nothing dropped) collapses to one class. The training
curves alone cannot tell this from overfitting, so we measure it on held-out images, with the
model and the method's own training-time `features` hook (the mask as in training, for the
label given), every epoch in training and once at evaluation:

- `unmasked`: accuracy as evaluation sees it;
- `masked_true`: accuracy with features masked for the true label, as in training;
- `follows_wrong`: how often the prediction is a random wrong label w when the mask is computed
  for w;
- `wrong_chance`: how often the unmasked prediction is w, the chance level of `follows_wrong`
  (not 1 / classes: a collapsed model predicts one class, whatever the mask);
- `follows_wrong_excess`: `follows_wrong - wrong_chance`, near 0 for a model that reads the
  image, near 1 for one that reads the mask;
- `masked_true_p_value`, `follows_wrong_p_value`: one-sided exact McNemar tests of the two paired
  readings (per image, masked against unmasked; under the null a discordant pair goes either way
  with probability 1/2);
- `content_free_*`: the probe with a true null, below.

The paired readings are biased toward "no leak": SGDrop's mask removes the features that speak
most for its label, so a head that reads the image is pushed *away* from that label, which
hides part of a head that also reads the mask; and the `permuted` control (`mask_label`, see
`pipeline_lib.methods.sgdrop`), meant as a comparison, leaks by construction (its mask still
encodes the label), so it gives no null either.

The content-free probe takes the image away. Its latent map is the encoder's output for a
constant image, the dataset mean (all zeros after normalisation), and the mask is the method's
own for a label y drawn uniformly at random, independently per trial. The mask is chosen through
`features(z, x, y, model)` as in training, and SGDrop's EMA network re-encodes x: that is why
the latent is the encoding of a real input rather than, say, the batch's mean latent. The only
thing that varies between trials is the mask, so a head that ignores the mask predicts the same
class c whatever y is, and follows y exactly when y = c: with probability 1/K, independently
per trial. Under that null the number of trials the prediction follows y is Binomial(n, 1/K)
exactly, whatever the model (trained, collapsed or random), and `content_free_p_value` is its
one-sided upper tail. SGDrop's mask removes the features that speak most for y, which lowers
y's score: for a head that reads the features and not the mask, following y gets rarer, not
more frequent, which keeps the test conservative. One trial per held-out image, so n is the
number of images the other readings use.

When the run is warned. Each record makes three tests (the content-free probe and the two
McNemar tests) and a run makes them every epoch, so the run's warning uses Bonferroni's
correction over all of them: a test counts at p < ALPHA / (3 x epochs probed), which keeps the
chance that a run whose head does not read the mask is warned at all below ALPHA, whatever the
dependence between epochs. ALPHA = 0.001, so that a whole study (the paper's 357 runs, README)
expects fewer than one false warning (0.36). The McNemar tests count only beside an effect larger
than LEAK_MARGIN, since masks seen in training can make masked inputs slightly easier for a head
that reads the image, a significant but small gain that is no leak. Records without p-values
(the per-epoch history of a run trained before they were logged: a change to this file keeps
the checkpoint) can only be judged on the margin.
"""
from __future__ import annotations

import math

import torch

from pipeline_lib.models import eval_mode

# Accuracy points by which the mask may help before we say the head reads it: masks seen in
# training can make masked inputs slightly easier, and 256 images give about +-3 points of noise.
LEAK_MARGIN = 0.1
ALPHA = 0.001  # the run's family-wise level (module docstring)
TESTS = 3  # per record: content-free, masked-true McNemar, follows-wrong McNemar
CONTENT_FREE = "content_free_"


def binomial_tail(successes: int, trials: int, p: float) -> float:
    """P(X >= successes) for X ~ Binomial(trials, p), summed in log space (exact binomial
    coefficients), so that a tail whose factors underflow (0.1^400 is below the smallest float)
    is still found where it is itself a float; the same number as
    `scipy.stats.binomtest(..., alternative="greater").pvalue` (tests/test_measurements.py),
    without scipy.stats' 1.7 s import in every run's process."""
    if successes <= 0:
        return 1.0
    if successes > trials or p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    terms = [math.log(math.comb(trials, k)) + k * math.log(p) + (trials - k) * math.log1p(-p)
             for k in range(successes, trials + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * math.fsum(math.exp(t - top) for t in terms))


@torch.no_grad()
def mask_leakage(model, method, images: torch.Tensor, labels: torch.Tensor, normalize, *,
                 num_classes: int, batch_size: int, seed: int = 0) -> dict[str, float]:
    """Flat keys, every one a number, since the training loop logs each as a per-epoch metric
    (`leak_<key>`); `run_metrics` nests the `content_free_*` ones for metrics.json.

    Seeded on its own, so a random method's masks (dropout) do not depend on what the process
    drew before: the same run gives the same numbers wherever its stage runs."""
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        return _leakage(model, method, images, labels, normalize, num_classes, batch_size, seed, device)


def _leakage(model, method, images, labels, normalize, num_classes, batch_size, seed, device) -> dict[str, float]:
    gen = torch.Generator().manual_seed(seed)
    wrong = (labels + torch.randint(1, num_classes, labels.shape, generator=gen)) % num_classes
    free_labels = torch.randint(num_classes, labels.shape, generator=gen)
    hits = {"unmasked": 0, "masked_true": 0, "follows_wrong": 0, "wrong_chance": 0}
    # McNemar's discordant pairs: [masked yes & unmasked no, masked no & unmasked yes]
    pairs = {"masked_true": [0, 0], "follows_wrong": [0, 0]}
    with eval_mode(model):
        for i in range(0, len(images), batch_size):
            x = normalize(images[i : i + batch_size].to(device))
            y, w = labels[i : i + batch_size].to(device), wrong[i : i + batch_size].to(device)
            z = model.encoder(x)
            pred = model.head(z).argmax(1)
            right, chance = pred == y, pred == w
            masked_right = model.head(method.features(z, x, y, model)).argmax(1) == y
            follows = model.head(method.features(z, x, w, model)).argmax(1) == w
            for name, masked, unmasked in (("masked_true", masked_right, right), ("follows_wrong", follows, chance)):
                pairs[name][0] += (masked & ~unmasked).sum().item()
                pairs[name][1] += (~masked & unmasked).sum().item()
            hits["unmasked"] += right.sum().item()
            hits["wrong_chance"] += chance.sum().item()
            hits["masked_true"] += masked_right.sum().item()
            hits["follows_wrong"] += follows.sum().item()
        # after the readings above, so that a random method's draws for them stay as they were
        followed = _content_free(model, method, normalize(images[:1].to(device)), free_labels, batch_size, device)
    n = len(images)
    result = {k: v / n for k, v in hits.items()}
    result["follows_wrong_excess"] = result["follows_wrong"] - result["wrong_chance"]
    for name, (gained, lost) in pairs.items():
        result[f"{name}_p_value"] = binomial_tail(gained, gained + lost, 0.5)
    result.update({f"{CONTENT_FREE}follows_label": followed / n, f"{CONTENT_FREE}chance": 1 / num_classes,
                   f"{CONTENT_FREE}n": n, f"{CONTENT_FREE}p_value": binomial_tail(followed, n, 1 / num_classes)})
    return result


def _content_free(model, method, example: torch.Tensor, labels: torch.Tensor, batch_size: int, device) -> int:
    """How many of `labels` the head predicts when its latent map is the encoder's output for the
    dataset's mean image (zero after normalisation), masked for that label."""
    followed = 0
    for i in range(0, len(labels), batch_size):
        y = labels[i : i + batch_size].to(device)
        x = torch.zeros_like(example).expand(len(y), *example.shape[1:]).contiguous()
        followed += (model.head(method.features(model.encoder(x), x, y, model)).argmax(1) == y).sum().item()
    return followed


def metrics_entry(leak: dict) -> dict:
    """A `mask_leakage` result as metrics.json holds it: the content-free probe's keys under
    `content_free` without their prefix, and the verdict at ALPHA (one record, no epochs)."""
    return {**{k: v for k, v in leak.items() if not k.startswith(CONTENT_FREE)},
            "content_free": {k[len(CONTENT_FREE):]: v for k, v in leak.items() if k.startswith(CONTENT_FREE)},
            "reads_the_mask": reads_the_mask(leak)}


def _significant(leak: dict, key: str, level: float) -> bool:
    """Whether the record's test `key` passes `level`; a record without it passes (margin alone)."""
    return leak.get(key, 0.0) < level


def reads_the_mask(leak: dict[str, float], alpha: float = ALPHA) -> bool:
    """Whether the head decodes the label from the mask, at family-wise level `alpha` over this
    record's three tests: the content-free probe follows the mask's label above 1/K, or
    masked-true accuracy is far above the unmasked one, or predictions follow a wrong-label
    mask far above chance, each of the last two also significant where the record has its
    p-value (module docstring)."""
    level = alpha / TESTS
    return (leak.get(f"{CONTENT_FREE}p_value", 1.0) < level
            or (leak["masked_true"] - leak["unmasked"] > LEAK_MARGIN and _significant(leak, "masked_true_p_value", level))
            or (leak["follows_wrong_excess"] > LEAK_MARGIN and _significant(leak, "follows_wrong_p_value", level)))


def _p(leak: dict, key: str) -> str:
    return f" (p = {leak[key]:.1e})" if key in leak else ""


def leakage_warning(history: list[dict], prefix: str = "leak_") -> list[str]:
    """The run's warnings from its per-epoch records (keys `prefix` + the names above), each
    record's tests at ALPHA / (3 x the number of records probed): Bonferroni over the run."""
    probed = [{"epoch": r["epoch"], **{k[len(prefix):]: v for k, v in r.items() if k.startswith(prefix)}}
              for r in history if f"{prefix}unmasked" in r]
    alpha = ALPHA / max(1, len(probed))
    flagged = [r for r in probed if reads_the_mask(r, alpha)]
    if not flagged:
        return []
    last = flagged[-1]
    epochs = ", ".join(str(r["epoch"]) for r in flagged)
    free = level = ""
    if f"{CONTENT_FREE}p_value" in last:
        level = f" (each test at p < {ALPHA:g} / ({TESTS} tests x {len(probed)} epochs))"
        free = (f"; on a content-free latent (the encoder's output for the mean image) they follow the mask's label "
                f"{last[CONTENT_FREE + 'follows_label']:.3f} of the time against a chance of "
                f"{last[CONTENT_FREE + 'chance']:.3f}{_p(last, CONTENT_FREE + 'p_value')}, n = {last[CONTENT_FREE + 'n']}")
    return [f"label leakage through the training mask at epoch(s) {epochs}{level}: at epoch {last['epoch']}, "
            f"val accuracy {last['unmasked']:.3f} unmasked and {last['masked_true']:.3f} with the true-label mask"
            f"{_p(last, 'masked_true_p_value')}, and predictions follow a wrong-label mask "
            f"{last['follows_wrong']:.3f} of the time against a chance of {last['wrong_chance']:.3f}"
            f"{_p(last, 'follows_wrong_p_value')}{free}: "
            "the head reads the label from where the mask is, so evaluation accuracy does not measure the method"]
