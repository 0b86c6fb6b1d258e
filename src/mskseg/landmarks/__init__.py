"""Landmarks (knee paper 3.2): points spread evenly over a reference surface, carried to every subject
through its registration, and scored against the subject's own surface and, on phantoms, the true points.

* :mod:`~mskseg.landmarks.surface` -- marching-cubes surfaces, area-uniform sampling, exact point-to-mesh distances;
* :mod:`~mskseg.landmarks.correspondence` -- sampling the reference, carrying points, quality records.
* :mod:`~mskseg.landmarks.summary` -- one model's correspondence table: the reference marked and out of the means.
"""
