"""Named intermediate layers: each backbone's against an independent implementation, and the engine's handle."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision

from robustad.components import Component
from robustad.engine.guard import ComponentError, GuardedBackbone
from robustad.errors import RobustadError
from robustad.plugins import get_registry
from robustad.records import Features


def images(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def test_wide_resnet_stages_and_global_token_match_torchvision(tmp_path):
    registry = get_registry()
    random = registry.get("backbone", "wide_resnet50_2").create(weights="random")
    weights = tmp_path / "wrn.pth"
    torch.save(random.network.net.state_dict(), weights)
    backbone = registry.get("backbone", "wide_resnet50_2").create(weights=str(weights))
    assert backbone.weights_id.startswith("sha256:") and backbone.layer_names == ("layer1", "layer2", "layer3",
                                                                                 "layer4")
    reference = torchvision.models.wide_resnet50_2()  # same key names as timm's ResNet
    reference.load_state_dict(torch.load(weights, weights_only=True))
    reference.eval()
    x = images(1, 3, 64, 48)
    features = backbone(x, layers=["layer3", "layer2"])
    with torch.no_grad():
        h = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(
            1, 3, 1, 1)
        h = reference.maxpool(reference.relu(reference.bn1(reference.conv1(h))))
        stage2 = reference.layer2(reference.layer1(h))
        stage3 = reference.layer3(stage2)
        pooled = reference.avgpool(reference.layer4(stage3)).flatten(1)
    assert set(features.layers) == {"layer2", "layer3"}
    assert torch.allclose(features.layers["layer2"], stage2, atol=1e-4)
    assert torch.allclose(features.layers["layer3"], stage3, atol=1e-4)
    assert torch.allclose(features.global_token, pooled, atol=1e-4)
    assert features.patch_tokens.shape == (1, 8, 6, 512 + 1024) and backbone(x).layers == {}


def test_efficientnet_layers_are_timm_stage_outputs_at_strides_4_to_32():
    backbone = get_registry().get("backbone", "efficientnet_lite0").create()
    extractor = timm.create_model("tf_efficientnet_lite0", features_only=True, out_indices=(1, 2, 3, 4)).eval()
    extractor.load_state_dict(backbone.network.net.state_dict(), strict=False)
    x = images(1, 3, 64, 64, seed=1)
    features = backbone(x, layers=backbone.layer_names)
    with torch.no_grad():
        expected = extractor((x - 0.5) / 0.5)
    for name, stage, stride in zip(("layer1", "layer2", "layer3", "layer4"), expected, (4, 8, 16, 32)):
        assert features.layers[name].shape[-2:] == (64 // stride, 64 // stride)
        assert torch.allclose(features.layers[name], stage, atol=1e-5)
    assert torch.equal(features.patch_tokens, backbone(x).patch_tokens)  # asking for layers changes nothing else


def test_dinov2_last_block_normalised_is_the_patch_tokens():
    backbone = get_registry().get("backbone", "dinov2_vits14_reg").create(weights="random")
    assert backbone.layer_names == tuple(f"blocks.{i}" for i in range(12))
    x = images(1, 3, 28, 42, seed=2)
    features = backbone(x, layers=["blocks.11", "blocks.3"])
    last = features.layers["blocks.11"]
    assert last.shape == (1, 384, 2, 3)
    normalised = backbone.network.vit.norm(last.permute(0, 2, 3, 1))
    assert torch.allclose(normalised, features.patch_tokens, atol=1e-5)
    assert torch.equal(features.patch_tokens, backbone(x).patch_tokens)


def test_unknown_layer_is_a_one_line_error_naming_it():
    backbone = get_registry().get("backbone", "efficientnet_lite0").create()
    with pytest.raises(RobustadError, match="^backbone efficientnet_lite0 has no layer 'blocks.3'; its named "
                                            "layers: layer1, layer2, layer3, layer4$"):
        backbone(images(1, 3, 32, 32), layers=["blocks.3"])


class Forgetful(torch.nn.Module):
    """A backbone that claims a layer but never returns it."""

    name, description, patch_size, weights_id, layer_names = "forgetful", "test", 4, "none", ("layer2",)

    def forward(self, x, layers=()):
        tokens = torch.zeros(x.shape[0], 2, 2, 3)
        return Features(tokens, tokens.mean(dim=(1, 2)))


def test_guarded_backbone_asks_for_the_bound_layers_and_refuses_a_missing_one():
    component = Component.from_class("backbone", Forgetful, "forgetful", "tests")
    guarded = GuardedBackbone(Forgetful(), component, "fp32", "cpu")
    assert guarded(images(2, 3, 8, 8)).layers == {}
    guarded.layers = ("layer2",)
    with pytest.raises(ComponentError, match="returned no layer 'layer2' when asked for it"):
        guarded(images(2, 3, 8, 8))
