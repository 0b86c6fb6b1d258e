"""Segmentation metrics in physical millimetres: overlap, exact surface distances, GapDice,
collision count, per-slice Dice, landmark errors. See :func:`mskseg.metrics.evaluate.evaluate_pair`."""
