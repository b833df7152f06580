import os

import pytest

from otp.testing import TestNode

# A slow machine can stall the loop past the watchdog's threshold in any test (a collection,
# a subprocess); its warning would then be an unexpected report. Its own tests turn it on.
os.environ.setdefault("OTP_LOOP_BLOCK_WARNING", "off")

pytest_plugins = ["pytester"]


@pytest.fixture(params=["uvloop", "asyncio"])
def node(request: pytest.FixtureRequest) -> TestNode:
    """Every kernel test runs on uvloop and on the stdlib loop."""
    return TestNode(loop=request.param)


from hypothesis import settings  # noqa: E402

# Same examples on every run: the suite is deterministic.
settings.register_profile("otp", derandomize=True, deadline=None, database=None)
settings.load_profile("otp")
