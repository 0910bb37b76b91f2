"""Network architectures for the registry, all written here (no weights, no downloads)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MnistCNN(nn.Module):
    """Two 5x5 conv blocks and a small head: about 0.26 M parameters, ~99% on MNIST."""

    def __init__(self, num_classes: int = 10, width: int = 32, hidden: int = 64) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2 * width * 7 * 7, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class MnistMLP(nn.Module):
    """A fully connected MNIST model: a second architecture for transfer studies."""

    def __init__(self, num_classes: int = 10, hidden: int = 256) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(),
            nn.Linear(28 * 28, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


# --- CIFAR ResNet-(6n+2), He et al. 2016, "option A" shortcuts -------------------------
# Attribute names follow the layout of the pretrained CIFAR-10 checkpoints
# (akamaster/pytorch_resnet_cifar10) so that those state dicts load with strict=True.


class _PadShortcut(nn.Module):
    """Parameter-free shortcut: subsample by 2 and zero-pad the channels."""

    def __init__(self, planes: int) -> None:
        super().__init__()
        self.pad = planes // 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class _BasicBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut. Where the shape changes, the shortcut
    zero-pads (the CIFAR ResNets) or, with ``projection``, is a 1x1 convolution (ResNet-18)."""

    def __init__(self, in_planes: int, planes: int, stride: int, projection: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = (
                nn.Sequential(
                    nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
                )
                if projection
                else _PadShortcut(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs: 16/32/64 channels, n blocks per stage."""

    def __init__(self, depth: int = 20, num_classes: int = 10) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, ...), got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._stage(16, 16, n, 1)
        self.layer2 = self._stage(16, 32, n, 2)
        self.layer3 = self._stage(32, 64, n, 2)
        self.linear = nn.Linear(64, num_classes)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)

    @staticmethod
    def _stage(in_planes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [_BasicBlock(in_planes, planes, stride, projection=False)]
        layers += [_BasicBlock(planes, planes, 1, projection=False) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


class CifarResNet18(nn.Module):
    """ResNet-18 for 32x32 inputs (3x3 stride-1 stem, no max-pool); ``width`` = first stage."""

    def __init__(self, num_classes: int = 10, width: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        stages, in_planes = [], width
        for index, planes in enumerate((width, 2 * width, 4 * width, 8 * width)):
            stride = 1 if index == 0 else 2
            stages.append(
                nn.Sequential(
                    _BasicBlock(in_planes, planes, stride, True),
                    _BasicBlock(planes, planes, 1, True),
                )
            )
            in_planes = planes
        self.layers = nn.Sequential(*stages)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


def cifar_mobilenetv2(
    num_classes: int = 10, width: float = 1.0, downsample_early: bool = False
) -> nn.Module:
    """torchvision's MobileNetV2 adapted to 32x32: stride-1 stem and first stride-2 stage at 1.

    ``downsample_early`` keeps ImageNet's stride 2 on the 24-channel stage: every later
    layer then runs at half the resolution, which costs about 5x less compute per image
    (what makes CPU training feasible) for a little accuracy.
    """
    from torchvision.models import MobileNetV2

    setting = [
        # expansion t, channels c, repeats n, stride s (ImageNet uses s=2 on the 24-channel stage)
        [1, 16, 1, 1],
        [6, 24, 2, 2 if downsample_early else 1],
        [6, 32, 3, 2],
        [6, 64, 4, 2],
        [6, 96, 3, 1],
        [6, 160, 3, 2],
        [6, 320, 1, 1],
    ]
    net = MobileNetV2(num_classes=num_classes, width_mult=width, inverted_residual_setting=setting)
    stem = net.features[0][0]
    assert isinstance(stem, nn.Conv2d)
    stem.stride = (1, 1)
    return net
