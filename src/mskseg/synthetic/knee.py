"""Synthetic right knee (sagittal DESS-like MRI): femur, tibia and their cartilage.

Frames (all mm): the *anatomical* frame has its origin at the joint centre, +x = patient
left (medial for a right knee), +y = posterior, +z = superior (ITK/LPS); world =
``pose.rotation @ anatomical + pose.translation``. The *femur* frame has its origin on the
condyle axis (parallel to x); flexion rotates it about that axis, so the condyles, which
are spheroids round in the sagittal (y-z) plane, keep their contact with the tibia.

Cartilage: femoral cartilage is the shell ``0 < F <= t_f(p)`` outside the femur SDF ``F``
(thickness field ``t_f`` in mm, tapered at the sheet's edges); tibial cartilage the shell
``0 < T <= t_t(p)`` on the plateau, carved so that its distance to the femoral cartilage's
outer surface ``F - t_f`` is at least the joint gap ``g``.
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
    EllipticPlate,
    Frame,
    RoundBox,
)

LABELS = {"femur": 1, "femoral_cartilage": 2, "tibia": 3, "tibial_cartilage": 4}
LANDMARK_STRUCTURES = ("femur", "tibia")
#: ITK direction of the sagittal acquisition: i = +x (L/R), j = -z (rows down), k = +y (A->P)
DIRECTION = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
DEFAULT_SHAPE = (64, 112, 112)
DEFAULT_SPACING = (1.6, 1.25, 1.25)
#: landmarks are kept where the mean shape's anatomical |z| is below this (mm), in any FOV
LANDMARK_Z_LIMIT = 45.0
CORTEX_MM = 1.2
_BOX_MARGIN = 25.0
#: rotation whose local x-y plane is the world x-z plane (a coronal plate)
_XZ_PLANE = sdf.frame_from_axes((1.0, 0.0, 0.0), (0.0, 0.0, 1.0))


def sample_anatomy(rng: np.random.Generator | None) -> dict:
    """Per-subject anatomy (mm, degrees); ``rng=None`` gives the mean anatomy."""
    d = Draw(rng)
    s = d.uniform(0.88, 1.12)
    R = 21.0 * s * d.jitter(0.05)
    rx_m, rx_l = 13.5 * s * d.jitter(0.07), 12.5 * s * d.jitter(0.07)
    return {
        "scale": s,
        "condyle_radius": R,
        "condyle_half_width_medial": rx_m,
        "condyle_half_width_lateral": rx_l,
        "condyle_separation": 44.0 * s * d.jitter(0.05),
        "femur_shaft_radius": 13.0 * s * d.jitter(0.07),
        "plateau_half_width_extra": 4.0 * s * d.jitter(0.25),
        "plateau_half_depth": (R + 3.0 * s) * d.jitter(0.05),
        "plateau_half_height": 9.0 * s * d.jitter(0.1),
        "tibia_shaft_radius": 12.5 * s * d.jitter(0.07),
        "femoral_cartilage_thickness": d.uniform(1.9, 2.6),
        "femoral_cartilage_variation": d.uniforms(-0.08, 0.08, 3),
        "tibial_cartilage_thickness": d.uniform(1.7, 2.3),
        "tibial_cartilage_variation": d.uniforms(-0.08, 0.08, 2),
        "joint_gap": d.uniform(0.7, 1.4),
        "flexion_deg": d.uniform(0.0, 20.0),
        "leg_radii": [62.0 * s * d.uniform(0.95, 1.15), 62.0 * s * d.uniform(0.95, 1.1)],
        "fat_thickness": d.uniform(4.0, 12.0),
        "patella_scale": s * d.jitter(0.06),
        "pose": {"rotation_deg": d.uniforms(-3.0, 3.0, 3), "translation_mm": d.uniforms(-3.0, 3.0, 3)},
    }


def sample_appearance(rng: np.random.Generator | None) -> dict:
    """DESS-like intensities (arbitrary units), bias-field coefficients, noise sigma (:func:`render.mr_appearance`)."""
    return render.mr_appearance(rng, bias_half_size_mm=70.0)


class KneeModel(MRSignal):
    """Analytic knee phantom built from :func:`sample_anatomy` / :func:`sample_appearance`."""

    labels = LABELS
    landmark_structures = LANDMARK_STRUCTURES

    def __init__(self, anatomy: dict, appearance: dict) -> None:
        a, self.appearance = anatomy, appearance
        R = a["condyle_radius"]
        rx_m, rx_l = a["condyle_half_width_medial"], a["condyle_half_width_lateral"]
        sep = a["condyle_separation"]
        self.R, self.rx_m, self.rx_l, self.sep = R, rx_m, rx_l, sep
        self.gap = a["joint_gap"]
        self.tf0, self.cf = a["femoral_cartilage_thickness"], a["femoral_cartilage_variation"]
        self.tt0, self.ct = a["tibial_cartilage_thickness"], a["tibial_cartilage_variation"]
        # --- tibia (anatomical frame)
        wx = sep / 2 + max(rx_m, rx_l) + a["plateau_half_width_extra"]
        wy, hz = a["plateau_half_depth"], a["plateau_half_height"]
        self.ztop = ztop = -self.gap / 2 - self.tt0
        s = a["scale"]
        self.tibia_parts = {
            "plateau": RoundBox((0, 1.0, ztop - hz), (wx, wy, hz), 4.0 * s),
            "tibia_metaphysis": Ellipsoid((0, 3.0, ztop - 36 * s), (0.72 * wx, 0.85 * wy, 26 * s)),
            "tuberosity": Ellipsoid((0, 1.0 - 0.8 * wy, ztop - 30 * s), (10 * s, 7 * s, 13 * s)),
            "tibia_shaft": Capsule((0, 5.0, ztop - 30 * s), (0, 5.0, ztop - 300), a["tibia_shaft_radius"]),
        }
        # --- femur (femur frame, origin on the condyle axis)
        self.femur_parts = {
            "condyle_medial": Ellipsoid((sep / 2, 0, 0), (rx_m, R, R)),
            "condyle_lateral": Ellipsoid((-sep / 2, 0, 0), (rx_l, R, R)),
            "femur_metaphysis": Ellipsoid(
                (0, -0.25 * R, 1.5 * R), (sep / 2 + 0.35 * (rx_m + rx_l), 0.85 * R, 1.6 * R)
            ),
            "femur_shaft": Capsule((0, -0.3 * R, 1.6 * R), (0, -0.3 * R, 300.0), a["femur_shaft_radius"]),
        }
        contact = []
        for side in (1.0, -1.0):
            pt = np.array([[side * sep / 2], [0.0], [-R]])
            tf = self.femoral_thickness(pt)[0]
            tt = self.tt0 * (1 + self.ct[0] * side * sep / 2 / 30.0)
            contact.append(tf + tt)
        # the femoral cartilage's lowest point lies `gap` above the tibial cartilage's top
        zc = ztop + max(contact) + self.gap + R
        self.pose = Frame(sdf.euler_xyz(a["pose"]["rotation_deg"]), a["pose"]["translation_mm"])
        self.femur_in_anat = Frame(sdf.rotation_x(-a["flexion_deg"]), (0.0, 0.0, zc))
        self.femur_frame = self.pose.compose(self.femur_in_anat)
        ps = a["patella_scale"]
        pc = (0.0, -R - 15.5 * ps, 0.75 * R)
        self.patella = Ellipsoid(pc, (22 * ps, 9 * ps, 20 * ps))
        self.patella_cart = Ellipsoid((0.0, pc[1] + 1.5, pc[2]), (23 * ps, 10.5 * ps, 21 * ps))
        self.pouch = EllipticPlate((0.0, -1.1 * R - 4.0, 1.9 * R), (0.9 * R - 2, 1.1 * R - 2), 2.0, _XZ_PLANE)
        self.leg = EllipticCylinder((0.0, 8.0, 0.0), tuple(a["leg_radii"]))
        self.fat_thickness = a["fat_thickness"]
        self.popliteal_fat = Ellipsoid((0.0, R + 14 * s, 8.0), (18 * s, 12 * s, 28 * s))
        self.hoffa_fat = Ellipsoid((0.0, -(wy + 8 * s), ztop + 6 * s), (20 * s, 9 * s, 12 * s))
        fparts = [(p, self.femur_frame) for p in self.femur_parts.values()]
        self.femur_box = render.world_box(fparts, _BOX_MARGIN)
        self.tibia_box = render.world_box([(p, self.pose) for p in self.tibia_parts.values()], _BOX_MARGIN)
        self.patella_box = render.world_box([(self.patella_cart, self.femur_frame)], _BOX_MARGIN)

    # ------------------------------------------------------------------ fields
    def femur_local(self, f: np.ndarray) -> np.ndarray:
        """Femur SDF (mm) at femur-frame points ``(3, N)``."""
        p = self.femur_parts
        d = sdf.smin(p["condyle_medial"](f), p["condyle_lateral"](f), 3.0)
        d = sdf.smin(d, p["femur_metaphysis"](f), 6.0)
        return sdf.smin(d, p["femur_shaft"](f), 24.0)

    def femoral_thickness(self, f: np.ndarray) -> np.ndarray:
        """Femoral cartilage thickness field (mm) at femur-frame points ``(3, N)``."""
        theta = np.degrees(np.arctan2(f[1], -f[2]))  # 0 distal, +90 posterior, -90 anterior
        ax = np.abs(f[0])
        rx = np.where(f[0] > 0, self.rx_m, self.rx_l)
        half = self.sep / 2
        w = sdf.smoothstep(-80.0, -68.0, theta) * sdf.smoothstep(115.0, 103.0, theta)
        w = w * sdf.smoothstep(half + 0.95 * rx, half + 0.65 * rx, ax)
        notch = 1.0 - sdf.smoothstep(half - 0.75 * rx, half - 0.5 * rx, ax)
        w = w * (1.0 - notch * sdf.smoothstep(-35.0, -15.0, theta))
        th = np.radians(theta)
        c = self.cf
        var = 1.0 + c[0] * np.sin(th) + c[1] * np.cos(2 * th) + c[2] * f[0] * (1 / 30.0)
        return (self.tf0 * var * w).astype(f.dtype, copy=False)

    def tibial_thickness(self, q: np.ndarray) -> np.ndarray:
        """Tibial cartilage thickness field (mm) at anatomical points ``(3, N)``."""
        ay = 0.72 * self.R + 3.0
        w = np.zeros(q.shape[1], dtype=q.dtype)
        for side, rx in ((1.0, self.rx_m), (-1.0, self.rx_l)):
            ax = 0.85 * rx + 2.0
            rho = np.sqrt(((q[0] - side * self.sep / 2) / ax) ** 2 + (q[1] / ay) ** 2)
            w = np.maximum(w, sdf.smoothstep(1.0, 0.8, rho))
        w = w * sdf.smoothstep(self.ztop - 3.0, self.ztop - 1.0, q[2])
        var = 1.0 + self.ct[0] * q[0] * (1 / 30.0) + self.ct[1] * q[1] * (1 / 30.0)
        return (self.tt0 * var * w).astype(q.dtype, copy=False)

    def tibia_raw(self, q: np.ndarray) -> np.ndarray:
        """Uncarved tibia SDF (mm) at anatomical points ``(3, N)``."""
        p = self.tibia_parts
        d = sdf.smin(p["plateau"](q), p["tibia_metaphysis"](q), 10.0)
        d = sdf.smin(d, p["tuberosity"](q), 5.0)
        return sdf.smin(d, p["tibia_shaft"](q), 24.0)

    def _femur_fields(self, q: np.ndarray) -> np.ndarray:
        f = self.femur_in_anat.to_local(q)
        F = self.femur_local(f)
        return np.stack([F, F - self.femoral_thickness(f)])

    def _tibia_fields(self, q: np.ndarray) -> np.ndarray:
        T = self.tibia_raw(q)
        return np.stack([T, T - self.tibial_thickness(q)])

    def fields(self, p: np.ndarray, cull: bool = True) -> dict[str, np.ndarray]:
        """All SDFs (mm) at world points ``(3, N)``: femur ``F``, femoral cartilage outer
        surface ``F_out``, carved tibia ``T`` and tibial cartilage outer surface ``T_out``."""
        q = self.pose.to_local(p)
        if cull:
            F, F_out = render.eval_in_box(lambda x: self._femur_fields(self.pose.to_local(x)), p, self.femur_box, 2)
            T, T_out = render.eval_in_box(lambda x: self._tibia_fields(self.pose.to_local(x)), p, self.tibia_box, 2)
        else:
            F, F_out = self._femur_fields(q)
            T, T_out = self._tibia_fields(q)
        carve = self.gap - F_out
        return {"q": q, "F": F, "F_out": F_out, "T": np.maximum(T, carve), "T_out": np.maximum(T_out, carve)}

    def structure_sdf(self, structure: str, p: np.ndarray) -> np.ndarray:
        """SDF (mm) of a labelled bone (``femur`` / ``tibia``) at world points ``(3, N)``."""
        if structure == "femur":
            return self.femur_local(self.femur_frame.to_local(p))
        return self.fields(p, cull=False)["T"]

    def anchor_parts(self, structure: str) -> list[tuple[str, object, Frame]]:
        """Primitives whose surfaces carry the structure's landmarks, with their frames."""
        if structure == "femur":
            return [(k, v, self.femur_frame) for k, v in self.femur_parts.items()]
        return [(k, v, self.pose) for k, v in self.tibia_parts.items()]

    def landmark_region(self, structure: str, p: np.ndarray) -> np.ndarray:
        """Where (world points ``(3, N)``) template landmarks may be chosen."""
        q = self.pose.to_local(p)
        return np.abs(q[2]) <= LANDMARK_Z_LIMIT

    # ------------------------------------------------------------------ image
    def evaluate(self, p: np.ndarray, voxel_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Labels ``uint8 (N,)``, noise-free intensity ``float32 (N,)`` and distance to the
        nearest boundary (mm, see :class:`mskseg.synthetic.render.Painter`) at world ``(3, N)``."""
        fl = self.fields(p)
        q, F, F_out, T, T_out = fl["q"], fl["F"], fl["F_out"], fl["T"], fl["T_out"]
        lab = np.zeros(p.shape[1], dtype=np.uint8)
        lab[T_out <= 0] = LABELS["tibial_cartilage"]
        lab[T <= 0] = LABELS["tibia"]
        lab[F_out <= 0] = LABELS["femoral_cartilage"]
        lab[F <= 0] = LABELS["femur"]
        v = self.appearance["intensity"]
        paint = Painter(p.shape[1], v["air"], voxel_mm)
        for field in (F, F_out, T, T_out):
            paint.track(field)
        leg = self.leg(q)
        paint.paint(leg, v["fat"])
        paint.paint(leg + self.fat_thickness, v["muscle"])
        paint.paint(self.popliteal_fat(q), v["fat"])
        paint.paint(self.hoffa_fat(q), v["fat"])
        pat = render.eval_in_box(self._patella_fields, p, self.patella_box, 3)
        fluid = np.minimum(np.maximum(F_out, T_out) - 2.0, np.maximum(F_out, pat[0]) - 2.5)
        paint.paint(np.minimum(fluid, pat[2]), v["fluid"])
        paint.paint(pat[0], v["cartilage"])
        paint.paint(pat[1], v["cortex"])
        paint.paint(pat[1] + CORTEX_MM, v["marrow"])
        paint.paint(T_out, v["cartilage"])
        paint.paint(T, v["cortex"])
        paint.paint(T + CORTEX_MM, v["marrow"])
        paint.paint(F_out, v["cartilage"])
        paint.paint(F, v["cortex"])
        paint.paint(F + CORTEX_MM, v["marrow"])
        return lab, paint.value, paint.margin

    def _patella_fields(self, p: np.ndarray) -> np.ndarray:
        f = self.femur_frame.to_local(p)
        return np.stack([self.patella_cart(f), self.patella(f), self.pouch(f)])
