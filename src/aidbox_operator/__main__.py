import sys

from aidbox_operator.cli import main

sys.exit(main())
