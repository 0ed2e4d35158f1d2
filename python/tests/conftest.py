import os
import pathlib
import sys

# Tests run against scripts/build-library.sh's build unless INTFA_LIBRARY names another
# library (or INTFA_TEST_INSTALLED says to use an installed wheel's).
_root = pathlib.Path(__file__).resolve().parents[2]
_built = _root / ".build/release/libintfa_c.so"
if "INTFA_LIBRARY" not in os.environ and not os.environ.get("INTFA_TEST_INSTALLED") and _built.exists():
    os.environ["INTFA_LIBRARY"] = str(_built)

# The package from this checkout, unless the tests target an installed wheel.
if not os.environ.get("INTFA_TEST_INSTALLED"):
    sys.path.insert(0, str(_root / "python"))
