"""Your own model: any nn.Module whose forward takes the family's named inputs and returns logits.

For images (family cnn) that is `forward(pixel_values)` with pixel_values float32 (batch, channels, H, W),
made from each image by the preprocessing in the config (channels, resize, centre crop, mean/std). This one
is ImageNet-shaped in miniature: RGB, global pooling, and a head with more outputs (10) than the example's
data set has classes (3), named by the config's label_map. edgeopt finds it through the factory named in the
config, `my_model:make_model`, imported from the config file's directory (or set `python_path`, or install
your package).
"""
from __future__ import annotations

from torch import nn


class TinyNet(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 16, in_channels: int = 3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1), nn.BatchNorm2d(4 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * width, num_classes))

    def forward(self, pixel_values):
        return self.head(self.features(pixel_values))


def make_model(num_classes: int = 10, width: int = 16) -> nn.Module:
    return TinyNet(num_classes, width)
