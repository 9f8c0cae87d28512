"""robustad's ``winclip`` against anomalib 2.7.0's ``WinClipModel`` on the real bottle images, zero-shot and 1-shot.

Both sides get the same open_clip ViT-B-16-plus-240 (seeded random weights saved as a state_dict file, about
830 MB: LAION's cannot be downloaded here), the class name ``bottle`` and, for 1-shot, the same reference (the
first ``train/good`` image). anomalib runs in its own virtual environment (never a robustad dependency): its
``WinClipModel`` with open_clip's model factory pointed at the file, its default pre-processor (torchvision
``Resize`` 240x240 bicubic, antialiased, on the float tensor, then CLIP normalisation). robustad runs through the
engine's path: a ``GuardedBackbone`` whose network slot is the detector's own forward (``engine.own_forward``).
robustad clips the resized image to [0,1] (its images live there) where anomalib keeps the bicubic overshoot, so
anomalib is also run on the clipped images, to tell that step from the model. Printed: the image scores side by side
and their largest relative difference, per mode, and the largest difference of the anomaly maps (240x240)
relative to the map's peak.

Run: ``.venv/bin/python benchmarks/compare_winclip_anomalib.py --anomalib-python /work/venv-anomalib/bin/python``
(that environment: ``python3 -m venv /work/venv-anomalib && /work/venv-anomalib/bin/pip install torch==2.14.1
torchvision==0.29.1 anomalib==2.7.0 open_clip_torch``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ARCHITECTURE = "ViT-B-16-plus-240"
RESOLUTION = 240
CLASS_NAME = "bottle"
SHOTS = (0, 1)


def reference_image(bottle: Path) -> Path:
    return sorted((bottle / "train" / "good").glob("*.png"))[0]


def robustad_side(bottle: Path, weights: Path, paths: list[Path]) -> dict:
    """Image scores and 240x240 maps of robustad's winclip, per number of shots."""
    import torch

    from robustad.engine.guard import GuardedBackbone
    from robustad.engine.handles import Handle
    from robustad.engine.own_forward import forward_of
    from robustad.kit.images import load_rgb
    from robustad.plugins import get_registry

    torch.set_num_threads(2)
    registry = get_registry()
    backbone_component, detector_component = registry.get("backbone", "clip_vitb16plus_240"), \
        registry.get("detector", "winclip")
    network = backbone_component.create(weights=str(weights))
    results = {}
    for shots in SHOTS:
        guarded = GuardedBackbone(network, backbone_component, "fp32", "cpu")
        detector = detector_component.create(guarded, RESOLUTION, category=CLASS_NAME)
        guarded.layers = detector.layers
        guarded.backbone = forward_of(network, Handle(detector_component, detector))
        detector.fit([load_rgb(reference_image(bottle))] if shots else [])
        scores, maps = [], []
        for path in paths:
            output = detector.score(guarded(detector.preprocess(load_rgb(path))[None]))
            scores.append(float(output.scores[0]))
            maps.append(detector.anomaly_map(output.patch_distances[0], (RESOLUTION, RESOLUTION)))
        results[shots] = {"scores": np.array(scores), "maps": np.stack(maps)}
    return results


