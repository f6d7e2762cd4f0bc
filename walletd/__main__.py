from __future__ import annotations

import sys

from walletd.main import main

sys.exit(main())
