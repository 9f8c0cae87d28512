"""MVTec AD 2, MVTec LOCO, MPDD, BTAD and Real-IAD read in place, and VisA with a user's own objects.

Every tree here is generated in its release's layout (folder names, file extensions, mask conventions) with tiny
images; expected samples, masks and splits are written out by hand from what the tree holds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from robustad_plugins.btad import BTAD
from robustad_plugins.mpdd import MPDD
from robustad_plugins.mvtec_ad2 import MVTecAD2
from robustad_plugins.mvtec_loco import MVTecLOCO
from robustad_plugins.realiad import RealIAD
from robustad_plugins.visa import VisA

from robustad.engine.splits import make_split
from robustad.kit.images import load_mask
from robustad.plugins import PluginRegistry
from robustad.results.leaderboard import read_rows
from tests.test_datasets import make_mvtec_category, make_visa, one_line_error, write_split_csv

SIZE = (32, 32)
DEFECT = (slice(4, 12), slice(6, 14))  # rows, columns of the defect in every generated mask


def write_image(path: Path, seed: int, defect: bool = False, size: tuple[int, int] = SIZE) -> Path:
    """A small seeded noise texture (a bright square where the defect is), in the format of the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(60, 120, (size[1], size[0], 3), dtype=np.uint8)
    if defect:
        pixels[DEFECT] = 250
    Image.fromarray(pixels).save(path)
    return path


def write_mask(path: Path, value: int = 255, size: tuple[int, int] = SIZE,
               region: tuple[slice, slice] = DEFECT) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    values = np.zeros((size[1], size[0]), np.uint8)
    values[region] = value
    Image.fromarray(values).save(path)
    return path


def expected_split(paths: list[Path], k: int, seed: int) -> list[Path]:
    """The AnomalyDINO reference rule written out: sort the file paths, take the seed-th block of k."""
    return sorted(paths, key=lambda p: p.as_posix())[seed * k:(seed + 1) * k]


def check_split(data, k: int, seed: int, per_class: int) -> None:
    """Reference = the sorted slice of the training paths; calib/eval halve the test set (``per_class`` normal
    and ``per_class`` anomalous images), stratified: calib_fraction 0.5 puts per_class/2 of each class in calib."""
    split = make_split(data, k, seed, 0.5)
    assert [s.path for s in split.reference] == expected_split([s.path for s in data.train], k, seed)
    for part in (split.calib, split.eval):
        assert [s.label for s in part].count(0) == [s.label for s in part].count(1) == per_class // 2
    assert {s.path for s in split.calib} | {s.path for s in split.eval} == {s.path for s in data.test}
    assert not {s.path for s in split.calib} & {s.path for s in split.eval}


# --- MVTec AD 2 ------------------------------------------------------------------------------------------

def write_normals(folder: Path, train: int, good: int, test: str, name: str) -> None:
    """``train/good`` and ``validation/good`` (``train`` images each) and ``<test>/good`` (``good`` images)."""
    for i in range(train):
        write_image(folder / "train" / "good" / name.format(i), i)
        write_image(folder / "validation" / "good" / name.format(i), 50 + i)
    for i in range(good):
        write_image(folder / test / "good" / name.format(i), 100 + i)


def make_ad2(root: Path, category: str = "can", train: int = 3, good: int = 4, bad: int = 4) -> Path:
    folder = root / category
    write_normals(folder, train, good, "test_public", "{:03d}_regular.png")
    for i in range(bad):
        write_image(folder / "test_public" / "bad" / f"{i:03d}_regular.png", 200 + i, defect=True)
        write_mask(folder / "test_public" / "ground_truth" / "bad" / f"{i:03d}_regular_mask.png")
    for private in ("test_private", "test_private_mixed"):
        write_image(folder / private / "000_regular.png", 300)
    return folder


def test_ad2_reads_train_and_the_public_test_set_only(tmp_path):
    folder = make_ad2(tmp_path)
    make_ad2(tmp_path, "rice")
    (tmp_path / "my_notes").mkdir()
    assert MVTecAD2().categories(tmp_path) == ["can", "rice"]
    data = MVTecAD2().load(tmp_path, "can")
    assert [s.path for s in data.train] == [folder / "train/good" / f"{i:03d}_regular.png" for i in range(3)]
    assert [(s.path, s.label, s.mask, s.defect) for s in data.test] == (
        [(folder / "test_public/bad" / f"{i:03d}_regular.png", 1,
          folder / "test_public/ground_truth/bad" / f"{i:03d}_regular_mask.png", "bad") for i in range(4)]
        + [(folder / "test_public/good" / f"{i:03d}_regular.png", 0, None, "good") for i in range(4)])
    check_split(data, 1, 2, per_class=4)


