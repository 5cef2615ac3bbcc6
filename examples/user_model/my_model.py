"""Your own model: any nn.Module whose forward takes the family's named inputs and returns logits.

For images (family cnn) that is `forward(pixel_values)` with pixel_values float32 (batch, 1, H, W).
edgeopt finds it through the factory named in the config, `my_model:make_model`, imported from the config
file's directory (or set `python_path`, or install your package).
"""
from __future__ import annotations

from torch import nn


class TinyNet(nn.Module):
    def __init__(self, num_classes: int = 3, width: int = 8):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * 7 * 7, num_classes))

    def forward(self, pixel_values):
        return self.head(self.features(pixel_values))


def make_model(num_classes: int = 3, width: int = 8) -> nn.Module:
    return TinyNet(num_classes, width)
