"""PyTorch side of bench/compare-torch: times full training steps (forward, CE + soft batch Dice, backward,
DDP all-reduce, AdamW) of the same nnU-Net PlainConvUNet as the Swift U-Net, on CPU, DDP over gloo with
`--procs` processes × `--threads` intra-op threads. Prints one JSON line (rank 0): median step time, images/s.
The data is synthetic (uniform images, banded labels with every class), like `episodic bench`."""
import argparse, json, os, statistics, sys, time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F


def build(features, num_classes, dropout):
    from dynamic_network_architectures.architectures.unet import PlainConvUNet
    n = len(features)
    return PlainConvUNet(input_channels=1, n_stages=n, features_per_stage=features, conv_op=nn.Conv2d,
                         kernel_sizes=3, strides=[1] + [2] * (n - 1), n_conv_per_stage=2, num_classes=num_classes,
                         n_conv_per_stage_decoder=2, conv_bias=True, norm_op=nn.InstanceNorm2d,
                         norm_op_kwargs={"eps": 1e-5, "affine": True},
                         dropout_op=nn.Dropout2d if dropout > 0 else None,
                         dropout_op_kwargs={"p": dropout} if dropout > 0 else None,
                         nonlin=nn.LeakyReLU, nonlin_kwargs={"negative_slope": 0.01, "inplace": True},
                         deep_supervision=False)


def loss_fn(logits, labels, num_classes, world):
    # nnU-Net DC_and_CE: CE mean + (−mean foreground soft batch Dice, smooth 1e-5); the Dice sums are all-reduced
    # so the loss is that of the global batch, as in the Swift step (one extra tiny all-reduce per step).
    ce = F.cross_entropy(logits, labels)
    p = logits.softmax(1)
    onehot = F.one_hot(labels, num_classes).permute(0, 3, 1, 2).to(p.dtype)
    inter = (p * onehot).sum((0, 2, 3))[1:]
    psum = p.sum((0, 2, 3))[1:]
    tsum = onehot.sum((0, 2, 3))[1:]
    sums = torch.stack([inter, psum, tsum])
    if world > 1:
        # Differentiable all-reduce of the sums (autograd through the sum is the identity on every rank).
        sums = AllReduceSum.apply(sums)
    dc = (2 * sums[0] + 1e-5) / torch.clip(sums[1] + sums[2] + 1e-5, 1e-8)
    return ce - dc.mean()


class AllReduceSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, g):
        return g


def run(rank, args, out):
    torch.set_num_threads(args.threads)
    world = args.procs
    if world > 1:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ["MASTER_PORT"] = str(args.port)
        dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    net = build(args.features, args.classes, args.dropout)
    # Only the last head is used without deep supervision: drop the others (DDP refuses unused parameters), which
    # leaves exactly the Swift network's parameters.
    for i in range(len(net.decoder.seg_layers) - 1):
        net.decoder.seg_layers[i] = nn.Identity()
    model = nn.parallel.DistributedDataParallel(net) if world > 1 else net
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-2)
    local = args.batch // world
    g = torch.Generator().manual_seed(1234 + rank)
    x = torch.rand(local, 1, args.size, args.size, generator=g)
    rows = torch.arange(args.size) * args.classes // args.size
    y = torch.stack([((rows + rank * local + n) % args.classes).view(-1, 1).expand(args.size, args.size)
                     for n in range(local)]).long()
    times = []
    for i in range(args.warmup + args.steps):
        if world > 1:
            dist.barrier()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        loss = loss_fn(model(x), y, args.classes, world)
        loss.backward()
        opt.step()
        dt = time.perf_counter() - t0
        if world > 1:
            t = torch.tensor([dt])
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            dt = float(t)
        if i >= args.warmup:
            times.append(dt)
    if rank == 0:
        med = statistics.median(times)
        out.put({"side": "torch", "size": args.size, "batch": args.batch, "procs": world, "threads": args.threads,
                 "median_step_s": med, "images_per_s": args.batch / med, "steps": times, "torch": torch.__version__,
                 "params": sum(p.numel() for p in net.parameters())})
    if world > 1:
        dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--features", default="32,64,128,256,480,480")
    ap.add_argument("--port", type=int, default=29533)
    args = ap.parse_args()
    args.features = [int(f) for f in args.features.split(",")]
    if args.batch % args.procs:
        sys.exit(f"torch_step.py: --batch {args.batch} is not divisible by --procs {args.procs}")
    ctx = mp.get_context("spawn")
    out = ctx.SimpleQueue()
    if args.procs == 1:
        run(0, args, out)
    else:
        ps = [ctx.Process(target=run, args=(r, args, out)) for r in range(args.procs)]
        for p in ps:
            p.start()
        for p in ps:
            p.join()
        if any(p.exitcode != 0 for p in ps):
            sys.exit("torch_step.py: a DDP worker failed")
    print(json.dumps(out.get()))


if __name__ == "__main__":
    main()
