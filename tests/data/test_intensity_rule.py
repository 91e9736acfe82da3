"""The ``hu_window`` / ``intensity`` words parsed once into an IntensityRule (gemix_monai/data/intensity.py), and the
old import path of the preprocessing chain (gemix_monai.data.transforms) kept as a re-export."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from monai.data import MetaTensor

from gemix_monai.data import HU_WINDOWS, IntensityRule, Preprocessing, decide_intensity, get_transforms


@pytest.mark.parametrize(
    "hu_window, window, from_data",
    [
        ("auto", None, True),
        (None, None, False),
        ("none", None, False),
        ("None", None, False),
        ("lung", HU_WINDOWS["lung"], False),
        ((120, 40), (120.0, 40.0), False),
        ([400, 50], (400.0, 50.0), False),
    ],
)
def test_every_hu_window_word_is_parsed_once_into_the_rule(hu_window, window, from_data):
    rule = IntensityRule.parse(hu_window)
    assert (rule.window, rule.window_from_data, rule.scaling) == (window, from_data, "auto")


@pytest.mark.parametrize(
    "intensity, scaling",
    [("auto", "auto"), ("uint8", "uint8"), ("percentile", "percentile"), ([0, 4095], (0.0, 4095.0))],
)
def test_every_intensity_word_is_parsed_once_into_the_rule(intensity, scaling):
    rule = IntensityRule.parse(None, intensity)
    assert rule.scaling == scaling
    assert dataclasses.is_dataclass(rule) and hash(rule) == hash(IntensityRule.parse("none", intensity))  # frozen


@pytest.mark.parametrize(
    "words, option, value",
    [
        (("soft-tissue", "auto"), "hu_window", "'soft-tissue'"),
        (((0, 40), "auto"), "hu_window", "0"),
        (("auto", "bogus"), "intensity", "'bogus'"),
        (("auto", (5, 1)), "intensity", "(5, 1)"),
    ],
)
def test_a_word_it_does_not_know_is_an_error_naming_the_option_and_the_value(words, option, value):
    with pytest.raises(ValueError, match=rf"^{option} .*{value}"):
        IntensityRule.parse(*words)


def test_auto_is_refused_where_nothing_is_left_to_decide_it():
    with pytest.raises(ValueError, match=r"hu_window must be 'none', one of .* got 'auto'"):
        IntensityRule.parse("auto", allow_auto=False)
    with pytest.raises(ValueError, match="hu_window"):
        Preprocessing(image_size=16, hu_window="auto")
    with pytest.raises(ValueError, match="hu_window"):
        get_transforms(16, hu_window="auto")


def test_the_rule_says_what_auto_means_for_each_image():
    rule = IntensityRule.parse(None, "auto")
    eight_bit, sixteen_bit = MetaTensor(torch.zeros(1, 2, 2)), MetaTensor(torch.zeros(1, 2, 2))
    eight_bit.meta["source_dtype"], sixteen_bit.meta["source_dtype"] = "uint8", "uint16"
    assert (rule.mode_for(eight_bit), rule.mode_for(sixteen_bit)) == ("uint8", "percentile")
    assert rule.fixed_range("uint8") == (0.0, 255.0) and rule.fixed_range("percentile") is None
    windowed = rule.decided("abdomen")
    assert windowed.mode_for(eight_bit) == "window" and windowed.fixed_range("window") == (-150.0, 250.0)
    assert windowed.describe() == "CT window abdomen (W400/L50) → [-1, 1]"
    with pytest.raises(ValueError, match="decided from the data"):
        IntensityRule.parse("auto").mode_for(eight_bit)


def test_overrides_are_what_a_rule_fixes_over_a_stored_one():
    assert IntensityRule.parse("auto", "auto").overrides() == {}
    assert IntensityRule.parse("none", "auto").overrides() == {}
    assert IntensityRule.parse("lung", "minmax").overrides() == {"hu_window": (1500.0, -600.0), "intensity": "minmax"}


def test_decide_intensity_settles_the_window_from_the_data_and_keeps_the_scaling():
    rule = IntensityRule.parse("auto", "minmax")
    decided, reason = decide_intensity({"modality": "CT"}, [], rule)
    assert decided == IntensityRule(HU_WINDOWS["abdomen"], "minmax") and "modality CT" in reason
    decided, reason = decide_intensity({"hu_window": "none"}, [], rule)
    assert decided == IntensityRule(None, "minmax") and reason == "the datalist's own 'hu_window'"
    assert decide_intensity({"modality": "CT"}, [], IntensityRule.parse("none"))[0].window is None  # explicit wins


def test_a_contract_and_its_transform_carry_the_same_rule():
    pp = Preprocessing(image_size=16, hu_window="lung", intensity=[0, 10])
    assert pp.rule == IntensityRule((1500.0, -600.0), (0.0, 10.0))
    steps = {type(t).__name__: t for t in pp.transforms().transforms}
    assert steps["IntensityToTrainingRanged"].rule == pp.rule
    assert steps["IntensityToTrainingRanged"].window == (1500.0, -600.0)
    assert steps["IntensityToTrainingRanged"].intensity == [0.0, 10.0]


def test_the_old_module_path_re_exports_the_chain():
    import gemix_monai.data.preprocessing as preprocessing
    import gemix_monai.data.readers as readers
    import gemix_monai.data.transforms as old

    for name in preprocessing.__all__:
        assert getattr(old, name) is getattr(preprocessing, name), name
    for name in ("check_header", "check_pil_header", "check_min_side", "check_dicom_rescale", "check_nifti_dims"):
        assert getattr(old, name) is getattr(readers, name)
