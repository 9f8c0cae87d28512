"""robustad's ``subspacead`` against the SubspaceAD authors' code on the real bottle images.

The authors' pipeline (``FeatureExtractor``, ``PCAModel``, ``calculate_anomaly_scores``, ``post_process_map``,
``topk_mean`` from a checkout of ``CLendering/SubspaceAD``) runs in another environment with Hugging Face
transformers, on a seeded random ``Dinov2WithRegistersModel`` ViT-S/14 saved locally; the same weights, converted
to facebookresearch's layout, feed robustad's ``dinov2_vits14_reg``. Both: 1-shot (the first ``train/good``
image), layers -4,-5 (robustad: ``blocks.7,blocks.8``), mean aggregation, PCA at 99 % variance, reconstruction
scores, mean of the top 1 % of the map, 518 px (a 37x37 grid, where neither side interpolates the position table:
Hugging Face and the original DINOv2 interpolate it differently), and no rotations (the authors draw their angles
from the global generator; robustad from the cell seed). The processor is transformers' PIL backend (the one its
slow ``BitImageProcessor`` was; transformers 5's default torchvision backend moves pixels by one 8-bit level).
Printed: the image scores side by side and their largest relative difference, and the PCA dimensions.

Run: ``.venv/bin/python benchmarks/compare_subspacead_authors.py --reference-python ENV/bin/python --authors SRC``
where ENV has torch, transformers, scikit-learn, opencv and tqdm, and SRC is a checkout of CLendering/SubspaceAD.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

RESOLUTION = 518
LAYERS = [-4, -5]  # the authors' layers for 12-block ViTs (scripts/backbone_ablation.sh)
ARCHITECTURE = dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, image_size=518, patch_size=14,
                    num_register_tokens=4)


def original_layout(state: dict) -> dict:
    """A Hugging Face Dinov2WithRegisters state dict under facebookresearch's names (fused qkv)."""
    import torch

    renamed = {"cls_token": state["embeddings.cls_token"], "mask_token": state["embeddings.mask_token"],
               "pos_embed": state["embeddings.position_embeddings"],
               "register_tokens": state["embeddings.register_tokens"],
               "patch_embed.proj.weight": state["embeddings.patch_embeddings.projection.weight"],
               "patch_embed.proj.bias": state["embeddings.patch_embeddings.projection.bias"],
               "norm.weight": state["layernorm.weight"], "norm.bias": state["layernorm.bias"]}
    for index in range(ARCHITECTURE["num_hidden_layers"]):
        hf, ours = f"encoder.layer.{index}.", f"blocks.{index}."
        for kind in ("weight", "bias"):
            renamed[ours + f"attn.qkv.{kind}"] = torch.cat([state[hf + f"attention.{p}_proj.{kind}"]
                                                            for p in ("q", "k", "v")])
            renamed[ours + f"attn.proj.{kind}"] = state[hf + f"attention.o_proj.{kind}"]
            for name in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
                renamed[ours + f"{name}.{kind}"] = state[hf + f"{name}.{kind}"]
        renamed[ours + "ls1.gamma"] = state[hf + "layer_scale1.lambda1"]
        renamed[ours + "ls2.gamma"] = state[hf + "layer_scale2.lambda1"]
    return renamed


