"""Small students for knowledge distillation, each with a width knob so a sweep can trade size for accuracy."""
from __future__ import annotations

import math

import torch
from torch import nn


def _make_divisible(value: float, divisor: int = 8) -> int:
    return max(divisor, int(value + divisor / 2) // divisor * divisor)


def extra_downsampling(image_size: int, limit: int) -> int:
    """Stride-2 stages to add for inputs larger than 28 x 28, so the feature maps the blocks work on stay
    about as small as they are for 28 x 28 inputs (224 x 224: 7 x 7 at the end, like the ImageNet models)."""
    return min(limit, max(0, round(math.log2(image_size / 28))))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand - 3x3 depthwise - 1x1 linear projection, residual when shapes match."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand: int):
        super().__init__()
        hidden = in_channels * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(in_channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
                   nn.ReLU6(), nn.Conv2d(hidden, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)]
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.use_residual else self.block(x)


class MobileNetV2Student(nn.Module):
    """MobileNetV2 for `image_size` inputs (28 x 28 by default) with `in_channels`; `width` scales every layer.

    The stem downsamples to 14 x 14 by default (`stem_stride=2`, ~2.2 M MACs at width 1.0): depthwise convs
    at full resolution cost 3x the MACs and train very slowly on CPU for little accuracy on 28 x 28 images.
    Larger inputs turn the stride-1 stages into stride 2 (up to two; 224 x 224 ends at 7 x 7).
    """

    SETTINGS = ((1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 2, 2), (4, 64, 2, 1))  # expand, channels, repeats, stride

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: float = 1.0, last: int = 256,
                 stem_stride: int = 2, image_size: int = 28):
        super().__init__()
        channels = _make_divisible(16 * width)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 3, stem_stride, 1, bias=False),
                                   nn.BatchNorm2d(channels), nn.ReLU6()]
        strided = [i for i, row in enumerate(self.SETTINGS) if row[3] == 1][:extra_downsampling(image_size, 2)]
        for stage, (expand, base, repeats, stride) in enumerate(self.SETTINGS):
            stride = 2 if stage in strided else stride
            out = _make_divisible(base * width)
            for index in range(repeats):
                layers.append(InvertedResidual(channels, out, stride if index == 0 else 1, expand))
                channels = out
        last_channels = _make_divisible(last * max(1.0, width))
        layers += [nn.Conv2d(channels, last_channels, 1, bias=False), nn.BatchNorm2d(last_channels), nn.ReLU6()]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.1), nn.Linear(last_channels, num_classes))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(pixel_values)), 1))


class Fire(nn.Module):
    """SqueezeNet fire module: 1x1 squeeze, then parallel 1x1 and 3x3 expands, concatenated."""

    def __init__(self, in_channels: int, squeeze: int, expand: int):
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(in_channels, squeeze, 1), nn.ReLU())
        self.expand1 = nn.Sequential(nn.Conv2d(squeeze, expand, 1), nn.ReLU())
        self.expand3 = nn.Sequential(nn.Conv2d(squeeze, expand, 3, padding=1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze(x)
        return torch.cat([self.expand1(s), self.expand3(s)], dim=1)


class SqueezeNetStudent(nn.Module):
    """SqueezeNet 1.1-style for `image_size` inputs (28 x 28 by default) with `in_channels`; `width` scales
    every fire module. Larger inputs get a stride-2 stem and extra pooling (224 x 224 reaches 7 x 7)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: float = 1.0, image_size: int = 28):
        super().__init__()
        c = lambda v: _make_divisible(v * width)  # noqa: E731
        extra = extra_downsampling(image_size, 3)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c(32), 3, 2 if extra else 1, 1), nn.ReLU(),
            *[nn.MaxPool2d(2) for _ in range(max(0, extra - 1))], nn.MaxPool2d(2),      # 14 x 14 at 28
            Fire(c(32), c(16), c(32)), Fire(c(64), c(16), c(32)), nn.MaxPool2d(2),      # 7 x 7
            Fire(c(64), c(32), c(64)), Fire(c(128), c(32), c(64)),
        )
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Conv2d(c(128), num_classes, 1), nn.AdaptiveAvgPool2d(1))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.classifier(self.features(pixel_values)), 1)


class TextCNNStudent(nn.Module):
    """Kim-style TextCNN over token ids (any tokenizer); attention_mask zeroes padded positions."""

    def __init__(self, vocab_size: int, num_classes: int = 2, embed_dim: int = 128, channels: int = 100,
                 kernels: tuple[int, ...] = (3, 4, 5), dropout: float = 0.3, pad_id: int = 0):
        super().__init__()
        self.pad_id = pad_id
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, channels, k, padding=k // 2) for k in kernels)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels * len(kernels), num_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = (input_ids != self.pad_id) if attention_mask is None else attention_mask.bool()
        x = (self.embedding(input_ids) * mask.unsqueeze(-1)).transpose(1, 2)
        pooled = [torch.relu(conv(x)).amax(dim=2) for conv in self.convs]
        return self.fc(self.dropout(torch.cat(pooled, dim=1)))


class RNNStudent(nn.Module):
    """A small LSTM or GRU over token ids (`cell`), optionally bidirectional; masked mean pooling of its outputs.

    Mean pooling (rather than the last state) treats both directions alike on right-padded batches and
    exports with dynamic batch and sequence length. `hidden` and `num_layers` are the width and depth knobs.
    """

    def __init__(self, vocab_size: int, num_classes: int = 2, embed_dim: int = 64, hidden: int = 64,
                 num_layers: int = 1, cell: str = "lstm", bidirectional: bool = False, dropout: float = 0.2,
                 pad_id: int = 0):
        super().__init__()
        if cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru', got {cell!r}")
        self.pad_id = pad_id
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(embed_dim, hidden, num_layers=num_layers, batch_first=True, bidirectional=bidirectional)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden * (2 if bidirectional else 1), num_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = (input_ids != self.pad_id) if attention_mask is None else attention_mask.bool()
        outputs, _ = self.rnn(self.dropout(self.embedding(input_ids)))
        weights = mask.unsqueeze(-1).to(outputs.dtype)
        pooled = (outputs * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.fc(self.dropout(pooled))
