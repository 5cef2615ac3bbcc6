"""A user's own text classifier: embedding -> LSTM -> mean over the real tokens -> linear.

It takes `input_ids` and `attention_mask` (edgeopt reads the names from `forward`) and its own vocabulary,
where the padding token is id 1, not 0.
"""
import torch
from torch import nn


class LSTMClassifier(nn.Module):
    def __init__(self, vocab_size: int, num_classes: int = 3, embed_dim: int = 96, hidden: int = 128,
                 pad_id: int = 1):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.lstm = nn.LSTM(embed_dim, hidden, batch_first=True)
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states, _ = self.lstm(self.embed(input_ids))
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        return self.classifier((states * mask).sum(1) / mask.sum(1).clamp(min=1))


def make_model(vocab_size: int, num_classes: int = 3, hidden: int = 128) -> LSTMClassifier:
    return LSTMClassifier(vocab_size, num_classes, hidden=hidden)
