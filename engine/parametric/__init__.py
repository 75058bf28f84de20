"""Parametric memory: stable preferences distilled into a LoRA adapter the chat model loads."""
