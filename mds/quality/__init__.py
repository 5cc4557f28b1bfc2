"""The CPU default base model: no-reference quality features and a small LoRA-ready MLP."""
