"""The exit statuses of the command line (docs/cli.rst)."""

from __future__ import annotations

EXIT_BAD_INPUT = 2
#: ``train`` interrupted before its first epoch completed: no model written.
EXIT_NOTHING_SAVED = 3
#: Interrupted; ``train`` saved the model of its last completed (or best) epoch first.
EXIT_INTERRUPTED = 130
#: The reader of the output went away (``| head``): killed by SIGPIPE, as the shell reports it.
EXIT_PIPE_CLOSED = 141
