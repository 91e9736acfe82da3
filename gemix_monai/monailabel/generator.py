"""A MONAI Label infer task of type ``others``: a generated image for a requested soft label.

A generator has no place in MONAI Label's image → label flow (``BundleInferTask`` expects an
input image and a network mapping it to a prediction), so it is served as its own ``InferTask``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

__all__ = ["GenerateImageTask", "parse_soft_label"]


def parse_soft_label(request: Mapping, class_names: Sequence[str]) -> torch.Tensor:
    """The soft label ``[K]`` a request asks for.

    Accepted forms: ``"soft_label": [K non-negative numbers]`` (normalised to sum 1), ``"soft_label":
    {class name: weight}`` (missing classes weigh 0) or ``"label": <class name or index>`` (one-hot).
    """
    k = len(class_names)
    if "soft_label" in request and request["soft_label"] is not None:
        raw = request["soft_label"]
        if isinstance(raw, Mapping):
            unknown = [n for n in raw if n not in class_names]
            if unknown:
                raise ValueError(f"request soft_label names unknown classes {unknown}; classes are {list(class_names)}")
            values = [float(raw.get(n, 0.0)) for n in class_names]
        else:
            values = [float(v) for v in raw]
        if len(values) != k:
            raise ValueError(
                f"request soft_label has {len(values)} entries; the generator has {k} classes {list(class_names)}"
            )
        label = torch.tensor(values, dtype=torch.float32)
        if not torch.isfinite(label).all() or (label < 0).any() or float(label.sum()) <= 0:
            raise ValueError(f"request soft_label must be non-negative with a positive sum, got {values}")
        return label / label.sum()
    if "label" in request and request["label"] is not None:
        raw = request["label"]
        if isinstance(raw, str) and raw in class_names:
            idx = list(class_names).index(raw)
        else:
            try:
                idx = int(raw)
            except (TypeError, ValueError):
                raise ValueError(
                    f"request label {raw!r} is neither a class name {list(class_names)} nor an index"
                ) from None
            if not 0 <= idx < k:
                raise ValueError(f"request label index {idx} out of range [0, {k})")
        label = torch.zeros(k, dtype=torch.float32)
        label[idx] = 1.0
        return label
    raise ValueError("request needs 'soft_label' (K weights or {class: weight}) or 'label' (class name or index)")


class GenerateImageTask(InferTask):
    """Generate one image conditioned on a soft label.

    Request keys: ``soft_label`` or ``label`` (see :func:`parse_soft_label`), optional ``seed``
    (default 0), ``truncation_psi`` (default 1.0), ``result_extension`` (``.nii.gz`` default, or
    ``.npy``). Returns ``(path of the image file, {"soft_label", "class_names", "seed",
    "truncation_psi", "image_shape", "hu_window"})``.

    With a CT window (``hu_window``, default ``"abdomen"``) the NIfTI holds int16 HU, the same
    convention as the phantom dataset, so the classifier task reads it like a real slice; with
    ``hu_window=None`` it holds the generator's float32 output in [-1, 1].
    """

    def __init__(
        self,
        generator_path: str | os.PathLike,
        *,
        hu_window="abdomen",
        output_dir: str | os.PathLike | None = None,
        device: str = "cpu",
        description: str = "Generate an image for a soft label (GeMix class manifold)",
    ):
        from gemix_monai.generators.protocol import load_generator

        self.generator_path = Path(generator_path)
        self.device = device
        self.generator = load_generator(self.generator_path, device=device)  # any family (docs/generators.md)
        names = self.generator.class_names or [str(i) for i in range(self.generator.c_dim)]
        self.class_names = list(names)
        self.hu_window = hu_window
        self.output_dir = Path(output_dir) if output_dir is not None else None
        super().__init__(
            type=InferType.OTHERS,
            labels=self.class_names,
            dimension=2,
            description=description,
            config={"seed": 0, "truncation_psi": 1.0},
        )

    def is_valid(self) -> bool:
        return self.generator_path.is_file()

    def __call__(self, request) -> tuple[str, dict]:
        from gemix_monai.mixing.samplers import check_seed
        from gemix_monai.utils import check_truncation_psi

        soft_label = parse_soft_label(request, self.class_names)
        seed = request.get("seed", self._config["seed"])
        seed = check_seed(
            int(seed) if isinstance(seed, str) and seed.strip().isdigit() else seed, "request seed", allow_none=False
        )
        psi = request.get("truncation_psi", self._config["truncation_psi"])
        try:  # a JSON request may carry the number as a string ("0.7"), which float() reads
            psi = float(psi) if isinstance(psi, str) else psi
        except ValueError:
            raise ValueError(f"request truncation_psi must be a finite number, got {psi!r}") from None
        psi = check_truncation_psi(psi)
        image = (
            self.generator.generate(
                soft_label[None], truncation_psi=psi, noise_mode="const", batch_size=1, device=self.device, seed=seed
            )[0]
            .detach()
            .cpu()
        )
        ext = request.get("result_extension", ".nii.gz")
        path = self._write(image, ext)
        return str(path), {
            "soft_label": [float(v) for v in soft_label],
            "class_names": self.class_names,
            "seed": seed,
            "truncation_psi": psi,
            "image_shape": list(image.shape),
            "hu_window": self.hu_window,
        }

    def _write(self, image: torch.Tensor, ext: str) -> Path:
        directory = self.output_dir or Path(tempfile.gettempdir())
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="gemix_generated_", suffix=ext, dir=directory)
        os.close(fd)
        path = Path(name)
        if ext == ".npy":
            np.save(path, image.numpy())
            return path
        if ext not in (".nii.gz", ".nii"):
            path.unlink()
            raise ValueError(f"result_extension must be '.nii.gz', '.nii' or '.npy', got {ext!r}")
        import nibabel as nib

        if self.hu_window is not None:
            from gemix_monai.data import to_hu

            data = np.rint(to_hu(image, self.hu_window).numpy()).astype(np.int16)
        else:
            data = image.numpy().astype(np.float32)
        # [C, rows, cols] -> NIfTI [x = cols, y = rows] (channel last only for multi-channel images)
        # [C, x, y] is already NIfTI's axis order (MONAI orientation, docs/data.md)
        arr = data[0] if data.shape[0] == 1 else np.transpose(data, (1, 2, 0))
        nib.save(nib.Nifti1Image(np.ascontiguousarray(arr), np.eye(4)), str(path))
        return path
