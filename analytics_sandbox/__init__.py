"""A local stand-in for the audience and feedback APIs: shapes, quirks, faults and scale.

`Sandbox` serves both APIs from one loopback HTTP server; `Sandbox.data` changes what they serve
and lists what they serve (the expectations of a test); `SandboxClient` drives a sandbox running in
another process through its `/_control` routes. `python -m analytics_sandbox` runs one.
"""

from .client import SandboxClient
from .config import SandboxConfig
from .dataset import RESOURCES, Dataset
from .sandbox import Sandbox

__all__ = ["RESOURCES", "Dataset", "Sandbox", "SandboxClient", "SandboxConfig"]