@pytest.mark.parametrize("test_set", ["private", "private_mixed"])
def test_ad2_private_test_sets_are_refused_saying_why(test_set):
    message = one_line_error(lambda: MVTecAD2(test_set=test_set))
    assert f"test_{test_set}/ has no labels or masks" in message and "evaluation server" in message
    assert "use test_set=public" in message
    assert "expected public" in one_line_error(lambda: MVTecAD2(test_set="validation"))


def test_ad2_faults_are_one_line_errors_naming_the_file(tmp_path):
    folder = make_ad2(tmp_path)
    mask = folder / "test_public/ground_truth/bad/001_regular_mask.png"
    write_mask(mask, size=(16, 32))
    assert one_line_error(MVTecAD2().load, tmp_path, "can").startswith(f"mask {mask} is 16x32 but its image")
    mask.unlink()
    assert one_line_error(MVTecAD2().load, tmp_path, "can") == (
        f"defect image {folder / 'test_public/bad/001_regular.png'} has no mask: expected {mask}")
    assert "unknown mvtec_ad2 category 'bottle'" in one_line_error(MVTecAD2().load, tmp_path, "bottle")
    assert "'vial' not found" in one_line_error(MVTecAD2().load, tmp_path, "vial")
    assert f"{tmp_path / 'nowhere'} does not exist" in one_line_error(MVTecAD2().categories, tmp_path / "nowhere")


# --- MVTec LOCO ------------------------------------------------------------------------------------------

LOCO_REGIONS = ((slice(2, 6), slice(2, 6)), (slice(4, 10), slice(20, 30)))


def make_loco(root: Path, category: str = "pushpins", train: int = 3, good: int = 4, per_type: int = 2) -> Path:
    """LOCO: two masks per defect image, saturation-threshold values (not 255) in each."""
    folder = root / category
    write_normals(folder, train, good, "test", "{:03d}.png")
    for t, kind in enumerate(("logical_anomalies", "structural_anomalies")):
        for i in range(per_type):
            write_image(folder / "test" / kind / f"{i:03d}.png", 200 + 10 * t + i, defect=True)
            for m, (region, value) in enumerate(zip(LOCO_REGIONS, (38, 241))):
                write_mask(folder / "ground_truth" / kind / f"{i:03d}" / f"{m:03d}.png", value, region=region)
    return folder


@pytest.mark.parametrize("anomalies, kinds", [("both", ["logical_anomalies", "structural_anomalies"]),
                                              ("logical", ["logical_anomalies"]),
                                              ("structural", ["structural_anomalies"])])
def test_loco_subsets_keep_every_good_image(tmp_path, anomalies, kinds):
    folder = make_loco(tmp_path)
    data = MVTecLOCO(anomalies=anomalies).load(tmp_path, "pushpins")
    assert [s.path for s in data.train] == [folder / "train/good" / f"{i:03d}.png" for i in range(3)]
    expected = [(folder / "test" / kind / f"{i:03d}.png", 1, folder / "ground_truth" / kind / f"{i:03d}", kind)
                for kind in kinds for i in range(2)]
    expected += [(folder / "test/good" / f"{i:03d}.png", 0, None, "good") for i in range(4)]
    assert [(s.path, s.label, s.mask, s.defect) for s in data.test] == sorted(expected, key=lambda e: str(e[0]))


def test_loco_pixel_ground_truth_is_the_union_of_an_images_masks(tmp_path):
    folder = make_loco(tmp_path)
    data = MVTecLOCO().load(tmp_path, "pushpins")
    union = np.zeros((32, 32), bool)
    for region in LOCO_REGIONS:
        union[region] = True
    for sample in (s for s in data.test if s.label):
        assert (load_mask(sample.mask) == union).all()
    assert load_mask(folder / "ground_truth/logical_anomalies/000/001.png").sum() == 6 * 10
    check_split(data, 3, 0, per_class=4)


