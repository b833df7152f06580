"""Version 4: does not import."""

import a_module_that_is_not_there  # noqa: F401

from behaviours import GenServer


class Counter(GenServer[int]):
    pass
