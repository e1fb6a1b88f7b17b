#!/usr/bin/env python3
"""Writes the tiny NIfTI fixtures of Tests/DataTests/Fixtures/nifti and their expected values (expected.json).

Reference values come from nibabel (as_closest_canonical / aff2axcodes), an implementation independent of ours.
Run:  /opt/torchvenv/bin/python scripts/make_nifti_fixtures.py   (needs nibabel, numpy)
"""
import gzip
import json
import os
import struct

import nibabel as nib
import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "DataTests", "Fixtures", "nifti")
SHAPE = (4, 5, 3)
SP = (0.8, 0.9, 2.5)
ORIGIN = np.array([-10.0, 20.0, 5.0])


def base_ras():
    # value = x + 4 y + 20 z on the RAS grid: every voxel distinct, so any wrong flip/permutation shows.
    x, y, z = np.meshgrid(np.arange(4), np.arange(5), np.arange(3), indexing="ij")
    return (x + 4 * y + 20 * z).astype(np.float64)


def ras_affine():
    a = np.diag([SP[0], SP[1], SP[2], 1.0])
    a[:3, 3] = ORIGIN
    return a


def stored_from_ras(codes):
    """Array and affine of the same world content stored with voxel axes `codes` (e.g. "LPS", "AIR")."""
    data = base_ras()
    aff = ras_affine()
    # Start from RAS, then reorder/flip voxel axes into the target order.
    ras_ornt = nib.orientations.axcodes2ornt("RAS")
    tgt = nib.orientations.axcodes2ornt(codes)
    tr = nib.orientations.ornt_transform(ras_ornt, tgt)
    stored = nib.orientations.apply_orientation(data, tr)
    inv = nib.orientations.inv_ornt_aff(tr, data.shape)
    return stored, aff @ inv


def patch(path, fmt, offset, values):
    with open(path, "r+b") as f:
        hdr = f.read(4)
        endian = "<" if struct.unpack("<i", hdr)[0] == 348 else ">"
        f.seek(offset)
        f.write(struct.pack(endian + fmt, *values))


def gz(path):
    with open(path, "rb") as f:
        raw = f.read()
    with open(path + ".gz", "wb") as f:
        # mtime=0 so the fixture bytes do not change from run to run
        f.write(gzip.compress(raw, mtime=0))
    os.remove(path)
    return path + ".gz"


def expected(path, canonical_data=None):
    img = nib.load(path)
    can = nib.as_closest_canonical(img)
    data = np.asarray(can.dataobj, dtype=np.float64) if canonical_data is None else canonical_data
    hdr = img.header
    aff = img.affine
    return {
        "orientation": "".join(nib.aff2axcodes(aff)),
        "rasDims": list(can.shape),
        "spacing": [float(v) for v in np.sqrt((can.affine[:3, :3] ** 2).sum(axis=0))],
        "rasAffine": [float(v) for v in can.affine.reshape(-1)],
        "data": [float(v) for v in data.reshape(-1, order="F")],
        "datatype": str(hdr.get_data_dtype().name),
        "sformCode": int(hdr["sform_code"]),
        "qformCode": int(hdr["qform_code"]),
    }


