"""``python -m vgem.testing BACKBONE``: the conformance kit without pytest."""

from vgem.testing import main

raise SystemExit(main())
