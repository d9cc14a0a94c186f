import sys

from ocf.cli import main

sys.exit(main())
