"""Training of the conditional Wasserstein GAN with gradient penalty (Arjovsky et al. 2017,
Gulrajani et al. 2017) and an optional content term.

One epoch is one pass of the critic over the training tiles in shuffled batches; after every
``critic_steps`` critic updates the generator is updated once. The generator loss is
``-critic(fake) + content_weight * content`` where ``content`` is, over ``content_members``
draws of the noise for the same inputs, the fair CRPS of the draws (``crps``) or the squared
error of their mean (``mse``, Harris et al. 2022). The critic loss is
``critic(fake) - critic(real) + gradient_penalty * (|grad| - 1)^2 + 1e-3 * critic(real)^2``
(the last term keeps the scores near zero, as in Karras et al. 2018).

Checkpoints (generator, critic, both optimisers, epoch, loss history, random state) are written
every ``checkpoint_every`` epochs; a run with ``resume`` continues from the newest one.

On a GPU the steps never wait for it: the loss terms are summed in float64 device tensors and
read once per epoch (the same sums, in the same order, as the host sums they replace, so CPU runs
are unchanged), and Adam runs fused. The steps stay in fp32: the gradient penalty differentiates
the critic's input gradient again, and bf16's 8-bit mantissa in that norm makes the penalty noisy.
``training.batch_scaling`` trains with larger batches and a learning rate scaled by the square root.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from components.common.errors import ServiceError
from components.common.optimisers import adam
from components.common.outputs import atomic_path

from .config import Config
from .model import build

log = logging.getLogger(__name__)

DRIFT = 1e-3
CHECKPOINT_RE = re.compile(r"^epoch_(\d+)\.pt$")
HISTORY_KEYS = ("epoch", "critic_loss", "wasserstein", "gradient_penalty", "generator_loss", "adversarial",
                "content", "critic_updates", "generator_updates", "seconds")


@dataclass
class TrainData:
    lr: torch.Tensor        # (N, C_lr, h, w) normalised
    hr: torch.Tensor        # (N, C_out, H, W) normalised
    static: torch.Tensor    # (P, C_static, H, W) normalised, one per tile position
    position: torch.Tensor  # (N,) index into static
    meta: dict = field(default_factory=dict)


def select_device(requested: str) -> torch.device:
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise ServiceError("training.device is cuda but no CUDA GPU is available (use auto or cpu)")
        return torch.device("cuda")
    if requested == "auto" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def arch_of(cfg: Config, lr_vars, hr_vars, static_vars) -> dict:
    m = cfg.model
    return {"lr_channels": len(lr_vars), "static_channels": len(static_vars), "out_channels": len(hr_vars),
            "generator_filters": m.generator_filters, "discriminator_filters": m.discriminator_filters,
            "noise_channels": m.noise_channels, "residual_blocks": m.residual_blocks, "factor": cfg.factor,
            "skip": [list(lr_vars).index(v) if v in lr_vars else -1 for v in hr_vars]}


def fair_crps(draws: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean fair CRPS of ``draws`` (k, ...) against ``target`` (...)."""
    k = draws.shape[0]
    skill = (draws - target.unsqueeze(0)).abs().mean(0)
    spread = torch.zeros_like(skill)
    for i in range(k):
        for j in range(i + 1, k):
            spread = spread + (draws[i] - draws[j]).abs()
    return (skill - spread / (k * (k - 1))).mean()


def gradient_penalty(critic, lr, static, real, fake) -> torch.Tensor:
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
    score = critic(lr, static, mixed)
    grad, = torch.autograd.grad(score.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def checkpoints(folder: Path) -> list[tuple[int, Path]]:
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CHECKPOINT_RE.match(p.name))]
    return sorted(found)


CHECKPOINT_KEYS = ("arch", "variables", "generator", "critic", "opt_g", "opt_d", "rng", "torch_rng", "history")
CHECKPOINT = "an aqgan-train checkpoint"


