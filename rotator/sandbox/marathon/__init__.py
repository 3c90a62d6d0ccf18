"""An emulator of the Marathon 1.6 REST API: deployments that take time, simulated tasks
on named agents, simulated health checks, and an event stream.

``MarathonEmulator`` holds state and logic; ``create_app`` serves one over HTTP;
``MarathonFleet`` serves many, chosen by the requested address (through a proxy).
"""

from .emulator import MarathonEmulator
from .fleet import MarathonFleet
from .http import create_app, run_ticker
from .model import Agent, NullTaskListener, TaskInfo, TaskListener
from .server import ServerThread

__all__ = [
    "Agent",
    "MarathonEmulator",
    "MarathonFleet",
    "NullTaskListener",
    "ServerThread",
    "TaskInfo",
    "TaskListener",
    "create_app",
    "run_ticker",
]