def anomalib_side(bottle: Path, weights: Path, paths: list[Path], out: Path) -> None:
    """anomalib 2.7.0's WinClipModel on the same images and weights, zero-shot and 1-shot, on its pre-processor's
    images as they are and clipped to [0,1]; writes scores and maps to ``out``."""
    import open_clip
    import torch
    from anomalib.data.utils import read_image
    from anomalib.models import WinClip
    from anomalib.models.image.winclip.torch_model import WinClipModel

    torch.set_num_threads(2)
    factory = open_clip.create_model_and_transforms

    def from_file(name: str, pretrained: str | None = None, **kwargs: object) -> tuple:
        return factory(name, pretrained=str(weights), **kwargs)  # the file in place of LAION's download

    open_clip.create_model_and_transforms = from_file
    transform = WinClip.configure_pre_processor().transform
    images = torch.stack([transform(read_image(path, as_tensor=True)) for path in paths])
    reference = transform(read_image(reference_image(bottle), as_tensor=True))[None]
    normalise = transform.transforms[-1]
    resize = transform.transforms[0]
    clipped = torch.stack([normalise(resize(read_image(path, as_tensor=True)).clamp(0, 1)) for path in paths])
    reference_clipped = normalise(resize(read_image(reference_image(bottle), as_tensor=True)).clamp(0, 1))[None]
    saved = {}
    with torch.no_grad():
        model = WinClipModel().eval()
        model.setup(CLASS_NAME)  # zero-shot: the text embeddings, computed once
        for shots in SHOTS:
            for variant, batch, ref in (("raw", images, reference), ("clipped", clipped, reference_clipped)):
                if shots:  # what setup(reference_images=...) does, without encoding the prompts again
                    model.k_shot = len(ref)
                    model._collect_visual_embeddings(ref)
                output = model(batch)
                saved[f"scores_{shots}_{variant}"] = output.pred_score.numpy()
                saved[f"maps_{shots}_{variant}"] = output.anomaly_map.numpy()
    np.savez(out, **saved)


def save_random_weights(path: Path) -> None:
    """A seeded random ViT-B-16-plus-240 CLIP as an open_clip state_dict file."""
    import open_clip
    import torch

    torch.manual_seed(0)
    torch.save(open_clip.create_model(ARCHITECTURE).state_dict(), path)


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from common import comparison_arguments, mvtec_root, spread_test_images, worker_command

    args = comparison_arguments(__doc__.splitlines()[0], "/work/venv-anomalib/bin/python", 6)
    if args.side == "anomalib":
        anomalib_side(args.bottle, args.weights, [Path(p) for p in json.loads(args.paths)], args.out)
        return

    bottle = args.bottle or mvtec_root() / "bottle"
    paths = spread_test_images(bottle, args.images)
    with tempfile.TemporaryDirectory() as folder:
        weights, out = Path(folder) / "vit_b_16_plus_240_random.pt", Path(folder) / "anomalib.npz"
        save_random_weights(weights)
        worker = subprocess.Popen(worker_command(args.anomalib_python, __file__, bottle, weights, out, paths))
        ours = robustad_side(bottle, weights, paths)  # meanwhile
        if worker.wait() != 0:
            raise SystemExit(f"the anomalib side failed (exit {worker.returncode})")
        theirs = dict(np.load(out))
    for shots in SHOTS:
        mine = ours[shots]["scores"]
        print(f"\n{shots}-shot {'image':32s} {'robustad':>12s} {'anomalib':>12s} {'rel diff':>10s} "
              f"{'anomalib on [0,1]':>18s} {'rel diff':>10s}")
        raw, clipped = theirs[f"scores_{shots}_raw"], theirs[f"scores_{shots}_clipped"]
        for path, a, b, c in zip(paths, mine, raw, clipped):
            print(f"       {path.parent.name + '/' + path.name:32s} {a:12.6f} {b:12.6f} {abs(a - b) / abs(b):10.2e} "
                  f"{c:18.6f} {abs(a - c) / abs(c):10.2e}")
        for variant in ("raw", "clipped"):
            relative = np.abs(mine - theirs[f"scores_{shots}_{variant}"]) / np.abs(theirs[f"scores_{shots}_{variant}"])
            maps = theirs[f"maps_{shots}_{variant}"]
            print(f"{shots}-shot vs anomalib ({variant} pre-processor images): image scores max relative difference "
                  f"{relative.max():.2e} over {len(paths)} images; maps max difference / peak "
                  f"{np.abs(ours[shots]['maps'] - maps).max() / np.abs(maps).max():.2e}")


if __name__ == "__main__":
    main()
