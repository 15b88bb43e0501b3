"""``python -m local``: see :mod:`local.cli`."""

from local.cli import main

raise SystemExit(main())
