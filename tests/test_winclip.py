"""WinCLIP and the detectors that own their forward pass: every step against an independent computation on a tiny
open_clip model (open_clip's own forward, masked attention, anomalib's transposed pass written out, brute-force
loops), and zero-shot cells through the engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from robustad_plugins.winclip import TEMPERATURE, WholeClip, WinClip, harmonic_map, prompt_ensemble, window_indices

from robustad.components import Component
from robustad.contracts import ImageDetector, contract_of
from robustad.declaration import Request
from robustad.engine.executors import run_local
from robustad.engine.guard import GuardedBackbone
from robustad.engine.handles import Handle
from robustad.engine.own_forward import forward_of
from robustad.engine.progress import SilentReporter
from robustad.engine.request import build_cells
from robustad.engine.settings import RunSettings
from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.plugins import get_registry

TINY = "robustad-tiny-clip"
TINY_CONFIG = {"embed_dim": 16, "vision_cfg": {"image_size": 64, "layers": 2, "width": 32, "patch_size": 16,
                                               "head_width": 16},
               "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
SIZE = 64


class TinyClip(WholeClip):
    name = "tiny_clip"
    description = "a tiny random open_clip CLIP (tests)"
    architecture = TINY


class TinyClipPlugin:
    @hookimpl
    def register_backbones(self, register):
        register(TinyClip)


@pytest.fixture(scope="module")
def tiny_config():
    from open_clip.factory import _MODEL_CONFIGS

    _MODEL_CONFIGS[TINY] = TINY_CONFIG
    yield
    _MODEL_CONFIGS.pop(TINY, None)


def routed(backbone: object, **options: object) -> tuple[WinClip, GuardedBackbone]:
    """A winclip detector behind a guarded backbone whose network slot is its own forward, as the engine sets it."""
    registry = get_registry()
    guarded = GuardedBackbone(backbone, registry.get("backbone", "clip_vitb16plus_240"), "fp32", "cpu")
    detector = WinClip(guarded, SIZE, "bottle", **options)
    guarded.layers = detector.layers
    guarded.backbone = forward_of(backbone, Handle(registry.get("detector", "winclip"), detector))
    return detector, guarded


def images(count: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)) for _ in range(count)]


@pytest.fixture(scope="module")
def backbone(tiny_config):
    return TinyClip(weights="random")


def test_harmonic_map_is_the_harmonic_mean_of_the_covering_windows():
    got = harmonic_map(torch.tensor([[1.0, 0.75, 0.5, 0.25]], dtype=torch.float64), (3, 3), 2)[0]
    by_hand = [[1, 2 / (1 + 4 / 3), 0.75], [2 / (1 + 2), 4 / (1 + 4 / 3 + 2 + 4), 2 / (4 / 3 + 4)],
               [0.5, 2 / (2 + 4), 0.25]]
    np.testing.assert_allclose(got.numpy(), by_hand, rtol=1e-12)
    rng = np.random.default_rng(1)
    rows, cols, side = 5, 4, 3
    scores = rng.uniform(0.1, 1, size=(2, (rows - side + 1) * (cols - side + 1)))
    windows = window_indices((rows, cols), side)
    brute = np.zeros((2, rows * cols))
    for patch in range(rows * cols):
        covering = [w for w in range(len(windows)) if patch in windows[w]]
        brute[:, patch] = len(covering) / (1 / scores[:, covering]).sum(axis=1)
    got = harmonic_map(torch.tensor(scores), (rows, cols), side).numpy()
    np.testing.assert_allclose(got.reshape(2, -1), brute, rtol=1e-12)


def test_features_equal_open_clip_and_windows_equal_masked_attention(backbone):
    detector, _ = routed(backbone, windows="separate")
    x = torch.stack([detector.preprocess(image) for image in images(2)])
    features = detector.image_features(x)
    model = backbone.network.model
    normalised = (x - backbone.network.mean) / backbone.network.std
    model.visual.output_tokens = True
    pooled, tokens = model.visual(normalised)
    model.visual.output_tokens = False
    torch.testing.assert_close(features.global_token, pooled, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(features.patch_tokens.flatten(1, 2), tokens, rtol=1e-5, atol=1e-6)
    # a window alone = the whole image with attention among the class token and the window's patches only
    embedded = model.visual.conv1(normalised).flatten(2).transpose(1, 2)
    sequence = torch.cat([model.visual.class_embedding.expand(2, 1, -1), embedded], 1)
    sequence = sequence + model.visual.positional_embedding
    for side in (2, 3):
        windows = window_indices((4, 4), side)
        for w, members in enumerate(windows):
            allowed = torch.zeros(17, dtype=torch.bool)
            allowed[0] = True
            allowed[torch.as_tensor(members) + 1] = True
            mask = torch.zeros(17, 17)
            mask[allowed] = torch.where(allowed, 0.0, float("-inf"))
            out = model.visual.ln_post(model.visual.transformer(model.visual.ln_pre(sequence), attn_mask=mask))
            expected = out[:, 0] @ model.visual.proj
            got = features.layers[f"window_{side}"].flatten(2)[:, :, w]
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_anomalib_windows_equal_the_transposed_pass(backbone):
    """anomalib 2.7.0 hands (windows, tokens, width) to the batch-first transformer permuted to (tokens, windows,
    width): written out here for a batch of two images and compared with the detector's window embeddings."""
    detector, _ = routed(backbone)
    x = torch.stack([detector.preprocess(image) for image in images(2, seed=3)])
    features = detector.image_features(x)
    visual = backbone.network.model.visual
    sequence = backbone.network.tokens(x)
    for side in (2, 3):
        windows = torch.as_tensor(window_indices((4, 4), side))
        index = torch.cat([torch.zeros(len(windows), 1, dtype=torch.long), windows + 1], dim=1)
        masked = torch.cat([sequence[:, row] for row in index])  # (windows * batch, tokens, width), window-major
        out = visual.transformer(visual.ln_pre(masked).permute(1, 0, 2)).permute(1, 0, 2)
        pooled = visual.ln_post(out)[:, 0] @ visual.proj
        expected = pooled.reshape(len(windows), 2, -1).permute(1, 0, 2)
        got = features.layers[f"window_{side}"].flatten(2).transpose(1, 2)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("windows, shot_counts", [("separate", (0, 2)), ("anomalib", (2,))])
