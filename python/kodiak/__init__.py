"""kodiak — NumPy-like distributed arrays held by a kodiakd compute server,
with Arkouda's names: `import kodiak as ak`."""
from .client import KodiakError, connect, connected, disconnect, server_info, shutdown  # noqa: F401
from .creation import (arange, array, full, full_like, linspace, ones, ones_like,  # noqa: F401
                       randint, standard_normal, uniform, zeros, zeros_like)
from .dtypes import bool_, float64, int64, uint64  # noqa: F401
from .dtypes import bool  # noqa: F401,A004
from .pdarray import pdarray  # noqa: F401
from .server import get_mem_avail, get_mem_status, get_mem_used, list_symbols  # noqa: F401
from .numeric import *  # noqa: F401,F403
from .sorting import *  # noqa: F401,F403
from .groupby import *  # noqa: F401,F403
from .launcher import *  # noqa: F401,F403
from .famarray import *  # noqa: F401,F403

__version__ = "0.1.0"
