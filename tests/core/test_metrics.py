import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from oddscope.core.models.metrics import detection_metrics, metrics_table


def test_auroc_and_ap_match_sklearn():
    rng = np.random.default_rng(0)
    labels = rng.random(500) < 0.05
    scores = rng.normal(size=500) + 2.0 * labels
    result = detection_metrics(scores, labels)
    assert result["auroc"] == pytest.approx(roc_auc_score(labels, scores))
    assert result["average_precision"] == pytest.approx(average_precision_score(labels, scores))


def test_recall_at_k_by_hand():
    #          0    1    2    3    4    5    6    7
    scores = [0.9, 0.1, 0.8, 0.3, 0.7, 0.2, 0.6, 0.5]
    labels = [1, 1, 0, 0, 1, 0, 0, 1]  # 4 anomalies; ranking: 0,2,4,6,7,3,5,1
    result = detection_metrics(scores, labels, ks=(1, 3, 5, 100))
    assert result["recall@1"] == 1 / 4
    assert result["recall@3"] == 2 / 4
    assert result["recall@5"] == 3 / 4
    assert result["recall@100"] == 1.0  # k clipped to the 8 items


def test_nan_scores_are_left_out():
    scores = np.array([5.0, np.nan, 4.0, 1.0, np.nan, 0.5])
    labels = np.array([1, 1, 0, 0, 0, 1], dtype=bool)
    result = detection_metrics(scores, labels, ks=(1, 2))
    kept = ~np.isnan(scores)
    assert result["auroc"] == pytest.approx(roc_auc_score(labels[kept], scores[kept]))
    assert result["recall@1"] == 1 / 2  # 2 scored anomalies, the skipped one does not count
    assert result["recall@2"] == 1 / 2


def test_undefined_metrics_are_nan_not_errors():
    no_anomalies = detection_metrics([0.1, 0.2, 0.3], [0, 0, 0])
    assert all(math.isnan(v) for v in no_anomalies.values())
    only_anomalies = detection_metrics([0.1, 0.2], [1, 1], ks=(1,))
    assert math.isnan(only_anomalies["auroc"])
    assert only_anomalies["average_precision"] == 1.0 and only_anomalies["recall@1"] == 0.5


def test_bad_inputs():
    with pytest.raises(ValueError, match="differ in length"):
        detection_metrics([0.1, 0.2], [1])
    with pytest.raises(ValueError, match="boolean or 0/1"):
        detection_metrics([0.1, 0.2], [2, 0])


def test_metrics_table_rows_in_given_order_and_aligned():
    results = {
        "mahalanobis": {"auroc": 0.91234, "average_precision": 0.5, "recall@10": math.nan},
        "knn": {"auroc": 0.8, "average_precision": 0.25, "recall@10": 0.1},
    }
    lines = metrics_table(results).splitlines()
    assert lines[0].split() == ["detector", "auroc", "average_precision", "recall@10"]
    assert [line.split()[0] for line in lines[1:]] == ["mahalanobis", "knn"]
    assert lines[1].split()[1:] == ["0.912", "0.500", "-"]
    assert len({len(line) for line in lines}) == 1
