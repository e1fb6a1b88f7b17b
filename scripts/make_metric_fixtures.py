#!/usr/bin/env python3
"""Regenerates Tests/MetricsTests/Fixtures/edt_hd95.json, the reference for the Swift EDT / Dice / HD95 tests.

Random 3D masks with anisotropic spacing; expected values from scipy.ndimage:
  edtA[i]  = distance_transform_edt(A == 0, sampling) -> distance from voxel i to the nearest voxel of A
  surface  = mask XOR binary_erosion(mask, 6-connected cross), volume border counts as outside (medpy)
  hd95Pooled        = percentile(hstack(d(A->B), d(B->A)), 95)               (medpy.metric.binary.hd95)
  hd95MaxOfDirected = max(percentile(d(A->B), 95), percentile(d(B->A), 95))  (MONAI, percentile=95)
  d(A->B) = distance_transform_edt(~surface(B), sampling)[surface(A)]
Arrays have shape (nx, ny, nz) and are flattened in Fortran order, i.e. x fastest, as the Swift code stores them.

Usage: /opt/torchvenv/bin/python scripts/make_metric_fixtures.py [output.json]
"""
import json
import os
import sys

import numpy as np
from scipy import ndimage


def surface(mask):
    cross = ndimage.generate_binary_structure(3, 1)
    return mask ^ ndimage.binary_erosion(mask, structure=cross, iterations=1)


def blob_mask(rng, shape, threshold):
    """Smoothed noise thresholded: irregular, sometimes multi-component masks that touch the border."""
    noise = rng.standard_normal(shape)
    smooth = ndimage.gaussian_filter(noise, sigma=1.3, mode="nearest")
    return smooth > threshold * smooth.std()


def case(name, a, b, spacing):
    sa, sb = surface(a), surface(b)
    d_ab = ndimage.distance_transform_edt(~sb, sampling=spacing)[sa]
    d_ba = ndimage.distance_transform_edt(~sa, sampling=spacing)[sb]
    inter = np.logical_and(a, b).sum()
    flat = lambda m: [int(v) for v in m.flatten(order="F")]
    return {
        "name": name,
        "dims": list(a.shape),
        "spacing": list(spacing),
        "maskA": flat(a),
        "maskB": flat(b),
        "edtA": [float("%.12g" % v) for v in ndimage.distance_transform_edt(a == 0, sampling=spacing).flatten(order="F")],
        "surfaceA": flat(sa),
        "dice": float(2.0 * inter / (a.sum() + b.sum())),
        "hd95Pooled": float(np.percentile(np.hstack((d_ab, d_ba)), 95)),
        "hd95MaxOfDirected": float(max(np.percentile(d_ab, 95), np.percentile(d_ba, 95))),
        "hd100": float(max(d_ab.max(), d_ba.max())),
    }


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "Tests", "MetricsTests", "Fixtures", "edt_hd95.json")
    rng = np.random.default_rng(20240611)
    cases = []
    specs = [((12, 10, 7), (0.7, 0.9, 2.5), 0.3),
             ((12, 10, 7), (1.0, 1.0, 1.0), 0.0),
             ((9, 13, 6), (0.5, 1.5, 3.0), 0.5),
             ((12, 10, 7), (2.0, 0.8, 1.2), -0.2)]
    for i, (shape, spacing, thr) in enumerate(specs):
        a = blob_mask(rng, shape, thr)
        # B: A perturbed (dilated/eroded in places, plus a stray blob) so the two surfaces differ but overlap.
        b = ndimage.binary_dilation(a, iterations=1) & (rng.random(shape) > 0.25)
        b |= blob_mask(rng, shape, 1.2)
        assert a.any() and b.any()
        cases.append(case("random%d" % i, a, b, spacing))
    payload = {"generator": "scripts/make_metric_fixtures.py", "numpy": np.__version__,
               "scipy": __import__("scipy").__version__, "cases": cases}
    tmp = out + ".tmp-%d" % os.getpid()
    with open(tmp, "w") as f:
        json.dump(payload, f, separators=(",", ":"))
        f.write("\n")
    os.replace(tmp, out)  # atomic
    print("wrote", out, [(c["name"], round(c["dice"], 4), round(c["hd95Pooled"], 4)) for c in cases])


if __name__ == "__main__":
    main()
