"""Baseline generators of the paper's table, each a FlashBench generator registered as an entry point:
`wan-resnet` (multistep.py), `dmd-resnet` (dmd.py), `lcm-resnet` (lcm.py, with its own distillation) and
`magicmotion` (magicmotion.py, driving an existing MagicMotion installation)."""
