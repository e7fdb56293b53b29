"""The paper's models: LeNet5 (MNIST) and the CIFAR variant of ResNet18."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["LeNet5", "resnet18_cifar"]


class LeNet5(nn.Module):
    """LeNet-5 for 28x28 inputs (the first convolution pads by 2)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores of a batch.

        Parameters
        ----------
        x : (N, C, 28, 28) torch.Tensor
            Normalised images.

        Returns
        -------
        (N, num_classes) torch.Tensor
        """
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class _BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class _ResNet(nn.Module):
    def __init__(self, blocks, num_classes: int, in_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)  # 3x3 stem, no max-pool
        self.bn1 = nn.BatchNorm2d(64)
        layers, cin = [], 64
        for i, (cout, n) in enumerate(zip((64, 128, 256, 512), blocks)):
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(_BasicBlock(cin, cout, stride))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layers(out)
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


def resnet18_cifar(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """ResNet-18 as used for CIFAR (3x3 stem, stride 1, no max-pool).

    Parameters
    ----------
    num_classes : int
        Outputs of the final linear layer.
    in_channels : int
        Channels of the input images.
    """
    return _ResNet((2, 2, 2, 2), num_classes, in_channels)