def load_checkpoint(path: Path) -> dict:
    """The contents of a checkpoint, checked for its kind and its keys (the weights are checked
    when they are loaded: :func:`restore`)."""
    from components.common.modelfile import read_torch_file, require

    state = read_torch_file(path, CHECKPOINT)
    if not isinstance(state, dict):
        raise ServiceError(f"{path.name} is not {CHECKPOINT} (it holds a {type(state).__name__})")
    if "format" in state:
        raise ServiceError(f"{path.name} is not {CHECKPOINT}: it is a file of format {state['format']!r} "
                           "(a model.pt?)")
    require(state, CHECKPOINT_KEYS, path)
    return state


def restore(path: Path, state: dict, gen, critic, opt_g, opt_d, rng: torch.Generator) -> list[dict]:
    """Load a checkpoint's weights, optimiser and random states; returns its loss history."""
    from components.common.modelfile import first_words, load_weights

    load_weights(gen, state["generator"], path, "generator")
    load_weights(critic, state["critic"], path, "critic")
    for opt, key, label in ((opt_g, "opt_g", "generator's"), (opt_d, "opt_d", "critic's")):
        try:
            opt.load_state_dict(state[key])
            _check_optimiser_shapes(opt)
        except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as e:
            raise ServiceError(f"{path.name}: the {label} optimiser state does not fit the model "
                               f"({first_words(e)})") from None
    try:
        rng.set_state(state["rng"])
        torch.set_rng_state(state["torch_rng"])
    except (TypeError, ValueError, RuntimeError) as e:
        raise ServiceError(f"{path.name}: its random number state is not valid ({first_words(e)})") from None
    history = state["history"]
    if not isinstance(history, (list, tuple)) or not all(isinstance(r, dict) for r in history):
        raise ServiceError(f"{path.name}: its loss history is not a list of epochs")
    return list(history)


def _check_optimiser_shapes(opt) -> None:
    for group in opt.param_groups:
        for p in group["params"]:
            for key, value in opt.state.get(p, {}).items():
                if isinstance(value, torch.Tensor) and value.dim() and tuple(value.shape) != tuple(p.shape):
                    raise ValueError(f"{key} is {list(value.shape)} for a parameter of {list(p.shape)}")


def batch_and_rate(batch_size: int, learning_rate: float, batch_scaling: int) -> tuple[int, float]:
    """The larger-batch mode: ``batch_scaling`` times the batch, the learning rate times its
    square root (capped at 1, the configuration's bound)."""
    if batch_scaling <= 1:
        return batch_size, learning_rate
    return batch_size * batch_scaling, min(learning_rate * batch_scaling ** 0.5, 1.0)


