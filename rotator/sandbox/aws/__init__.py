"""The sandbox's AWS: moto in server mode behind a fault/gap-fixing layer."""

from .control_client import AwsEmulatorControl, AwsEmulatorControlError
from .emulator import AwsEmulator
from .faults import Fault

__all__ = ["AwsEmulator", "AwsEmulatorControl", "AwsEmulatorControlError", "Fault"]
