"""Synthetic pelvis and hip joints (axial CT in Hounsfield units).

Frames (mm): the *anatomical* frame has its origin midway between the femoral head
centres, +x = patient left, +y = posterior, +z = superior (ITK/LPS); world =
``pose.rotation @ anatomical + pose.translation``. Each side is built as a left side
(x > 0) in a *side* frame; the right side is the mirror image ``x -> -x`` of a left side
with its own small parameter variation.

Joint gaps are exact: the hip bone is carved by the sphere of radius ``head + gap`` around
the femoral head centre and by ``gap - F`` (``F`` the femur SDF, 1-Lipschitz near the
head), the ilium by ``si_gap - S`` (``S`` the sacrum SDF), and each hip bone stops
``symphysis_half_gap`` mm from the midline.
"""

from __future__ import annotations

import functools
from typing import ClassVar

import numpy as np

from mskseg.synthetic import render, sdf
from mskseg.synthetic._draw import Draw
from mskseg.synthetic.render import Painter, gaussian_noise
from mskseg.synthetic.sdf import (
    Capsule,
    Ellipsoid,
    EllipticCylinder,
    EllipticPlate,
    Frame,
    Sphere,
)

LABELS = {"femur_left": 1, "femur_right": 2, "hip_left": 3, "hip_right": 4, "sacrum": 5}
LANDMARK_STRUCTURES = ("femur_left", "femur_right", "hip_left", "hip_right", "sacrum")
DIRECTION = np.eye(3)
DEFAULT_SHAPE = (96, 72, 96)
DEFAULT_SPACING = (3.0, 2.6, 2.6)
#: femur landmarks are kept above this anatomical z (mm) of the mean shape
LANDMARK_FEMUR_Z_MIN = -90.0
_MIRROR = Frame(np.diag([-1.0, 1.0, 1.0]))
_BOX_MARGIN = 25.0
_SIDES = ("left", "right")


#: per-side parameters: (mean at scale 1, relative sd between subjects, scales with size)
_SIDE_PARAMS = {
    "hip_centre_x": (72.0, 0.03, True),
    "head_radius": (23.5, 0.05, True),
    "neck_elevation_deg": (45.0, 0.08, False),
    "neck_anteversion_deg": (14.0, 0.3, False),
    "neck_length_ratio": (1.7, 0.04, False),
    "neck_radius_ratio": (0.64, 0.04, False),
    "shaft_radius": (14.0, 0.06, True),
    "shaft_tilt_deg": (7.0, 0.15, False),
    "trochanter_scale": (1.0, 0.04, True),
    "acetabulum_inclination_deg": (50.0, 0.06, False),
    "acetabulum_anteversion_deg": (17.0, 0.2, False),
    "acetabulum_wall": (9.5, 0.08, True),
    "pelvis_scale": (1.0, 0.03, True),
    "joint_gap": (3.6, 0.05, False),
}
#: left/right differences are this fraction of the between-subject variation
SIDE_ASYMMETRY = 0.25


def sample_anatomy(rng: np.random.Generator | None) -> dict:
    """Per-subject anatomy (mm, degrees); ``rng=None`` gives the mean anatomy.

    The two sides share the subject's values up to a small independent variation
    (:data:`SIDE_ASYMMETRY`); the joint gap stays within [3.2, 4.0] mm.
    """
    d = Draw(rng)
    s = d.uniform(0.92, 1.08)
    out = {
        "scale": s,
        "si_gap": d.uniform(2.0, 3.0),
        "symphysis_half_gap": d.uniform(1.6, 2.5),
        "sacrum_scale": s * d.jitter(0.03),
        "body_radii": [165.0 * s * d.uniform(0.9, 1.1), 95.0 * s * d.uniform(0.95, 1.08)],
        "fat_thickness": d.uniform(8.0, 25.0),
        "pose": {"rotation_deg": d.uniforms(-3.0, 3.0, 3), "translation_mm": d.uniforms(-4.0, 4.0, 3)},
    }
    shared = {k: d.jitter(sd) for k, (_, sd, _) in _SIDE_PARAMS.items()}
    for side in _SIDES:
        sp = {}
        for k, (mean, sd, scaled) in _SIDE_PARAMS.items():
            sp[k] = mean * (s if scaled else 1.0) * shared[k] * d.jitter(sd * SIDE_ASYMMETRY)
        sp["joint_gap"] = float(np.clip(sp["joint_gap"], 3.2, 4.0))
        out[side] = sp
    return out


