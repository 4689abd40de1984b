import sys
from pathlib import Path

# Let the example tests import the example application without installing it.
sys.path.insert(0, str(Path(__file__).parent))
