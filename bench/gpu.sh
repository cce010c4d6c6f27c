#!/usr/bin/env bash
# The GPU check of issue 11, for a bare GPU machine (torch, torchvision, numpy, pandas, pyarrow,
# scipy, scikit-learn; no prefect, dvc, faiss or pydantic; no network) and 15 minutes in all.
#
#   bash bench/gpu.sh --stage    # here, with network: data and pytest wheels into ignored folders
#   bash bench/gpu.sh            # there (e.g. the device tool, carrying bench/.data and bench/.wheels)
#
# It runs the GPU tests (pytest -m gpu), then bench/gpu.py: pretext, mine (torch on the GPU),
# scan and selflabel with resnet18_cifar on Fashion-MNIST's test split in at most 5 minutes,
# and the frozen-feature path (heads on the same pretext's cached features) beside it, printing
# images/s per stage, the total time and ACC; then bench/gpu_foundation.py: a frozen foundation
# backbone (FOUNDATION_BACKBONE, default DINOv2 ViT-S/14) with heads on its cached features, on
# the weights file FOUNDATION_WEIGHTS if one travelled, else random weights (times only).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--stage" ]; then
  mkdir -p bench/.data/fashion-mnist bench/.wheels
  cp "${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"/t10k-*-ubyte.gz bench/.data/fashion-mnist/
  python -m pip download --quiet pytest -d bench/.wheels
  # timm for the foundation bench; its dependencies but torch's (the machine has those).
  python -m pip download --quiet --no-deps timm -d bench/.wheels
  python -m pip download --quiet huggingface_hub safetensors pyyaml -d bench/.wheels
  du -sh bench/.data bench/.wheels
  exit 0
fi

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
python -m pytest --version >/dev/null 2>&1 \
  || python -m pip install --quiet --no-index --find-links bench/.wheels pytest
# Only the files with GPU tests are collected, and no installed pytest plugin is loaded, so
# nothing beyond torch's stack is imported.
mapfile -t gpu_tests < <(grep -rl "pytest.mark.gpu" tests --include "test_*.py")
PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python -m pytest -q -m gpu -p no:cacheprovider "${gpu_tests[@]}" 2>&1 | tail -25
timeout "${GPU_BENCH_TIMEOUT:-330}" python bench/gpu.py --data bench/.data/fashion-mnist --budget "${GPU_BENCH_BUDGET:-270}"
python -c "import timm" 2>/dev/null \
  || python -m pip install --quiet --no-index --find-links bench/.wheels timm \
  || echo "timm could not be installed from bench/.wheels: the foundation bench is skipped" >&2
if python -c "import timm" 2>/dev/null; then
  timeout "${FOUNDATION_BENCH_TIMEOUT:-180}" python bench/gpu_foundation.py --data bench/.data/fashion-mnist \
    --backbone "${FOUNDATION_BACKBONE:-timm/vit_small_patch14_dinov2.lvd142m}" \
    ${FOUNDATION_WEIGHTS:+--weights "$FOUNDATION_WEIGHTS"}
fi
