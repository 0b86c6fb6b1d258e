"""Fixtures of the preprocessing tests (helpers live in ``preprocess_phantoms``)."""

from preprocess_phantoms import phantom  # noqa: F401  (re-exported fixture)
