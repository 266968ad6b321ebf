"""``python -m trionet``: the same as the ``trionet`` command."""

from ._cli import main

raise SystemExit(main())