def save(img, name, dtype, slope_inter=None, compress=True, byteswap=False):
    path = os.path.join(OUT, name + ".nii")
    img.set_data_dtype(dtype)
    if byteswap:
        img = nib.Nifti1Image(np.asarray(img.dataobj), None, img.header.as_byteswapped(">"))
    nib.save(img, path)
    if slope_inter is not None:
        patch(path, "ff", 112, slope_inter)  # scl_slope, scl_inter
    return gz(path) if compress else path


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    exp = {}

    for codes, dtype in [("RAS", np.int16), ("LPS", np.int16), ("LAS", np.int16), ("AIR", np.int16)]:
        stored, aff = stored_from_ras(codes)
        img = nib.Nifti1Image(stored.astype(dtype), aff)
        img.header.set_qform(aff, code=1)
        img.header.set_sform(aff, code=1)
        p = save(img, codes.lower(), dtype)
        exp[os.path.basename(p)] = expected(p)

    # Plain .nii, float32 with fractional values.
    stored, aff = stored_from_ras("LPS")
    img = nib.Nifti1Image((stored * 0.25 - 3).astype(np.float32), aff)
    p = save(img, "lps_float32", np.float32, compress=False)
    exp[os.path.basename(p)] = expected(p)

    # Big-endian float32 (byte-swapped header and data), LAS.
    stored, aff = stored_from_ras("LAS")
    img = nib.Nifti1Image(stored.astype(np.float32), aff)
    p = save(img, "las_bigendian", np.float32, byteswap=True)
    exp[os.path.basename(p)] = expected(p)

    # int16 with scl_slope 0.5 / scl_inter -10: stored raw values r, real value 0.5 r - 10.
    stored, aff = stored_from_ras("RAS")
    raw = (2 * (stored + 10)).astype(np.int16)
    img = nib.Nifti1Image(raw, aff)
    p = save(img, "ras_scaled", np.int16, slope_inter=(0.5, -10.0))
    e = expected(p)
    exp[os.path.basename(p)] = e

    # sform only (qform_code 0): LPS sform with code 2 (aligned).
    stored, aff = stored_from_ras("LPS")
    img = nib.Nifti1Image(stored.astype(np.int16), aff)
    img.header.set_sform(aff, code=2)
    img.header.set_qform(None, code=0)
    p = save(img, "lps_sform_only", np.int16)
    exp[os.path.basename(p)] = expected(p)

    # qform only (sform_code 0): LAS qform.
    stored, aff = stored_from_ras("LAS")
    img = nib.Nifti1Image(stored.astype(np.int16), None)
    img.header.set_qform(aff, code=1)
    img.header.set_sform(None, code=0)
    p = save(img, "las_qform_only", np.int16)
    exp[os.path.basename(p)] = expected(p)

    # Both present but different: the sform (LPS) must win over the qform (RAS).
    stored, aff = stored_from_ras("LPS")
    img = nib.Nifti1Image(stored.astype(np.int16), aff)
    img.header.set_sform(aff, code=1)
    img.header.set_qform(ras_affine(), code=1)
    p = save(img, "sform_wins", np.int16)
    exp[os.path.basename(p)] = expected(p)

    # Oblique (12 degrees about z) LPS: nearest axes are still L, P, S.
    stored, aff = stored_from_ras("LPS")
    c, s = np.cos(np.radians(12)), np.sin(np.radians(12))
    rot = np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    oaff = rot @ aff
    img = nib.Nifti1Image(stored.astype(np.int16), oaff)
    img.header.set_qform(oaff, code=1)
    img.header.set_sform(oaff, code=1)
    p = save(img, "lps_oblique", np.int16)
    exp[os.path.basename(p)] = expected(p)

    # Bad input.
    img = nib.Nifti1Image(np.zeros(SHAPE, dtype=np.complex64), ras_affine())
    save(img, "bad_complex", np.complex64)
    stored, aff = stored_from_ras("RAS")
    nanv = stored.astype(np.float32)
    nanv[1, 2, 1] = np.nan
    save(nib.Nifti1Image(nanv, aff), "bad_nan", np.float32)
    # Header claims 2000³ voxels: must be refused by the memory cap before any data is read.
    p = save(nib.Nifti1Image(stored.astype(np.int16), aff), "bad_huge_header", np.int16, compress=False)
    patch(p, "8h", 40, (3, 2000, 2000, 2000, 1, 1, 1, 1))
    # Truncated gzip: a valid file cut in the middle of the data.
    p = save(nib.Nifti1Image(np.arange(4 * 5 * 30, dtype=np.float32).reshape(4, 5, 30), aff), "bad_truncated", np.float32)
    with open(p, "rb") as f:
        raw = f.read()
    with open(p, "wb") as f:
        f.write(raw[: len(raw) * 2 // 3])

    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(exp, f, indent=1, sort_keys=True)
    print("wrote", len(os.listdir(OUT)), "files to", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
