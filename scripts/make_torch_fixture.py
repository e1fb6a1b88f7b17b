#!/usr/bin/env python3
"""PyTorch reference for the Swift U-Net (Tests/TensorTests/TorchAgreementTests.swift).

Modes
  make  [--out PATH]          build the fixture (default Tests/TensorTests/Fixtures/torch_unet_small.safetensors)
  check CKPT [--logits FILE]  load a safetensors checkpoint written by our Swift code into PlainConvUNet with
                              load_state_dict(strict=False), run the fixture input through it and compare with the
                              "logits" tensor of FILE (default: the fixture). Exit status 0 = agreement.

Run with /opt/torchvenv/bin/python (torch, dynamic-network-architectures, safetensors, numpy).

Fixture tensors (all F32):
  <name>           initial weights, PlainConvUNet.named_parameters() names (the unused deep-supervision head
                   decoder.seg_layers.0 is dropped: with deep_supervision=False only seg_layers.1 is used)
  input            [2, 1, 32, 32]
  target           [2, 32, 32] class ids as floats, 255 = ignore
  logits           [2, 4, 32, 32]
  loss             [3] = total, ce, dice  (nnU-Net DC_and_CE_loss semantics, see nnunet_loss)
  grad.<name>      d loss / d weight
  adamw.<name>     weights after one torch.optim.AdamW step (lr 1e-3, weight_decay 1e-2, betas 0.9/0.999, eps 1e-8)
The reference numbers are computed in float64 (a float64 copy of the float32-initialised network); metadata
records the float32-vs-float64 discrepancy of PyTorch itself for scale.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from dynamic_network_architectures.architectures.unet import PlainConvUNet

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "Tests", "TensorTests", "Fixtures", "torch_unet_small.safetensors")

CONFIG = dict(input_channels=1, n_stages=3, features_per_stage=[8, 16, 32], kernel_sizes=3, strides=[1, 2, 2],
              n_conv_per_stage=2, num_classes=4, n_conv_per_stage_decoder=2, conv_bias=True)
IGNORE = 255
SMOOTH = 1e-5
LR, WD = 1e-3, 1e-2
SEED = 1234
BATCH, H, W = 2, 32, 32
UNUSED_HEAD = "decoder.seg_layers.0."


def build_net():
    return PlainConvUNet(conv_op=nn.Conv2d, norm_op=nn.InstanceNorm2d, norm_op_kwargs={"eps": 1e-5, "affine": True},
                         dropout_op=None, nonlin=nn.LeakyReLU, nonlin_kwargs={"negative_slope": 0.01, "inplace": True},
                         deep_supervision=False, **CONFIG)


def nnunet_loss(logits, target):
    """nnU-Net DC_and_CE_loss with ignore label: CE (mean over non-ignored pixels, 0 if none) plus
    MemoryEfficientSoftDiceLoss(softmax, batch_dice=True, do_bg=False, smooth=1e-5), ignored pixels masked out of
    intersection, prediction and target sums, denominator clipped at 1e-8, loss = -mean foreground Dice."""
    c = logits.shape[1]
    mask = target != IGNORE
    t = torch.where(mask, target, torch.zeros_like(target))
    p = torch.softmax(logits, 1)
    onehot = F.one_hot(t, c).permute(0, 3, 1, 2).to(p.dtype)
    m = mask[:, None].to(p.dtype)
    inter = (p * onehot * m).sum((0, 2, 3))[1:]
    psum = (p * m).sum((0, 2, 3))[1:]
    tsum = (onehot * m).sum((0, 2, 3))[1:]
    dc = (2 * inter + SMOOTH) / torch.clip(tsum + psum + SMOOTH, min=1e-8)
    dice = -dc.mean()
    ce = F.cross_entropy(logits, t.masked_fill(~mask, IGNORE), ignore_index=IGNORE) if mask.any() else logits.sum() * 0
    return ce + dice, ce, dice


def make_inputs():
    g = torch.Generator().manual_seed(SEED + 1)
    x = torch.randn(BATCH, 1, H, W, generator=g)
    # A smooth-ish target (blocks of classes) so Dice terms are far from trivial, plus a few ignored pixels.
    coarse = torch.randint(0, CONFIG["num_classes"], (BATCH, H // 4, W // 4), generator=g)
    y = coarse.repeat_interleave(4, 1).repeat_interleave(4, 2).clone()
    idx = torch.randperm(BATCH * H * W, generator=g)[:37]
    y.view(-1)[idx] = IGNORE
    return x, y


def make(out):
    torch.manual_seed(SEED)
    net = build_net().float()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.3 * torch.randn_like(p))   # randomised so the affine part is tested
            elif name.endswith("bias"):
                p.copy_(0.2 * torch.randn_like(p))
    x, y = make_inputs()

    def run(dtype):
        n = build_net()
        n.load_state_dict(net.state_dict())
        n = n.to(dtype).train()
        logits = n(x.to(dtype))
        total, ce, dice = nnunet_loss(logits, y)
        n.zero_grad()
        total.backward()
        params = [(k, v) for k, v in n.named_parameters() if not k.startswith(UNUSED_HEAD)]
        grads = {k: v.grad.detach().clone() for k, v in params}
        opt = torch.optim.AdamW([v for _, v in params], lr=LR, weight_decay=WD, betas=(0.9, 0.999), eps=1e-8)
        opt.step()
        new = {k: v.detach().clone() for k, v in params}
        return logits.detach(), torch.stack([total, ce, dice]).detach(), grads, new

    l64, loss64, g64, new64 = run(torch.float64)
    l32, loss32, g32, _ = run(torch.float32)

    def rel(a, b):
        return float((a.double() - b.double()).norm() / max(b.double().norm(), 1e-30))

    worst_grad = max(rel(g32[k], g64[k]) for k in g64)
    tensors = {}
    for k, v in net.named_parameters():
        if not k.startswith(UNUSED_HEAD):
            tensors[k] = v.detach().float().contiguous()
    tensors["input"] = x.float().contiguous()
    tensors["target"] = y.float().contiguous()
    tensors["logits"] = l64.float().contiguous()
    tensors["loss"] = loss64.float().contiguous()
    for k in g64:
        tensors["grad." + k] = g64[k].float().contiguous()
        tensors["adamw." + k] = new64[k].float().contiguous()
    meta = {
        "description": "PlainConvUNet reference for Episodic TorchAgreementTests (scripts/make_torch_fixture.py)",
        "config": json.dumps({**CONFIG, "conv_op": "Conv2d", "norm_op": "InstanceNorm2d", "norm_eps": 1e-5,
                              "affine": True, "dropout_op": None, "nonlin": "LeakyReLU", "negative_slope": 0.01,
                              "deep_supervision": False}),
        "loss": "ce + dice; nnU-Net DC_and_CE_loss, batch dice, do_bg False, smooth 1e-5, ignore_label 255",
        "adamw": json.dumps({"lr": LR, "weight_decay": WD, "betas": [0.9, 0.999], "eps": 1e-8}),
        "seed": str(SEED),
        "precision": "reference computed in float64, stored as float32",
        "torch_fp32_vs_fp64_rel_logits": "%.3g" % rel(l32, l64),
        "torch_fp32_vs_fp64_rel_loss": "%.3g" % rel(loss32, loss64),
        "torch_fp32_vs_fp64_worst_rel_grad": "%.3g" % worst_grad,
        "torch_version": torch.__version__,
        "loss_values": "total %.8f ce %.8f dice %.8f" % tuple(loss64.tolist()),
    }
    out = os.path.abspath(out)
    tmp = out + ".tmp-%d" % os.getpid()
    save_file(tensors, tmp, metadata=meta)
    os.replace(tmp, out)  # atomic
    print("wrote %s (%d bytes, %d tensors)" % (out, os.path.getsize(out), len(tensors)))
    for k in sorted(m for m in meta if m.startswith("torch_fp32") or m == "loss_values"):
        print("  %s: %s" % (k, meta[k]))


def check(ckpt, logits_file, fixture):
    fx = load_file(fixture)
    ref = load_file(logits_file)["logits"].double()
    state = load_file(ckpt)
    net = build_net().double()
    res = net.load_state_dict({k: v.double() for k, v in state.items()}, strict=False)
    # decoder.encoder.* is the same module as encoder.* (shared, so not in named_parameters); the unused
    # deep-supervision head stays at its init. Everything else must have been loaded.
    names = {k for k, _ in net.named_parameters()}
    missing = sorted(k for k in res.missing_keys if k in names and not k.startswith(UNUSED_HEAD))
    problems = []
    if missing:
        problems.append("missing from checkpoint: %s" % missing)
    if res.unexpected_keys:
        problems.append("unexpected in checkpoint: %s" % sorted(res.unexpected_keys))
    for k, v in net.named_parameters():
        if k in state and tuple(state[k].shape) != tuple(v.shape):
            problems.append("%s shape %s != %s" % (k, tuple(state[k].shape), tuple(v.shape)))
    with torch.no_grad():
        out = net.train()(fx["input"].double())
    err = float((out - ref).norm() / ref.norm())
    print("checkpoint %s: %d tensors, logits relative error %.3g" % (ckpt, len(state), err))
    if err > 1e-4:
        problems.append("logits relative error %.3g > 1e-4" % err)
    for p in problems:
        print("FAIL: " + p, file=sys.stderr)
    return 1 if problems else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode")
    m = sub.add_parser("make")
    m.add_argument("--out", default=DEFAULT_OUT)
    c = sub.add_parser("check")
    c.add_argument("ckpt")
    c.add_argument("--logits", default=None, help="safetensors with a 'logits' tensor (default: the fixture)")
    c.add_argument("--fixture", default=DEFAULT_OUT)
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.mode == "check":
        sys.exit(check(a.ckpt, a.logits or a.fixture, a.fixture))
    make(a.out if a.mode == "make" else DEFAULT_OUT)


if __name__ == "__main__":
    main()
