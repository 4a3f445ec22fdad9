"""`python -m wecom_stream …`: the `wecom-stream` command line (`wecom_stream.cli`)."""

import sys

from wecom_stream.cli import main

sys.exit(main())
