"""`operando skpm-map`: one SKPM map, or a line profile, of the cell as it is now, as one stored
run, through ``Lab.skpm_map`` / ``Lab.skpm_line_profile`` (the same code as an IPython session)."""

from __future__ import annotations

from operando.devices.configuration import ConfigError


def add_command(sub, data_help: str) -> None:
    mp = sub.add_parser("skpm-map", help="one SKPM map (or a line profile) of the cell as it is now")
    mp.add_argument("--profile", default="nanonis-sim", help="profile name or YAML path (default: nanonis-sim)")
    mp.add_argument("--pixels", type=int, help="pixels per line (default: the profile's)")
    mp.add_argument("--lines", type=int, help="lines (default: the profile's)")
    mp.add_argument("--width-nm", type=float, help="scan width, nm (default: the profile's)")
    mp.add_argument("--height-nm", type=float, help="scan height, nm (default: the profile's)")
    mp.add_argument("--line-rate-hz", type=float, help="lines per second, trace and retrace (default: the profile's)")
    mp.add_argument(
        "--line-profile", type=int, metavar="REPEATS", help="a line profile: one line scanned REPEATS times"
    )
    mp.add_argument("--skpm", help="SKPM instrument name, when the profile has several")
    mp.add_argument("--speed", type=float, help="simulation clock speed-up (sim backends only)")
    mp.add_argument("--data", help=data_help)
    mp.set_defaults(func=_cmd_map)


def _positive(value, option: str):
    if value is not None and not value > 0:
        raise ConfigError(f"{option} must be > 0 (got {value})")
    return value


def _plan(args, lab):
    nm = lambda v: None if v is None else v * 1e-9
    for option in ("pixels", "lines", "width_nm", "height_nm", "line_rate_hz", "line_profile"):
        _positive(getattr(args, option), "--" + option.replace("_", "-"))
    if args.line_profile is not None:
        if args.pixels is None or args.width_nm is None or args.lines or args.height_nm:
            raise ConfigError("--line-profile REPEATS takes --pixels and --width-nm (not --lines or --height-nm)")
        return lab.skpm_line_profile(
            args.pixels, nm(args.width_nm), repeats=args.line_profile, skpm=args.skpm, line_rate_hz=args.line_rate_hz
        )
    scan = {
        "pixels": args.pixels,
        "lines": args.lines,
        "width": nm(args.width_nm),
        "height": nm(args.height_nm),
        "line_rate": args.line_rate_hz,
    }
    return lab.skpm_map(skpm=args.skpm, **scan)


def _cmd_map(args) -> int:
    from .ipython import open_lab

    lab = open_lab(args.profile, data=args.data, speed=args.speed)
    stops: list[dict] = []
    try:
        try:
            plan = _plan(args, lab)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        uids = lab.RE(plan, lambda name, doc: stops.append(doc) if name == "stop" else None)
    finally:
        lab.close()
    status = stops[-1].get("exit_status", "unknown") if stops else "unknown"
    uid = uids[0] if uids else None
    print(f"run {uid} ended: {status}; see `operando analyse {uid[:8]}`" if uid else "no run was stored")
    return 0 if status == "success" else 1