def sample_appearance(rng: np.random.Generator | None) -> dict:
    """CT numbers (HU), cortical thickness (mm) and Gaussian noise sigma (HU)."""
    d = Draw(rng)
    return {
        "intensity": {
            "air": -1000.0,
            "fat": d.uniform(-120.0, -80.0),
            "muscle": d.uniform(35.0, 60.0),
            "bladder": d.uniform(0.0, 15.0),
            "gas": d.uniform(-950.0, -800.0),
            "cortical": d.uniform(1000.0, 1300.0),
            "cancellous": d.uniform(180.0, 300.0),
            "marrow": d.uniform(20.0, 80.0),
        },
        "cortex_mm": d.uniform(1.6, 2.4),
        "noise_sigma": d.uniform(15.0, 25.0),
    }


class _Side:
    """Femur and hip-bone primitives of one side, in its side frame (left-side geometry)."""

    def __init__(self, p: dict, gap_sym: float) -> None:
        w, t = p["pelvis_scale"], p["trochanter_scale"]
        self.ch = ch = np.array([p["hip_centre_x"], 0.0, 0.0])
        self.rh, self.gap, self.gap_sym = p["head_radius"], p["joint_gap"], gap_sym
        be, ga = np.radians(p["neck_elevation_deg"]), np.radians(p["neck_anteversion_deg"])
        dn = np.array([np.cos(be) * np.cos(ga), np.cos(be) * np.sin(ga), -np.sin(be)])
        J = ch + p["neck_length_ratio"] * self.rh * dn
        al = np.radians(p["shaft_tilt_deg"])
        ds = np.array([-np.sin(al), 0.0, -np.cos(al)])
        rs = p["shaft_radius"]
        self.femur = {
            "head": Sphere.make(ch, self.rh),
            "neck": Capsule(ch, J, p["neck_radius_ratio"] * self.rh),
            "intertrochanteric": Ellipsoid(J + np.array([3.0, 0.0, -6.0]) * t, np.array([18.0, 16.0, 24.0]) * t),
            "greater_trochanter": Ellipsoid(J + np.array([9.0, 6.0, 15.0]) * t, np.array([11.0, 14.0, 18.0]) * t),
            "lesser_trochanter": Ellipsoid(J + np.array([-6.0, 9.0, -30.0]) * t, np.array([7.0, 7.0, 9.0]) * t),
            "femur_shaft": Capsule(J + 8.0 * ds, J + 320.0 * ds, rs),
        }
        self.canal = Capsule(J + 45.0 * ds, J + 320.0 * ds, rs - 4.5)
        inc, av = np.radians(p["acetabulum_inclination_deg"]), np.radians(p["acetabulum_anteversion_deg"])
        self.n_ac = np.array([np.sin(inc) * np.cos(av), -np.sin(inc) * np.sin(av), -np.cos(inc)])
        rim = self.rh + self.gap + p["acetabulum_wall"]
        wing_rot = sdf.frame_from_axes((0.54, -0.84, 0.0), (0.35, 0.225, 0.92))

        def at(off: tuple[float, float, float]) -> np.ndarray:
            return ch + np.asarray(off) * w

        def ab(pt: tuple[float, float, float]) -> np.ndarray:
            return np.asarray(pt) * w

        self.hip = {
            "acetabulum_outer": Sphere.make(ch, rim),
            "acetabulum_inner": Sphere.make(ch, self.rh + self.gap),
            "ilium_wing": EllipticPlate(at((7.0, 15.0, 58.0)), (60.0 * w, 43.0 * w), 5.0 * w, wing_rot),
            "ilium_body": Ellipsoid(at((-6.0, 10.0, 34.0)), np.array([14.0, 20.0, 28.0]) * w),
            "ilium_posterior": Ellipsoid(at((-24.0, 52.0, 44.0)), np.array([12.0, 16.0, 28.0]) * w),
            "pubic_ramus": Capsule(at((-14.0, -16.0, -6.0)), ab((8.0, -46.0, -30.0)), 9.0 * w),
            "pubic_body": Ellipsoid(ab((10.0, -44.0, -40.0)), np.array([8.0, 10.0, 17.0]) * w),
            "ischium": Capsule(at((-6.0, 16.0, -20.0)), at((-16.0, 22.0, -56.0)), 12.0 * w),
            "ischial_tuberosity": Ellipsoid(at((-16.0, 24.0, -62.0)), np.array([13.0, 14.0, 12.0]) * w),
            "inferior_ramus": Capsule(at((-18.0, 16.0, -64.0)), ab((12.0, -36.0, -54.0)), 7.0 * w),
        }

    def femur_sdf(self, q: np.ndarray) -> np.ndarray:
        """Femur SDF (mm) at side-frame points ``(3, N)``."""
        f = self.femur
        d = sdf.smin(f["head"](q), f["neck"](q), 4.0)
        d = sdf.smin(d, f["intertrochanteric"](q), 10.0)
        d = sdf.smin(d, f["greater_trochanter"](q), 8.0)
        d = sdf.smin(d, f["lesser_trochanter"](q), 5.0)
        return sdf.smin(d, f["femur_shaft"](q), 18.0)

    def hip_raw(self, q: np.ndarray) -> np.ndarray:
        """Uncarved hip-bone SDF (mm) at side-frame points ``(3, N)``."""
        h = self.hip
        n = self.n_ac.astype(q.dtype)
        ch = self.ch.astype(q.dtype)
        plane = (q[0] - ch[0]) * n[0] + (q[1] - ch[1]) * n[1] + (q[2] - ch[2]) * n[2] - 0.05 * self.rh
        d = np.maximum(h["acetabulum_outer"](q), plane)
        d = sdf.smin(d, h["ilium_body"](q), 8.0)
        d = sdf.smin(d, h["ilium_wing"](q), 12.0)
        d = sdf.smin(d, h["ilium_posterior"](q), 10.0)
        d = sdf.smin(d, h["pubic_ramus"](q), 8.0)
        d = sdf.smin(d, h["pubic_body"](q), 6.0)
        d = sdf.smin(d, h["ischium"](q), 8.0)
        d = sdf.smin(d, h["ischial_tuberosity"](q), 8.0)
        d = sdf.smin(d, h["inferior_ramus"](q), 6.0)
        return np.maximum(d, self.gap_sym - q[0])

    def fields(self, q: np.ndarray) -> np.ndarray:
        """``(F, H)``: femur SDF and hip-bone SDF carved by the joint gap, side frame."""
        F = self.femur_sdf(q)
        H = np.maximum(self.hip_raw(q), self.gap - F)
        H = np.maximum(H, -self.hip["acetabulum_inner"](q))
        return np.stack([F, H])


