"""`operando calibrate-raman`: the Raman-shift axis against a reference (``raman_calibration.py``)."""

from __future__ import annotations

import sys


def add_command(sub, data_help: str) -> None:
    cal = sub.add_parser("calibrate-raman", help="check the Raman-shift axis against silicon; store the offset")
    cal.add_argument("--profile", default="sim", help="profile name or YAML path (default: sim)")
    cal.add_argument("--reference", default="silicon", choices=["silicon"], help="the reference in the beam")
    cal.add_argument("--instrument", help="Raman instrument name, when the profile has several")
    cal.add_argument("--exposure-s", type=float, default=1.0, help="per accumulation (default 1)")
    cal.add_argument("--accumulations", type=int, default=2)
    cal.add_argument("--speed", type=float, help="simulation clock speed-up (sim backends only)")
    cal.add_argument("--data", help=data_help)
    cal.add_argument("--yes", action="store_true", help="the reference is in the beam: do not ask")
    cal.set_defaults(func=_cmd_calibrate)


def _cmd_calibrate(args) -> int:
    from .ipython import open_lab
    from .raman_calibration import calibrate_raman, calibration_path

    lab = open_lab(args.profile, data=args.data, speed=args.speed)
    try:
        if lab.instruments.sim_lab is None and not args.yes:
            input(f"Put the {args.reference} reference in the beam, then press Enter: ")
        record = calibrate_raman(
            lab,
            args.reference,
            instrument=args.instrument,
            exposure_s=args.exposure_s,
            accumulations=args.accumulations,
        )
    finally:
        lab.close()
    print(
        f"{record.instrument}: {record.reference} band at {record.fitted_cm1:.2f} ± {record.fitted_err_cm1:.2f} cm-1 "
        f"on the instrument's axis; offset {record.offset_cm1:+.2f} cm-1 stored in "
        f"{calibration_path(lab.data_dir, record.instrument)} and applied to every later run on this data directory "
        f"(calibration run {record.run_uid[:8]})",
        file=sys.stdout,
    )
    return 0