def authors_side(bottle: Path, authors: Path, folder: Path, paths: list[Path]) -> None:
    """Build and save the random model, then score with the authors' functions; writes ``folder/authors.npz``."""
    import torch
    from PIL import Image
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
    from transformers import BitImageProcessorPil, Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    sys.path[:0] = [str(authors), str(authors / "src")]
    from subspacead.core.extractor import FeatureExtractor
    from subspacead.core.pca import PCAModel
    from subspacead.post_process.scoring import calculate_anomaly_scores, post_process_map
    from subspacead.utils.common import topk_mean

    torch.manual_seed(0)
    model = Dinov2WithRegistersModel(Dinov2WithRegistersConfig(**ARCHITECTURE)).eval()
    with torch.no_grad():  # make every block and the position table matter (HF's init leaves them tiny)
        for name, value in model.named_parameters():
            if name.endswith("lambda1"):
                value.uniform_(0.5, 1.5)
        model.embeddings.position_embeddings.normal_(0, 1.0)
    model.save_pretrained(folder / "hf")
    BitImageProcessorPil(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224},
                         image_mean=list(IMAGENET_DEFAULT_MEAN),
                         image_std=list(IMAGENET_DEFAULT_STD)).save_pretrained(folder / "hf")
    torch.save(original_layout(model.state_dict()), folder / "dinov2_vits14_reg4_random.pth")

    extractor = FeatureExtractor(str(folder / "hf"))

    def tokens_of(image: Image.Image) -> np.ndarray:
        tokens, _, _ = extractor.extract_tokens([image], RESOLUTION, LAYERS, "mean")
        return tokens

    reference = Image.open(sorted((bottle / "train" / "good").glob("*.png"))[0]).convert("RGB")
    train = tokens_of(reference).reshape(-1, ARCHITECTURE["hidden_size"])
    pca = PCAModel(k=None, ev=0.99).fit(lambda: iter([train]), train.shape[1], train.shape[0], 1)
    scores = []
    for path in paths:
        tokens = tokens_of(Image.open(path).convert("RGB"))
        patch = calculate_anomaly_scores(tokens.reshape(-1, tokens.shape[-1]), pca, "reconstruction", 0)
        scores.append(topk_mean(post_process_map(patch.reshape(tokens.shape[1:3]), RESOLUTION), frac=0.01))
    np.savez(folder / "authors.npz", scores=np.array(scores), k=pca["k"])


def robustad_side(bottle: Path, weights: Path, paths: list[Path]) -> tuple[np.ndarray, int]:
    import torch
    from PIL import Image

    from robustad.plugins import get_registry

    torch.set_num_threads(2)
    registry = get_registry()
    backbone = registry.get("backbone", "dinov2_vits14_reg").create(weights=str(weights))
    detector = registry.get("detector", "subspacead").create(backbone, RESOLUTION, category="bottle", seed=0,
                                                             augmentations=0)
    detector.fit([Image.open(sorted((bottle / "train" / "good").glob("*.png"))[0])])
    scores = [float(detector.score(backbone(detector.preprocess(Image.open(p))[None], layers=detector.layers))
                    .scores[0]) for p in paths]
    return np.array(scores), detector.memory_bank_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-python", type=Path, default=Path("/work/anomalib-venv/bin/python"))
    parser.add_argument("--authors", type=Path, default=Path("/tmp/subspacead"),
                        help="a checkout of CLendering/SubspaceAD")
    parser.add_argument("--bottle", type=Path, default=None,
                        help="MVTec AD bottle folder (default: $ROBUSTAD_TEST_DATA/bottle)")
    parser.add_argument("--images", type=int, default=10, help="test images compared (0: all 83)")
    parser.add_argument("--side", choices=["authors"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--paths", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side == "authors":
        authors_side(args.bottle, args.authors, args.folder, [Path(p) for p in json.loads(args.paths)])
        return

    sys.path.insert(0, str(Path(__file__).parent))
    from common import mvtec_root, spread_test_images

    bottle = args.bottle or mvtec_root() / "bottle"
    paths = spread_test_images(bottle, args.images)
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([str(args.reference_python), __file__, "--side", "authors", "--bottle", str(bottle),
                        "--authors", str(args.authors), "--folder", folder,
                        "--paths", json.dumps([str(p) for p in paths])], check=True)
        theirs = dict(np.load(Path(folder) / "authors.npz"))
        ours, dimension = robustad_side(bottle, Path(folder) / "dinov2_vits14_reg4_random.pth", paths)
    print(f"PCA components: robustad {dimension}, authors {int(theirs['k'])}")
    print(f"{'image':32s} {'robustad':>14s} {'authors':>14s} {'rel diff':>10s}")
    relative = np.abs(ours - theirs["scores"]) / np.abs(theirs["scores"])
    for path, a, b, r in zip(paths, ours, theirs["scores"], relative):
        print(f"{path.parent.name + '/' + path.name:32s} {a:14.6f} {b:14.6f} {r:10.2e}")
    print(f"image scores: max relative difference {relative.max():.2e} over {len(paths)} images")


if __name__ == "__main__":
    main()
