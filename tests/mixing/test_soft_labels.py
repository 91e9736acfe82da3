import numpy as np
import pytest
import torch

from gemix_monai.mixing import check_simplex, to_soft_label


@pytest.mark.parametrize("label", [2, np.int64(2), torch.tensor(2), np.array(2)])
def test_single_index_becomes_one_hot(label):
    out = to_soft_label(label, 4)
    assert out.dtype in (torch.float32, np.float32)
    np.testing.assert_array_equal(np.asarray(out), [0, 0, 1, 0])


@pytest.mark.parametrize("label", [torch.tensor([2]), np.array([2])])
def test_one_dimensional_indices_are_a_batch_even_of_one(label):
    # A short last batch of one sample must keep its batch axis.
    np.testing.assert_array_equal(np.asarray(to_soft_label(label, 4)), [[0, 0, 1, 0]])


def test_batch_of_indices_becomes_batch_of_one_hot():
    out = to_soft_label(torch.tensor([0, 2, 1]), 3)
    assert out.shape == (3, 3) and out.dtype == torch.float32
    assert torch.equal(out.argmax(1), torch.tensor([0, 2, 1]))


def test_channel_axis_of_indices_is_dropped():
    assert to_soft_label(torch.tensor([[1], [0]]), 2).shape == (2, 2)


def test_numpy_input_gives_numpy_output():
    out = to_soft_label(np.array([1, 0]), 2)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32


def test_float_whole_numbers_are_read_as_indices():
    np.testing.assert_array_equal(to_soft_label(torch.tensor(2.0), 3), [0, 0, 1])
    np.testing.assert_array_equal(to_soft_label(torch.tensor([2.0, 0.0]), 3), [[0, 0, 1], [1, 0, 0]])


def test_soft_label_passes_through_as_float32():
    soft = torch.tensor([[0.25, 0.75], [0.5, 0.5]], dtype=torch.float64)
    out = to_soft_label(soft, 2)
    assert out.dtype == torch.float32 and torch.allclose(out, soft.float())


@pytest.mark.parametrize(
    "label, match",
    [
        (5, "class index 5 is out of range"),
        (-1, "class index -1 is out of range"),
        (torch.tensor([0.5, 0.6]), "sum to 1"),
        (torch.tensor([1.5, -0.5]), "negative entry"),
        (torch.tensor([0.5, 0.25, 0.25]), "whole-number class indices"),
        ("a", "must be an int, numpy array or torch tensor"),
        (True, "bool"),
    ],
)
def test_bad_labels_raise_clear_errors(label, match):
    with pytest.raises(ValueError, match=match):
        to_soft_label(label, 2)


@pytest.mark.parametrize("k", [1, 0, 2.5, True])
def test_num_classes_must_be_at_least_two(k):
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        to_soft_label(0, k)


def test_without_num_classes_soft_labels_pass_and_indices_are_refused_by_name():
    soft = torch.tensor([[0.25, 0.75]])
    assert torch.equal(to_soft_label(soft, None), soft)
    with pytest.raises(ValueError, match="my_label: got class indices.*pass num_classes"):
        to_soft_label(torch.tensor([1, 0]), None, name="my_label")


def test_batched_float_vector_is_a_batch_of_indices_not_one_soft_label():
    out = to_soft_label(torch.tensor([1.0, 0.0]), 2, batched=True)
    assert torch.equal(out, torch.tensor([[0.0, 1.0], [1.0, 0.0]]))


def test_errors_name_the_argument_and_the_first_bad_row():
    labels = torch.tensor([[1.0, 0.0], [0.3, 0.3], [0.9, 0.9]])
    with pytest.raises(
        ValueError, match=r"batch\['label'\] must be points of the probability simplex.*row 1 sums to 0.6"
    ):
        to_soft_label(labels, 2, name="batch['label']")


def test_check_simplex_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        check_simplex(torch.tensor([float("nan"), 1.0]))
