"""SCAN_DEVICES: how many processes the training stages use."""

from __future__ import annotations

import pytest

from tasks.device import processes


def test_one_process_unless_told(monkeypatch) -> None:
    monkeypatch.delenv("SCAN_DEVICES", raising=False)
    assert processes() == 1


def test_scan_devices_sets_the_process_count(monkeypatch) -> None:
    monkeypatch.setenv("SCAN_DEVICE", "cpu")
    monkeypatch.setenv("SCAN_DEVICES", " 3 ")
    assert processes() == 3


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", ""])
def test_scan_devices_must_be_a_positive_whole_number(monkeypatch, value: str) -> None:
    monkeypatch.setenv("SCAN_DEVICES", value)
    with pytest.raises(ValueError, match="SCAN_DEVICES must be a whole number"):
        processes()
