"""`operando mt-sweep` and `operando mh-loop`: an M–T sweep or an M–H loop of the cell as it is
now (after an `operando run` left it at a state of charge, at open circuit), as one stored run.

Both go through ``open_lab`` and ``Lab.mt_sweep`` / ``Lab.mh_loop``, the same code as an IPython
session; on simulated instruments the cell is the profile's fresh simulated one.
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

from operando.devices.configuration import ConfigError


def add_commands(sub, data_help: str) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--profile", default="mpms-sim", help="profile name or YAML path (default: mpms-sim)")
    common.add_argument("--magnetometer", help="instrument name, when the profile has several magnetometers")
    common.add_argument("--relax-s", type=float, default=None, help="wait after each field change, s (default 375)")
    common.add_argument("--no-restore", action="store_true", help="leave field and temperature where the plan ends")
    common.add_argument("--speed", type=float, help="simulation clock speed-up (sim backends only)")
    common.add_argument("--data", help=data_help)
    common.add_argument("--quiet", action="store_true", help="no line per point")

    mt = sub.add_parser("mt-sweep", parents=[common], help="M–T: zero-field-cooled, then field-cooled, one run")
    mt.add_argument(
        "--temperatures",
        required=True,
        help="K: a list (5,10,20,50) or START:STOP:N, N points spaced evenly in log T",
    )
    mt.add_argument("--field-T", type=float, required=True, help="measuring field, T")
    mt.set_defaults(func=_cmd_mt_sweep)

    mh = sub.add_parser("mh-loop", parents=[common], help="M–H: the fields in the order given, one run")
    mh.add_argument("--fields-T", required=True, help="T, in order: a list (0,7,-7,7) or START:STOP:N (linear)")
    mh.add_argument("--temperature-K", type=float, required=True, help="measuring temperature, K")
    mh.set_defaults(func=_cmd_mh_loop)


def parse_values(text: str, option: str, spacing: str) -> list[float]:
    """``a,b,c`` or ``start:stop:n`` (``spacing`` log or linear) -> values; ConfigError naming
    ``option`` otherwise."""
    try:
        if ":" in text:
            start, stop, n = text.split(":")
            count = int(n)
            if count < 2:
                raise ValueError("N must be at least 2")
            lo, hi = float(start), float(stop)
            if spacing == "log":
                if not (lo > 0 and hi > 0):
                    raise ValueError("log spacing needs START and STOP > 0")
                values = np.geomspace(lo, hi, count)
            else:
                values = np.linspace(lo, hi, count)
        else:
            values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise ConfigError(f"{option} {text!r}: {exc} (a list like 5,10,20 or START:STOP:N)") from None
    values = [float(v) for v in values]
    if not values or not all(math.isfinite(v) for v in values):
        raise ConfigError(f"{option} {text!r}: needs finite numbers")
    return values


def _cmd_mt_sweep(args) -> int:
    temperatures = parse_values(args.temperatures, "--temperatures", "log")
    return _run(args, lambda lab, kw: lab.mt_sweep(temperatures, args.field_T, **kw), ("zfc", "fc"))


def _cmd_mh_loop(args) -> int:
    fields = parse_values(args.fields_T, "--fields-T", "linear")
    return _run(args, lambda lab, kw: lab.mh_loop(fields, args.temperature_K, **kw), ("mh",))


def _run(args, make_plan, streams: tuple[str, ...]) -> int:
    from .ipython import open_lab

    lab = open_lab(args.profile, data=args.data, speed=args.speed)
    try:
        kwargs = {"magnetometer": args.magnetometer, "restore": not args.no_restore}
        if args.relax_s is not None:
            if not args.relax_s >= 0:
                raise ConfigError(f"--relax-s must be >= 0 (got {args.relax_s})")
            kwargs["relax_s"] = args.relax_s
        try:
            plan = make_plan(lab, kwargs)
        except ValueError as exc:  # a set-point outside the magnetometer's ranges
            raise ConfigError(str(exc)) from None
        printer = _PointPrinter(streams, quiet=args.quiet)
        uids = lab.RE(plan, printer)
        status = printer.exit_status
    finally:
        lab.close()
    uid = uids[0] if uids else None
    print(f"run {uid} ended: {status}; see `operando analyse {uid[:8]}`" if uid else "no run was stored")
    return 0 if status == "success" else 1


class _PointPrinter:
    """One line per measured point; remembers how the run ended."""

    def __init__(self, streams: tuple[str, ...], quiet: bool = False):
        self.streams, self.quiet, self.descriptors, self.exit_status = streams, quiet, {}, "unknown"
        self.counts: dict[str, int] = {}

    def __call__(self, name: str, doc: dict) -> None:
        if name == "descriptor" and doc["name"] in self.streams:
            self.descriptors[doc["uid"]] = doc["name"]
        elif name == "event" and doc["descriptor"] in self.descriptors and not self.quiet:
            stream = self.descriptors[doc["descriptor"]]
            self.counts[stream] = self.counts.get(stream, 0) + 1
            values = {k.rsplit("-", 1)[-1]: v for k, v in doc["data"].items()}
            print(
                f"{stream} {self.counts[stream]:3d}: T = {values.get('temperature', math.nan):8.3f} K, "
                f"B = {values.get('field', math.nan):+8.4f} T, m = {values.get('moment', math.nan):+.5e} emu",
                file=sys.stdout,
                flush=True,
            )
        elif name == "stop":
            self.exit_status = doc.get("exit_status", "unknown")
