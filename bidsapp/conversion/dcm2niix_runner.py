"""Convert one acquisition with the dcm2niix binary shipped in the ``dcm2niix`` wheel.

Used for anatomical images, whose voxel order does not have to match other images.
The acquisition's files are linked into a private temporary folder (dcm2niix
converts whole folders), dcm2niix writes into another temporary folder, and the result
is accepted only if it is a single image whose grid is the acquisition's IPP/IOP grid
up to a permutation/flip of axes (dcm2niix may flip columns, rows or slices). The
accepted image is then reoriented to that grid, so anatomy shares the voxel order and
affine of the dynamic and flip-angle images. Otherwise the caller falls back to the
pydicom/nibabel path.

Reference: Li X et al. J Neurosci Methods 2016;264:47-56 (dcm2niix).
"""

import json
import os
import subprocess
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

TIMEOUT_S = 300


class Dcm2niixError(RuntimeError):
    """dcm2niix is missing, failed, or produced something other than one matching image."""


def dcm2niix_binary():
    """Path of the wheel's dcm2niix executable (``dcm2niix.bin``)."""
    try:
        import dcm2niix
    except ImportError as exc:
        raise Dcm2niixError("the dcm2niix package is not installed") from exc
    path = Path(getattr(dcm2niix, "bin", "") or "")
    if not path.is_file():
        raise Dcm2niixError(f"dcm2niix binary not found at {path}")
    return path


def dcm2niix_version():
    """Version string reported by the binary, or None."""
    try:
        out = subprocess.run(
            [str(dcm2niix_binary()), "--version"], capture_output=True, text=True, timeout=30
        )
    except (Dcm2niixError, OSError, subprocess.SubprocessError):
        return None
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[-1].strip() if text else None


def _world_box(grid_shape, affine):
    """World coordinates of the 8 corner voxel centres, sorted (orientation-free)."""
    shape = np.asarray(grid_shape[:3]) - 1
    corners = np.array(
        [[i, j, k, 1] for i in (0, shape[0]) for j in (0, shape[1]) for k in (0, shape[2])], float
    )
    world = (affine @ corners.T).T[:, :3]
    return world[np.lexsort(np.round(world, 2).T[::-1])]


def same_world_grid(shape_a, affine_a, shape_b, affine_b, atol_mm=1e-2):
    """Return True when two grids cover the same voxel centres (any axis order or flip)."""
    if sorted(shape_a[:3]) != sorted(shape_b[:3]):
        return False
    voxel_a = np.sort(np.linalg.norm(affine_a[:3, :3], axis=0))
    voxel_b = np.sort(np.linalg.norm(affine_b[:3, :3], axis=0))
    if not np.allclose(voxel_a, voxel_b, atol=1e-4):
        return False
    return np.allclose(_world_box(shape_a, affine_a), _world_box(shape_b, affine_b), atol=atol_mm)


def run_dcm2niix(files, expected_grid):
    """Convert ``files`` (one acquisition); return ``(nibabel image, sidecar dict)``.

    The image is loaded into memory, so the temporary folders can be removed; the caller
    writes it atomically. Raises :class:`Dcm2niixError` on any mismatch.
    """
    binary = dcm2niix_binary()
    with tempfile.TemporaryDirectory(prefix="dcequant-dcm2niix-") as tmp:
        src, dst = Path(tmp) / "in", Path(tmp) / "out"
        src.mkdir()
        dst.mkdir()
        for i, f in enumerate(files):
            os.symlink(os.path.abspath(f), src / f"{i:06d}.dcm")
        cmd = [str(binary), "-z", "y", "-b", "y", "-ba", "y", "-f", "img", "-o", str(dst), str(src)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
        except (OSError, subprocess.SubprocessError) as exc:
            raise Dcm2niixError(f"dcm2niix could not run: {exc}") from None
        images = sorted(dst.glob("*.nii.gz"))
        if proc.returncode != 0 or len(images) != 1:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
            raise Dcm2niixError(f"dcm2niix exit {proc.returncode}, {len(images)} images ({' | '.join(tail)})")
        img = nib.load(str(images[0]))
        img = nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine, img.header)
        sidecar_path = images[0].with_suffix("").with_suffix(".json")
        sidecar = json.loads(sidecar_path.read_text()) if sidecar_path.exists() else {}
    if not same_world_grid(img.shape, img.affine, expected_grid.shape, expected_grid.affine):
        raise Dcm2niixError("dcm2niix geometry differs from the ImagePositionPatient/Orientation grid")
    return reorient_to_grid(img, expected_grid), sidecar


def reorient_to_grid(img, grid, atol_mm=1e-2):
    """``img`` with axes permuted/flipped onto ``grid`` (same voxel centres; checked)."""
    from nibabel.orientations import apply_orientation, io_orientation, ornt_transform

    transform = ornt_transform(io_orientation(img.affine), io_orientation(grid.affine))
    data = apply_orientation(np.asanyarray(img.dataobj), transform)
    moved = img.affine @ nib.orientations.inv_ornt_aff(transform, img.shape)
    if data.shape[:3] != tuple(grid.shape) or not np.allclose(moved, grid.affine, atol=atol_mm):
        raise Dcm2niixError(
            "dcm2niix image cannot be reoriented onto the ImagePositionPatient/Orientation grid"
        )
    if np.issubdtype(data.dtype, np.floating):
        data = data.astype(np.float32)  # scaled values; never re-quantised to the stored type
    out = nib.Nifti1Image(data, grid.affine)
    out.header.set_xyzt_units("mm", "sec")
    out.set_qform(grid.affine, code=1)
    out.set_sform(grid.affine, code=1)
    return out