def train(cfg: Config, data: TrainData, arch: dict, ckpt_dir: Path, resume: bool,
          device: torch.device) -> tuple[torch.nn.Module, list[dict]]:
    t = cfg.training
    torch.manual_seed(t.seed)
    gen, critic = build(arch)
    gen.to(device)
    critic.to(device)
    batch_size, rate = batch_and_rate(t.batch_size, t.learning_rate, t.batch_scaling)
    opt_g = adam(gen.parameters(), rate, device, (t.beta1, t.beta2))
    opt_d = adam(critic.parameters(), rate, device, (t.beta1, t.beta2))
    rng = torch.Generator().manual_seed(t.seed)
    history: list[dict] = []
    start_epoch = 1
    if resume:
        found = checkpoints(ckpt_dir)
        if not found:
            raise ServiceError(f"--resume: no checkpoint in {ckpt_dir}")
        epoch, path = found[-1]
        state = load_checkpoint(path)
        if state.get("arch") != arch or state.get("variables") != data.meta.get("variables"):
            raise ServiceError(f"--resume: checkpoint {path.name} was made with another architecture or other "
                               "variables than the configuration")
        history = restore(path, state, gen, critic, opt_g, opt_d, rng)
        start_epoch = epoch + 1
        log.info("resuming from %s (epoch %d of %d)", path.name, epoch, t.epochs)
    n = data.lr.shape[0]
    batch = min(batch_size, n)
    k = t.content_members if t.content_loss != "none" else 1
    lr_all, hr_all, st_all, pos_all = (x.to(device) for x in (data.lr, data.hr, data.static, data.position))
    gen.train()
    critic.train()
    for epoch in range(start_epoch, t.epochs + 1):
        t0 = time.perf_counter()
        # device-side sums, read once per epoch (a host read per step would stall the GPU)
        sums = {key: torch.zeros((), dtype=torch.float64, device=device)
                for key in ("critic_loss", "wasserstein", "gradient_penalty", "generator_loss", "adversarial",
                            "content")}
        nd = ng = 0
        order = torch.randperm(n, generator=rng).to(device)
        for b0 in range(0, n, batch):
            idx = order[b0:b0 + batch]
            lr, hr, st = lr_all[idx], hr_all[idx], st_all[pos_all[idx]]
            noise = torch.randn(gen.noise_shape(idx.numel(), lr.shape[-2:]), device=device)
            with torch.no_grad():
                fake = gen(lr, st, noise)
            d_real = critic(lr, st, hr)
            d_fake = critic(lr, st, fake)
            gp = gradient_penalty(critic, lr, st, hr, fake)
            w_dist = d_real.mean() - d_fake.mean()
            loss_d = -w_dist + t.gradient_penalty * gp + DRIFT * (d_real ** 2).mean()
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            nd += 1
            sums["critic_loss"] += loss_d.detach().double()
            sums["wasserstein"] += w_dist.detach().double()
            sums["gradient_penalty"] += gp.detach().double()
            if nd % t.critic_steps == 0:
                m = idx.numel()
                lr_k, st_k = lr.repeat(k, 1, 1, 1), st.repeat(k, 1, 1, 1)
                noise = torch.randn(gen.noise_shape(m * k, lr.shape[-2:]), device=device)
                fake = gen(lr_k, st_k, noise)
                adv = -critic(lr_k, st_k, fake).mean()
                draws = fake.view(k, m, *fake.shape[1:])
                if t.content_loss == "crps":
                    content = fair_crps(draws, hr)
                elif t.content_loss == "mse":
                    content = ((draws.mean(0) - hr) ** 2).mean()
                else:
                    content = torch.zeros((), device=device)
                loss_g = adv + t.content_weight * content
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                ng += 1
                sums["generator_loss"] += loss_g.detach().double()
                sums["adversarial"] += adv.detach().double()
                sums["content"] += content.detach().double()
        sums = {key: float(v) for key, v in zip(sums, torch.stack(list(sums.values())).tolist())}
        if not all(np.isfinite(v) for v in sums.values()):
            raise ServiceError(f"training diverged at epoch {epoch} (non-finite losses): lower "
                               "training.learning_rate")
        row = {"epoch": epoch, "critic_loss": sums["critic_loss"] / nd, "wasserstein": sums["wasserstein"] / nd,
               "gradient_penalty": sums["gradient_penalty"] / nd,
               "generator_loss": sums["generator_loss"] / max(ng, 1), "adversarial": sums["adversarial"] / max(ng, 1),
               "content": sums["content"] / max(ng, 1), "critic_updates": nd, "generator_updates": ng,
               "seconds": round(time.perf_counter() - t0, 3)}
        history.append(row)
        log.info("epoch %d/%d: critic %.4f (W %.4f, GP %.4f), generator %.4f (adv %.4f, %s %.4f), %d/%d updates, "
                 "%.1f s", epoch, t.epochs, row["critic_loss"], row["wasserstein"], row["gradient_penalty"],
                 row["generator_loss"], row["adversarial"], t.content_loss, row["content"], nd, ng, row["seconds"])
        if epoch % t.checkpoint_every == 0 or epoch == t.epochs:
            _save_checkpoint(ckpt_dir, epoch, gen, critic, opt_g, opt_d, rng, history, arch, data.meta,
                             t.keep_checkpoints)
    return gen.cpu(), history


def _save_checkpoint(folder: Path, epoch, gen, critic, opt_g, opt_d, rng, history, arch, meta, keep) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    state = {"epoch": epoch, "arch": arch, "variables": meta.get("variables"),
             "generator": {k: v.detach().cpu() for k, v in gen.state_dict().items()},
             "critic": {k: v.detach().cpu() for k, v in critic.state_dict().items()},
             "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "rng": rng.get_state(),
             "torch_rng": torch.get_rng_state(), "history": history}
    with atomic_path(folder / f"epoch_{epoch:04d}.pt") as tmp:
        torch.save(state, tmp)
    for _, old in checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)
