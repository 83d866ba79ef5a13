"""Interrupting a real process with a real SIGINT at a known point (shared by the tests)."""

from __future__ import annotations

import signal
import subprocess


def interrupt_at_marker(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Start ``args``, wait until it writes ``WAITING`` on stderr (the marker, not a guessed
    sleep), send it SIGINT; its exit status, stdout and stderr."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        err = b""
        while b"WAITING" not in err:
            line = proc.stderr.readline()
            assert line, err.decode(errors="replace")
            err += line
        proc.send_signal(signal.SIGINT)
        out, rest = proc.communicate(timeout=120)
    finally:
        proc.kill()
    return proc.returncode, out.decode(errors="replace"), (err + rest).decode(errors="replace")
