"""``python -m sink``: the same as the ``sink`` command."""

from sink.cli import main

raise SystemExit(main())
