import sys

from assistd.cli import main

sys.exit(main())
