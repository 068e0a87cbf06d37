"""The step kinds a protocol file may contain, in the user's units (see plans/protocol.py).

Each model is only the shape of a YAML mapping; turning it into SI techniques, with the checks
against the sample and the limits, is ``plans/protocol_compile.py``.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import Field, PositiveFloat, PositiveInt

from operando.devices.configuration import StrictModel

# a current: exactly one of these (amps, amps per gram of active mass, C-rate)
CURRENT_KEYS = ("current_A", "current_A_g", "c_rate")


class _Step(StrictModel):
    label: str = ""  # shown in the GUI and stored with the data; generated when empty


class _Current(_Step):
    current_A: Optional[float] = None
    current_A_g: Optional[float] = None
    c_rate: Optional[float] = None


class _MaxDuration(StrictModel):
    max_duration_s: Optional[PositiveFloat] = None
    max_duration_min: Optional[PositiveFloat] = None
    max_duration_h: Optional[PositiveFloat] = None


class _ScanRate(StrictModel):
    scan_rate_V_s: Optional[PositiveFloat] = None
    scan_rate_mV_s: Optional[PositiveFloat] = None
    e_step_mV: PositiveFloat = 1.0  # staircase step of the sweep


class _Frequencies(StrictModel):
    f_max_Hz: PositiveFloat = 100_000.0
    f_min_Hz: PositiveFloat = 0.01
    points_per_decade: PositiveInt = 10


class Rest(_Step):
    kind: Literal["rest"]
    duration_s: Optional[PositiveFloat] = None
    duration_min: Optional[PositiveFloat] = None
    duration_h: Optional[PositiveFloat] = None


class ConstantCurrentStep(_Current, _MaxDuration):
    kind: Literal["cc"]
    e_min_V: Optional[float] = None
    e_max_V: Optional[float] = None
    # a capacity cut-off: the step ends once this much charge has passed (for a constant
    # current that is exactly a time limit, and is compiled as one)
    max_capacity_mAh: Optional[PositiveFloat] = None
    max_capacity_fraction: Optional[PositiveFloat] = None  # of the sample's theoretical capacity


class CccvStep(_Current, _MaxDuration):
    kind: Literal["cccv"]
    e_hold_V: float
    i_cutoff_A: Optional[PositiveFloat] = None
    i_cutoff_c_rate: Optional[PositiveFloat] = None  # e.g. 0.05 for C/20


class LsvStep(_Step, _ScanRate):
    kind: Literal["lsv"]
    e_start_V: Optional[float] = None
    e_start: Optional[Literal["ocv"]] = None  # ocv: start where the cell rests (exactly one of the two)
    e_end_V: float


class CvStep(_Step, _ScanRate):
    kind: Literal["cv"]
    e_start_V: Optional[float] = None
    e_start: Optional[Literal["ocv"]] = None  # ocv: start where the cell rests (exactly one of the two)
    e_vertex1_V: float
    e_vertex2_V: float
    cycles: PositiveInt = 1


class CaStep(_Step):
    kind: Literal["ca"]
    e_V: Optional[float] = None
    e: Optional[Literal["ocv"]] = None  # ocv: hold the potential the cell rests at (exactly one of the two)
    duration_s: Optional[PositiveFloat] = None
    duration_min: Optional[PositiveFloat] = None
    duration_h: Optional[PositiveFloat] = None
    i_cutoff_A: Optional[PositiveFloat] = None
    i_cutoff_c_rate: Optional[PositiveFloat] = None


class GittStep(_Current):
    kind: Literal["gitt"]
    pulse_s: Optional[PositiveFloat] = None
    pulse_min: Optional[PositiveFloat] = None
    pulse_h: Optional[PositiveFloat] = None
    relax_s: Optional[PositiveFloat] = None
    relax_min: Optional[PositiveFloat] = None
    relax_h: Optional[PositiveFloat] = None
    e_min_V: Optional[float] = None
    e_max_V: Optional[float] = None
    max_pulses: Optional[PositiveInt] = None


class PeisStep(_Step, _Frequencies):
    kind: Literal["peis"]
    e_dc_V: Optional[float] = None  # omitted: at the open-circuit potential
    amplitude_mV: PositiveFloat = 10.0


class GeisStep(_Current, _Frequencies):
    kind: Literal["geis"]  # the current keys give the DC current; omitted: 0 (at open circuit)
    amplitude_A: Optional[PositiveFloat] = None
    amplitude_c_rate: Optional[PositiveFloat] = None


class Loop(_Step):
    kind: Literal["loop"]
    repeat: PositiveInt
    steps: list[Step] = Field(min_length=1)


Step = Annotated[
    Union[Rest, ConstantCurrentStep, CccvStep, LsvStep, CvStep, CaStep, GittStep, PeisStep, GeisStep, Loop],
    Field(discriminator="kind"),
]
Loop.model_rebuild()
