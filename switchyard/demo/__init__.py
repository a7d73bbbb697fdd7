"""A tiny local Llama and demo LoRA adapters, built offline so nothing is downloaded."""

from switchyard.demo.adapters import DEMO_ADAPTERS, build_demo_adapter
from switchyard.demo.model import build_demo_model

__all__ = ["DEMO_ADAPTERS", "build_demo_adapter", "build_demo_model"]
