"""Synthetic right ankle (sagittal PD/DESS-like MRI): distal tibia, talus and calcaneus.

Frames (all mm): the *anatomical* frame has its origin on the axis of the talar dome (the
centre of its sagittal curvature), +x = patient left (medial for a right ankle), +y =
posterior, +z = superior (ITK/LPS); world = ``pose.rotation @ anatomical + pose.translation``.
The tibia and the (unlabelled) fibula are built in the anatomical frame. The talus is built
in the *foot* frame, the anatomical frame rotated about x by the plantarflexion angle (so
the dome, a cylinder about x, keeps its place under the tibial plafond); the calcaneus's
posterior-facet part (the thalamus) is in the foot frame, its other parts in the
*calcaneus* frame, the foot frame moved to the centre of the posterior subtalar facet and
rotated about x by the calcaneal pitch's deviation from its mean.

Joint gaps are exact, carved as in :mod:`mskseg.synthetic.hip`: the talus SDF ``A`` is built
from exact, 1-Lipschitz pieces only (capsules, a sphere, a slab and a plane, combined by
smooth min / max), so ``A`` never exceeds the distance to the talus; the tibia is carved by
``tibiotalar_gap - A`` and the calcaneus by ``subtalar_gap - A``, so every tibia and
calcaneus point lies at least that gap from the talus, and exactly that gap where the
joint surfaces face each other. The tibia and calcaneus have no joint and stay about 10 mm or
more apart. The distal fibula (lateral malleolus) is painted but not labelled, like the knee's
patella; it keeps the tibiotalar gap from the talus and 1.5 mm from the tibia.
"""

from __future__ import annotations

import numpy as np

from mskseg.synthetic import render, sdf
from mskseg.synthetic._draw import Draw
from mskseg.synthetic.render import MRSignal, Painter
from mskseg.synthetic.sdf import (
    Capsule,
    Ellipsoid,
    EllipticCylinder,
    Frame,
    RoundBox,
    Sphere,
)

LABELS = {"tibia": 1, "talus": 2, "calcaneus": 3}
LANDMARK_STRUCTURES = ("tibia", "talus", "calcaneus")
#: ITK direction of the sagittal acquisition: i = +x (L/R), j = -z (rows down), k = +y (A->P)
DIRECTION = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
DEFAULT_SHAPE = (56, 84, 84)
DEFAULT_SPACING = (1.8, 1.75, 1.75)
#: tibia landmarks are kept below this anatomical z (mm; about 40 mm above the joint) of the mean shape
LANDMARK_TIBIA_Z_MAX = 62.0
CORTEX_MM = 1.2
#: mean calcaneal pitch (degrees): the calcaneus parts are placed for this pitch
MEAN_PITCH_DEG = 20.0
_BOX_MARGIN = 25.0


def sample_anatomy(rng: np.random.Generator | None) -> dict:
    """Per-subject anatomy (mm, degrees); ``rng=None`` gives the mean anatomy."""
    d = Draw(rng)
    s = d.uniform(0.9, 1.1)
    return {
        "scale": s,
        "dome_radius": 20.0 * s * d.jitter(0.05),
        "dome_half_width": 14.0 * s * d.jitter(0.05),
        "talar_body_depth": 8.0 * s * d.jitter(0.08),
        "subtalar_facet_deg": d.uniform(18.0, 32.0),
        "talar_neck_length": 22.0 * s * d.jitter(0.06),
        "talar_neck_radius": 9.0 * s * d.jitter(0.05),
        "talar_neck_medial_deg": d.uniform(12.0, 26.0),
        "talar_neck_declination_deg": d.uniform(10.0, 24.0),
        "talar_head_radius": 12.0 * s * d.jitter(0.05),
        "tibia_shaft_radius": 11.0 * s * d.jitter(0.06),
        "tibia_metaphysis_radii": [19.0 * s * d.jitter(0.05), 15.0 * s * d.jitter(0.05), 22.0 * s],
        "malleolus_length": 14.0 * s * d.jitter(0.06),
        "calcaneus_scale": s * d.jitter(0.04),
        "calcaneal_pitch_deg": d.uniform(14.0, 26.0),
        "tuberosity_height": 17.0 * s * d.jitter(0.06),
        "tibiotalar_gap": d.uniform(2.6, 3.4),
        "subtalar_gap": d.uniform(2.0, 2.8),
        "plantarflexion_deg": d.uniform(-4.0, 14.0),
        "leg_radii": [36.0 * s * d.uniform(0.95, 1.15), 33.0 * s * d.uniform(0.95, 1.1)],
        "fat_thickness": d.uniform(3.0, 8.0),
        "pose": {"rotation_deg": d.uniforms(-3.0, 3.0, 3), "translation_mm": d.uniforms(-3.0, 3.0, 3)},
    }


