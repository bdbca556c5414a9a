"""The native binary's fixtures (tests/helpers/native.py): the built binary and the edge world
with its frames decoded as the binary reads them."""
from tests.helpers.native import native_bin, native_world  # noqa: F401
