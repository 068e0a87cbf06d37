"""Small-signal impedance of the simulated cell about its present state (for PEIS/GEIS).

The circuit is the one ``SimCell`` integrates, linearised:

    Z = R_ohm + 1 / (jw (C_int + C_dl) + 1 / Z_f),   Z_f = R_ct,diff + dU/dx * x^_s / I^_f

R_ct,diff is the Butler-Volmer differential resistance R_ct / sqrt(1 + (I_f / 2 i0)^2) at the
present faradaic current (R_ct at rest; the integrator's chord, lagged one step, linearises to
the same). The diffusion term uses the cell's own shell operator (``surface_response``) and the
OCV slope at the surface stoichiometry, so it shows the Warburg 45-degree line at mid frequency
and turns capacitive at the lowest (finite particle, nothing leaves through the centre).
"""

from __future__ import annotations

import math

import numpy as np


def faradaic_resistance(r_ct: float, f_half: float, i_f: float) -> float:
    """d(eta)/d(I_f) of symmetric Butler-Volmer; ``f_half`` = F / 2RT."""
    y = i_f * r_ct * f_half  # I_f / (2 i0)
    return r_ct / math.sqrt(1.0 + y * y)


def circuit_impedance(
    frequencies_Hz: np.ndarray,
    r_ohm: float,
    capacitance_F: float,
    r_faradaic: float,
    ocv_slope_V: float,
    surface_response,
) -> np.ndarray:
    """Complex Z (ohm) of R_ohm + (C || (R_f + Z_diffusion)) at each frequency."""
    f = np.asarray(frequencies_Hz, dtype=float)
    if f.size and not np.all(f > 0):
        raise ValueError("frequencies_Hz must be > 0")
    w = 2.0 * np.pi * f
    z_f = r_faradaic + ocv_slope_V * surface_response(w)
    return r_ohm + 1.0 / (1j * w * capacitance_F + 1.0 / z_f)
