"""The seed's RNNModel: embedding -> LSTM -> linear, batch-first, right-padded variable-length input."""
from __future__ import annotations

import torch
from torch import nn


class RNNModel(nn.Module):
    """Classifies from the LSTM output at each sequence's last real token.

    Lengths come from the padding (id 0), and the last state is gathered rather than packed, so the
    graph exports to ONNX/OpenVINO with dynamic batch and sequence length.
    """

    def __init__(self, vocab_size: int, embed_dim: int = 128, hidden: int = 128, num_layers: int = 1,
                 num_classes: int = 2, dropout: float = 0.3, pad_id: int = 0):
        super().__init__()
        self.pad_id = pad_id
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.lstm = nn.LSTM(embed_dim, hidden, num_layers=num_layers, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        lengths = (input_ids != self.pad_id).sum(dim=1).clamp(min=1)
        outputs, _ = self.lstm(self.dropout(self.embedding(input_ids)))
        index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, outputs.size(-1))
        last = outputs.gather(1, index).squeeze(1)
        return self.fc(self.dropout(last))
