"""Your own model: any nn.Module whose forward takes the family's named inputs and returns logits.

For images (family cnn) that is `forward(pixel_values)` with pixel_values float32 (batch, channels, H, W),
made from each image by the preprocessing in the config (channels, resize, centre crop, mean/std). This one
is ImageNet-shaped: RGB, a stride-2 stem, stride-2 stages and global pooling (so it takes any input size: 64 x 64
in the example's default, 224 x 224 with --imagenet, where `stages=5` ends at 7 x 7 like an ImageNet CNN), and a
head with more outputs (10, or 1000) than the example's data set has classes (3), named by the config's label_map.
edgeopt finds it through the factory named in the config, `my_model:make_model`, imported from the config file's
directory (or set `python_path`, or install your package).
"""
from __future__ import annotations

from torch import nn


class TinyNet(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 16, in_channels: int = 3, stages: int = 3):
        super().__init__()
        layers, channels = [], in_channels
        for stage in range(stages):  # each stage halves the resolution and doubles the width
            out = width * 2 ** stage
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
            channels = out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels, num_classes))

    def forward(self, pixel_values):
        return self.head(self.features(pixel_values))


def make_model(num_classes: int = 10, width: int = 16, stages: int = 3) -> nn.Module:
    return TinyNet(num_classes, width, stages=stages)