def test_zero_and_few_shot_scores_equal_a_brute_force_computation(backbone, windows, shot_counts):
    from open_clip.tokenizer import tokenize
    from scipy.spatial.distance import cdist

    reference, test = images(2, seed=5), images(3, seed=6)
    model = backbone.network.model
    normal, anomalous = prompt_ensemble("bottle")
    with torch.no_grad():
        text = np.stack([model.encode_text(tokenize(prompts)).mean(0).numpy() for prompts in (normal, anomalous)])
    for shots in shot_counts:
        detector, guarded = routed(backbone, windows=windows)
        detector.fit(reference[:shots])
        x = torch.stack([detector.preprocess(image) for image in test])
        features = guarded(x)
        output = detector.score(features)
        ref = guarded(torch.stack([detector.preprocess(image) for image in reference])) if shots else None

        def share(embeddings):
            logits = (1 - cdist(embeddings, text, "cosine")) / TEMPERATURE
            return np.exp(logits[:, 1]) / np.exp(logits).sum(axis=1)

        def spread(window_scores, side):
            members = window_indices((4, 4), side)
            return np.array([len([w for w in members if p in w]) / sum(1 / window_scores[i] for i, w in
                                                                        enumerate(members) if p in w)
                             for p in range(16)])

        for b in range(3):
            image = share(features.global_token[b:b + 1].double().numpy())[0]
            inverse, few = [np.full(16, 1 / image)], []
            if shots:
                patches = features.patch_tokens[b].reshape(16, -1).double().numpy()
                bank = ref.patch_tokens.reshape(-1, patches.shape[1]).double().numpy()
                few.append(cdist(patches, bank, "cosine").min(axis=1) / 2)
            for side in (2, 3):
                windows_b = features.layers[f"window_{side}"][b].flatten(1).T.double().numpy()
                inverse.append(1 / spread(share(windows_b), side))
                if shots:
                    bank = ref.layers[f"window_{side}"].flatten(2).transpose(1, 2).reshape(-1, windows_b.shape[1])
                    distance = np.clip(cdist(windows_b, bank.double().numpy(), "cosine").min(axis=1) / 2, 1e-12, None)
                    few.append(spread(distance, side))
            zero_map = 3 / np.sum(inverse, axis=0)
            expected_score, expected_map = image, zero_map
            if shots:
                few_map = np.mean(few, axis=0)
                expected_score, expected_map = (image + few_map.max()) / 2, (zero_map + few_map) / 2
            assert output.scores[b] == pytest.approx(expected_score, rel=1e-4, abs=1e-6)
            np.testing.assert_allclose(output.patch_distances[b].reshape(-1), expected_map, rtol=1e-4, atol=1e-6)
        differentiable = detector.score_tensor(guarded(x))
        np.testing.assert_allclose(differentiable.detach().numpy(), output.scores, rtol=1e-6)


