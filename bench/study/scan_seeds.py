"""Seed study, step 2: SCAN and self-labeling on the cached pretext models of step 1.
Prints one line per seed (ACC of the kept model and of the last epoch, the kept epoch and
head) and writes per-epoch traces (ACC for reporting, selection loss, neighbor agreement,
mean confidence, balance, confident count) to $STUDY_DIR/trace_<cache>_<tag>_s<seed>.json.

    python bench/study/scan_seeds.py digits_tag 0,1,2,3,4 '{"scan": {"num_heads": 10, "num_neighbors": 5}, "augment": {"strong_ops": 2, "cutout_fraction": 0.25}, "backbone_neighbors": true}' mytag
"""
import os, sys, time, json
from pathlib import Path
import numpy as np, pandas as pd, torch
from scan_core.augment.settings import AugmentSettings
from scan_core.checkpoint import TrainingCheckpoint
from scan_core.models import ContrastiveModel, build_backbone
from scan_core.mining import neighbor_matrix
from scan_core.evaluation import cluster_metrics
from scan_core.training.clustering import ScanSettings, train_scan
from scan_core.training.warm_start import kmeans_partitions
from scan_core.training.selflabel import SelflabelSettings, train_selflabel
from scan_core.training.common import predict_probabilities

name, seeds, variant = sys.argv[1], [int(s) for s in sys.argv[2].split(",")], json.loads(sys.argv[3])
tag = sys.argv[4]
study = Path(os.environ.get("STUDY_DIR", "/tmp/scan-study"))
cache = study / "cache" / name
images = torch.from_numpy(np.load(cache / "images.npy")); labels = np.load(cache / "labels.npy")
norm = json.load(open(cache / "norm.json"))
aug = AugmentSettings(mean=tuple(norm["mean"]), std=tuple(norm["std"]),
                      **{"hflip": False, "crop_min_scale": 0.6, "strong_ops": 4, "cutout_fraction": 0.5, **variant.get("augment", {})})
scan_kw = dict(num_clusters=10, num_heads=1, num_neighbors=20, entropy_weight=5.0, epochs=40, batch_size=128, lr=5e-4)
scan_kw.update(variant.get("scan", {}))
sl_kw = dict(threshold=0.99, epochs=20, batch_size=256, lr=1e-4); sl_kw.update(variant.get("selflabel", {}))
torch.set_num_threads(2)
probe = lambda p: {"acc": cluster_metrics(labels, p.argmax(1).numpy())["acc"]}
probe_labels = lambda c: cluster_metrics(labels, c)["acc"]
rows = []
for seed in seeds:
    t = time.time()
    pseed = variant.get("pretext_seed", seed)
    cm = ContrastiveModel(build_backbone("small_cnn", 1), 128); cm.load_state_dict(torch.load(cache / f"pretext_s{pseed}.pt"))
    _, nb = neighbor_matrix(pd.read_parquet(cache / (("nbbb" if variant.get("backbone_neighbors") else "nb") + f"_s{pseed}.parquet")), scan_kw["num_neighbors"])
    nb = torch.from_numpy(nb)
    initial = None
    if variant.get("init") == "kmeans":
        initial = kmeans_partitions(np.load(cache / f"emb_s{pseed}.npy"), scan_kw["num_clusters"], scan_kw["num_heads"], seed)
        print("k-means partitions ACC:", [round(probe_labels(c), 3) for c in initial.numpy()], flush=True)
    model, hist, sel = train_scan(cm.backbone, images, nb, ScanSettings(seed=seed, init=variant.get("init", "random"), **scan_kw), aug,
                                  TrainingCheckpoint(None, "x"), torch.device("cpu"), progress=False, probe=probe,
                                  initial_clusters=initial)
    scan_probs = predict_probabilities(model, images, aug, 512, torch.device("cpu"))[0]
    np.save(study / f"pred_{name}_{tag}_s{seed}.npy", scan_probs.argmax(1).numpy())
    scan_acc = probe(scan_probs)["acc"]
    last_acc = hist[-1]["acc"]
    t_scan = time.time() - t
    if sl_kw["epochs"]:
        model, shist = train_selflabel(model, images, SelflabelSettings(seed=seed, **sl_kw), aug, TrainingCheckpoint(None, "x"),
                                       torch.device("cpu"), progress=False, probe=probe)
        sl_acc = probe(predict_probabilities(model, images, aug, 512, torch.device("cpu"))[0])["acc"]
    else:
        sl_acc, shist = float("nan"), []
    row = dict(seed=seed, scan=scan_acc, scan_last=last_acc, best_epoch=sel["epoch"], head=sel["head"], selflabel=sl_acc,
               sl_epochs=len(shist), t_scan=round(t_scan), t_total=round(time.time() - t))
    rows.append(row)
    print(json.dumps(row), flush=True)
    with open(study / f"trace_{name}_{tag}_s{seed}.json", "w") as f:
        json.dump({"scan": hist, "selflabel": shist, "selection": sel}, f)
df = pd.DataFrame(rows)
print(f"== {tag}: scan mean {df.scan.mean():.4f} min {df.scan.min():.4f} | last-epoch mean {df.scan_last.mean():.4f} | "
      f"selflabel mean {df.selflabel.mean():.4f} min {df.selflabel.min():.4f}", flush=True)