def sample_appearance(rng: np.random.Generator | None) -> dict:
    """PD/DESS-like intensities (arbitrary units) with the tendon's, bias-field coefficients, noise sigma
    (:func:`render.mr_appearance`)."""
    return render.mr_appearance(rng, bias_half_size_mm=80.0, extra={"tendon": (20.0, 50.0)})


class AnkleModel(MRSignal):
    """Analytic ankle phantom built from :func:`sample_anatomy` / :func:`sample_appearance`."""

    labels = LABELS
    landmark_structures = LANDMARK_STRUCTURES

    def __init__(self, anatomy: dict, appearance: dict) -> None:
        a, self.appearance = anatomy, appearance
        s, cs = a["scale"], a["calcaneus_scale"]
        R, hw = a["dome_radius"], a["dome_half_width"]
        self.R, self.hw = R, hw
        self.gap_tt, self.gap_st = a["tibiotalar_gap"], a["subtalar_gap"]
        # --- talus (foot frame: origin on the dome axis)
        phi = np.radians(a["subtalar_facet_deg"])
        #: outward normal of the talar body's inferior (posterior subtalar) facet, a plane
        self.facet_normal = np.array([0.0, np.sin(phi), -np.cos(phi)])
        self.body_depth = a["talar_body_depth"]
        m, dcl = np.radians(a["talar_neck_medial_deg"]), np.radians(a["talar_neck_declination_deg"])
        u = np.array([np.sin(m) * np.cos(dcl), -np.cos(m) * np.cos(dcl), -np.sin(dcl)])
        n0 = np.array([0.0, -8.0 * s, -2.0 * s])
        head = n0 + a["talar_neck_length"] * u
        self.talus_parts = {
            "trochlea": Capsule((-hw - 2.0, 0.0, 0.0), (hw + 2.0, 0.0, 0.0), R),
            "talar_neck": Capsule(n0, head, a["talar_neck_radius"]),
            "talar_head": Sphere.make(head, a["talar_head_radius"]),
        }
        # --- tibia and fibula (anatomical frame); zj: the plafond's apex
        zj = R + self.gap_tt
        ml = a["malleolus_length"]
        self.tibia_parts = {
            "plafond": RoundBox((0.5 * s, 1.0 * s, zj + 7.0 * s), (hw + 1.5 * s, 14.0 * s, 10.0 * s), 3.0 * s),
            "tibia_metaphysis": Ellipsoid((0.5 * s, 1.5 * s, zj + 24.0 * s), a["tibia_metaphysis_radii"]),
            "tibia_shaft": Capsule((0.0, 2.0 * s, zj + 18.0 * s), (0.0, 2.0 * s, 200.0), a["tibia_shaft_radius"]),
            "medial_malleolus": Ellipsoid((hw + 3.0 * s, 1.0 * s, zj + 6.0 * s - ml), (7.0 * s, 9.0 * s, ml)),
        }
        self.fibula_parts = {
            "fibula_shaft": Capsule((-hw - 7.0 * s, 10.0 * s, zj + 4.0 * s), (-hw - 6.0 * s, 12.0 * s, 200.0), 6.0 * s),
            "lateral_malleolus": Ellipsoid((-hw - 4.5 * s, 8.0 * s, zj - 12.0 * s), (7.0 * s, 9.0 * s, 16.0 * s)),
        }
        # --- calcaneus: the thalamus under the talar facet (foot frame), the rest (calcaneus frame)
        yp = 6.0 * cs
        facet_centre = np.array([-2.0 * cs, yp, (np.sin(phi) * yp - self.body_depth) / np.cos(phi)])
        self.thalamus = Ellipsoid(facet_centre + 6.0 * cs * self.facet_normal, np.array([13.0, 14.0, 9.0]) * cs,
                                  sdf.rotation_x(a["subtalar_facet_deg"]))
        self.calc_in_foot = Frame(sdf.rotation_x(MEAN_PITCH_DEG - a["calcaneal_pitch_deg"]), facet_centre)
        th = a["tuberosity_height"]
        self.calcaneus_parts = {
            "calcaneus_body": Ellipsoid(np.array([-3.0, 6.0, -18.0]) * cs, np.array([15.0, 22.0, 12.5]) * cs),
            "tuberosity": Ellipsoid((-2.0 * cs, 30.0 * cs, 0.0 - th), (13.0 * cs, 11.0 * cs, th)),
            "anterior_process": Capsule(np.array([-5.0, -12.0, -14.0]) * cs, np.array([-8.0, -40.0, -7.0]) * cs,
                                        9.0 * cs),
            "sustentaculum": Ellipsoid(np.array([11.0, -16.0, -10.0]) * cs, np.array([8.0, 9.0, 4.0]) * cs),
        }
        # --- frames
        self.pose = Frame(sdf.euler_xyz(a["pose"]["rotation_deg"]), a["pose"]["translation_mm"])
        self.foot_in_anat = Frame(sdf.rotation_x(a["plantarflexion_deg"]))
        self.foot_frame = self.pose.compose(self.foot_in_anat)
        self.calc_frame = self.foot_frame.compose(self.calc_in_foot)
        # --- soft tissue
        self.leg = EllipticCylinder((0.0, 6.0 * s, 0.0), tuple(a["leg_radii"]))
        self.leg_bottom = -10.0 * s
        self.foot = RoundBox((-2.0 * s, -25.0 * s, -27.0 * s), (36.0 * s, 80.0 * s, 28.0 * s), 16.0 * s)
        self.fat_thickness = a["fat_thickness"]
        self.kager_fat = Ellipsoid((0.0, 24.0 * s, 30.0 * s), (12.0 * s, 7.0 * s, 16.0 * s))
        insertion = self.foot_in_anat.to_world(self.calc_in_foot.to_world(
            np.array([[-2.0 * cs], [36.0 * cs], [-6.0 * cs]])))[:, 0]
        self.achilles = Capsule((0.0, 33.0 * s, 120.0), insertion, 4.0 * s)
        # --- culling boxes (world)
        self.boxes = {
            "tibia": render.world_box([(p, self.pose) for p in self.tibia_parts.values()], _BOX_MARGIN),
            "fibula": render.world_box([(p, self.pose) for p in self.fibula_parts.values()], _BOX_MARGIN),
            "talus": render.world_box([(p, self.foot_frame) for p in self.talus_parts.values()], _BOX_MARGIN),
            "calcaneus": render.world_box([(self.thalamus, self.foot_frame)]
                                          + [(p, self.calc_frame) for p in self.calcaneus_parts.values()],
                                          _BOX_MARGIN),
        }

    # ------------------------------------------------------------------ fields
    def talus_local(self, f: np.ndarray) -> np.ndarray:
        """Talus SDF (mm) at foot-frame points ``(3, N)``; 1-Lipschitz, so at most the distance."""
        p = self.talus_parts
        body = sdf.smax(p["trochlea"](f), np.abs(f[0]) - self.hw, 4.0)
        n = self.facet_normal
        plane = f[1] * float(n[1]) + f[2] * float(n[2]) - self.body_depth
        body = sdf.smax(body, plane, 3.0)
        d = sdf.smin(body, p["talar_neck"](f), 5.0)
        return sdf.smin(d, p["talar_head"](f), 4.0)

    def tibia_raw(self, q: np.ndarray) -> np.ndarray:
        """Uncarved tibia SDF (mm) at anatomical points ``(3, N)``."""
        p = self.tibia_parts
        d = sdf.smin(p["plafond"](q), p["tibia_metaphysis"](q), 8.0)
        d = sdf.smin(d, p["tibia_shaft"](q), 10.0)
        return sdf.smin(d, p["medial_malleolus"](q), 5.0)

    def fibula_raw(self, q: np.ndarray) -> np.ndarray:
        """Uncarved fibula SDF (mm) at anatomical points ``(3, N)``."""
        p = self.fibula_parts
        return sdf.smin(p["fibula_shaft"](q), p["lateral_malleolus"](q), 8.0)

    def calcaneus_raw(self, f: np.ndarray) -> np.ndarray:
        """Uncarved calcaneus SDF (mm) at foot-frame points ``(3, N)``."""
        p = self.calcaneus_parts
        c = self.calc_in_foot.to_local(f)
        d = sdf.smin(self.thalamus(f), p["calcaneus_body"](c), 6.0)
        d = sdf.smin(d, p["tuberosity"](c), 8.0)
        d = sdf.smin(d, p["anterior_process"](c), 6.0)
        return sdf.smin(d, p["sustentaculum"](c), 4.0)

    def _field(self, name: str, p: np.ndarray, cull: bool) -> np.ndarray:
        """One raw SDF (``tibia``, ``fibula``, ``talus``, ``calcaneus``) at world points, culled to its box."""
        if name in ("tibia", "fibula"):
            fn = self.tibia_raw if name == "tibia" else self.fibula_raw
            frame = self.pose
        else:
            fn = self.talus_local if name == "talus" else self.calcaneus_raw
            frame = self.foot_frame

        def local(x: np.ndarray) -> np.ndarray:
            return fn(frame.to_local(x))

        return render.eval_in_box(local, p, self.boxes[name], 1)[0] if cull else local(p)

    def fields(self, p: np.ndarray, cull: bool = True) -> dict[str, np.ndarray]:
        """SDFs (mm) at world points ``(3, N)``: ``talus``, the carved ``tibia`` and ``calcaneus``,
        the (unlabelled) carved ``fibula``, and the anatomical points ``q``."""
        A = self._field("talus", p, cull)
        T_raw = self._field("tibia", p, cull)
        T = np.maximum(T_raw, self.gap_tt - A)
        C = np.maximum(self._field("calcaneus", p, cull), self.gap_st - A)
        Fb = np.maximum(np.maximum(self._field("fibula", p, cull), self.gap_tt - A), 1.5 - T_raw)
        return {"q": self.pose.to_local(p), "tibia": T, "talus": A, "calcaneus": C, "fibula": Fb}

    def structure_sdf(self, structure: str, p: np.ndarray) -> np.ndarray:
        """SDF (mm) of a labelled bone (``tibia`` / ``talus`` / ``calcaneus``) at world points ``(3, N)``."""
        A = self._field("talus", p, False)
        if structure == "talus":
            return A
        if structure == "tibia":
            return np.maximum(self._field("tibia", p, False), self.gap_tt - A)
        return np.maximum(self._field("calcaneus", p, False), self.gap_st - A)

    def anchor_parts(self, structure: str) -> list[tuple[str, object, Frame]]:
        """Primitives whose surfaces carry the structure's landmarks, with their frames."""
        if structure == "tibia":
            return [(k, v, self.pose) for k, v in self.tibia_parts.items()]
        if structure == "talus":
            return [(k, v, self.foot_frame) for k, v in self.talus_parts.items()]
        return [("thalamus", self.thalamus, self.foot_frame)] + [
            (k, v, self.calc_frame) for k, v in self.calcaneus_parts.items()]

    def landmark_region(self, structure: str, p: np.ndarray) -> np.ndarray:
        """Where (world points ``(3, N)``) template landmarks may be chosen."""
        if structure == "tibia":
            return self.pose.to_local(p)[2] <= LANDMARK_TIBIA_Z_MAX
        return np.ones(p.shape[1], dtype=bool)

    # ------------------------------------------------------------------ image
    def evaluate(self, p: np.ndarray, voxel_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Labels ``uint8 (N,)``, noise-free intensity ``float32 (N,)`` and distance to the
        nearest boundary (mm, see :class:`mskseg.synthetic.render.Painter`) at world ``(3, N)``."""
        fl = self.fields(p)
        q, T, A, C = fl["q"], fl["tibia"], fl["talus"], fl["calcaneus"]
        lab = np.zeros(p.shape[1], dtype=np.uint8)
        for name, value in LABELS.items():
            lab[fl[name] <= 0] = value
        v = self.appearance["intensity"]
        paint = Painter(p.shape[1], v["air"], voxel_mm)
        for name in LABELS:
            paint.track(fl[name])
        leg = np.maximum(self.leg(q), self.leg_bottom - q[2])
        soft = sdf.smin(leg, self.foot(self.foot_in_anat.to_local(q)), 10.0)
        paint.paint(soft, v["fat"])
        paint.paint(soft + self.fat_thickness, v["muscle"])
        paint.paint(self.kager_fat(q), v["fat"])
        paint.paint(self.achilles(q), v["tendon"])
        joint = np.minimum(np.maximum(T, A) - self.gap_tt, np.maximum(C, A) - self.gap_st)
        paint.paint(joint - 2.5, v["fluid"])
        paint.paint(joint, v["cartilage"])
        for bone in (fl["fibula"], T, A, C):
            paint.paint(bone, v["cortex"])
            paint.paint(bone + CORTEX_MM, v["marrow"])
        return lab, paint.value, paint.margin
