"""The image store returns what numpy indexing of the whole array returns, reading rows
from the file at their offsets."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from scan_core.data import image_store
from scan_core.data.image_store import ImageStore


@pytest.fixture
def stored(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (40, 5, 4, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", array)
    return array, ImageStore(tmp_path / "images.npy")


def test_indexing_equals_numpy(stored):
    array, store = stored
    assert len(store) == 40 and store.shape == array.shape and store.dtype == np.uint8
    for index in ([5, 3, 3, 39, 0, 5], [7], [], np.arange(40)[::-1], [-1, -40, 2], np.array([[1, 2], [2, 9]])):
        np.testing.assert_array_equal(store[np.asarray(index, dtype=np.int64)], array[np.asarray(index, dtype=np.int64)])
    for key in (slice(3, 17), slice(None), slice(30, 100), slice(-5, None), slice(1, 30, 7), slice(10, 2)):
        np.testing.assert_array_equal(store[key], array[key])
    np.testing.assert_array_equal(store[np.int64(12)], array[12])
    np.testing.assert_array_equal(store[-2], array[-2])
    mask = np.arange(40) % 3 == 0
    np.testing.assert_array_equal(store[mask], array[mask])
    np.testing.assert_array_equal(np.asarray(store), array)
    with pytest.raises(IndexError):
        store[np.array([40])]
    with pytest.raises(IndexError):
        store[np.array([0.5])]


def test_row_views_index_like_numpy_subsets(stored):
    array, store = stored
    subset = np.array([30, 2, 2, 17, 8, 39, 0])
    view = store.rows(subset)
    assert len(view) == 7 and view.shape == (7, 5, 4, 3)
    np.testing.assert_array_equal(view[np.array([6, 0, 3, 3])], array[subset][[6, 0, 3, 3]])
    np.testing.assert_array_equal(view[2:6], array[subset][2:6])
    np.testing.assert_array_equal(view[-1], array[0])
    nested = view.rows(np.array([4, 0]))
    np.testing.assert_array_equal(nested[:], array[[8, 30]])
    with pytest.raises(IndexError):
        view[np.array([7])]


def test_sorted_runs_read_together(stored, monkeypatch):
    array, store = stored
    calls = []
    real = image_store.os.preadv
    monkeypatch.setattr(image_store.os, "preadv", lambda fd, buffers, offset: calls.append(offset) or real(fd, buffers, offset))
    np.testing.assert_array_equal(store[np.array([20, 21, 22, 3, 4])], array[[20, 21, 22, 3, 4]])
    assert calls == sorted(calls) and len(calls) == 2  # rows 3-4, then 20-22
    calls.clear()
    np.testing.assert_array_equal(store[5:25], array[5:25])
    assert len(calls) == 1


def test_store_pickles_without_its_descriptor(stored):
    array, store = stored
    store[np.array([1])]
    copy = pickle.loads(pickle.dumps(store.rows(np.array([4, 1]))))
    np.testing.assert_array_equal(copy[:], array[[4, 1]])


def test_truncated_file_is_refused(tmp_path):
    np.save(tmp_path / "images.npy", np.zeros((4, 2, 2, 1), dtype=np.uint8))
    data = (tmp_path / "images.npy").read_bytes()
    (tmp_path / "images.npy").write_bytes(data[:-3])
    with pytest.raises(ValueError, match="truncated"):
        ImageStore(tmp_path / "images.npy")


def test_report_pictures_read_single_images_from_a_view(stored, tmp_path):
    """evaluate hands the report a view of the evaluation rows, not their pixels."""
    from scan_core.report import thumbnail_uri
    from scan_core.figures import plot_prototypes

    array, store = stored
    view = store.rows(np.arange(10, 30))
    plot_prototypes(view, [np.array([0, 3]), np.array([19])], tmp_path / "prototypes.png")
    assert (tmp_path / "prototypes.png").stat().st_size > 0
    assert thumbnail_uri(view[np.int64(4)], None, 16) == thumbnail_uri(array[14], None, 16)


def test_predict_arrays_reads_a_store_batch_by_batch(tmp_path):
    """A prepared images.npy opened as a store predicts as its pixels do in memory."""
    from scan_core.predict_files import load_trained_model, predict_arrays
    from tests.scan_core.test_predict_files import pixels, tiny_model

    tiny_model(tmp_path / "model.pt", in_channels=3)
    images = pixels(4, (37, 8, 8, 3))
    np.save(tmp_path / "images.npy", images)
    trained = load_trained_model(tmp_path / "model.pt")
    store = ImageStore(tmp_path / "images.npy")
    np.testing.assert_allclose(predict_arrays(trained, store, batch_size=10, device="cpu"),
                               predict_arrays(trained, images, batch_size=10, device="cpu"), rtol=0, atol=1e-6)
