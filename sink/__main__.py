"""``python -m sink``: the same as the ``sink`` command."""

from sink.cli.main import main

raise SystemExit(main())
