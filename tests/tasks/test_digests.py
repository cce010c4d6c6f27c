"""Stage input and output digests: remembered by file identity, so an unchanged large
artifact is not read again, and recomputed whenever the file changed."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

import tasks.common as common


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "artifacts" / "prepare"
    folder.mkdir(parents=True)
    reads: list[str] = []
    real = common.file_digest
    monkeypatch.setattr(common, "file_digest", lambda path: reads.append(path.name) or real(path))
    return folder, reads


def test_unchanged_file_is_not_read_again(project, monkeypatch):
    folder, reads = project
    monkeypatch.setattr(common, "_SETTLED_NS", 0)  # as if the files were written minutes ago
    images = folder / "images.npy"
    images.write_bytes(os.urandom(3 << 20))
    (folder / "dataset.json").write_text("{}")
    first = common.digest_paths(["artifacts/prepare"])
    assert first["artifacts/prepare/images.npy"] == hashlib.sha256(images.read_bytes()).hexdigest()
    assert sorted(reads) == ["dataset.json", "images.npy"]
    reads.clear()
    assert common.digest_paths(["artifacts/prepare"]) == first
    assert reads == []
    cached = json.loads(common.DIGEST_CACHE_FILE.read_text())
    assert cached[os.path.abspath("artifacts/prepare/images.npy")][1] == first["artifacts/prepare/images.npy"]


def test_changed_file_of_the_same_size_is_read_again(project, monkeypatch):
    folder, reads = project
    monkeypatch.setattr(common, "_SETTLED_NS", 0)
    images = folder / "images.npy"
    images.write_bytes(b"a" * 1000)
    before = common.digest_paths(["artifacts/prepare"])
    stat = images.stat()
    with open(images, "r+b") as handle:  # same size, same inode, new content
        handle.write(b"b")
    os.utime(images, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    reads.clear()
    after = common.digest_paths(["artifacts/prepare"])
    assert reads == ["images.npy"]
    assert after["artifacts/prepare/images.npy"] == hashlib.sha256(b"b" + b"a" * 999).hexdigest()
    assert after != before


def test_freshly_written_file_is_not_remembered(project):
    folder, reads = project
    (folder / "images.npy").write_bytes(b"x")
    common.digest_paths(["artifacts/prepare"])
    common.digest_paths(["artifacts/prepare"])
    assert reads == ["images.npy", "images.npy"]  # within the timestamp's settle window


def test_a_broken_or_raced_cache_file_only_costs_a_rehash(project, monkeypatch):
    folder, reads = project
    monkeypatch.setattr(common, "_SETTLED_NS", 0)
    (folder / "images.npy").write_bytes(b"x" * 10)
    common.DIGEST_CACHE_FILE.parent.mkdir(parents=True, exist_ok=True)
    common.DIGEST_CACHE_FILE.write_text('{"half a fi')
    digest = common.digest_paths(["artifacts/prepare"])["artifacts/prepare/images.npy"]
    assert digest == hashlib.sha256(b"x" * 10).hexdigest() and reads == ["images.npy"]
    # Another process wrote its own entry meanwhile: both survive the merge.
    other = folder / "other.bin"
    other.write_bytes(b"y")
    common._write_digest_cache({os.path.abspath(other): [[1, 2, 3, 4], "f" * 64]})
    assert set(json.loads(common.DIGEST_CACHE_FILE.read_text())) == {os.path.abspath(folder / "images.npy"),
                                                                     os.path.abspath(other)}
