"""The names params choose from, apart from the code behind them: the params schema, which
every stage depends on, imports this and no data reader or network."""

DATASET_NAMES = ("digits", "fashion_mnist", "cifar10", "cifar20", "stl10", "imagenet", "folder")
BACKBONES = ("small_cnn", "resnet18_cifar", "resnet18", "resnet50")
# Foundation models, used frozen with their authors' weights (scan_core.foundation):
# timm/<model>[.<tag>] and open_clip/<architecture>:<pretrained tag>.
FOUNDATION_PREFIXES = ("timm/", "open_clip/")
HEAD_KINDS = ("linear", "mlp")  # scan.head (scan_core.models.cluster_head)
PRETEXT_METHODS = ("simclr", "pretrained")
# Local pretrained weights (pretext.weights: weights/<file>) live in this folder, which dvc.yaml
# lists as a dependency of pretext: DVC deps cannot follow a param, a fixed folder can.
WEIGHTS_DIR = "weights"


def is_weights_file(weights: str) -> bool:
    """``pretext.weights`` names a local file (it has a ``/``), not a torchvision weights name."""
    return "/" in weights


def is_foundation(backbone: str) -> bool:
    """``backbone`` names a timm or open_clip model (``scan_core.foundation``)."""
    return backbone.startswith(FOUNDATION_PREFIXES)