class HipModel:
    """Analytic pelvis phantom built from :func:`sample_anatomy` / :func:`sample_appearance`."""

    labels = LABELS
    landmark_structures = LANDMARK_STRUCTURES
    #: right-side structures are mirror images of left-side ones (shared landmark template)
    mirror_of: ClassVar[dict[str, str]] = {"femur_right": "femur_left", "hip_right": "hip_left"}

    def __init__(self, anatomy: dict, appearance: dict) -> None:
        a, self.appearance = anatomy, appearance
        self.pose = Frame(sdf.euler_xyz(a["pose"]["rotation_deg"]), a["pose"]["translation_mm"])
        self.sides = {k: _Side(a[k], a["symphysis_half_gap"]) for k in _SIDES}
        self.side_frames = {"left": self.pose, "right": self.pose.compose(_MIRROR)}
        self.si_gap = a["si_gap"]
        ss = a["sacrum_scale"]
        self.sacrum = {
            "sacrum_body": Ellipsoid(np.array([0.0, 50.0, 44.0]) * ss, np.array([40.0, 18.0, 22.0]) * ss),
            "sacrum_lower": Capsule(np.array([0.0, 54.0, 30.0]) * ss, np.array([0.0, 63.0, -28.0]) * ss, 11.0 * ss),
        }
        s = a["scale"]
        self.l5 = Ellipsoid(np.array([0.0, 36.0, 92.0]) * ss, np.array([24.0, 17.0, 13.0]) * ss)
        self.body = EllipticCylinder((0.0, 8.0, 0.0), tuple(a["body_radii"]))
        self.fat_thickness = a["fat_thickness"]
        self.bladder = Ellipsoid(np.array([0.0, -40.0, -15.0]) * s, np.array([28.0, 20.0, 24.0]) * s)
        self.gas = Ellipsoid(np.array([0.0, 45.0, -40.0]) * s, np.array([10.0, 8.0, 14.0]) * s)
        self.boxes = {}
        for k, side in self.sides.items():
            fr = self.side_frames[k]
            self.boxes["femur_" + k] = render.world_box([(p, fr) for p in side.femur.values()], _BOX_MARGIN)
            self.boxes["hip_" + k] = render.world_box([(p, fr) for p in side.hip.values()], _BOX_MARGIN)
            lo_f, hi_f = self.boxes["femur_" + k]
            lo_h, hi_h = self.boxes["hip_" + k]
            self.boxes[k] = (np.minimum(lo_f, lo_h), np.maximum(hi_f, hi_h))
        self.boxes["sacrum"] = render.world_box([(p, self.pose) for p in [*self.sacrum.values(), self.l5]], _BOX_MARGIN)

    def sacrum_sdf(self, q: np.ndarray) -> np.ndarray:
        """Sacrum SDF (mm) at anatomical points ``(3, N)``."""
        return sdf.smin(self.sacrum["sacrum_body"](q), self.sacrum["sacrum_lower"](q), 10.0)

    def _side_fields(self, side: str, p: np.ndarray, S: np.ndarray) -> np.ndarray:
        """``(F, H)`` of one side at world points ``(3, N)``, ``S`` the sacrum SDF there."""
        FH = self.sides[side].fields(self.side_frames[side].to_local(p))
        FH[1] = np.maximum(FH[1], self.si_gap - S)
        return FH

    def _stacked_side_fields(self, side: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_side_fields` of points stacked with their sacrum SDF (rows x, y, z, sacrum)."""
        return self._side_fields(side, x[:3], x[3])

    def fields(self, p: np.ndarray, cull: bool = True) -> dict[str, np.ndarray]:
        """SDFs (mm) of every labelled structure at world points ``(3, N)``."""
        def sac(x: np.ndarray) -> np.ndarray:
            return self.sacrum_sdf(self.pose.to_local(x))

        S = render.eval_in_box(sac, p, self.boxes["sacrum"], 1)[0] if cull else sac(p)
        out: dict[str, np.ndarray] = {"sacrum": S}
        for side in _SIDES:
            if cull:
                both = np.concatenate([p, S[None]])
                F, H = render.eval_in_box(functools.partial(self._stacked_side_fields, side), both,
                                          self.boxes[side], 2)
            else:
                F, H = self._side_fields(side, p, S)
            out["femur_" + side], out["hip_" + side] = F, H
        return out

    def structure_sdf(self, structure: str, p: np.ndarray) -> np.ndarray:
        """SDF (mm) of a labelled structure at world points ``(3, N)``."""
        if structure == "sacrum":
            return self.sacrum_sdf(self.pose.to_local(p))
        kind, side = structure.split("_")
        if kind == "femur":
            return self.sides[side].femur_sdf(self.side_frames[side].to_local(p))
        return self._side_fields(side, p, self.sacrum_sdf(self.pose.to_local(p)))[1]

    def anchor_parts(self, structure: str) -> list[tuple[str, object, Frame]]:
        """Primitives whose surfaces carry the structure's landmarks, with their frames."""
        if structure == "sacrum":
            return [(k, v, self.pose) for k, v in self.sacrum.items()]
        kind, side = structure.split("_")
        parts = self.sides[side].femur if kind == "femur" else self.sides[side].hip
        return [(k, v, self.side_frames[side]) for k, v in parts.items()]

    def landmark_region(self, structure: str, p: np.ndarray) -> np.ndarray:
        """Where (world points ``(3, N)``) template landmarks may be chosen."""
        q = self.pose.to_local(p)
        if structure.startswith("femur"):
            return q[2] >= LANDMARK_FEMUR_Z_MIN
        return np.ones(p.shape[1], dtype=bool)

    def evaluate(self, p: np.ndarray, voxel_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Labels ``uint8 (N,)``, noise-free CT numbers ``float32 (N,)`` and distance to the
        nearest boundary (mm, see :class:`mskseg.synthetic.render.Painter`) at world ``(3, N)``."""
        fl = self.fields(p)
        lab = np.zeros(p.shape[1], dtype=np.uint8)
        for name, value in LABELS.items():
            lab[fl[name] <= 0] = value
        v, tc = self.appearance["intensity"], self.appearance["cortex_mm"]
        q = self.pose.to_local(p)
        paint = Painter(p.shape[1], v["air"], voxel_mm)
        for name in LABELS:
            paint.track(fl[name])
        body = self.body(q)
        paint.paint(body, v["fat"])
        paint.paint(body + self.fat_thickness, v["muscle"])
        paint.paint(self.bladder(q), v["bladder"])
        paint.paint(self.gas(q), v["gas"])
        spine = np.minimum(fl["sacrum"], render.eval_in_box(lambda x: self.l5(self.pose.to_local(x)), p,
                                                          self.boxes["sacrum"], 1)[0])
        for bone in (fl["femur_left"], fl["femur_right"], fl["hip_left"], fl["hip_right"], spine):
            paint.paint(bone, v["cortical"])
            paint.paint(bone + tc, v["cancellous"])
        for side in _SIDES:
            canal, frame = self.sides[side].canal, self.side_frames[side]
            c = render.eval_in_box(lambda x, c=canal, f=frame: c(f.to_local(x)), p,
                                   self.boxes["femur_" + side], 1)[0]
            paint.paint(c, v["marrow"])
        return lab, paint.value, paint.margin

    def bias(self, p: np.ndarray) -> None:
        """CT has no multiplicative bias field."""
        return

    def add_noise(self, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Gaussian noise (HU)."""
        return gaussian_noise(values, self.appearance["noise_sigma"], rng)
