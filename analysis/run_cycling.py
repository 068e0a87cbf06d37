"""Cycling results of a stored run for `operando analyse`: per cycle the charge and discharge
capacity (mAh, and mAh g⁻¹ of active material when the sample says its mass), coulombic and
energy efficiency, mean charge and discharge voltages, their hysteresis, and capacity retention
against the first cycle that discharged (``cycling.cycle_metrics``)."""

from __future__ import annotations

import math

from .cycling import CycleMetrics


def _specific(value_mAh: float, mass_g: float | None) -> float:
    return value_mAh / mass_g if mass_g else math.nan


def format_cycling(cycles: list[CycleMetrics], mass_g: float | None) -> list[str]:
    per_g = f"; specific per {mass_g * 1e3:g} mg of active material" if mass_g else ""
    lines = [
        f"Cycling ({len(cycles)} cycles{per_g})",
        f"  {'cycle':>5}  {'Q_ch/mAh':>9}  {'Q_dis/mAh':>9}  {'mAh/g':>7}  {'CE/%':>6}  {'EE/%':>6}  "
        f"{'<V>ch':>6}  {'<V>dis':>6}  {'hyst/V':>6}  {'retention':>9}",
    ]

    def pct(x: float) -> str:
        return f"{x * 100:6.2f}" if math.isfinite(x) else f"{'-':>6}"

    def v(x: float) -> str:
        return f"{x:6.3f}" if math.isfinite(x) else f"{'-':>6}"

    for c in cycles:
        specific = _specific(c.discharge_mAh, mass_g)
        lines.append(
            f"  {c.cycle:>5}  {c.charge_mAh:9.4f}  {c.discharge_mAh:9.4f}  "
            + (f"{specific:7.1f}" if math.isfinite(specific) else f"{'-':>7}")
            + f"  {pct(c.coulombic_efficiency)}  {pct(c.energy_efficiency)}  {v(c.mean_charge_V)}  "
            f"{v(c.mean_discharge_V)}  {v(c.hysteresis_V)}  {pct(c.retention):>9}"
        )
    order = {c.discharge_first for c in cycles}
    ce = "Q_ch/Q_dis (discharge first)" if order == {True} else "Q_dis/Q_ch" if order == {False} else "out/in"
    lines.append(f"  (CE = {ce}, EE = E_dis/E_ch of the same cycle; mAh/g and retention: discharge)")
    return lines


def cycling_json(cycles: list[CycleMetrics], mass_g: float | None) -> list[dict]:
    def num(x: float):
        return float(x) if math.isfinite(x) else None

    return [
        {
            "cycle": c.cycle,
            "charge_mAh": c.charge_mAh,
            "discharge_mAh": c.discharge_mAh,
            "charge_mAh_g": num(_specific(c.charge_mAh, mass_g)),
            "discharge_mAh_g": num(_specific(c.discharge_mAh, mass_g)),
            "charge_mWh": c.charge_mWh,
            "discharge_mWh": c.discharge_mWh,
            "coulombic_efficiency": num(c.coulombic_efficiency),
            "energy_efficiency": num(c.energy_efficiency),
            "mean_charge_V": num(c.mean_charge_V),
            "mean_discharge_V": num(c.mean_discharge_V),
            "hysteresis_V": num(c.hysteresis_V),
            "retention": num(c.retention),
            "discharge_first": c.discharge_first,
        }
        for c in cycles
    ]


def draw_cycling(ax, cycles: list[CycleMetrics], mass_g: float | None) -> None:
    """Discharge capacity per cycle (left) and coulombic efficiency (right)."""
    n = [c.cycle for c in cycles]
    specific = mass_g is not None
    cap = [_specific(c.discharge_mAh, mass_g) if specific else c.discharge_mAh for c in cycles]
    ax.plot(n, cap, "o-", color="C0", label="discharge")
    ax.set(xlabel="cycle", ylabel="discharge / mAh g$^{-1}$" if specific else "discharge / mAh", title="Cycling")
    twin = ax.twinx()
    twin.plot(n, [c.coulombic_efficiency * 100 for c in cycles], "s--", color="C1")
    twin.set_ylabel("coulombic efficiency / %", color="C1")
