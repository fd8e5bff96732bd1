"""aqgan-train's loop keeps its CPU results: ``train`` against a plain loop that reads every loss
on the host after each step with the default Adam (the loop as it was before the device-side
sums and fused Adam); the larger-batch mode is the plain loop at the scaled batch and rate."""

from __future__ import annotations

import pytest
import torch

from components.aq_downscaling.config import load_config
from components.aq_downscaling.model import build
from components.aq_downscaling.training import (DRIFT, TrainData, arch_of, batch_and_rate, fair_crps,
                                                gradient_penalty, train)
from components.common.errors import ServiceError

TINY = ["training.epochs=2", "model.generator_filters=8", "model.discriminator_filters=4", "model.residual_blocks=1",
        "training.critic_steps=2", "training.learning_rate=1e-3", "training.device=cpu"]


def _setup(*overrides, n=10):
    cfg = load_config(overrides=TINY + list(overrides))
    lr_v, hr_v, st_v = cfg.inputs.low_res, cfg.outputs.high_res, cfg.inputs.high_res_static
    g = torch.Generator().manual_seed(3)
    (h, w), f = cfg.model.input_frame, cfg.factor
    data = TrainData(torch.randn(n, len(lr_v), h, w, generator=g),
                     torch.randn(n, len(hr_v), h * f, w * f, generator=g),
                     torch.randn(2, len(st_v), h * f, w * f, generator=g), torch.arange(n) % 2, {"variables": {}})
    return cfg, data, arch_of(cfg, lr_v, hr_v, st_v)


def _plain_loop(cfg, data, arch, batch, rate):
    t = cfg.training
    torch.manual_seed(t.seed)
    gen, critic = build(arch)
    opt_g = torch.optim.Adam(gen.parameters(), lr=rate, betas=(t.beta1, t.beta2))
    opt_d = torch.optim.Adam(critic.parameters(), lr=rate, betas=(t.beta1, t.beta2))
    rng = torch.Generator().manual_seed(t.seed)
    n, k, rows = data.lr.shape[0], t.content_members, []
    for _ in range(t.epochs):
        sums, nd, ng = [0.0] * 6, 0, 0
        order = torch.randperm(n, generator=rng)
        for b0 in range(0, n, batch):
            idx = order[b0:b0 + batch]
            lr, hr, st = data.lr[idx], data.hr[idx], data.static[data.position[idx]]
            with torch.no_grad():
                fake = gen(lr, st, torch.randn(gen.noise_shape(len(idx), lr.shape[-2:])))
            d_real, d_fake = critic(lr, st, hr), critic(lr, st, fake)
            gp = gradient_penalty(critic, lr, st, hr, fake)
            w = d_real.mean() - d_fake.mean()
            loss_d = -w + t.gradient_penalty * gp + DRIFT * (d_real ** 2).mean()
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            nd += 1
            sums[0] += loss_d.item()
            sums[1] += w.item()
            sums[2] += gp.item()
            if nd % t.critic_steps == 0:
                m = len(idx)
                lr_k, st_k = lr.repeat(k, 1, 1, 1), st.repeat(k, 1, 1, 1)
                fake = gen(lr_k, st_k, torch.randn(gen.noise_shape(m * k, lr.shape[-2:])))
                adv = -critic(lr_k, st_k, fake).mean()
                content = fair_crps(fake.view(k, m, *fake.shape[1:]), hr)
                loss_g = adv + t.content_weight * content
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                ng += 1
                sums[3] += loss_g.item()
                sums[4] += adv.item()
                sums[5] += content.item()
        rows.append([s / nd for s in sums[:3]] + [s / ng for s in sums[3:]])
    return gen, rows


KEYS = ("critic_loss", "wasserstein", "gradient_penalty", "generator_loss", "adversarial", "content")


@pytest.mark.parametrize("overrides, batch, rate", [(["training.batch_size=4"], 4, 1e-3),
                                                    (["training.batch_size=2", "training.batch_scaling=2"], 4,
                                                     1e-3 * 2 ** 0.5)])
def test_train_on_cpu_equals_the_plain_loop(tmp_path, overrides, batch, rate):
    cfg, data, arch = _setup(*overrides)
    gen, history = train(cfg, data, arch, tmp_path, False, torch.device("cpu"))
    ref_gen, ref_rows = _plain_loop(cfg, data, arch, batch, rate)
    for p, q in zip(gen.state_dict().values(), ref_gen.state_dict().values()):
        assert torch.equal(p, q)
    for row, ref in zip(history, ref_rows):
        assert [row[k] for k in KEYS] == pytest.approx(ref, rel=1e-12, abs=1e-12)


def test_batch_scaling_rule_and_config():
    assert batch_and_rate(128, 1e-5, 1) == (128, 1e-5)
    assert batch_and_rate(128, 1e-4, 16) == (2048, pytest.approx(4e-4))
    assert batch_and_rate(128, 0.5, 16)[1] == 1.0
    t = load_config().training  # by default the configured batch and rate are trained as given
    assert batch_and_rate(t.batch_size, t.learning_rate, t.batch_scaling) == (t.batch_size, t.learning_rate)
    with pytest.raises(ServiceError, match="batch_scaling"):
        load_config(overrides=["training.batch_scaling=0"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_train_on_cuda(tmp_path):
    cfg, data, arch = _setup("training.batch_size=4", "training.device=cuda")
    gen, history = train(cfg, data, arch, tmp_path, False, torch.device("cuda"))
    assert len(history) == 2 and all(isinstance(history[-1][k], float) for k in KEYS)
    assert next(gen.parameters()).device.type == "cpu"
