# SPDX-License-Identifier: Apache-2.0
"""kodiak — NumPy-like distributed arrays held by a kodiakd compute server,
with Arkouda's names: `import kodiak as ak`."""
from .client import (KodiakError, RequestTimeoutError, ServerBusyError, connect,  # noqa: F401
                     connected, disconnect, server_info)
from .creation import (arange, array, full, full_like, linspace, ones, ones_like,  # noqa: F401
                       randint, standard_normal, uniform, zeros, zeros_like)
from .pdarrayclass import pdarray  # noqa: F401
from .server import (get_config, get_mem_avail, get_mem_status, get_mem_used,  # noqa: F401
                     list_symbols)
from .numeric import *  # noqa: F401,F403
from .sorting import *  # noqa: F401,F403
from .sorting import SortingAlgorithm  # noqa: F401 — an Enum (no __all__ docstring rules)
from .groupby import *  # noqa: F401,F403
from .launcher import *  # noqa: F401,F403
from .session import *  # noqa: F401,F403
from .famarray import *  # noqa: F401,F403
from .categorical import *  # noqa: F401,F403
from .io import *  # noqa: F401,F403
from .io import ParserWarning  # noqa: F401
from .hdfio import *  # noqa: F401,F403
from .dataset import *  # noqa: F401,F403
from .fpe import *  # noqa: F401,F403
from .ufuncs import *  # noqa: F401,F403
from .ufuncs import dtype  # noqa: F401
from . import testing  # noqa: F401,E402
from .search import *  # noqa: F401,F403
from .stats import *  # noqa: F401,F403
from . import random  # noqa: F401,E402 — ak.random.default_rng, ak.random.seed, ...

# The dtypes, as Arkouda spells them: NumPy's scalar types, so that
# ak.int64(5), isinstance(x, ak.int64) and a.dtype == ak.int64 all work.
from numpy import bool_, float64, int64, uint64  # noqa: E402,F401
bool = bool_  # noqa: A001

__version__ = "0.1.0"
