"""The MethodSCRIPT protocol in one import: values, reply events, scripts — no I/O.

Like caproto, the grammar is kept apart from the transport (``methodscript.py``), so a driver, a
fuzzer or a test can use it without a serial port. Split by concern:
``methodscript_values`` (package variables, literals), ``methodscript_replies`` (reply lines ->
events), ``methodscript_scripts`` (script header, measurement loops and conditions from plain
numbers). The project's techniques become scripts in
``operando.devices.backends.methodscript_steps``.
"""

from __future__ import annotations

from .methodscript_replies import (
    AbortAccepted,
    DataPackage,
    EndOfScript,
    ErrorReply,
    LoopEnd,
    LoopStart,
    MeasLoopEnd,
    MeasLoopStart,
    ReplyEvent,
    ScanEnd,
    ScanStart,
    ScriptAccepted,
    Text,
    UnknownLine,
    parse_package,
    parse_reply_line,
)
from .methodscript_scripts import (
    PGSTAT_MODE_GALVANOSTAT,
    PGSTAT_MODE_POTENTIOSTAT,
    ScriptOptions,
    ca_loop,
    cp_loop,
    current_cutoff,
    cv_loop,
    eis_loop,
    geis_loop,
    if_break,
    lsv_loop,
    max_bandwidth_for_interval,
    ocp_loop,
    package,
    pgstat_mode,
    rms_literal,
    script_header,
    upload_bytes,
    voltage_cutoff,
    wrap_script,
)
from .methodscript_values import (
    SI_PREFIXES,
    STATUS_FLAGS,
    VAR_TYPES,
    PackageVariable,
    decode_value,
    encode_value,
    format_literal,
    format_variable,
    parse_variable,
)

# Online commands (outside a script); each reply line starts with the command's character.
CMD_FIRMWARE = "t"  # reply: "t<version...>" lines, the last one ends with "*"
CMD_SERIAL = "i"
CMD_MSCRIPT_VERSION = "v"
CMD_EXECUTE = "e"  # followed by the script lines and a blank line
CMD_ABORT = "Z"  # reply "Z" in the stream if a script runs, else "Z!0006"
ERROR_NOTHING_RUNNING = 0x0006  # seen as "Z!0006" in PalmSens' abort_and_sync example

__all__ = [
    "AbortAccepted", "CMD_ABORT", "CMD_EXECUTE", "CMD_FIRMWARE", "CMD_MSCRIPT_VERSION",
    "CMD_SERIAL", "DataPackage", "ERROR_NOTHING_RUNNING", "EndOfScript", "ErrorReply",
    "LoopEnd", "LoopStart", "MeasLoopEnd", "MeasLoopStart", "PGSTAT_MODE_GALVANOSTAT",
    "PGSTAT_MODE_POTENTIOSTAT", "PackageVariable", "ReplyEvent", "SI_PREFIXES", "STATUS_FLAGS",
    "ScanEnd", "ScanStart", "ScriptAccepted", "ScriptOptions", "Text", "UnknownLine",
    "VAR_TYPES", "ca_loop", "cp_loop", "current_cutoff", "cv_loop", "decode_value",
    "eis_loop", "encode_value", "format_literal", "format_variable", "geis_loop", "if_break",
    "lsv_loop", "max_bandwidth_for_interval", "ocp_loop", "package", "parse_package",
    "parse_reply_line", "parse_variable", "pgstat_mode", "rms_literal", "script_header",
    "upload_bytes", "voltage_cutoff", "wrap_script",
]  # fmt: skip
