"""FlashMotion training: one loop (loop.py) shared by per-stage method objects (stage*.py), see docs/TRAINING.md."""
