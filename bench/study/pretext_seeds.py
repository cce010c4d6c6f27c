"""Seed study, step 1: SimCLR on digits for several seeds; caches each model, its
embeddings and neighbors (projection and backbone space) and prints neighbor purity and
k-means ACC per seed.

    python bench/study/pretext_seeds.py digits 0,1,2,3,4 '{"pretext": {"epochs": 100}, "augment": {"rotation": 15}}' _tag

Outputs go to $STUDY_DIR (default /tmp/scan-study)/cache/digits_tag/.
"""
import os, sys, time, json
from pathlib import Path
import numpy as np, torch, torch.nn.functional as F
from scan_core.data.sources import load_image_set
from scan_core.augment.settings import AugmentSettings
from scan_core.checkpoint import TrainingCheckpoint
from scan_core.training.pretext import PretextSettings, train_pretext
from scan_core.training.common import compute_features
from scan_core.mining import mine_neighbors, neighbor_matrix, neighbor_purity

name, seeds = sys.argv[1], [int(s) for s in sys.argv[2].split(",")]
extra = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
tag = sys.argv[4] if len(sys.argv) > 4 else ""
out = Path(os.environ.get("STUDY_DIR", "/tmp/scan-study")) / "cache" / f"{name}{tag}"; out.mkdir(parents=True, exist_ok=True)
if name == "digits":
    s = load_image_set("digits", "all"); aug_kw = dict(hflip=False, crop_min_scale=0.6, jitter_strength=0.4)
    pre = dict(backbone="small_cnn", epochs=60, batch_size=256, lr=0.4, temperature=0.5)
else:
    raise SystemExit(name)
pre.update(extra.get("pretext", {})); aug_kw.update(extra.get("augment", {}))
images = torch.from_numpy(s.images)
px = s.images.astype(np.float64) / 255
aug = AugmentSettings(mean=tuple(float(v) for v in px.mean(axis=(0, 1, 2))), std=tuple(float(v) for v in px.std(axis=(0, 1, 2))), **aug_kw)
np.save(out / "images.npy", s.images); np.save(out / "labels.npy", s.labels)
json.dump({"mean": aug.mean, "std": aug.std}, open(out / "norm.json", "w"))
torch.set_num_threads(2)
for seed in seeds:
    t = time.time()
    model, hist = train_pretext(images, PretextSettings(seed=seed, **pre), aug, TrainingCheckpoint(None, "x"),
                                torch.device("cpu"), progress=False)
    feats = F.normalize(compute_features(model, images, aug, 512, torch.device("cpu")), dim=1).numpy()
    table = mine_neighbors(feats, 20)
    pur = neighbor_purity(table, s.labels, [5, 20])
    fb = F.normalize(compute_features(model.backbone, images, aug, 512, torch.device("cpu")), dim=1).numpy()
    tb = mine_neighbors(fb, 20); tb.to_parquet(out / f"nbbb_s{seed}.parquet")
    pur_bb = neighbor_purity(tb, s.labels, [5, 20])
    torch.save(model.state_dict(), out / f"pretext_s{seed}.pt")
    np.save(out / f"emb_s{seed}.npy", feats)
    table.to_parquet(out / f"nb_s{seed}.parquet")
    from sklearn.cluster import KMeans
    from scan_core.evaluation import cluster_metrics
    km = cluster_metrics(s.labels, KMeans(10, n_init=10, random_state=0).fit_predict(feats))["acc"]
    print(f"seed {seed}: {time.time()-t:.0f}s purity {pur} backbone {pur_bb} kmeans {km:.3f}", flush=True)
