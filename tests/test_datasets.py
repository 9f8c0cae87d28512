"""Dataset plugins (mvtec, folder, visa, demo) and the image readers, on trees built here and on real bottle images."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pytest
import robustad_plugins.demo as demo_module
from PIL import Image
from robustad_plugins.demo import Demo, ensure_generated
from robustad_plugins.mvtec import Folder, MVTecAD
from robustad_plugins.visa import VisA
from sklearn.metrics import roc_auc_score

from robustad.engine.splits import make_split
from robustad.errors import RobustadError
from robustad.kit.images import image_size, load_mask, load_rgb
from robustad.plugins import PluginRegistry


def one_line_error(call, *args) -> str:
    with pytest.raises(RobustadError) as info:
        call(*args)
    message = str(info.value)
    assert "\n" not in message
    return message


def write_image(path: Path, size: tuple[int, int] = (16, 12), value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value // 2, 255 - value)).save(path)
    return path


def write_mask(path: Path, size: tuple[int, int] = (16, 12)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = np.zeros(size[::-1], np.uint8)
    mask[2:5, 3:7] = 255
    Image.fromarray(mask).save(path)
    return path


def make_mvtec_category(root: Path, category: str, train: int = 4, good: int = 3,
                        defects: dict[str, int] | None = None) -> Path:
    """A category folder in the MVTec AD layout with tiny images and masks."""
    folder = root / category
    for i in range(train):
        write_image(folder / "train" / "good" / f"{i:03d}.png", value=i)
    for i in range(good):
        write_image(folder / "test" / "good" / f"{i:03d}.png", value=100 + i)
    for defect, count in (defects if defects is not None else {"crack": 2, "hole": 1}).items():
        for i in range(count):
            write_image(folder / "test" / defect / f"{i:03d}.png", value=200 + i)
            write_mask(folder / "ground_truth" / defect / f"{i:03d}_mask.png")
    return folder


# --- mvtec ------------------------------------------------------------------------------------------------

def test_mvtec_reads_the_official_layout(tmp_path):
    folder = make_mvtec_category(tmp_path, "bottle", train=5, good=3, defects={"crack": 2, "hole": 1})
    data = MVTecAD().load(tmp_path, "bottle")
    assert (data.dataset, data.category) == ("mvtec", "bottle")
    assert [s.path for s in data.train] == [folder / "train" / "good" / f"{i:03d}.png" for i in range(5)]
    assert all(s.label == 0 and s.mask is None for s in data.train)
    expected_test = (
        [(folder / "test" / "crack" / f"{i:03d}.png", 1, folder / "ground_truth" / "crack" / f"{i:03d}_mask.png",
          "crack") for i in range(2)]
        + [(folder / "test" / "good" / f"{i:03d}.png", 0, None, "good") for i in range(3)]
        + [(folder / "test" / "hole" / "000.png", 1, folder / "ground_truth" / "hole" / "000_mask.png", "hole")]
    )
    assert [(s.path, s.label, s.mask, s.defect) for s in data.test] == expected_test


def test_mvtec_categories_are_the_known_ones_present(tmp_path):
    for category in ("carpet", "bottle", "my_widget"):
        make_mvtec_category(tmp_path, category)
    (tmp_path / "notes").mkdir()
    assert MVTecAD().categories(tmp_path) == ["bottle", "carpet"]


def test_mvtec_unknown_or_missing_category_lists_the_ones_found(tmp_path):
    make_mvtec_category(tmp_path, "bottle")
    message = one_line_error(MVTecAD().load, tmp_path, "bottel")
    assert "unknown mvtec category 'bottel'" in message and "found under" in message and "bottle" in message
    message = one_line_error(MVTecAD().load, tmp_path, "zipper")
    assert "'zipper' not found" in message and message.endswith("found: bottle")


def test_missing_root_is_an_error_naming_it(tmp_path):
    missing = tmp_path / "nowhere"
    for dataset in (MVTecAD(), Folder(), VisA()):
        assert str(missing) in one_line_error(dataset.categories, missing)
        assert str(missing) in one_line_error(dataset.load, missing, "bottle")
        assert "--data-root" in one_line_error(dataset.load, None, "bottle")


def test_root_without_categories_says_what_is_expected(tmp_path):
    (tmp_path / "stuff").mkdir()
    assert "no mvtec categories under" in one_line_error(MVTecAD().categories, tmp_path)
    assert "train/good" in one_line_error(Folder().categories, tmp_path)


def test_empty_train_folder_is_an_error_naming_it(tmp_path):
    folder = make_mvtec_category(tmp_path, "bottle", train=0)
    (folder / "train" / "good").mkdir(parents=True)
    (folder / "train" / "good" / "readme.txt").write_text("not an image")
    assert one_line_error(MVTecAD().load, tmp_path, "bottle") == f"no images in {folder / 'train' / 'good'}"


def test_hidden_folders_and_other_files_are_not_data(tmp_path):
    folder = make_mvtec_category(tmp_path, "bottle", defects={"crack": 1})
    write_image(folder / "test" / ".ipynb_checkpoints" / "000.png")
    write_image(folder / "train" / "good" / ".000.png")
    (folder / "test" / "good" / "notes.txt").write_text("not an image")
    data = MVTecAD().load(tmp_path, "bottle")
    assert len(data.train) == 4 and sorted(s.defect for s in data.test) == ["crack", "good", "good", "good"]


def test_missing_test_images_is_an_error(tmp_path):
    folder = make_mvtec_category(tmp_path, "bottle", good=0, defects={})
    (folder / "test" / "good").mkdir(parents=True)
    assert "no images in the test folders" in one_line_error(MVTecAD().load, tmp_path, "bottle")


def test_defect_image_without_mask_is_an_error_naming_both(tmp_path):
    folder = make_mvtec_category(tmp_path, "bottle")
    (folder / "ground_truth" / "crack" / "001_mask.png").unlink()
    message = one_line_error(MVTecAD().load, tmp_path, "bottle")
    assert message == (f"defect image {folder / 'test' / 'crack' / '001.png'} has no mask: "
                       f"expected {folder / 'ground_truth' / 'crack' / '001_mask.png'}")


def test_mask_of_another_size_is_an_error_naming_both_sizes(tmp_path):
    folder = make_mvtec_category(tmp_path, "bottle")
    write_mask(folder / "ground_truth" / "hole" / "000_mask.png", size=(8, 8))
    message = one_line_error(MVTecAD().load, tmp_path, "bottle")
    assert str(folder / "ground_truth" / "hole" / "000_mask.png") in message
    assert "is 8x8 but its image" in message and "is 16x12" in message


def test_a_mask_in_another_image_format_is_found(tmp_path):
    folder = make_mvtec_category(tmp_path, "widget", defects={"dent": 1})
    png = folder / "ground_truth" / "dent" / "000_mask.png"
    Image.open(png).save(png.with_suffix(".bmp"))
    png.unlink()
    assert Folder().load(tmp_path, "widget").test[0].mask == png.with_suffix(".bmp")


def test_unreadable_defect_image_is_caught_at_load_naming_the_file(tmp_path):
    folder = make_mvtec_category(tmp_path, "bottle")
    broken = folder / "test" / "crack" / "000.png"
    broken.write_bytes(b"this is not a png")
    assert one_line_error(MVTecAD().load, tmp_path, "bottle").startswith(f"cannot read image {broken}")


# --- folder -----------------------------------------------------------------------------------------------

def test_folder_categories_are_subfolders_with_train_good(tmp_path):
    make_mvtec_category(tmp_path, "widget")
    make_mvtec_category(tmp_path, "gadget", defects={"scratch": 2})
    (tmp_path / "docs" / "train").mkdir(parents=True)
    assert Folder().categories(tmp_path) == ["gadget", "widget"]
    data = Folder().load(tmp_path, "gadget")
    assert data.dataset == "folder" and len(data.train) == 4
    assert sorted((s.defect, s.label) for s in data.test) == [("good", 0)] * 3 + [("scratch", 1)] * 2
    message = one_line_error(Folder().load, tmp_path, "docs")
    assert message == f"folder category 'docs' not found under {tmp_path}; found: gadget, widget"


# --- visa -------------------------------------------------------------------------------------------------

def make_visa(root: Path, category: str, train: int = 4, good: int = 2, anomalous: int = 3) -> list[list[str]]:
    """A VisA category as released (JPG images, PNG masks with values 0/1); returns its 1cls.csv rows."""
    rows = []
    for i in range(train + good):
        relative = f"{category}/Data/Images/Normal/{i:04d}.JPG"
        write_image(root / relative, size=(20, 14), value=i)
        rows.append([category, "train" if i < train else "test", "normal", relative, ""])
    for i in range(anomalous):
        image, mask = f"{category}/Data/Images/Anomaly/{i:03d}.JPG", f"{category}/Data/Masks/Anomaly/{i:03d}.png"
        write_image(root / image, size=(20, 14), value=200)
        (root / mask).parent.mkdir(parents=True, exist_ok=True)
        values = np.zeros((14, 20), np.uint8)
        values[3:6, 4:9] = 1
        Image.fromarray(values).save(root / mask)
        rows.append([category, "test", "anomaly", image, mask])
    return rows


def write_split_csv(root: Path, rows: list[list[str]], header=("object", "split", "label", "image", "mask")) -> Path:
    path = root / "split_csv" / "1cls.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def visa_root(tmp_path) -> Path:
    rows = make_visa(tmp_path, "candle") + make_visa(tmp_path, "pcb1", train=3, good=1, anomalous=2)
    rows += [["fryum", "train", "normal", "fryum/Data/Images/Normal/0000.JPG", ""]]  # listed, folder absent
    write_split_csv(tmp_path, rows)
    return tmp_path


def test_visa_reads_the_release_in_place(visa_root):
    assert VisA().categories(visa_root) == ["candle", "pcb1"]
    data = VisA().load(visa_root, "candle")
    normal = visa_root / "candle" / "Data" / "Images" / "Normal"
    assert [s.path for s in data.train] == [normal / f"{i:04d}.JPG" for i in range(4)]
    assert [(s.path, s.label, s.mask, s.defect) for s in data.test] == (
        [(visa_root / "candle/Data/Images/Anomaly" / f"{i:03d}.JPG", 1,
          visa_root / "candle/Data/Masks/Anomaly" / f"{i:03d}.png", "anomaly") for i in range(3)]
        + [(normal / f"{i:04d}.JPG", 0, None, "good") for i in (4, 5)])
    mask = load_mask(data.test[0].mask)
    assert mask.shape == (14, 20) and mask.sum() == 15 and mask[3:6, 4:9].all()


def test_visa_category_errors(visa_root):
    message = one_line_error(VisA().load, visa_root, "candel")
    assert "unknown visa category 'candel'" in message and message.endswith("candle, pcb1")
    assert "'fryum' not found" in one_line_error(VisA().load, visa_root, "fryum")


def test_visa_needs_its_split_csv_with_the_release_columns(tmp_path):
    rows = make_visa(tmp_path, "candle")
    assert "split_csv/1cls.csv" in one_line_error(VisA().categories, tmp_path)
    write_split_csv(tmp_path, [r[:4] for r in rows], header=("object", "split", "label", "image"))
    assert "lacks columns mask" in one_line_error(VisA().load, tmp_path, "candle")


def test_visa_anomaly_without_mask_or_with_a_bad_label_is_an_error(tmp_path):
    rows = make_visa(tmp_path, "candle")
    rows[-1][4] = ""
    csv_path = write_split_csv(tmp_path, rows)
    message = one_line_error(VisA().load, tmp_path, "candle")
    assert message.startswith(f"{csv_path} line 10: defect image") and message.endswith("has no mask")
    rows[-1][2] = "broken"
    write_split_csv(tmp_path, rows)
    assert "label 'broken' is not normal or anomaly" in one_line_error(VisA().load, tmp_path, "candle")


def test_visa_missing_image_or_mask_of_another_size(tmp_path):
    rows = make_visa(tmp_path, "candle")
    write_split_csv(tmp_path, rows)
    Image.new("L", (5, 5)).save(tmp_path / rows[-1][4])
    assert "is 5x5 but its image" in one_line_error(VisA().load, tmp_path, "candle")
    (tmp_path / rows[0][3]).unlink()
    assert f"image {tmp_path / rows[0][3]} does not exist" in one_line_error(VisA().load, tmp_path, "candle")


# --- images -----------------------------------------------------------------------------------------------

def test_load_rgb_converts_to_rgb(tmp_path):
    path = tmp_path / "gray.png"
    Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4)).save(path)
    image = load_rgb(path)
    assert image.mode == "RGB" and image.size == (4, 3) == image_size(path)
    assert (np.asarray(image)[..., 1] == np.arange(12).reshape(3, 4)).all()


def test_truncated_or_unreadable_image_is_a_one_line_error_naming_the_file(tmp_path):
    path = write_image(tmp_path / "full.png", size=(64, 64))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(path.read_bytes()[:-40])
    assert image_size(truncated) == (64, 64)  # the header is intact: only a full decode notices
    assert one_line_error(load_rgb, truncated).startswith(f"cannot read image {truncated}:")
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\x00" * 100)
    assert one_line_error(load_rgb, garbage) == f"cannot read image {garbage}: not an image format PIL can read"
    assert one_line_error(load_mask, tmp_path / "nope.png") == f"cannot read mask {tmp_path / 'nope.png'}: no such file"


@pytest.mark.parametrize("mode", ["L", "P", "RGB", "RGBA", "1", "I;16"])
def test_load_mask_nonzero_is_defect_in_every_mode(tmp_path, mode):
    values = np.zeros((6, 5), np.uint8)
    values[1, 2] = 1
    values[4, 0:3] = 255
    image = Image.fromarray(values > 0) if mode == "1" else Image.fromarray(values).convert(mode)
    assert image.mode == mode
    path = tmp_path / "mask.png"
    image.save(path)
    mask = load_mask(path)
    assert mask.dtype == bool and (mask == (values > 0)).all()


# --- demo -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_cache(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("cache")
    start = time.perf_counter()
    ensure_generated(base)
    assert time.perf_counter() - start < 5.0
    return base


def test_demo_goes_into_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("ROBUSTAD_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert demo_module.cache_dir() == tmp_path / "xdg" / "robustad"
    monkeypatch.setenv("ROBUSTAD_CACHE", str(tmp_path / "mine"))
    assert demo_module.cache_dir() == tmp_path / "mine"
    monkeypatch.setattr(demo_module, "generate", lambda root: make_mvtec_category(root, "disc"))
    data = Demo().load(None, "disc")
    assert data.train[0].path.is_relative_to(tmp_path / "mine" / "demo-v1")


def test_demo_layout_counts_sizes_and_masks(demo_cache):
    assert Demo().categories(None) == ["disc", "weave"]
    for category, defects in (("weave", {"scratch": 8, "stain": 7}), ("disc", {"spot": 8, "chip": 7})):
        data = Demo().load(demo_cache, category)
        assert len(data.train) == 30
        found = {}
        for sample in data.test:
            found[sample.defect] = found.get(sample.defect, 0) + 1
        assert found == {"good": 15, **defects}
        for sample in data.test:
            image = np.asarray(load_rgb(sample.path), np.float64)
            assert image.shape == (128, 128, 3)
            if sample.label:
                mask = load_mask(sample.mask)
                assert 10 <= mask.sum() < 0.1 * mask.size
                ring = _ring_around(mask)  # a defect differs from what surrounds it
                assert np.abs(image[mask].mean(axis=0) - image[ring].mean(axis=0)).max() > 0.04 * 255


def _ring_around(mask: np.ndarray, width: int = 3) -> np.ndarray:
    grown = mask.copy()
    for _ in range(width):
        grown |= np.roll(grown, 1, 0) | np.roll(grown, -1, 0) | np.roll(grown, 1, 1) | np.roll(grown, -1, 1)
    return grown & ~mask


def test_demo_is_deterministic(demo_cache, tmp_path):
    ensure_generated(tmp_path)
    for relative in ("weave/train/good/007.png", "disc/test/chip/003.png", "disc/ground_truth/spot/005_mask.png"):
        first = np.asarray(Image.open(demo_cache / "demo-v1" / relative))
        second = np.asarray(Image.open(tmp_path / "demo-v1" / relative))
        assert (first == second).all()


def test_demo_generation_that_loses_a_race_uses_the_winners_copy(tmp_path, monkeypatch):
    def generate_while_another_process_finishes(root: Path) -> None:
        make_mvtec_category(root, "weave")
        make_mvtec_category(tmp_path / "demo-v1", "disc")  # the other process renames its copy first

    monkeypatch.setattr(demo_module, "generate", generate_while_another_process_finishes)
    assert ensure_generated(tmp_path) == tmp_path / "demo-v1"
    assert [p.name for p in tmp_path.iterdir()] == ["demo-v1"]  # our staging folder is gone
    assert [p.name for p in (tmp_path / "demo-v1").iterdir()] == ["disc"]


def test_demo_unknown_category_lists_both(demo_cache):
    assert one_line_error(Demo().load, demo_cache, "bottle").endswith("found: disc, weave")


def patch_knn_auroc(split) -> float:
    """1-shot patch nearest neighbour on raw pixels (8x8 patches, stride 4): image score = worst patch."""
    def patches(sample):
        pixels = np.asarray(load_rgb(sample.path), np.float32) / 255
        windows = np.lib.stride_tricks.sliding_window_view(pixels, (8, 8, 3))[::4, ::4, 0]
        return windows.reshape(-1, 192)

    bank = np.concatenate([patches(s) for s in split.reference])
    bank_sq = (bank ** 2).sum(1)
    scores = []
    for sample in split.test:
        query = patches(sample)
        distances = (query ** 2).sum(1)[:, None] + bank_sq[None] - 2 * query @ bank.T
        scores.append(distances.min(axis=1).max())
    return roc_auc_score([s.label for s in split.test], scores)


@pytest.mark.parametrize("category", ["weave", "disc"])
def test_demo_defects_are_learnable_from_one_shot(demo_cache, category):
    auroc = patch_knn_auroc(make_split(Demo().load(demo_cache, category), 1, 0))
    assert auroc > 0.75  # raw pixels are a weak detector; ImageNet CNN features separate these better


# --- registry and the real bottle images ------------------------------------------------------------------

def test_every_dataset_plugin_is_registered():
    registry = PluginRegistry()
    registry.load_entry_points({"mvtec", "visa", "demo"})
    datasets = registry.components("dataset")
    assert {"mvtec", "folder", "visa", "demo"} <= set(datasets)
    assert datasets["folder"].plugin == "mvtec"


@pytest.mark.integration
def test_real_bottle(mvtec_root):
    data = MVTecAD().load(mvtec_root, "bottle")
    folder = mvtec_root / "bottle"
    assert MVTecAD().categories(mvtec_root) == ["bottle"]
    shipped = sorted((folder / "train" / "good").glob("*.png"))
    assert len(data.train) == len(shipped) == 140 and [s.path for s in data.train] == shipped
    labels = [s.label for s in data.test]
    assert labels.count(0) == 20 and labels.count(1) == 63
    defects = [s.defect for s in data.test if s.label]
    assert {d: defects.count(d) for d in set(defects)} == {"broken_large": 20, "broken_small": 22, "contamination": 21}
    masks = [s.mask for s in data.test if s.label]
    assert len(set(masks)) == 63 and all(m == folder / "ground_truth" / s.defect / f"{s.path.stem}_mask.png"
                                         for s, m in zip([s for s in data.test if s.label], masks))
    image = load_rgb(data.test[0].path)
    assert image.mode == "RGB" and image.size == (900, 900)
    raw = np.asarray(Image.open(masks[0]))
    assert (load_mask(masks[0]) == (raw > 0)).all() and raw.max() == 255

    split = make_split(data, 3, 2)
    assert [s.path.name for s in split.reference] == ["006.png", "007.png", "008.png"]
    # floor(0.3 * 83) = 24 calib images: 24*20/83 = 5.78 and 24*63/83 = 18.2 -> 6 normal and 18 anomalous
    assert [s.label for s in split.calib].count(0) == 6 and [s.label for s in split.calib].count(1) == 18
    assert [s.label for s in split.eval].count(0) == 14 and [s.label for s in split.eval].count(1) == 45
    assert len(make_split(data, None, 2).reference) == 140
    assert "needs normal training images 100..149 but only 140 exist" in one_line_error(make_split, data, 50, 2)
