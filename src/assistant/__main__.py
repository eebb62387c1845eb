import sys

from assistant.faces.cli import main

sys.exit(main())
