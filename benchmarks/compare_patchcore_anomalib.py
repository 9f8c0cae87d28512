"""robustad's ``patchcore`` against anomalib 2.7.0's ``PatchcoreModel`` on the real bottle images.

Both sides get the same Wide ResNet-50-2 (seeded random weights saved to a file in timm's key names), the same
1-shot reference (the first ``train/good`` image) and ``coreset_ratio=1.0`` (every patch kept: anomalib's k-center
draws from unseeded global generators, so only the full bank can match). anomalib runs in its own virtual
environment (never a robustad dependency) through its default pre-processor (torchvision ``Resize`` 256x256,
antialiased, on the float tensor, then ImageNet normalisation), ``PatchcoreModel`` in train mode for the bank and
``subsample_embedding(1.0)``, then eval mode for the scores and maps. Printed: the image scores side by side, their
largest relative difference, and the largest difference of the anomaly maps (at the model input) relative to the
map's peak, each side also against maps from float64 brute-force patch distances (anomalib's |x|^2 - 2x.y + |y|^2
in float32 loses digits where a patch lies close to the bank; robustad recomputes |x - y| directly).

Run: ``.venv/bin/python benchmarks/compare_patchcore_anomalib.py --anomalib-python /work/anomalib-venv/bin/python``
(setting up that environment: ``python -m venv /work/anomalib-venv && /work/anomalib-venv/bin/pip install
torch==2.14.1 torchvision==0.29.1 anomalib==2.7.0``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

RESOLUTION = 256  # anomalib's default pre-processor size


def robustad_side(bottle: Path, weights: Path, paths: list[Path]) -> dict:
    """Scores and model-input maps from robustad's patchcore on a wide_resnet50_2 with the given weights file."""
    import torch
    from PIL import Image

    from robustad.plugins import get_registry

    torch.set_num_threads(2)
    registry = get_registry()
    backbone = registry.get("backbone", "wide_resnet50_2").create(weights=str(weights))
    detector = registry.get("detector", "patchcore").create(backbone, RESOLUTION, seed=0, coreset_ratio=1.0)
    detector.fit([Image.open(sorted((bottle / "train" / "good").glob("*.png"))[0])])
    bank = detector._bank.double()
    scores, maps, exact_maps = [], [], []
    for path in paths:
        image = detector.preprocess(Image.open(path))[None]
        features = backbone(image, layers=detector.layers)
        output = detector.score(features)
        scores.append(float(output.scores[0]))
        maps.append(detector.anomaly_map(output.patch_distances[0], (RESOLUTION, RESOLUTION)))
        embedded = detector.embed(features)[0].double()  # the same patches, distances in float64 by brute force
        exact = torch.cdist(embedded.reshape(-1, embedded.shape[-1]), bank).min(dim=1).values
        exact_maps.append(detector.anomaly_map(exact.reshape(embedded.shape[:2]).numpy(), (RESOLUTION, RESOLUTION)))
    return {"scores": scores, "maps": np.stack(maps), "exact_maps": np.stack(exact_maps),
            "bank": detector.memory_bank_size}


def anomalib_side(bottle: Path, weights: Path, paths: list[Path], out: Path) -> None:
    """anomalib 2.7.0's PatchcoreModel on the same images and weights; writes scores and maps to ``out``."""
    import torch
    from anomalib.data.utils import read_image
    from anomalib.models import Patchcore
    from safetensors.torch import load_file

    torch.set_num_threads(2)
    model = Patchcore(backbone="wide_resnet50_2", pre_trained=False, coreset_sampling_ratio=1.0)
    transform = Patchcore.configure_pre_processor().transform
    extractor = model.model.feature_extractor.feature_extractor
    missing, unexpected = extractor.load_state_dict(load_file(str(weights)), strict=False)
    if missing or any(not key.startswith(("layer4.", "fc.")) for key in unexpected):  # it stops after layer3
        raise SystemExit(f"weights do not fit anomalib's extractor: missing {missing}, unexpected {unexpected}")
    reference = read_image(sorted((bottle / "train" / "good").glob("*.png"))[0], as_tensor=True)
    with torch.no_grad():
        model.model.train()
        model.model(transform(reference[None]))
        model.model.subsample_embedding(1.0)
        model.model.eval()
        scores, maps = [], []
        for path in paths:
            output = model.model(transform(read_image(path, as_tensor=True)[None]))
            scores.append(float(output.pred_score[0]))
            maps.append(output.anomaly_map[0, 0].numpy())
    np.savez(out, scores=np.array(scores), maps=np.stack(maps), bank=model.model.memory_bank.shape[0])


def save_random_weights(path: Path) -> None:
    """A seeded random wide_resnet50_2 state dict under timm's key names (what ``weights=random`` builds)."""
    from robustad_plugins.wide_resnet_network import WideResNetNetwork
    from safetensors.torch import save_file

    network = WideResNetNetwork("random", "cpu")
    save_file({key: value.contiguous() for key, value in network.net.state_dict().items()}, str(path))


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from common import comparison_arguments, mvtec_root, spread_test_images, worker_command

    args = comparison_arguments(__doc__.splitlines()[0], "/work/anomalib-venv/bin/python", 20)
    if args.side == "anomalib":
        anomalib_side(args.bottle, args.weights, [Path(p) for p in json.loads(args.paths)], args.out)
        return

    bottle = args.bottle or mvtec_root() / "bottle"
    paths = spread_test_images(bottle, args.images)
    with tempfile.TemporaryDirectory() as folder:
        weights, out = Path(folder) / "wide_resnet50_2_random.safetensors", Path(folder) / "anomalib.npz"
        save_random_weights(weights)
        subprocess.run(worker_command(args.anomalib_python, __file__, bottle, weights, out, paths), check=True)
        theirs = dict(np.load(out))
        ours = robustad_side(bottle, weights, paths)
    ours_scores, their_scores = np.array(ours["scores"]), theirs["scores"]
    print(f"memory bank: robustad {ours['bank']}, anomalib {int(theirs['bank'])} patches")
    print(f"{'image':32s} {'robustad':>12s} {'anomalib':>12s} {'rel diff':>10s}")
    relative = np.abs(ours_scores - their_scores) / np.abs(their_scores)
    for path, a, b, r in zip(paths, ours_scores, their_scores, relative):
        print(f"{path.parent.name + '/' + path.name:32s} {a:12.6f} {b:12.6f} {r:10.2e}")
    peak = np.abs(ours["exact_maps"]).max()
    print(f"image scores: max relative difference {relative.max():.2e} over {len(paths)} images")
    print(f"anomaly maps ({RESOLUTION}x{RESOLUTION}), max difference / peak: robustad vs anomalib "
          f"{np.abs(ours['maps'] - theirs['maps']).max() / peak:.2e}; against float64 brute-force distances: "
          f"robustad {np.abs(ours['maps'] - ours['exact_maps']).max() / peak:.2e}, "
          f"anomalib {np.abs(theirs['maps'] - ours['exact_maps']).max() / peak:.2e}")


if __name__ == "__main__":
    main()