def test_preprocess_is_torchvision_bicubic_antialiased_resize_clipped():
    from torchvision.transforms import InterpolationMode, Resize

    detector = WinClip.__new__(WinClip)
    detector.resolution = SIZE
    image = images(1, seed=9)[0]
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)
    expected = Resize((SIZE, SIZE), interpolation=InterpolationMode.BICUBIC, antialias=True)(pixels).clamp(0, 1)
    torch.testing.assert_close(detector.preprocess(image), expected)


def test_bad_options_and_backbones_are_one_line(backbone, tiny_config):
    with pytest.raises(RobustadError, match="scales='2\\+x'"):
        WinClip.check_options(scales="2+x")
    with pytest.raises(RobustadError, match="windows='both'"):
        WinClip.check_options(windows="both")
    with pytest.raises(RobustadError, match="resolution=96; expected 64"):
        WinClip(backbone, 96, "bottle")
    with pytest.raises(RobustadError, match="whole-CLIP backbone"):
        WinClip(object(), SIZE, "bottle")


def test_an_image_detector_is_checked_against_its_own_protocol():
    class Broken(WinClip):
        name = "broken_winclip"
        image_features = 3

    assert contract_of("detector", WinClip) is ImageDetector
    with pytest.raises(TypeError, match="image_features"):
        Component.from_class("detector", Broken, "test", "test")


def test_zero_shot_cells_run_through_the_engine_with_every_stage(tmp_path, tiny_config):
    registry = get_registry()
    if not registry.pm.has_plugin("tiny_clip"):
        registry.add(TinyClipPlugin(), "tiny_clip")
    request = Request(noise_control=False, dataset="demo", data_root=None, category="weave", shots="0", seeds="0",
                           backbone="tiny_clip", weights="random", resolution=str(SIZE), detector="winclip",
                           surrogate="score", attack="pgd", eps="8/255", calib="platt",
                           calib_fraction=0.3, options=["attack.pgd.steps=2"], defense="none,blur",
                           flag="entropy,squeeze")
    result = run_local(build_cells(request, registry), RunSettings(pixel_metrics=True), tmp_path / "board.csv",
                       registry, SilentReporter(), lambda cell, row: None)
    rows = result.written
    assert {row["shots"] for row in rows} == {"0"} and {row["n_ref"] for row in rows} == {0}
    assert {row["defense"] for row in rows} == {"none", "blur"}
    for row in rows:
        if row["attack"] == "pgd":
            assert row["adv_auroc"] <= row["clean_auroc"] + 1e-9
        assert 0 <= row["adv_pixel_auroc"] <= 1


def test_shots_0_is_refused_for_a_detector_that_needs_reference_images():
    registry = get_registry()
    request = Request(noise_control=False, dataset="demo", data_root=None, category="weave", shots="0", seeds="0",
                           backbone="efficientnet_lite0", weights="", resolution="32", detector="anomalydino",
                           surrogate="score", attack="none", eps="8/255", calib="platt",
                           calib_fraction=0.3, options=[])
    with pytest.raises(RobustadError, match="shots 0: detector 'anomalydino' needs k >= 1"):
        build_cells(request, registry)  # before any work
