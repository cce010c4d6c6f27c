"""Backbones, the SimCLR projection head and SCAN's multi-head clustering model."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models import resnet18, resnet50

from scan_core.names import BACKBONES, HEAD_KINDS, is_foundation


class SmallConvNet(nn.Module):
    """Three conv blocks and global pooling: enough for 8-32 px images, fast on a CPU."""

    def __init__(self, in_channels: int, width: int = 32) -> None:
        super().__init__()

        def block(channels_in: int, channels_out: int) -> list[nn.Module]:
            return [
                nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(channels_out),
                nn.ReLU(inplace=True),
            ]

        self.features = nn.Sequential(
            *block(in_channels, width),
            *block(width, width),
            nn.MaxPool2d(2),
            *block(width, 2 * width),
            *block(2 * width, 2 * width),
            nn.MaxPool2d(2, ceil_mode=True),
            *block(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.output_dim = 4 * width

    def forward(self, images: Tensor) -> Tensor:
        return self.features(images)


def _torchvision_resnet(name: str, in_channels: int, cifar_stem: bool) -> nn.Module:
    network = resnet18(weights=None) if name.startswith("resnet18") else resnet50(weights=None)
    if cifar_stem:
        network.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        network.maxpool = nn.Identity()
    elif in_channels != 3:
        network.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
    network.output_dim = network.fc.in_features
    network.fc = nn.Identity()
    return network


def build_backbone(name: str, in_channels: int) -> nn.Module:
    """A backbone mapping ``[B, C, H, W]`` to ``[B, output_dim]`` features.

    ``resnet18_cifar`` is ResNet-18 with the CIFAR stem (3x3 conv, no max-pool), as in
    SCAN's CIFAR/STL recipe; ``resnet18`` and ``resnet50`` keep torchvision's ImageNet stem.
    A foundation model (``timm/...``, ``open_clip/...``) comes with random weights here
    (``scan_core.foundation.load_foundation`` gives its trained ones) and takes any channel count.
    """
    if is_foundation(name):
        from scan_core.foundation import FoundationBackbone  # timm and open_clip are an optional extra

        return FoundationBackbone(name)
    if name == "small_cnn":
        return SmallConvNet(in_channels)
    if name in ("resnet18_cifar", "resnet18", "resnet50"):
        return _torchvision_resnet(name, in_channels, cifar_stem=name.endswith("_cifar"))
    raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")


class ContrastiveModel(nn.Module):
    """Backbone plus SimCLR's two-layer MLP projection head.

    ``projection_dim=None`` means no head (the identity): a backbone pretrained elsewhere
    (``pretext.method: pretrained``) has no trained projection, so its "projections" are its
    backbone features and the pretext model file keeps one format for both methods.
    """

    def __init__(self, backbone: nn.Module, projection_dim: int | None = 128) -> None:
        super().__init__()
        self.backbone = backbone
        hidden = backbone.output_dim
        self.head = nn.Identity() if projection_dim is None else nn.Sequential(
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, projection_dim)
        )

    @property
    def has_projection(self) -> bool:
        return not isinstance(self.head, nn.Identity)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.backbone(images))


MLP_HIDDEN = 512  # TEMI's heads on frozen foundation features: two layers, 512 wide


def cluster_head(kind: str, in_features: int, num_clusters: int) -> nn.Module:
    """One head: a linear layer (SCAN's), or a two-layer MLP (what heads on frozen foundation
    features use: a linear map of such features separates fewer semantic classes)."""
    if kind == "linear":
        return nn.Linear(in_features, num_clusters)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(in_features, MLP_HIDDEN), nn.ReLU(inplace=True),
                             nn.Linear(MLP_HIDDEN, num_clusters))
    raise ValueError(f"unknown head {kind!r}; choose one of {', '.join(HEAD_KINDS)}")


class ClusteringModel(nn.Module):
    """Backbone with ``num_heads`` heads (``cluster_head``) of ``num_clusters`` logits each.

    ``forward`` returns logits ``[num_heads, B, num_clusters]``; after head selection a
    model keeps a single head and still returns a leading head axis of size 1.
    """

    def __init__(self, backbone: nn.Module, num_clusters: int, num_heads: int = 1, head: str = "linear") -> None:
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleList(cluster_head(head, backbone.output_dim, num_clusters) for _ in range(num_heads))

    def forward(self, images: Tensor) -> Tensor:
        return self.heads_on(self.backbone(images))

    def heads_on(self, features: Tensor) -> Tensor:
        """Every head's logits on backbone ``features`` already computed."""
        return torch.stack([head(features) for head in self.heads])

    def keep_head(self, index: int) -> None:
        self.heads = nn.ModuleList([self.heads[index]])
