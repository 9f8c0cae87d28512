"""MVTec AD 2 (Heckler-Kram et al., 2025), read in place: the public test set only.

Layout: ``ROOT/<category>/{train/good, validation/good, test_public/{good,bad}, test_public/ground_truth/bad/
<name>_mask.png, test_private, test_private_mixed}``. The private test sets come without labels or masks: they are
scored by MVTec's evaluation server, so robustad cannot compute a metric on them and refuses them.
"""

from __future__ import annotations

from robustad.errors import RobustadError
from robustad.hookspecs import hookimpl
from robustad.kit.layouts import FolderLayout, Release, ReleaseDataset

MVTEC_AD2_CATEGORIES = ("can", "fabric", "fruit_jelly", "rice", "sheet_metal", "vial", "wallplugs", "walnuts")
PRIVATE_TEST_SETS = {"private": "test_private", "private_mixed": "test_private_mixed"}
_LAYOUT = FolderLayout(test="test_public", ground_truth="test_public/ground_truth",
                       not_types=frozenset({"ground_truth"}))


class MVTecAD2(ReleaseDataset):
    """MVTec AD 2 as released; the reference pool is ``train/good`` (``validation/good`` is not used)."""

    name = "mvtec_ad2"
    description = ("MVTec AD 2 (8 categories), public test set (test_public) under --data-root; "
                   "licence CC BY-NC-SA 4.0")
    release = Release("mvtec_ad2", MVTEC_AD2_CATEGORIES, _LAYOUT)

    def __init__(self, *, test_set: str = "public") -> None:
        if test_set in PRIVATE_TEST_SETS:
            raise RobustadError(f"mvtec_ad2 test_set {test_set!r}: {PRIVATE_TEST_SETS[test_set]}/ has no labels or "
                                f"masks (it is scored only by MVTec's evaluation server, benchmark.mvtec.com); "
                                f"robustad needs labelled test images: use test_set=public")
        if test_set != "public":
            raise RobustadError(f"mvtec_ad2 test_set {test_set!r}: expected public (private and private_mixed "
                                f"have no labels)")
        self.test_set = test_set


@hookimpl
def register_datasets(register):
    register(MVTecAD2)