def test_loco_faults_are_one_line_errors(tmp_path):
    folder = make_loco(tmp_path)
    assert "expected one of both, logical, structural" in one_line_error(lambda: MVTecLOCO(anomalies="logic"))
    region = folder / "ground_truth/structural_anomalies/001"
    write_mask(region / "001.png", size=(32, 24))
    assert one_line_error(MVTecLOCO().load, tmp_path, "pushpins").startswith(f"mask {region / '001.png'} is 32x24")
    assert "differ in size" in one_line_error(load_mask, region)
    for part in region.iterdir():
        part.unlink()
    assert one_line_error(MVTecLOCO().load, tmp_path, "pushpins") == f"mask folder {region} holds no mask images"
    region.rmdir()
    image = folder / "test/structural_anomalies/001.png"
    assert one_line_error(MVTecLOCO().load, tmp_path, "pushpins") == (
        f"defect image {image} has no mask: expected {region}")
    assert MVTecLOCO(anomalies="logical").load(tmp_path, "pushpins")  # the broken type is not read


# --- MPDD ------------------------------------------------------------------------------------------------

def test_mpdd_reads_its_six_categories_in_the_mvtec_layout(tmp_path):
    folder = make_mvtec_category(tmp_path, "bracket_black", train=3, good=2, defects={"hole": 1, "scratches": 2})
    make_mvtec_category(tmp_path, "bottle")  # an MVTec AD category is not an MPDD one
    assert MPDD().categories(tmp_path) == ["bracket_black"]
    data = MPDD().load(tmp_path, "bracket_black")
    assert [(s.path, s.label, s.mask) for s in data.test if s.defect == "scratches"] == [
        (folder / "test/scratches" / f"{i:03d}.png", 1, folder / "ground_truth/scratches" / f"{i:03d}_mask.png")
        for i in range(2)]
    assert [s.label for s in data.test].count(0) == 2 and len(data.train) == 3
    assert "unknown mpdd category 'bottle'" in one_line_error(MPDD().load, tmp_path, "bottle")
    assert "no mpdd categories under" in one_line_error(MPDD().categories, tmp_path / "bottle")


# --- BTAD ------------------------------------------------------------------------------------------------

def make_btad(root: Path, product: str, image_ext: str, mask_ext: str, train: int = 3, ok: int = 4,
              ko: int = 4) -> Path:
    folder = root / product
    for i in range(train):
        write_image(folder / "train" / "ok" / f"{i:04d}{image_ext}", i)
    for i in range(ok):
        write_image(folder / "test" / "ok" / f"{i:04d}{image_ext}", 100 + i)
    for i in range(ko):
        write_image(folder / "test" / "ko" / f"{i:04d}{image_ext}", 200 + i, defect=True)
        write_mask(folder / "ground_truth" / "ko" / f"{i:04d}{mask_ext}")
    return folder


@pytest.mark.parametrize("product, image_ext, mask_ext", [("01", ".bmp", ".png"), ("02", ".png", ".png"),
                                                          ("03", ".bmp", ".bmp")])
def test_btad_matches_masks_by_file_stem(tmp_path, product, image_ext, mask_ext):
    folder = make_btad(tmp_path, product, image_ext, mask_ext)
    assert BTAD().categories(tmp_path) == [product]
    data = BTAD().load(tmp_path, product)
    assert [s.path for s in data.train] == [folder / "train/ok" / f"{i:04d}{image_ext}" for i in range(3)]
    assert [(s.path, s.label, s.mask, s.defect) for s in data.test] == (
        [(folder / "test/ko" / f"{i:04d}{image_ext}", 1, folder / "ground_truth/ko" / f"{i:04d}{mask_ext}", "ko")
         for i in range(4)] + [(folder / "test/ok" / f"{i:04d}{image_ext}", 0, None, "good") for i in range(4)])
    assert (load_mask(data.test[0].mask)[DEFECT]).all() and load_mask(data.test[0].mask).sum() == 8 * 8
    check_split(data, 1, 1, per_class=4)


