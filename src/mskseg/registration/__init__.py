"""Mask registration for corresponding landmarks (knee paper 3.1).

``masks`` prepares one structure (mirrored where asked) on an isotropic working grid,
``affine`` and ``demons`` are the SimpleITK stages, ``ants_backend`` the ANTs SyN
alternative, ``fields`` composes/applies/inverts/saves the mapping ``T(x) = A(x + u(x))``
(reference point -> subject point), ``pipeline`` runs one registration and decides whether
it converged, ``reference`` chooses the reference with one vectorised overlap pass, ``trim``
keeps a fixed length of a bone from its joint end (so the field of view's cut is not shape).
"""

from __future__ import annotations

import SimpleITK as sitk


def set_threads(n: int) -> None:
    """Threads every SimpleITK filter may use from now on (a rule's ``threads``)."""
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(max(1, int(n)))
