"""distill: black-box, text-only LLM distillation (collect -> curate -> train -> serve -> evaluate)."""

__version__ = "0.1.0"
