"""The seed's CNNModel and the larger ResNet-style teacher, both for 1 x 28 x 28 inputs."""
from __future__ import annotations

import torch
from torch import nn


class CNNModel(nn.Module):
    """The seed CNN: conv3x3(32) - pool - conv3x3(64) - pool - fc(128) - fc(10). 64*7*7 flatten = 28x28 input."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, conv1: int = 32, conv2: int = 64,
                 hidden: int = 128, image_size: int = 28):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, conv1, 3, padding=1)
        self.conv2 = nn.Conv2d(conv1, conv2, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(conv2 * (image_size // 4) ** 2, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)
        self.dropout = nn.Dropout(0.25)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(pixel_values)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = self.dropout(torch.relu(self.fc1(torch.flatten(x, 1))))
        return self.fc2(x)


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus a (projected when needed) shortcut, as in ResNet-18/34."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, inner: int | None = None):
        super().__init__()
        inner = inner or out_channels
        self.conv1 = nn.Conv2d(in_channels, inner, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(inner)
        self.conv2 = nn.Conv2d(inner, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """A ResNet for 28 x 28 inputs: stem, three stages (28, 14, 7 px), global pool, linear. ~40 M MACs by default."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, stem: int = 32,
                 widths: tuple[int, ...] = (32, 64, 128), blocks: tuple[int, ...] = (1, 1, 1)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU())
        layers, channels = [], stem
        for stage, (width, count) in enumerate(zip(widths, blocks)):
            for index in range(count):
                stride = 2 if stage > 0 and index == 0 else 1
                layers.append(BasicBlock(channels, width, stride))
                channels = width
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(pixel_values))
        return self.fc(torch.flatten(self.pool(x), 1))
