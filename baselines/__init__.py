"""Baseline generators (DMD, LCM, multi-step CFG, MagicMotion wrapper): not implemented yet, see docs/ARCHITECTURE.md."""
