"""SGDrop, Saliency-Guided Dropout.

For a batch (x, y), the attribution of the latent map is A = ReLU(d s_y / d z') * z', with
z' = f'(x) from an EMA copy of the network (or the online one with `ema: false`), s_y the
head's score of the true class (`target`, below), and the gradient taken through the head only
(closed form for a GAP + Linear head). Per sample, the k = round(rho * C * H * W) features of
largest A are zeroed in the online features z = f(x) before the head (ties broken by the lower
flat index, a stable sort), no rescaling, no gradient through the attribution, nothing dropped
at evaluation.

Only features of positive attribution are dropped, at most k (Sec. 3 drops "the most salient"
features; a zero attribution is not salient). Zeroing zero-attribution features to make up k
would drop a fixed, label-independent pattern (the lowest flat indices, channel 0). The
fraction actually dropped is logged as `dropped_fraction`, beside the nominal `rho`.

`mask_label`, the label whose attribution chooses the mask: `true` (the paper), or a control
for the label leakage of issue 13 (`pipeline_lib.metrics.leakage`): `permuted` (a fixed
derangement of the classes: the mask still encodes the label, but not where the true class's
evidence lies), `random` (a fresh uniform label per sample and step: the mask carries no label)
and `predicted` (the attributing network's own prediction: no label, but input-dependent).

Label leakage, a weakness of the method as defined: the mask is chosen from the label, so
where its zeros are encodes the label. A head that reads every latent position (VGG's
classifier) can decode the label from the mask instead of the image when the encoder's
features carry little image information, as those of a VGG16 without batch norm do under
PyTorch's default init: it then fits the training set through the mask and predicts a single
class at evaluation. That is the collapse of our first GPU run (which used that init, where the
paper's torchvision VGG16 has torchvision's). At CPU scale (reports/results/vgg16-collapse, 8
epochs) the same init reproduces it, and neither 2 warm-up epochs at rho = 0 nor the curriculum
prevents it; under torchvision's init the true-label mask did not leak, but a permuted-label
mask leaked totally from the first epoch, so a good init is no guard in itself. The training
loop's per-epoch leakage diagnostic warns when it happens.

`target`, the score s_y whose gradient attributes. Sec. 3 defines the attribution map as
quantifying "the contribution of each feature in [x] to the prediction probability for class
[y]", and Sec. 3.2 computes it from "the gradients of the class scores relative to the
activations", "where [the gradient] is the gradient of the class score with respect to the
feature map". We read the second, the method as implemented, as the paper's: `logit`, s_y the
head's logit of y (the default). `log_softmax` takes the first literally, s_y = log p_y: its
gradient is the logit's less the probability-weighted mean of all classes' logit gradients,
d log p_y / dz = d l_y / dz - sum_k p_k d l_k / dz (for a GAP + Linear head, (W_y - sum_k p_k W_k)
/ (H W)), so it differs from `logit` only through the softmax normalisation: features that
raise every class alike are not salient, and a sample the network already classifies with
p_y near 1 has little left to drop.

rho: `constant`, or `linear` from rho_start to rho_end over the epochs after `warmup_epochs`
epochs at rho = 0 (the paper's curriculum). The rates are params.yaml's top-level rho,
rho_start and rho_end, so that `dvc exp run -S rho=0.025` changes only SGDrop runs.

`start_epoch` sets the epoch's rho. With a constant rho and no warm-up the rate is the same
every epoch, so construction sets it; with `schedule: linear` or warm-up epochs, stepping before
the first `start_epoch` is an error (a forgotten call used to leave rho at 0: nothing dropped).

Defaults (`Params.defaults`, the values outside the pipeline):
- rho 0.01: Sec. 4, "by default" (250 of VGG16's 25,088 latent features), and Table 12 for
  VGG16 and ResNet50 on every dataset (0.05 to 0.1 for ConvNeXt).
- schedule `constant`, warmup_epochs 0: the method of Sec. 3; the curriculum (`linear`) is
  Sec. 4.5's variant (Table 3's last line), "linearly increasing [rho] across epochs", whose end
  points the extracted text lost: ours rho_start 0, rho_end 0.05 (Table 7: a fixed rho above
  0.025 impedes VGG's learning). The paper has no warm-up.
- ema true: Sec. 3.2 and Sec. 4.6 (Table 8). ema_decay: not stated; ours 0.99. The attributing
  network should trail the online one by a horizon of about 100 steps (1 / (1 - decay)),
  roughly an epoch of a small dataset, so that masks track what the network has consolidated
  rather than the noise of the last step; at 0.999 the horizon exceeds a short run's first
  epochs and masks lag far behind the online features.
- closed_form true: not a setting of the paper, the same gradient computed without autograd
  where the head is GAP + Linear (autograd elsewhere).
- mask_label `true`: Sec. 3.1, the mask "depends on the actual label". target `logit`: above.
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, field_validator
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from pipeline_lib.attribution.latent import grad_x_act, latent_gradient
from pipeline_lib.methods import METHODS, Method, MethodNeeds, MethodParams, needs


def rho_at(epoch: int, epochs: int, *, schedule: str, rho: float, rho_start: float, rho_end: float,
           warmup_epochs: int = 0) -> float:
    """The drop rate of a (0-based) epoch."""
    if epoch < warmup_epochs:
        return 0.0
    if schedule == "constant":
        return rho
    span = epochs - warmup_epochs - 1
    t = 1.0 if span <= 0 else (epoch - warmup_epochs) / span
    return rho_start + (rho_end - rho_start) * t


def top_k_mask(attribution: torch.Tensor, k: int) -> torch.Tensor:
    """A bool keep-mask shaped like `attribution` with at most k zeros per sample, at its k largest
    values that are positive; ties go to the lower flat index, so the mask is deterministic."""
    flat = attribution.flatten(1)
    drop = torch.zeros_like(flat, dtype=torch.bool)
    if k > 0:
        order = torch.sort(flat, dim=1, descending=True, stable=True).indices[:, :k]
        drop.scatter_(1, order, True)
        drop &= flat > 0
    return (~drop).view_as(attribution)


def attribution(head, z: torch.Tensor, y: torch.Tensor, *, target: str, closed_form: bool) -> torch.Tensor:
    """A = ReLU(d s_y / d z) * z, s_y the head's logit of y (`target: logit`) or its log-probability
    (`log_softmax`)."""
    if target == "logit":
        return grad_x_act(head, z, y, closed_form)
    z = z.detach()
    if closed_form and getattr(head, "gap_linear", False):
        with torch.no_grad():
            p = head(z).float().softmax(1)
        weight = head.fc.weight.detach().float()
        grad = ((weight[y] - p @ weight) / z[0, 0].numel()).to(z.dtype)[:, :, None, None].expand_as(z)
    else:
        grad = latent_gradient(lambda latent: head(latent).float().log_softmax(1), z, y, closed_form=False)
    return grad.clamp_min(0) * z


def derangement(num_classes: int, seed: int = 0) -> torch.Tensor:
    """A fixed permutation of the classes with no fixed point (`mask_label: permuted`)."""
    order = torch.randperm(num_classes, generator=torch.Generator().manual_seed(seed))
    mapping = torch.empty_like(order)
    mapping[order] = order.roll(-1)
    return mapping


@METHODS.register("sgdrop")
class SGDrop(Method):
    class Params(MethodParams):
        # the top-level rates (`shared_params`); a run's config leaves out those its schedule ignores
        rho: float | None = Field(None, ge=0, lt=1)
        rho_start: float | None = Field(None, ge=0, lt=1)
        rho_end: float | None = Field(None, ge=0, lt=1)
        schedule: Literal["constant", "linear"]
        warmup_epochs: int = Field(ge=0)
        ema: bool
        ema_decay: float = Field(gt=0, lt=1)
        closed_form: bool
        mask_label: Literal["true", "permuted", "random", "predicted"]
        target: Literal["logit", "log_softmax"]

        defaults = dict(rho=0.01, rho_start=0.0, rho_end=0.05, schedule="constant", warmup_epochs=0, ema=True,
                        ema_decay=0.99, closed_form=True, mask_label="true", target="logit")

        @field_validator("mask_label", mode="before")
        @classmethod
        def _yaml_true(cls, value):  # YAML reads `mask_label: true` as a boolean
            return "true" if value is True else value

    shared_params = ("rho", "rho_start", "rho_end")

    @classmethod
    def unused_params(cls, params) -> set[str]:
        return {"rho_start", "rho_end"} if params.schedule == "constant" else {"rho"}

    @classmethod
    def check_latent(cls, params, shape) -> list[str]:
        n = shape[0] * shape[1] * shape[2]
        rates = [params.rho] if params.schedule == "constant" else [params.rho_start, params.rho_end]
        if any(round(r * n) for r in rates):
            return []
        return [f"rho {max(rates)} of the {shape[0]}x{shape[1]}x{shape[2]} = {n} latent features rounds to "
                "0 features: nothing will be dropped; raise rho above " + f"{0.5 / n:.2g}"]

    label_mask = True
    logs = ("rho", "dropped_fraction")

    def __init__(self, params, *, model, **kw):
        super().__init__(params, model=model, **kw)
        if params.schedule == "linear":
            needs(self.epochs, "sgdrop", "epochs", "schedule: linear spreads rho from rho_start to rho_end over them")
        if params.mask_label in ("permuted", "random"):
            needs(self.num_classes, "sgdrop", "num_classes", f"mask_label: {params.mask_label} draws labels")
        self.permutation = None if self.num_classes is None else derangement(self.num_classes)
        self.ema = None
        if params.ema:
            self.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(params.ema_decay), use_buffers=True)
            self.ema.eval()
        self.rho = None
        if params.schedule == "constant" and params.warmup_epochs == 0:
            self.start_epoch(0)

    def to(self, device):
        super().to(device)
        if self.ema is not None:
            self.ema.to(device)
        return self

    def start_epoch(self, epoch: int) -> None:
        p = self.params
        self.rho = rho_at(epoch, self.epochs, schedule=p.schedule, rho=p.rho, rho_start=p.rho_start,
                          rho_end=p.rho_end, warmup_epochs=p.warmup_epochs)

    def attributing_model(self, model):
        return self.ema.module if self.ema is not None else model

    def mask_target(self, y, net, z_attr):
        """The label whose attribution chooses the mask (`mask_label`)."""
        mode = self.params.mask_label
        if mode == "permuted":
            return self.permutation.to(y.device)[y]
        if mode == "random":
            return torch.randint(self.num_classes, y.shape, device=y.device)
        if mode == "predicted":
            with torch.no_grad():
                return net.head(z_attr).argmax(1)
        return y

    def features(self, z, x, y, model):
        if self.rho is None:
            raise MethodNeeds("sgdrop: call method.start_epoch(epoch) at the start of every epoch: its rho follows "
                              "the epochs (schedule: linear, or warmup_epochs > 0)")
        k = round(self.rho * z[0].numel())
        self.last = {"rho": self.rho, "dropped_fraction": 0.0}
        if k == 0:
            return z
        net = self.attributing_model(model)
        if net is model:
            z_attr = z.detach()
        else:  # the EMA forward is never differentiated: inference mode skips autograd's bookkeeping
            with torch.inference_mode():
                z_attr = net.encoder(x)
        label = self.mask_target(y, net, z_attr)
        mask = top_k_mask(attribution(net.head, z_attr, label, target=self.params.target,
                                      closed_form=self.params.closed_form), k)
        self.last["dropped_fraction"] = 1 - mask.float().mean()
        return z * mask.to(z.dtype)

    def after_step(self, model) -> None:
        if self.ema is not None:
            self.ema.update_parameters(model)

    def state_dict(self):
        state = super().state_dict()
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state):
        super().load_state_dict(state)
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
