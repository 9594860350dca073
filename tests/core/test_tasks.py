"""The long-range task generators and the tiny text corpora."""

import numpy as np
import pytest

from rnnkit import tasks
from rnnkit.errors import UsageError


@pytest.mark.parametrize("length", [2, 17, 300])
def test_adding_problem_targets_are_the_marked_sums(length):
    x, y = tasks.adding_problem(50, length, seed=3)
    assert x.shape == (50, length, 2) and y.shape == (50, 1)
    markers = x[..., 1]
    np.testing.assert_array_equal(markers.sum(1), 2)
    np.testing.assert_allclose((x[..., 0] * markers).sum(1), y[:, 0], rtol=1e-6)
    first = markers.argmax(1)
    assert np.all(first < length // 2)  # one marker in each half
    assert np.all(length - 1 - markers[:, ::-1].argmax(1) >= length // 2)


@pytest.mark.parametrize("generator", ["adding", "copy"])
def test_same_seed_same_data_other_seed_other_data(generator):
    first = tasks.make_task_data(generator, 20, 15, seed=1)
    again = tasks.make_task_data(generator, 20, 15, seed=1)
    other = tasks.make_task_data(generator, 20, 15, seed=2)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["x"], other["x"])


def test_copy_task_recall_steps_repeat_the_first_symbols():
    x, y, weight = tasks.copy_task(30, 20, num_symbols=5, copy_length=3, seed=0)
    assert x.shape == (30, 20, 7)
    symbols = x[:, :3].argmax(-1)
    np.testing.assert_array_equal(y[:, -3:], symbols)
    np.testing.assert_array_equal(weight.sum(1), 3)
    assert np.all(x[:, 20 - 4].argmax(-1) == 6)  # the "go" marker
    perfect = np.eye(6)[y]
    assert tasks.copy_accuracy(y, perfect, weight) == 1.0


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: tasks.adding_problem(10, 1), "length"),
        (lambda: tasks.adding_problem(0, 10), "num_samples"),
        (lambda: tasks.adding_problem(10, 5.5), "integer"),
        (lambda: tasks.copy_task(10, 6, copy_length=3), "length"),
        (lambda: tasks.make_task_data("sorting", 10, 10, 0), "Unknown task"),
        (lambda: tasks.tokenize(["", " "]), "non-empty"),
    ],
)
def test_bad_task_arguments(call, message):
    with pytest.raises(UsageError, match=message):
        call()


@pytest.mark.parametrize("distance", [1, 5, 20])
def test_allergy_stories_place_the_fact_distance_sentences_back(distance):
    stories, labels = tasks.allergy_stories(40, distance, seed=0)
    for story, label in zip(stories, labels, strict=True):
        sentences = story.split(" . ")
        assert len(sentences) == distance + 1
        assert ("allergic" in sentences[0]) == bool(label)
        assert sentences[-1] == "she ? eat peanut butter"
    assert 0 < labels.mean() < 1


def test_spanish_blank_is_decided_by_the_next_word():
    for phrase, answer in tasks.spanish_fill_blank(50, seed=0):
        words = phrase.split()
        noun = words[words.index("_") + 1]
        assert tasks.SPANISH_BLANKS[noun] == answer
    ids, vocabulary = tasks.tokenize(["a b", "b c d"])
    assert ids.shape == (2, 3) and ids[0, 2] == 0 and vocabulary["<unk>"] == 1
