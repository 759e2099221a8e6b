import sys

from crowdet.cli import main

sys.exit(main())