def test_btad_faults_are_one_line_errors(tmp_path):
    folder = make_btad(tmp_path, "01", ".bmp", ".png")
    masks = folder / "ground_truth" / "ko"
    write_mask(masks / "0002.bmp")
    assert one_line_error(BTAD().load, tmp_path, "01") == (
        f"defect image {folder / 'test/ko/0002.bmp'} has 2 masks: 0002.bmp, 0002.png in {masks}; expected one")
    (masks / "0002.bmp").unlink()
    (masks / "0003.png").unlink()
    message = one_line_error(BTAD().load, tmp_path, "01")
    assert message.startswith(f"defect image {folder / 'test/ko/0003.bmp'} has no mask: expected {masks / '0003'}.")
    assert "matched by file stem" in message
    write_mask(masks / "0003.png", size=(20, 20))
    assert "is 20x20 but its image" in one_line_error(BTAD().load, tmp_path, "01")
    assert "unknown btad category '04'" in one_line_error(BTAD().load, tmp_path, "04")
    assert "--data-root" in one_line_error(BTAD().load, None, "01")


# --- Real-IAD --------------------------------------------------------------------------------------------

def realiad_name(category: str, sample: int, kind: str, view: int) -> str:
    """``audiojack_0007_NG_HS_C3_20231017153000``: the release's file-name pattern (without suffix)."""
    return f"{category}_{sample:04d}_{kind}_C{view}_2023101715{sample:02d}{view:02d}"


def make_realiad(base: Path, category: str = "audiojack", resolution: str = "realiad_256", train: int = 2,
                 ok: int = 4, ng: int = 4, nested: bool = False) -> tuple[Path, Path]:
    """``base/realiad_256/<category>/{OK,NG}`` and its split file; NG samples show their defect in views C1-C4
    only (view C5 has no mask, so the release counts it as normal). Returns (image root, split file)."""
    root = base / resolution
    entries: dict[str, list[dict]] = {"train": [], "test": []}
    for index in range(train + ok):
        split = "train" if index < train else "test"
        for view in range(1, 6):
            relative = f"OK/S{index:04d}/{realiad_name(category, index, 'OK', view)}.jpg"
            write_image(root / category / relative, 10 * index + view)
            entries[split].append({"category": category, "anomaly_class": "OK", "image_path": relative,
                                   "mask_path": None})
    for index in range(train + ok, train + ok + ng):
        for view in range(1, 6):
            name = realiad_name(category, index, "NG_HS", view)
            relative = f"NG/HS/S{index:04d}/{name}.jpg"
            write_image(root / category / relative, 10 * index + view, defect=view < 5)
            mask = None
            if view < 5:
                mask = f"NG/HS/S{index:04d}/{name}_mask.png"
                write_mask(root / category / mask)
            entries["test"].append({"category": category, "anomaly_class": "HS", "image_path": relative,
                                    "mask_path": mask})
    folder = base / "realiad_jsons" / ("realiad_jsons" if nested else "")
    folder.mkdir(parents=True, exist_ok=True)
    document = {"meta": {"prefix": f"{category}/", "normal_class": "OK", "pre_transform": None}, **entries}
    path = folder / f"{category}.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return root, path


@pytest.mark.parametrize("nested", [False, True])
def test_realiad_reads_the_split_file_and_every_view(tmp_path, nested):
    root, _ = make_realiad(tmp_path, nested=nested)
    make_realiad(tmp_path, "toy", ok=1, ng=1, nested=nested)
    (root / "usb").mkdir()  # an image folder without a split file is not a category
    assert RealIAD().categories(root) == ["audiojack", "toy"]
    data = RealIAD().load(root, "audiojack")
    folder = root / "audiojack"
    assert [s.path for s in data.train] == sorted(
        (folder / f"OK/S{i:04d}/{realiad_name('audiojack', i, 'OK', v)}.jpg" for i in range(2) for v in range(1, 6)),
        key=lambda p: p.as_posix())
    anomalous = [(s.path, s.mask, s.defect) for s in data.test if s.label]
    assert anomalous == [(folder / f"NG/HS/S{i:04d}/{realiad_name('audiojack', i, 'NG_HS', v)}.jpg",
                          folder / f"NG/HS/S{i:04d}/{realiad_name('audiojack', i, 'NG_HS', v)}_mask.png", "HS")
                         for i in range(6, 10) for v in range(1, 5)]
    assert [s.label for s in data.test].count(0) == 4 * 5 + 4  # OK samples, plus the NG samples' view C5


