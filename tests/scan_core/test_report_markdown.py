"""The report's Markdown summary: its tables say what the metrics say."""

from __future__ import annotations

from scan_core.report import markdown_report


def test_report_shows_accuracy_and_label_free_health_tables() -> None:
    metrics = {
        "kmeans": {"acc": 0.5, "nmi": 0.4, "ari": 0.3, "health": {"neighbor_agreement": 0.81, "modularity": 0.72,
                                                                     "size_balance": 0.99}},
        "scan": {"acc": 0.9, "nmi": 0.8, "ari": 0.7, "health": {"neighbor_agreement": 0.93, "modularity": 0.83,
                                                                  "size_balance": 0.98, "mean_confidence": 0.97,
                                                                  "confident_share": 0.6}},
        "split": "all",
    }
    text = markdown_report("SCAN report", metrics, ["../plots/a.png"], ["a note"])
    assert "| scan | 0.9000 | 0.8000 | 0.7000 |" in text
    assert "| kmeans | 0.810 | 0.720 | 0.990 |  |  |" in text
    assert "| scan | 0.930 | 0.830 | 0.980 | 0.970 | 0.600 |" in text
    assert "- a note" in text and "![a](../plots/a.png)" in text


def test_report_of_an_unlabeled_run_still_has_the_health_table() -> None:
    metrics = {"scan": {"cluster_sizes": [3, 4], "health": {"neighbor_agreement": 0.9, "modularity": 0.8,
                                                            "size_balance": 0.99}}}
    text = markdown_report("SCAN report", metrics, [], [])
    assert "| model | ACC" not in text
    assert "| scan | 0.900 | 0.800 | 0.990 |" in text


def test_report_of_overclustering_shows_both_accuracies_side_by_side() -> None:
    metrics = {"scan": {"acc": 0.6, "acc_many_to_one": 0.95, "nmi": 0.8, "ari": 0.7}}
    text = markdown_report("SCAN report", metrics, [], [])
    assert "| model | ACC | ACC many-to-one | NMI | ARI |" in text
    assert "| scan | 0.6000 | 0.9500 | 0.8000 | 0.7000 |" in text
