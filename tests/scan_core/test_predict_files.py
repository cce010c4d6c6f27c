"""Predicting on image files: the same pixels and the same probabilities as the pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scan_core.augment.settings import AugmentSettings
from scan_core.data.readers.folder import read_folder
from scan_core.model_files import save_model
from scan_core.models import ClusteringModel, build_backbone
from scan_core.predict_files import (
    ModelFileError,
    UnreadableFilesError,
    load_image_file,
    load_trained_model,
    predict_arrays,
    predict_files,
)
from scan_core.training.common import predict_probabilities

COLUMNS = ["index", "source", "cluster", "confidence", "probs"]
MEAN, STD = (0.3,), (0.3,)


def tiny_model(path: Path, in_channels: int = 1, num_clusters: int = 4, image_size: int = 8) -> ClusteringModel:
    torch.manual_seed(0)
    model = ClusteringModel(build_backbone("small_cnn", in_channels), num_clusters)
    save_model(path, model, backbone="small_cnn", in_channels=in_channels, num_clusters=num_clusters,
               image_size=image_size, mean=MEAN * in_channels, std=STD * in_channels)
    return model


def direct(model: ClusteringModel, images: np.ndarray, channels: int = 1) -> np.ndarray:
    """The model's probabilities on in-memory uint8 [N, H, W, C] images, as the pipeline computes them."""
    settings = AugmentSettings(mean=MEAN * channels, std=STD * channels)
    return predict_probabilities(model, torch.from_numpy(images), settings, 64, torch.device("cpu"))[0].numpy()


def pixels(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.pt"
    tiny_model(path)
    return path


def test_predictions_on_files_equal_in_memory_predictions_on_the_same_pixels(tmp_path, model_file):
    gray, rgb = pixels(1, (8, 8)), pixels(2, (8, 8, 3))
    Image.fromarray(gray, "L").save(tmp_path / "gray.png")
    Image.fromarray(rgb, "RGB").save(tmp_path / "rgb.png")
    paths = [tmp_path / "gray.png", tmp_path / "rgb.png"]

    result = predict_files(paths, model_file, progress=False)

    model = load_trained_model(model_file).model
    luminance = np.asarray(Image.fromarray(rgb, "RGB").convert("L"))
    expected = direct(model, np.stack([gray, luminance])[..., None])
    assert list(result.table.columns) == COLUMNS
    assert result.table["index"].tolist() == [0, 1]
    assert result.table["source"].tolist() == [str(path) for path in paths]
    np.testing.assert_allclose(np.stack(result.table["probs"]), expected, atol=1e-6)
    assert result.table["cluster"].tolist() == expected.argmax(1).tolist()
    np.testing.assert_allclose(result.table["confidence"], expected.max(1), atol=1e-6)
    assert result.skipped == []


def test_files_of_any_size_get_the_folder_readers_pixels_and_predictions(tmp_path, model_file):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, shape in enumerate([(8, 8), (20, 13), (5, 9), (32, 32)]):
        Image.fromarray(pixels(10 + i, shape), "L").save(folder / f"img{i}.png")
    prepared = read_folder(folder, image_size=8)

    paths = [folder / source for source in prepared.sources]
    result = predict_files(paths, model_file, batch_size=3, progress=False)

    model = load_trained_model(model_file).model
    np.testing.assert_allclose(np.stack(result.table["probs"]), direct(model, prepared.images), atol=1e-6)


def test_rgba_and_large_images_are_converted_like_the_folder_reader(tmp_path, model_file):
    rgba = pixels(3, (10, 12, 4))
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    Image.fromarray(pixels(4, (30, 17, 3)), "RGB").save(tmp_path / "big.jpg")
    paths = [tmp_path / "alpha.png", tmp_path / "big.jpg"]

    images = np.stack([load_image_file(path, 8, 1) for path in paths])
    result = predict_files(paths, model_file, progress=False)

    assert images.shape == (2, 8, 8, 1) and images.dtype == np.uint8
    # transparency is composited on white, as the folder reader does
    rgb = read_folder(tmp_path, image_size=8).images
    luminance = np.stack([np.asarray(Image.fromarray(image, "RGB").convert("L")) for image in rgb])[..., None]
    np.testing.assert_array_equal(images, luminance)
    model = load_trained_model(model_file).model
    np.testing.assert_allclose(np.stack(result.table["probs"]), direct(model, images), atol=1e-6)


def test_grayscale_files_are_repeated_to_three_channels_for_an_rgb_model(tmp_path):
    model_path = tmp_path / "rgb_model.pt"
    model = tiny_model(model_path, in_channels=3, num_clusters=3)
    gray = pixels(5, (8, 8))
    Image.fromarray(gray, "L").save(tmp_path / "gray.png")

    trained = load_trained_model(model_path)
    result = predict_files([tmp_path / "gray.png"], trained, progress=False)

    expected = direct(model, np.repeat(gray[None, ..., None], 3, axis=3), channels=3)
    assert trained.in_channels == 3 and trained.num_clusters == 3
    np.testing.assert_allclose(np.stack(result.table["probs"]), expected, atol=1e-6)
    np.testing.assert_allclose(predict_arrays(trained, np.repeat(gray[None, ..., None], 3, axis=3), device="cpu"),
                               expected, atol=1e-6)


def test_unreadable_files_are_all_listed_or_skipped_when_asked(tmp_path, model_file):
    Image.fromarray(pixels(6, (8, 8)), "L").save(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    Image.fromarray(pixels(7, (8, 8)), "L").save(tmp_path / "good2.png")
    paths = [tmp_path / "broken.png", tmp_path / "good.png", tmp_path / "missing.png", tmp_path / "good2.png"]

    with pytest.raises(UnreadableFilesError) as error:
        predict_files(paths, model_file, progress=False)
    assert [source for source, _ in error.value.failures] == [str(paths[0]), str(paths[2])]
    assert "broken.png" in str(error.value) and "missing.png" in str(error.value)

    result = predict_files(paths, model_file, skip_bad=True, progress=False)
    assert result.table["index"].tolist() == [1, 3]
    assert result.table["source"].tolist() == [str(paths[1]), str(paths[3])]
    assert [source for source, _ in result.skipped] == [str(paths[0]), str(paths[2])]

    with pytest.raises(UnreadableFilesError, match="None of the files"):
        predict_files([paths[0]], model_file, skip_bad=True, progress=False)


def test_model_files_without_what_inference_needs_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        load_trained_model(tmp_path / "nowhere.pt")
    old = tmp_path / "old.pt"
    save_model(old, ClusteringModel(build_backbone("small_cnn", 1), 4), backbone="small_cnn",
               in_channels=1, num_clusters=4)
    with pytest.raises(ModelFileError, match="image_size, mean, std"):
        load_trained_model(old)