@pytest.mark.parametrize("views", ["C1", "c3", "C5"])
def test_realiad_one_view(tmp_path, views):
    root, _ = make_realiad(tmp_path)
    data = RealIAD(views=views).load(root, "audiojack")
    view = f"_{views.upper()}_"
    assert len(data.train) == 2 and all(view in s.path.name for s in data.train + data.test)
    assert [s.label for s in data.test] == ([] if views == "C5" else [1] * 4) + [0] * (8 if views == "C5" else 4)
    if views != "C5":
        check_split(data, 1, 1, per_class=4)


def test_realiad_faults_are_one_line_errors(tmp_path):
    root, path = make_realiad(tmp_path)
    assert "expected all or one of C1, C2, C3, C4, C5" in one_line_error(lambda: RealIAD(views="C6"))
    message = one_line_error(RealIAD(jsons="realiad_jsons_sv").categories, root)
    assert message.startswith(f"realiad split files not found: expected {tmp_path / 'realiad_jsons_sv'}/")
    assert "'usb' not found" in one_line_error(RealIAD().load, root, "usb")
    document = json.loads(path.read_text())

    def fault(change) -> str:
        broken = json.loads(json.dumps(document))
        change(broken)
        path.write_text(json.dumps(broken))
        return one_line_error(RealIAD().load, root, "audiojack")

    assert fault(lambda d: d["train"][3].update(anomaly_class="HS")) == (
        f"{path} train[3]: anomaly_class 'HS' in the train split; the reference set takes OK images only")
    assert fault(lambda d: d["test"][0].pop("mask_path")) == (
        f"{path} test[0]: expected an object with anomaly_class, image_path, mask_path")
    assert fault(lambda d: d.pop("meta")).endswith("expected an object with meta, train and test lists")
    missing = root / "audiojack/OK/S0000/gone.jpg"
    assert fault(lambda d: d["train"][0].update(image_path="OK/S0000/gone.jpg")) == (
        f"{path} train[0]: image {missing} does not exist")
    path.write_text(json.dumps(document))
    mask = root / "audiojack" / document["test"][-2]["mask_path"]
    write_mask(mask, size=(32, 16))
    assert one_line_error(RealIAD().load, root, "audiojack").startswith(f"mask {mask} is 32x16 but its image")
    mask.unlink()
    assert "has no mask: expected" in one_line_error(RealIAD().load, root, "audiojack")
    path.write_text("{not json")
    assert one_line_error(RealIAD().load, root, "audiojack").startswith(f"cannot read realiad split file {path}")


def test_realiad_view_must_be_readable_from_the_name_when_one_is_chosen(tmp_path):
    root, path = make_realiad(tmp_path)
    document = json.loads(path.read_text())
    odd = root / "audiojack/OK/S0000/no_view.jpg"
    write_image(odd, 7)
    document["train"][0]["image_path"] = "OK/S0000/no_view.jpg"
    path.write_text(json.dumps(document))
    assert len(RealIAD().load(root, "audiojack").train) == 10
    assert one_line_error(RealIAD(views="C2").load, root, "audiojack") == (
        f"{path} train[0]: cannot tell the camera view of no_view.jpg: expected _C1_ .. _C5_ in it")


def test_realiad_defect_entry_without_a_mask_is_normal_as_in_the_release_loader(tmp_path):
    root, path = make_realiad(tmp_path)
    document = json.loads(path.read_text())
    document["test"][-2]["mask_path"] = ""  # view C4 of the last NG sample
    path.write_text(json.dumps(document))
    data = RealIAD(views="C4").load(root, "audiojack")
    assert [s.label for s in data.test] == [1, 1, 1, 0] + [0] * 4
    assert data.test[3].path.name == document["test"][-2]["image_path"].split("/")[-1]


# --- VisA with a user's own objects ----------------------------------------------------------------------

