"""How a training example becomes text: the same chat template the chat model uses, with the
example's system turn (empty for distilled preferences: the point is to follow them without
spending prompt tokens), the user's prompt, then the reply the loss is computed on."""
from __future__ import annotations

from typing import Any


def prompt_text(tokenizer: Any, prompt: str, system: str = "") -> str:
    """The chat-template text up to where the assistant's reply starts (HF or mlx-lm tokenizer)."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def reply_text(tokenizer: Any, reply: str) -> str:
    """The reply as the template closes an assistant turn (so the model learns to stop)."""
    end = getattr(tokenizer, "eos_token", None) or ""
    return reply.strip() + end