def test_visa_accepts_any_object_its_split_csv_lists(tmp_path):
    rows = make_visa(tmp_path, "widget") + make_visa(tmp_path, "candle", train=2, good=1, anomalous=1)
    rows += [["gadget", "train", "normal", "gadget/Data/Images/Normal/0000.JPG", ""]]  # listed, no folder
    rows += [["..", "train", "normal", "../escape.JPG", ""]]  # not a folder name under the root
    write_split_csv(tmp_path, rows)
    assert VisA().categories(tmp_path) == ["candle", "widget"]
    data = VisA().load(tmp_path, "widget")
    assert len(data.train) == 4 and [s.label for s in data.test] == [1, 1, 1, 0, 0]
    assert "'gadget' not found" in one_line_error(VisA().load, tmp_path, "gadget")
    message = one_line_error(VisA().load, tmp_path, "gizmo")
    assert message.startswith("unknown visa category 'gizmo'") and message.endswith(": candle, widget")
    assert "unknown visa category '..'" in one_line_error(VisA().load, tmp_path, "..")


# --- registry and the command line -----------------------------------------------------------------------

NEW_DATASETS = ("mvtec_ad2", "mvtec_loco", "mpdd", "btad", "realiad")


def test_new_datasets_are_registered_with_their_licence():
    registry = PluginRegistry()
    registry.load_entry_points(set(NEW_DATASETS) | {"visa"})
    datasets = registry.components("dataset")
    assert set(datasets) == {*NEW_DATASETS, "visa"} and not registry.broken
    assert all("CC BY-NC-SA 4.0" in datasets[name].description for name in NEW_DATASETS)
    assert "CC BY 4.0" in datasets["visa"].description
    assert {o.name: o.default for o in datasets["mvtec_loco"].options} == {"anomalies": "both"}
    assert {o.name: o.default for o in datasets["realiad"].options} == {"views": "all", "jsons": "realiad_jsons"}


BENCH_CATEGORIES = {"mvtec_ad2": "can", "mvtec_loco": "juice_bottle", "mpdd": "tubes", "btad": "03",
                    "realiad": "audiojack"}
BENCH_OPTIONS = {"mvtec_loco": "anomalies=logical", "realiad": "views=C2"}


@pytest.fixture(scope="module")
def bench_rows(tmp_path_factory) -> list[dict[str, str]]:
    """One ``robustad bench`` subprocess over all five layouts (one tree each, side by side under one root; each
    reader sees only its own categories): one subprocess instead of five keeps this file near a minute."""
    from tests.conftest import run_cli

    base = tmp_path_factory.mktemp("bench")
    root, _ = make_realiad(base)  # root = base/realiad_256, split files in base/realiad_jsons
    make_ad2(root)
    make_loco(root, "juice_bottle", per_type=4)
    make_btad(root, "03", ".bmp", ".bmp")
    tubes = make_mvtec_category(root, "tubes", train=2, good=0, defects={})
    for i in range(4):
        write_image(tubes / "test/good" / f"{i:03d}.png", 100 + i)
        write_image(tubes / "test/anomalous" / f"{i:03d}.png", 200 + i, defect=True)
        write_mask(tubes / "ground_truth/anomalous" / f"{i:03d}_mask.png")
    out = base / "board.csv"
    options = [arg for name, value in BENCH_OPTIONS.items() for arg in ("--opt", f"dataset.{name}.{value}")]
    result = run_cli("bench", "--dataset", ",".join(NEW_DATASETS), "--data-root", root, "--category", "all",
                     "--backbone", "efficientnet_lite0", "--resolution", "32", "--surrogate", "linear",
                     "--attack", "fgsm", "--eps", "8/255", "--calib", "platt", "--calib-fraction", "0.5",
                     "--no-pixel-metrics", "--no-noise-control", "--out", out, *options)
    assert result.returncode == 0, result.stderr
    return read_rows(out)


@pytest.mark.parametrize("dataset", NEW_DATASETS)
def test_bench_gives_one_row_on_each_release_layout(bench_rows, dataset):
    rows = [r for r in bench_rows if r["dataset"] == dataset]
    assert len(rows) == 1 and rows[0]["category"] == BENCH_CATEGORIES[dataset]
    assert (rows[0]["n_ref"], rows[0]["n_calib"], rows[0]["n_eval"]) == ("1", "4", "4")
    assert rows[0]["clean_auroc"] and rows[0]["adv_auroc"]
    if dataset in BENCH_OPTIONS:
        key, value = BENCH_OPTIONS[dataset].split("=")
        assert json.loads(rows[0]["options"])[f"dataset.{dataset}"][key] == value
